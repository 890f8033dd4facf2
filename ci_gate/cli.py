"""Command line: parses arguments, calls the pipeline, prints the verdict. No logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import ci_gate
from ci_gate.errors import EXIT_ERROR, EXIT_PASS, EXIT_USAGE, GateError, PolicyError
from ci_gate.report.escape import StopCommands, log_safe, printable
from ci_gate.units import parse_bytes


def _log(msg: str) -> None:
    print(f"syscall-gate: {log_safe(printable(msg, 500))}", file=sys.stderr, flush=True)


def _summary_lines(res: dict[str, Any]) -> list[str]:
    from ci_gate.report.markdown import num

    counts = res.get("summary", {})
    tally = ", ".join(
        f"{counts[s]} {s}" for s in ("PASS", "WARN", "FAIL", "ERROR") if counts.get(s)
    )
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
        # Why each ERROR rule could not be judged, once per distinct reason.
        why: dict[str, list[str]] = {}
        for x in rules:
            if x["status"] == "ERROR":
                why.setdefault(x.get("message") or "not measured", []).append(x["id"])
        for message, ids in why.items():
            lines.append(f"ERROR {', '.join(ids)}: {message}")
    return lines


def _finish(outcome: Any) -> int:
    res = outcome.results
    # The summary quotes the target's stderr and file names from the trace: in
    # Actions, stop-commands makes the runner ignore any command they contain.
    guard = StopCommands() if os.environ.get("GITHUB_ACTIONS") == "true" else None
    try:
        if guard is not None:
            print(guard.start())
        for line in _summary_lines(res):
            print(log_safe(printable(line, 4000)), flush=True)
        if guard is not None:
            print(guard.end(), flush=True)
        if outcome.report is not None:
            print(f"report: {outcome.report}")
            print(f"results: {outcome.results_path}")
            trace = (res.get("trace") or {}).get("path")
            if trace and os.path.exists(trace):
                print(f"trace: {trace}", flush=True)
    except BrokenPipeError:
        # `syscall-gate analyze ... | head`: the reader left; the verdict's exit code stands.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if outcome.interrupted is not None:
        return 128 + int(outcome.interrupted)
    return int(res["exit_code"])


def _publish_options(args: argparse.Namespace) -> Any:
    from ci_gate.publish import gate

    return gate.options_from(args.comment, args.delete_on_pass, args.conclusion_map,
                             args.comment_author, args.report_url)  # fmt: skip


def _warning_log() -> Any:
    from ci_gate.publish.workflow_commands import WarningLog

    return WarningLog(lambda line: print(line, flush=True))


def _after(args: argparse.Namespace, outcome: Any) -> int:
    """Print the verdict, then publish (which never changes the exit code)."""
    code = _finish(outcome)
    # Outside Actions, with no step summary and no forced publish, there is nothing to do:
    # the GitHub client (requests, jsonschema) is not even imported.
    idle = args.publish != "always" and os.environ.get("GITHUB_ACTIONS") != "true"
    if idle and not os.environ.get("GITHUB_STEP_SUMMARY"):
        return code
    if outcome.interrupted is None and outcome.results_path is not None:
        from ci_gate.publish import gate

        gate.after_run(outcome.results, outcome.results_path, mode=args.publish,
                       options=_publish_options(args), environ=os.environ,
                       out=_warning_log())  # fmt: skip
    return code


def _byte_size(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from ci_gate import pipeline

    outcome = pipeline.run(
        Path(args.policy),
        # Absolute: strace and the build run in --workdir, not here.
        Path(args.out).resolve(),
        workdir=Path(args.workdir).resolve(),
        keep_fixture=args.keep_fixture,
        skip_build=args.no_build,
        scratch=Path(args.scratch).resolve() if args.scratch else None,
        log=_log,
        opcodes=args.opcodes,
        baseline_file=Path(args.baseline_file) if args.baseline_file else None,
        use_baseline=not args.no_baseline,
        max_trace_bytes=args.max_trace_bytes,
    )
    return _after(args, outcome)


def cmd_analyze(args: argparse.Namespace) -> int:
    from ci_gate import pipeline

    outcome = pipeline.analyze(
        args.trace,
        Path(args.out),
        policy_path=Path(args.policy) if args.policy else None,
        roots=[os.path.abspath(r) for r in args.root],
        cwd=args.cwd,
        max_trace_bytes=args.max_trace_bytes,
        scenario_from=Path(args.scenario) if args.scenario else None,
    )
    return _after(args, outcome)


def cmd_publish(args: argparse.Namespace) -> int:
    from ci_gate.publish import gate

    return gate.publish_command(
        results=Path(args.results) if args.results else None,
        artifact=Path(args.from_artifact) if args.from_artifact else None,
        options=_publish_options(args),
        environ=os.environ,
        out=_warning_log(),
    )


def cmd_merge(args: argparse.Namespace) -> int:
    from ci_gate.pipeline import prepare_out_dir, write_outputs
    from ci_gate.report import merge

    inputs = [merge.load(Path(p)) for p in args.inputs]
    merged = merge.merge(inputs, merged_id=args.id, sources=args.inputs)
    out = Path(args.out)
    prepare_out_dir(out)
    report, results_path = write_outputs(out, merged)
    print(f"status: {merged['status']} (worst of {len(inputs)} scenarios)")
    for res in inputs:
        print(f"  {log_safe(printable(merge.scenario_id(res)))}: {res['status']}")
    print(f"report: {report}")
    print(f"results: {results_path}")
    return EXIT_PASS


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
        for w in policy.warnings:
            print(w, file=sys.stderr)
        extends = f", extends {', '.join(policy.sources[:-1])}" if len(policy.sources) > 1 else ""
        print(f"{path}: valid ({len(policy.rules)} rules, {len(policy.enforced)} enforced"
              f"{extends}; digest {policy.digest})")  # fmt: skip
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


def _arg(check: Any) -> Any:
    """An argparse ``type`` from a checker that raises ValueError."""

    def convert(text: str) -> Any:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def _add_run_publish_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--publish", choices=["auto", "always", "never"], default="auto",
                        help="publish on GitHub at the end: auto = when GITHUB_ACTIONS=true "
                        "(default); never = only the step summary. Never changes the exit "
                        "code")  # fmt: skip
    _add_publish_options(parser)


def _gate_check(name: str) -> Any:
    """A checker of ci_gate.publish.gate, imported when an option is given, not before."""

    def check(text: str) -> Any:
        from ci_gate.publish import gate

        return getattr(gate, name)(text)

    return _arg(check)


def _add_publish_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("publishing on GitHub")
    g.add_argument("--comment", choices=["always", "on-failure", "never"], default="always",
                   help="post the sticky PR comment always (default), only when the gate does "
                   "not pass, or never")  # fmt: skip
    g.add_argument("--delete-on-pass", action="store_true",
                   help="with --comment on-failure: delete the comment once the gate "
                   "passes")  # fmt: skip
    g.add_argument("--conclusion-map", type=_gate_check("parse_conclusion_map"),
                   metavar="STATUS=CONCLUSION,...",
                   help="override check conclusions, e.g. WARN=success,ERROR=neutral "
                   "(default PASS=success, WARN=neutral, FAIL=failure, ERROR=failure)")  # fmt: skip
    g.add_argument("--comment-author", type=_gate_check("check_login"), metavar="LOGIN",
                   help="the login the token comments as when GET /user is refused "
                   "(default github-actions[bot]; '<app-slug>[bot]' for an app token)")  # fmt: skip
    g.add_argument("--report-url", type=_gate_check("check_report_url"), metavar="URL",
                   help="where the full report is, linked when a body is cut to GitHub's "
                   "size limits (default: the run's page)")  # fmt: skip


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
    r.add_argument(
        "--out",
        default="out",
        help="directory for report.md, results.json, trace.txt (default: out)",
    )
    r.add_argument(
        "--workdir",
        default=".",
        help="where the build and the command run (default: the current directory)",
    )
    r.add_argument("--no-build", action="store_true", help="skip scenario.build")
    r.add_argument("--keep-fixture", action="store_true", help="keep the temporary fixture")
    r.add_argument("--scratch", help="parent directory for the temporary fixture")
    r.add_argument(
        "--baseline-file",
        metavar="RESULTS_JSON",
        help="compare with this earlier results.json (overrides the policy's baseline source)",
    )
    r.add_argument(
        "--no-baseline", action="store_true", help="skip the baseline even if the policy has one"
    )
    r.add_argument(
        "--max-trace-bytes",
        type=_byte_size,
        default=16 * 1024**3,
        help="kill the target when its trace grows past this (default: 16 GiB)",
    )
    _add_run_publish_options(r)
    r.add_argument("--opcodes", choices=("auto", "off"), default="auto",
                   help="count io_uring SQEs by opcode from the kernel's tracepoints: auto "
                   "(when root with tracefs, the default) or off")  # fmt: skip
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("analyze", help="judge an existing strace log")
    a.add_argument(
        "trace", help="strace output: a file, '-', a directory of -ff files or their -o prefix"
    )
    a.add_argument("--out", default="out", help="output directory (default: out)")
    a.add_argument("--policy", help="policy file; without it, metrics are reported unjudged")
    a.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="PATH",
        help="a scenario root; the first is the source tree, the second the "
        "destination (repeatable)",
    )
    a.add_argument(
        "--scenario",
        metavar="RESULTS_JSON",
        help="take the roots and fixture from an earlier run's results.json",
    )
    a.add_argument(
        "--cwd",
        help="the traced program's working directory (for relative paths in a trace without -y)",
    )
    a.add_argument(
        "--max-trace-bytes",
        type=_byte_size,
        default=16 * 1024**3,
        help="refuse traces larger than this (default: 16 GiB)",
    )
    _add_run_publish_options(a)
    a.set_defaults(func=cmd_analyze)

    pub = sub.add_parser("publish", help="post a results.json on GitHub: step summary, sticky "
                         "PR comment, check run")  # fmt: skip
    src = pub.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", metavar="PATH", help="results.json (or its directory)")
    src.add_argument("--from-artifact", metavar="DIR",
                     help="two-stage mode, in a workflow_run job: the downloaded artifact of "
                     "the pull_request run (untrusted; checked against the PR's head)")  # fmt: skip
    _add_publish_options(pub)
    pub.set_defaults(func=cmd_publish)

    m = sub.add_parser("merge", help="combine several results.json (one per scenario or matrix "
                       "job) into one results.json and report.md",
                       description="Exit 0 once merged (2 on bad input): the verdict is in "
                       "the merged results, for `publish` to post.")  # fmt: skip
    m.add_argument("inputs", nargs="+", metavar="DIR", help="a results.json or its directory")
    m.add_argument("--out", required=True, help="output directory")
    m.add_argument("--id", default="merged",
                   help="id of the merged result, used in the comment marker "
                   "(default: merged)")  # fmt: skip
    m.set_defaults(func=cmd_merge)

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
    except Exception as exc:  # a bug must not read as FAIL (1) nor leak a token
        _internal_error(exc)
        return EXIT_ERROR


# Where a token can be in the environment: the action passes its input as GITHUB_TOKEN,
# and GitHub sets INPUT_<NAME> with the input's hyphens kept.
_TOKEN_VARIABLES = ("GITHUB_TOKEN", "INPUT_GITHUB-TOKEN", "INPUT_GITHUB_TOKEN", "GH_TOKEN")


def _internal_error(exc: BaseException) -> None:
    """A bug in the gate: ERROR with the traceback, every token value replaced by ***."""
    import traceback

    from ci_gate.publish.context import Secret

    secrets = [Secret(os.environ.get(name, "")) for name in _TOKEN_VARIABLES]

    def redact(text: str) -> str:
        for secret in secrets:
            text = secret.redact(text)
        return text

    _log(
        "error: internal error (a bug in syscall-gate, please report it with the traceback "
        f"below): {redact(f'{type(exc).__name__}: {exc}')}"
    )
    # Escaped line by line so that nothing in it runs as a workflow command.
    for line in redact("".join(traceback.format_exception(exc))).rstrip("\n").splitlines():
        print(log_safe(printable(line, 2000)), file=sys.stderr)
