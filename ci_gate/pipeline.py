"""The stages in order: scenario -> trace -> metrics -> policy -> report.

Each function here hands one stage's output to the next; none of them knows
how another stage works. Whatever goes wrong, a report is still written with
what was measured, and the status says ERROR with the cause.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ci_gate.errors import MeasureError
from ci_gate.metrics.collector import Collector, Measurement, Unexpected
from ci_gate.metrics.scope import Fixture, Scope
from ci_gate.policy.evaluate import evaluate
from ci_gate.policy.load import load_policy
from ci_gate.policy.model import Policy
from ci_gate.report import markdown, results
from ci_gate.scenario import build as build_stage
from ci_gate.scenario import environment, fixture, tracer
from ci_gate.scenario.verify import tree_differences
from ci_gate.trace import source
from ci_gate.trace.parser import TraceParser

DEFAULT_MAX_TRACE_BYTES = 16 * 1024**3


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived (a CI cancel); exit with 128 + signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextmanager
def interruptible() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclass
class Outcome:
    results: dict[str, Any]
    report: Path | None
    results_path: Path | None
    interrupted: int | None = None


def problem(code: str, message: str, detail: str | None = None,
            severity: str = "error") -> dict[str, Any]:  # fmt: skip
    p: dict[str, Any] = {"code": code, "message": message, "severity": severity}
    if detail:
        p["detail"] = detail
    return p


def measure(
    parts: list[source.TracePart],
    *,
    scope: Scope | None,
    unexpected: Unexpected,
    cwd: str | None,
) -> Measurement:
    collector = Collector(scope, unexpected=unexpected, cwd=cwd)
    parser = TraceParser(select=collector.selection())
    collector.consume(source.events(parts, parser))
    return collector.result(parser.stats)


def write_outputs(out_dir: Path, res: dict[str, Any]) -> tuple[Path, Path]:
    report_path = out_dir / "report.md"
    results_path = out_dir / "results.json"
    results.write_atomic(results_path, results.dumps(res))
    results.write_atomic(report_path, markdown.render(res))
    return report_path, results_path


def prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".syscall-gate-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise MeasureError(
            "out-dir-unwritable",
            f"cannot write to the output directory {out_dir}: {exc.strerror or exc}; "
            "choose another with --out",
        ) from exc


# -- run ------------------------------------------------------------------------------------


def _target_problems(tr: tracer.TraceRun, timeout: float) -> list[dict[str, Any]]:
    out = []
    stderr_tail = tracer.tail(tr.stderr, 2000)
    if tr.timed_out:
        out.append(problem(
            "target-timeout",
            f"the target ran past the scenario's {timeout:g}s timeout; it and every process "
            "it started were killed. The trace up to that point is analysed below.",
            stderr_tail,
        ))  # fmt: skip
    elif tr.returncode is not None and tr.returncode < 0:
        sig = signal.Signals(-tr.returncode).name
        out.append(problem("target-crashed", f"the target was killed by {sig}", stderr_tail))
    elif tr.returncode is not None and tr.returncode > 128 and tr.returncode - 128 < 65:
        try:
            sig = signal.Signals(tr.returncode - 128).name
        except ValueError:
            sig = f"signal {tr.returncode - 128}"
        out.append(problem("target-crashed", f"the target was killed by {sig}", stderr_tail))
    elif tr.returncode:
        out.append(problem("target-failed", f"the target exited with status {tr.returncode}",
                           stderr_tail))  # fmt: skip
    if tr.leftovers and not tr.timed_out:
        out.append(problem(
            "target-leftovers",
            f"the target left {tr.leftovers} process(es) running after it exited; they were "
            "killed",
            severity="warning",
        ))  # fmt: skip
    return out


def run(
    policy_path: Path,
    out_dir: Path,
    *,
    workdir: Path,
    keep_fixture: bool = False,
    skip_build: bool = False,
    scratch: Path | None = None,
    log: Any = None,
) -> Outcome:
    def say(msg: str) -> None:
        if log is not None:
            log(msg)

    policy = load_policy(policy_path)
    if policy.scenario is None or policy.scenario.command is None:
        raise MeasureError(
            "no-scenario",
            f"{policy_path} has no scenario.command; `run` needs one (use `analyze` for an "
            "existing trace)",
        )
    prepare_out_dir(out_dir)
    scen = policy.scenario
    strace_version = None
    problems: list[dict[str, Any]] = []
    measurement: Measurement | None = None
    timing: dict[str, float] = {}
    scenario_info: dict[str, Any] = {
        "id": scen.id,
        "fixture": {"files": scen.fixture.files, "file_size": scen.fixture.file_size,
                    "dirs": scen.fixture.dirs, "symlinks": scen.fixture.symlinks},  # fmt: skip
        "fixture_text": _fixture_text(scen.fixture),
        "verify": scen.verify,
        "workdir": str(workdir),
    }
    trace_info: dict[str, Any] = {"path": str(out_dir / "trace.txt")}
    tmp: Path | None = None
    interrupted: int | None = None
    env = tracer.target_environment(scen.env)
    try:
        with interruptible():
            strace = tracer.strace_path()
            strace_version = tracer.strace_version(strace)
            if scen.build and not skip_build:
                say(f"building: {scen.build}")
                timing["build"] = build_stage.build(
                    scen.build, cwd=workdir, env=env, log=out_dir / "build.log",
                    timeout=scen.build_timeout,
                )  # fmt: skip
            t0 = time.monotonic()
            tmp = Path(tempfile.mkdtemp(prefix="syscall-gate-", dir=scratch))
            src, dst = tmp / "src", tmp / "dst"
            fx = fixture.create(src, scen.fixture)
            timing["fixture"] = time.monotonic() - t0
            argv = tracer.command_argv(scen.command, src, dst)
            scenario_info.update(command=argv, target=argv[0],
                                 roots={"src": str(src), "dst": str(dst)}, files=fx.files)  # fmt: skip
            say(f"tracing: {' '.join(argv)}")
            tr = tracer.trace(argv, out_dir=out_dir, cwd=workdir, env=env, timeout=scen.timeout)
            timing["trace"] = tr.elapsed
            problems += _target_problems(tr, scen.timeout)
            if scen.verify == "tree-equal" and not tr.timed_out:
                diffs = tree_differences(src, dst)
                if diffs:
                    problems.append(problem(
                        "wrong-copy",
                        f"verify: tree-equal failed: the destination is not a faithful copy "
                        f"({len(diffs)} difference(s)); no metric can be trusted for a wrong "
                        "result",
                        "\n".join(diffs),
                    ))  # fmt: skip
            say("analysing the trace")
            t0 = time.monotonic()
            parts = source.resolve(str(tr.trace))
            trace_info.update(bytes=source.total_size(parts))
            measurement = measure(parts, scope=Scope({"src": str(src), "dst": str(dst)}, fx),
                                  unexpected=policy.unexpected, cwd=str(workdir))  # fmt: skip
            timing["analysis"] = time.monotonic() - t0
            if scen.repeats > 1:
                measurement.notes.append(
                    f"scenario.repeats is {scen.repeats}, but this version traces once; "
                    "repeats are not aggregated yet."
                )
    except MeasureError as exc:
        problems.append(problem(exc.code, exc.message, exc.detail))
    except Interrupted as exc:
        interrupted = exc.signum
        problems.append(problem("interrupted", f"interrupted by {exc} before the run finished"))
    finally:
        if tmp is not None and not keep_fixture:
            shutil.rmtree(tmp, ignore_errors=True)
    env_info = environment.describe(strace_version)
    verdict = evaluate(policy.rules, measurement) if measurement is not None else None
    res = results.build(measurement=measurement, verdict=verdict, policy=policy,
                        scenario=scenario_info, environment=env_info, trace=trace_info,
                        extra_problems=problems, timing=timing)  # fmt: skip
    report_path, results_path = write_outputs(out_dir, res)
    return Outcome(res, report_path, results_path, interrupted)


def _fixture_text(fx: Any) -> str:
    size = fx.file_size
    unit = "B"
    for u, n in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= n and size % n == 0:
            size, unit = size // n, u
            break
    text = f"{fx.files} file(s) of {size} {unit}"
    if fx.dirs:
        text += f", {fx.dirs} nested director{'y' if fx.dirs == 1 else 'ies'} with a file each"
    if fx.symlinks:
        text += ", symlinks"
    return text


# -- analyze -------------------------------------------------------------------------------------


def analyze(
    trace_spec: str,
    out_dir: Path,
    *,
    policy_path: Path | None,
    roots: list[str],
    cwd: str | None,
    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES,
) -> Outcome:
    policy: Policy | None = load_policy(policy_path) if policy_path is not None else None
    prepare_out_dir(out_dir)
    problems: list[dict[str, Any]] = []
    measurement: Measurement | None = None
    trace_info: dict[str, Any] = {"source": trace_spec}
    scenario_info: dict[str, Any] | None = None
    interrupted: int | None = None
    try:
        with interruptible():
            parts = source.resolve(trace_spec)
            size = source.total_size(parts)
            trace_info.update(bytes=size, files=len(parts))
            if size > max_trace_bytes:
                raise MeasureError(
                    "trace-too-large",
                    f"the trace is {size:,} bytes, over the {max_trace_bytes:,}-byte cap; "
                    "trace a smaller scenario or raise --max-trace-bytes",
                )
            scope = None
            if roots:
                labels = ["src", "dst"] + [f"root{i}" for i in range(3, len(roots) + 1)]
                mapping = dict(zip(labels, roots, strict=False))
                src = Path(roots[0])
                fx = Fixture.scan(src) if src.is_dir() else None
                scope = Scope(mapping, fx)
                scenario_info = {"roots": mapping, "files": fx.files if fx else None}
            unexpected = policy.unexpected if policy is not None else Unexpected()
            measurement = measure(parts, scope=scope, unexpected=unexpected, cwd=cwd)
    except MeasureError as exc:
        problems.append(problem(exc.code, exc.message, exc.detail))
    except Interrupted as exc:
        interrupted = exc.signum
        problems.append(problem("interrupted", f"interrupted by {exc} before the analysis "
                                "finished"))  # fmt: skip
    verdict = None
    if measurement is not None:
        verdict = evaluate(policy.rules if policy is not None else (), measurement)
    res = results.build(measurement=measurement, verdict=verdict, policy=policy,
                        scenario=scenario_info, environment={}, trace=trace_info,
                        extra_problems=problems)  # fmt: skip
    report_path, results_path = write_outputs(out_dir, res)
    return Outcome(res, report_path, results_path, interrupted)
