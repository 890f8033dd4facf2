#!/usr/bin/env bash
# Regenerate the fixed trace behind the golden report test (rarely needed: the
# trace is an input; only the expected report changes when the renderer does).
#   tests/golden/make-trace.sh && UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report_golden.py
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=/tmp/syscall-gate-golden
rm -rf "$root"
make -s -C "$repo/examples/uring-copy"
"$repo/.venv/bin/python" - "$root/src" <<'PY'
import sys
from pathlib import Path
from ci_gate.policy.model import Fixture
from ci_gate.scenario.fixture import create
create(Path(sys.argv[1]), Fixture(files=2, file_size=300_000, dirs=1, symlinks=True, seed=7))
PY
cd "$root"
strace -f -y -s 4096 -C -o "$here/uring-copy.trace" \
  "$repo/examples/uring-copy/uring-copy" --batch 4 --extra-statx 1 "$root/src" "$root/dst"
"$repo/.venv/bin/python" - "$root/src" "$here/fixture.json" <<'PY'
import json, sys
from pathlib import Path
from ci_gate.metrics.scope import Fixture
entries = Fixture.scan(Path(sys.argv[1])).to_json()
Path(sys.argv[2]).write_text(json.dumps({"scenario": {"roots": {"src": "/tmp/syscall-gate-golden/src", "dst": "/tmp/syscall-gate-golden/dst"}}, "details": {"scenario": {"fixture": entries}}}, indent=2) + "\n")
PY
rm -rf "$root"
