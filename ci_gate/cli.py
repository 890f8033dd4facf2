"""Command line: parses arguments, calls the pipeline, prints the verdict. No logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import ci_gate
from ci_gate.errors import EXIT_ERROR, EXIT_PASS, EXIT_USAGE, GateError, PolicyError
from ci_gate.report.escape import log_safe, printable


def _log(msg: str) -> None:
    print(f"syscall-gate: {log_safe(printable(msg, 500))}", file=sys.stderr, flush=True)


def _summary_lines(res: dict[str, Any]) -> list[str]:
    from ci_gate.report.markdown import num

    counts = res.get("summary", {})
    tally = ", ".join(f"{counts[s]} {s}" for s in ("PASS", "WARN", "FAIL", "ERROR") if counts.get(s))
    lines = [f"status: {res['status']}" + (f" ({tally})" if tally else "")]
    for p in res.get("problems", []):
        label = "ERROR" if p["severity"] == "error" else "warning"
        lines.append(f"{label}: {p['message']}")
        if p.get("detail"):
            lines += ["  " + d for d in str(p["detail"]).splitlines()[-15:]]
    rules = res.get("rules", [])
    if rules:
        rows = [("RULE", "METRIC", "VALUE", "THRESHOLD", "STATUS")]
        for x in rules:
            metric = x["metric"] + (" /file" if x.get("per") == "file" else "")
            value = num(x["value"]).replace("\\", "") if x["value"] is not None else "n/a"
            status = x["status"] + (" (advisory)" if x["mode"] == "advisory" else "")
            rows.append((x["id"], metric, value, x["threshold"], status))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return lines


def _finish(outcome: Any) -> int:
    res = outcome.results
    for line in _summary_lines(res):
        print(log_safe(printable(line, 4000).replace("\\n", "\n")), flush=True)
    if outcome.report is not None:
        print(f"report: {outcome.report}")
        print(f"results: {outcome.results_path}")
    if outcome.interrupted is not None:
        return 128 + int(outcome.interrupted)
    return int(res["exit_code"])


def cmd_run(args: argparse.Namespace) -> int:
    from ci_gate import pipeline

    outcome = pipeline.run(
        Path(args.policy),
        Path(args.out),
        workdir=Path(args.workdir).resolve(),
        keep_fixture=args.keep_fixture,
        skip_build=args.no_build,
        scratch=Path(args.scratch) if args.scratch else None,
        log=_log,
        opcodes=args.opcodes,
    )
    return _finish(outcome)


def cmd_analyze(args: argparse.Namespace) -> int:
    from ci_gate import pipeline

    outcome = pipeline.analyze(
        args.trace,
        Path(args.out),
        policy_path=Path(args.policy) if args.policy else None,
        roots=[os.path.abspath(r) for r in args.root],
        cwd=args.cwd,
        max_trace_bytes=args.max_trace_bytes,
    )
    return _finish(outcome)


def cmd_validate(args: argparse.Namespace) -> int:
    from ci_gate.policy.load import load_policy

    worst = EXIT_PASS
    for path in args.files:
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            for d in exc.diagnostics:
                print(d, file=sys.stderr)
            worst = EXIT_USAGE
            continue
        enforced = len(policy.enforced)
        print(f"{path}: valid ({len(policy.rules)} rules, {enforced} enforced; "
              f"digest {policy.digest[:19]})")  # fmt: skip
    return worst


def cmd_docs(args: argparse.Namespace) -> int:
    from ci_gate.report import catalogue

    text = catalogue.render()
    target = Path(args.output)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is stale: run `syscall-gate docs`", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="syscall-gate",
        description="Trace a scenario under strace, compute exact syscall metrics, and judge "
        "them against a versioned policy.",
        epilog="Exit codes: 0 pass or warn, 1 fail, 2 bad usage or invalid policy, "
        "3 could not measure.",
    )
    p.add_argument("--version", action="version", version=f"syscall-gate {ci_gate.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="build the target, trace the scenario, judge, report")
    r.add_argument("--policy", required=True, help="policy file (YAML, version 1)")
    r.add_argument("--out", default="out", help="directory for report.md, results.json, "
                   "trace.txt (default: out)")  # fmt: skip
    r.add_argument("--workdir", default=".", help="where the build and the command run "
                   "(default: the current directory)")  # fmt: skip
    r.add_argument("--no-build", action="store_true", help="skip scenario.build")
    r.add_argument("--keep-fixture", action="store_true", help="keep the temporary fixture")
    r.add_argument("--scratch", help="parent directory for the temporary fixture")
    r.add_argument("--opcodes", choices=("auto", "off"), default="auto",
                   help="count io_uring SQEs by opcode from the kernel's tracepoints: auto "
                   "(when root with tracefs, the default) or off")  # fmt: skip
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("analyze", help="judge an existing strace log")
    a.add_argument("trace", help="strace output: a file, '-', a directory of -ff files or "
                   "their -o prefix")  # fmt: skip
    a.add_argument("--out", default="out", help="output directory (default: out)")
    a.add_argument("--policy", help="policy file; without it, metrics are reported unjudged")
    a.add_argument("--root", action="append", default=[], metavar="PATH",
                   help="a scenario root; the first is the source tree, the second the "
                   "destination (repeatable)")  # fmt: skip
    a.add_argument("--cwd", help="the traced program's working directory (for relative paths "
                   "in a trace without -y)")  # fmt: skip
    a.add_argument("--max-trace-bytes", type=int, default=16 * 1024**3,
                   help="refuse traces larger than this (default: 16 GiB)")  # fmt: skip
    a.set_defaults(func=cmd_analyze)

    v = sub.add_parser("validate-policy", help="check policy files; exit 2 on any error")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=cmd_validate)

    d = sub.add_parser("docs", help="generate docs/metrics.md from the metric registry")
    d.add_argument("--output", default="docs/metrics.md")
    d.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    d.set_defaults(func=cmd_docs)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PolicyError as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
        return EXIT_USAGE
    except GateError as exc:
        code = getattr(exc, "code", None)
        _log(f"error{f' ({code})' if code else ''}: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
