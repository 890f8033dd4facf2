from ci_gate.cli import main

raise SystemExit(main())
