"""The stages in order: scenario -> trace -> metrics -> policy -> report.

Each function here hands one stage's output to the next; none of them knows
how another stage works. Whatever goes wrong, a report is still written with
what was measured, and the status says ERROR with the cause.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ci_gate import progress
from ci_gate.compare import baseline as baseline_mod
from ci_gate.compare.baseline import metric_deltas
from ci_gate.compare.repeats import combine
from ci_gate.errors import Diagnostic, MeasureError, PolicyError
from ci_gate.kernel.merge import merge as merge_opcodes
from ci_gate.kernel.uring_tracepoints import OpcodeTrace
from ci_gate.metrics.collector import (
    Collector,
    Measurement,
    Unexpected,
    restrict,
    syscalls_needed,
    tracing_set,
)
from ci_gate.metrics.scope import Fixture, Scope
from ci_gate.metrics.values import value_of
from ci_gate.policy.evaluate import BaseSide, evaluate
from ci_gate.policy.load import load_policy
from ci_gate.policy.model import BaselineSpec, Policy
from ci_gate.report import markdown, results
from ci_gate.report.escape import shell_join
from ci_gate.scenario import build as build_stage
from ci_gate.scenario import environment, fixture, sibling, tracer
from ci_gate.scenario.verify import compare_trees
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
    hit: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if hit:
            return  # already stopping: see below
        hit.append(signum)
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            # After the first interrupt the gate is cleaning up (the process tree, tracefs,
            # the fixture) and writing the partial report: a second Ctrl-C, or the runner's
            # SIGTERM after its SIGINT, must not cut that short. SIGKILL still ends it.
            signal.signal(s, signal.SIG_IGN if hit else h)


@dataclass
class Outcome:
    results: dict[str, Any]
    report: Path | None
    results_path: Path | None
    interrupted: int | None = None


def problem(
    code: str, message: str, detail: str | None = None, severity: str = "error"
) -> dict[str, Any]:
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
    reading: progress.Reading | None = None,
) -> Measurement:
    collector = Collector(scope, unexpected=unexpected, cwd=cwd)
    parser = TraceParser(select=collector.selection())
    collector.consume(source.events(parts, parser, reading))
    return collector.result(parser.stats)


def measure_following(
    path: Path,
    finished: Callable[[], bool],
    *,
    scope: Scope | None,
    unexpected: Unexpected,
    cwd: str | None,
    reading: progress.Reading | None = None,
) -> Measurement:
    """`measure` of a trace strace is still writing: the analysis overlaps the run."""
    collector = Collector(scope, unexpected=unexpected, cwd=cwd)
    parser = TraceParser(select=collector.selection())
    collector.consume(source.follow_events(path, finished, parser, reading))
    return collector.result(parser.stats)


def write_outputs(out_dir: Path, res: dict[str, Any]) -> tuple[Path | None, Path | None]:
    """Write results.json and report.md; on failure (disk full) the run becomes ERROR and
    the caller still has the results in memory to print."""
    report_path = out_dir / "report.md"
    results_path = out_dir / "results.json"
    try:
        results.write_atomic(results_path, results.dumps(res))
        results.write_atomic(report_path, markdown.render(res))
    except OSError as exc:
        res["problems"].append(
            problem(
                "report-unwritable",
                f"could not write the report to {out_dir}: {exc.strerror or exc}; "
                "the summary below is all that was kept",
            )
        )
        res["status"] = "ERROR"
        res["exit_code"] = results.exit_code("ERROR")
        return None, None
    return report_path, results_path


# Files the gate writes into --out (trace and target files also with a repeat's suffix).
_OUT_FILES = ("report.md", "results.json", "build.log", "trace*.txt", "target*.std*")


def prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise MeasureError(
            "out-dir-unwritable",
            f"the output directory {out_dir} is a file, not a directory; choose another --out",
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".syscall-gate-write-test"
        probe.write_bytes(b"")
        probe.unlink()
        in_the_way = sorted(
            p.name for pattern in _OUT_FILES for p in out_dir.glob(pattern) if p.is_dir()
        )
    except OSError as exc:
        raise MeasureError(
            "out-dir-unwritable",
            f"cannot write to the output directory {out_dir}: {exc.strerror or exc}; "
            "choose another with --out",
        ) from exc
    if in_the_way:
        raise MeasureError(
            "out-dir-unwritable",
            f"cannot write to the output directory {out_dir}: "
            f"{', '.join(repr(n) for n in in_the_way)} is a directory where the gate writes a "
            "file; remove it or choose another --out",
        )


# -- run ------------------------------------------------------------------------------------


def _strace_problems(tr: tracer.TraceRun) -> list[dict[str, Any]]:
    """strace kept running but could not write its trace: say why the trace is short."""
    try:
        fs = os.statvfs(tr.trace.parent)
        full = fs.f_bavail * fs.f_frsize < 64 * 1024
    except OSError:
        full = False
    # strace's own complaint may be lost too: its stderr file is on the same disk.
    messages = tr.strace_messages or (
        ["the output directory's file system is full"] if full else []
    )
    for msg in messages:
        if full or "No space left on device" in msg or "Disk quota exceeded" in msg:
            return [
                problem(
                    "disk-full",
                    f"the disk filled up while strace was writing {tr.trace}: the trace is "
                    "incomplete, so its counts cannot be trusted; free space or choose another "
                    "--out",
                    msg,
                )
            ]
    return []


def _target_problems(
    tr: tracer.TraceRun, timeout: float, max_bytes: int = DEFAULT_MAX_TRACE_BYTES
) -> list[dict[str, Any]]:
    out = []
    if tr.oversize:
        size = tr.trace.stat().st_size if tr.trace.exists() else 0
        how = (
            "the target finished first, but the trace is not judged past the cap"
            if tr.returncode is not None
            else "so the target and every process it started were killed"
        )
        out.append(
            problem(
                "trace-too-large",
                f"the trace grew past the {max_bytes:,}-byte cap ({size:,} bytes): {how}; "
                "trace a smaller scenario or raise --max-trace-bytes",
            )
        )
        return out
    stderr_tail = tracer.tail(tr.stderr, 2000)
    if tr.timed_out:
        out.append(
            problem(
                "target-timeout",
                f"the target ran past the scenario's {timeout:g}s timeout; it and every process "
                "it started were killed. The trace up to that point is analysed below.",
                stderr_tail,
            )
        )
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
        out.append(
            problem("target-failed", f"the target exited with status {tr.returncode}", stderr_tail)
        )
    if tr.leftovers and not tr.timed_out:
        out.append(
            problem(
                "target-leftovers",
                f"the target left {tr.leftovers} process(es) running after it exited; they were "
                "killed",
                severity="warning",
            )
        )
    return out


@dataclass
class _Measured:
    """What tracing the scenario (once or `repeats` times) produced."""

    measurement: Measurement | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    scenario: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, Any] = field(default_factory=dict)
    strace_version: str | None = None
    interrupted: int | None = None
    placement: dict[str, Any] = field(default_factory=dict)  # where the trace ran


def _measure_shown(
    parts: list[source.TracePart],
    scope: Scope | None,
    unexpected: Unexpected,
    cwd: str | None,
    say: Callable[[str], None] | None,
) -> Measurement:
    """`measure`, with a progress line on a long trace (bytes analysed of the total)."""
    reading = progress.Reading()
    total = source.total_size(parts)

    def status() -> str:
        done = reading.done()
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        return f"{progress.mib(done)} of {progress.mib(total)} analysed{pct}"

    with progress.shown("analysing the trace", status, log=say):
        return measure(parts, scope=scope, unexpected=unexpected, cwd=cwd, reading=reading)


def _traced_syscalls(
    policy: Policy, got: _Measured, say: Callable[[str], None]
) -> frozenset[str] | None:
    """What `scenario.tracing: policy` traces; None for every syscall (recorded in got.trace)."""
    scen = policy.scenario
    assert scen is not None
    got.trace["tracing"] = scen.tracing
    if scen.tracing != "policy":
        return None
    metrics = [r.metric for r in policy.rules]
    traced = tracing_set(metrics, policy.unexpected)
    if traced is None:
        needy = next(m for m in metrics if syscalls_needed(m, policy.unexpected) is None)
        got.trace["tracing"] = "full"
        got.trace["tracing_why_full"] = (
            f"scenario.tracing is policy, but the metric {needy} needs every syscall"
        )
        say(f"tracing every syscall: {got.trace['tracing_why_full']}")
        return None
    got.trace["syscalls"] = sorted(traced)
    say(f"tracing {len(traced)} syscall(s) the policy needs (scenario.tracing: policy)")
    return traced


def _follower(
    into: list[tuple[Measurement, float]],
    scope: Scope,
    unexpected: Unexpected,
    cwd: str,
    say: Callable[[str], None],
    label: str,
) -> Callable[[Path, Callable[[], bool]], None]:
    """What reads the trace while strace writes it, on the core strace and the target leave
    idle; the measurement and the seconds it took go to `into`."""

    def follow(path: Path, finished: Callable[[], bool]) -> None:
        t0 = time.monotonic()
        reading = progress.Reading()

        def status() -> str:
            return (
                f"trace {progress.mib(progress.file_size(path))} written, "
                f"{progress.mib(reading.done())} analysed"
            )

        with progress.shown(f"tracing{label}", status, log=say):
            m = measure_following(
                path, finished, scope=scope, unexpected=unexpected, cwd=cwd, reading=reading
            )
        into.append((m, time.monotonic() - t0))

    return follow


def _measure_scenario(
    policy: Policy,
    out_dir: Path,
    *,
    workdir: Path,
    keep_fixture: bool,
    skip_build: bool,
    scratch: Path | None,
    say: Callable[[str], None],
    opcodes: str,
    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES,
) -> _Measured:
    """Build, make the fixture, trace the command `repeats` times, verify, measure."""
    scen = policy.scenario
    assert scen is not None and scen.command is not None
    got = _Measured()
    got.scenario = {
        "id": scen.id,
        "fixture": {
            "files": scen.fixture.files,
            "file_size": scen.fixture.file_size,
            "dirs": scen.fixture.dirs,
            "symlinks": scen.fixture.symlinks,
        },
        "fixture_text": _fixture_text(scen.fixture),
        "verify": scen.verify,
        "workdir": str(workdir),
        "repeats": scen.repeats,
    }
    got.trace = {"path": str(out_dir / "trace.txt")}
    tmp: Path | None = None
    env = tracer.target_environment(scen.env)
    runs: list[Measurement] = []
    try:
        with interruptible():
            strace = tracer.strace_path()
            got.strace_version = tracer.strace_version(strace)
            if scen.build and not skip_build:
                say(f"building: {scen.build}")
                build_log = out_dir / "build.log"
                with progress.shown(
                    "building", lambda: f"log {progress.mib(progress.file_size(build_log))}",
                    log=say,
                ):  # fmt: skip
                    got.timing["build"] = build_stage.build(
                        scen.build,
                        cwd=workdir,
                        env=env,
                        log=build_log,
                        timeout=scen.build_timeout,
                    )
            t0 = time.monotonic()
            tmp = Path(tempfile.mkdtemp(prefix="syscall-gate-", dir=scratch))
            src, dst = tmp / "src", tmp / "dst"
            made = progress.Counter()
            wanted = scen.fixture.files + scen.fixture.dirs
            with progress.shown(
                "creating the fixture", lambda: f"{made.value:,} of {wanted:,} files", log=say
            ):
                fx = fixture.create(src, scen.fixture, made)
            got.timing["fixture"] = time.monotonic() - t0
            argv = tracer.command_argv(scen.command, src, dst)
            got.scenario.update(
                command=argv,
                target=argv[0],
                roots={"src": str(src), "dst": str(dst)},
                files=fx.files,
            )
            scope = Scope({"src": str(src), "dst": str(dst)}, fx)
            traced = _traced_syscalls(policy, got, say)
            # Probes io_uring (before any recording: the probe makes a ring of its own); where
            # it is blocked, the traces may run in a sibling container that allows it.
            plan = sibling.plan(out_dir=out_dir, cwd=workdir, roots=(src, dst), log=say)
            got.placement = plan.placement
            for i in range(scen.repeats):
                suffix = "" if i == 0 else f"-r{i + 1}"
                label = f" (repeat {i + 1} of {scen.repeats})" if scen.repeats > 1 else ""
                if dst.exists() or dst.is_symlink():
                    shutil.rmtree(dst, ignore_errors=True)
                say(f"tracing{label}: {shell_join(argv)}")
                followed: list[tuple[Measurement, float]] = []
                follow = _follower(followed, scope, policy.unexpected, str(workdir), say, label)
                # The io_uring tracepoints record while (and only while) the scenario runs.
                with OpcodeTrace(opcodes, scratch=scratch, log=say) as opcode_trace:
                    placed = plan.trace(
                        argv,
                        out_dir=out_dir,
                        cwd=workdir,
                        env=env,
                        timeout=scen.timeout,
                        suffix=suffix,
                        max_bytes=max_trace_bytes,
                        extra_flags=tracer.filter_flags(traced),
                        follow=follow,
                    )
                tr = placed.run
                got.timing["trace"] = got.timing.get("trace", 0.0) + tr.elapsed
                problems = (
                    placed.problems
                    + _strace_problems(tr)
                    + _target_problems(tr, scen.timeout, max_trace_bytes)
                )
                if scen.verify == "tree-equal" and not tr.timed_out:
                    diffs, ndiffs = compare_trees(src, dst)
                    if diffs:
                        problems.append(
                            problem(
                                "wrong-copy",
                                "verify: tree-equal failed: the destination is not a faithful "
                                f"copy ({ndiffs} difference(s)); no metric can be trusted "
                                "for a wrong result",
                                "\n".join(diffs),
                            )
                        )
                for p in problems:
                    if label:
                        p["message"] = f"{label.strip(' ()')}: {p['message']}"
                    got.problems.append(p)
                t0 = time.monotonic()
                parts = source.resolve(str(tr.trace))
                got.trace["bytes"] = got.trace.get("bytes", 0) + source.total_size(parts)
                if followed:
                    one, spent = followed[0]
                    # What the analysis added to the run's wall time: its part after strace ended.
                    extra = max(0.0, spent - tr.elapsed)
                    got.timing["analysis_overlapped"] = (
                        got.timing.get("analysis_overlapped", 0.0) + spent - extra
                    )
                else:
                    say(f"analysing the trace{label}")
                    one = _measure_shown(parts, scope, policy.unexpected, str(workdir), say)
                    extra = 0.0
                if tr.timed_out or tr.oversize:
                    # The gate killed the tracer mid-line itself, and says so above.
                    cut = [p for p in one.problems if p.code == "trace-truncated"]
                    if cut:
                        one.problems = [p for p in one.problems if p.code != "trace-truncated"]
                        one.notes.append("The trace's last line was cut when the run was stopped.")
                merge_opcodes(one, opcode_trace, parts=parts, scope=scope)
                if traced is not None:
                    restrict(one, traced, (r.metric for r in policy.rules))
                runs.append(one)
                got.timing["analysis"] = (
                    got.timing.get("analysis", 0.0) + extra + time.monotonic() - t0
                )
                if tr.timed_out or any(p["severity"] == "error" for p in problems):
                    break  # a broken repeat: no point tracing the others
    except MeasureError as exc:
        got.problems.append(problem(exc.code, exc.message, exc.detail))
    except Interrupted as exc:
        got.interrupted = exc.signum
        got.problems.append(problem("interrupted", f"interrupted by {exc} before the run finished"))
    finally:
        if tmp is not None and not keep_fixture:
            shutil.rmtree(tmp, ignore_errors=True)
    if runs:
        got.measurement = combine(runs)
        got.measurement.notes += sibling.notes(got.placement)
        if "tracing_why_full" in got.trace:
            got.measurement.notes.append(f"Traced in full: {got.trace['tracing_why_full']}.")
        if len(runs) < scen.repeats and got.interrupted is None:
            got.measurement.notes.append(
                f"only {len(runs)} of {scen.repeats} repeats ran: a repeat failed"
            )
    return got


def run(
    policy_path: Path,
    out_dir: Path,
    *,
    workdir: Path,
    keep_fixture: bool = False,
    skip_build: bool = False,
    scratch: Path | None = None,
    log: Any = None,
    opcodes: str = "auto",
    baseline_file: Path | None = None,
    use_baseline: bool = True,
    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES,
) -> Outcome:
    def say(msg: str) -> None:
        if log is not None:
            log(msg)

    policy = load_policy(policy_path)
    scen = policy.scenario
    if scen is None or scen.command is None:
        # Bad usage of a valid policy: exit 2, as for any policy `run` cannot use.
        raise PolicyError(
            [
                Diagnostic(
                    str(policy_path), 1, 1, "scenario.command",
                    "`run` needs a scenario.command to trace (a policy without one is for "
                    "`analyze` of an existing trace)",
                )
            ]
        )  # fmt: skip
    prepare_out_dir(out_dir)
    got = _measure_scenario(
        policy,
        out_dir,
        workdir=workdir,
        keep_fixture=keep_fixture,
        skip_build=skip_build,
        scratch=scratch,
        say=say,
        opcodes=opcodes,
        max_trace_bytes=max_trace_bytes,
    )
    env_info = environment.describe(got.strace_version)
    if got.placement:
        env_info["trace_placement"] = got.placement
    spec = policy.baseline
    if baseline_file is not None:
        spec = BaselineSpec(
            file=str(baseline_file.resolve()),
            on_unavailable=spec.on_unavailable if spec else "warn",
        )
    side: BaseSide | None = None
    base_info: dict[str, Any] | None = None
    if use_baseline and spec is not None and got.measurement is not None and not got.interrupted:
        side, base_info = _baseline(
            policy,
            spec,
            out_dir,
            workdir=workdir,
            env_info=env_info,
            head_scenario=got.scenario,
            scratch=scratch,
            say=say,
            opcodes=opcodes,
        )
    verdict = evaluate(policy.rules, _judged(policy, got), side)
    res = results.build(
        measurement=got.measurement,
        verdict=verdict,
        policy=policy,
        scenario=got.scenario,
        environment=env_info,
        trace=got.trace,
        extra_problems=got.problems,
        timing=got.timing,
    )
    res["revision"] = _revision(workdir)
    if base_info is not None:
        res["baseline"] = base_info
        if side is not None and side.metrics is not None:
            m = got.measurement
            assert m is not None  # a baseline is only sought for a measured run
            res["deltas"] = metric_deltas(
                side.metrics,
                res["metrics"],
                side.value,
                lambda name: value_of(name, m.values, m.unmeasured, m.scope_missing)[0],
            )
    if got.interrupted is not None:
        res["exit_code"] = 128 + int(got.interrupted)  # what the process exits with
    report_path, results_path = write_outputs(out_dir, res)
    return Outcome(res, report_path, results_path, got.interrupted)


def _revision(workdir: Path) -> str | None:
    """The commit the run measured, when the working directory is a git checkout."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(workdir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _baseline(
    policy: Policy,
    spec: BaselineSpec,
    out_dir: Path,
    *,
    workdir: Path,
    env_info: dict[str, Any],
    head_scenario: dict[str, Any],
    scratch: Path | None,
    say: Callable[[str], None],
    opcodes: str,
) -> tuple[BaseSide, dict[str, Any]]:
    """The base side and what the report says about it; never raises for a missing base."""
    info: dict[str, Any] = {"on_unavailable": spec.on_unavailable}
    try:
        if spec.file is not None:
            info.update(source="file", file=spec.file)
            base = baseline_mod.from_file(Path(spec.file))
            base_scenario = base.results.get("scenario")
            why = baseline_mod.scenario_mismatch(
                head_scenario, base_scenario if isinstance(base_scenario, dict) else {}
            )
            if why is not None:
                raise MeasureError("baseline-other-scenario", f"{spec.file}: {why}")
        else:
            info.update(source="merge-base", ref=baseline_mod.base_ref(spec.ref))
            base = _run_base(
                policy, spec, out_dir, workdir=workdir, scratch=scratch, say=say, opcodes=opcodes
            )
    except MeasureError as exc:
        info.update(available=False, why_not=exc.message)
        say(f"no baseline: {exc.message}")
        return BaseSide(None, exc.message, on_unavailable=spec.on_unavailable), info
    base_env = base.results.get("environment") or {}
    differs = baseline_mod.environment_differences(env_info, base_env)
    info.update(
        available=True,
        commit=base.commit,
        cost_seconds=base.cost_seconds,
        cached_build=base.cached_build,
        status=base.results.get("status"),
        environment=base_env,
        environment_differences=differs,
        metrics=base.metrics,
    )
    return BaseSide(
        dict(base.metrics),
        "",
        differs,
        spec.on_unavailable,
        unmeasured=_str_map(base.results.get("unmeasured")),
        scope_missing=_str_map(base.results.get("scope_missing")),
    ), info


def _str_map(value: Any) -> dict[str, str]:
    """A {name: why} mapping from a results.json, which may be an old or edited one."""
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _run_base(
    policy: Policy,
    spec: BaselineSpec,
    out_dir: Path,
    *,
    workdir: Path,
    scratch: Path | None,
    say: Callable[[str], None],
    opcodes: str,
) -> baseline_mod.Baseline:
    """Build and trace the same scenario at the merge base, in a worktree of its own."""
    top = Path(baseline_mod.git(workdir, "rev-parse", "--show-toplevel"))
    rel = workdir.resolve().relative_to(top.resolve())
    ref = baseline_mod.base_ref(spec.ref)
    commit = baseline_mod.merge_base(top, ref)
    head = baseline_mod.git(top, "rev-parse", "HEAD")
    cache = (
        Path(baseline_mod.git(top, "rev-parse", "--path-format=absolute", "--git-common-dir"))
        / "syscall-gate"
    )
    t0 = time.monotonic()
    if commit == head:
        say("the merge base is HEAD itself: tracing it again as the baseline")
    tree, cached = baseline_mod.prepare_worktree(top, commit, cache)
    say(
        f"baseline: the same scenario at {commit[:12]} (merge base with {ref})"
        + (", build reused" if cached else "")
    )
    base_out = out_dir / "baseline"
    base_out.mkdir(parents=True, exist_ok=True)
    got = _measure_scenario(
        policy,
        base_out,
        workdir=tree / rel,
        keep_fixture=False,
        skip_build=cached,
        scratch=scratch,
        say=lambda m: say(f"baseline: {m}"),
        opcodes=opcodes,
    )
    if got.interrupted is not None:
        raise Interrupted(got.interrupted)
    if got.measurement is None or any(p["severity"] == "error" for p in got.problems):
        first = next((p for p in got.problems if p["severity"] == "error"), None)
        why = first["message"] if first else "nothing was measured"
        raise MeasureError("baseline-failed", f"the baseline run at {commit[:12]} failed: {why}")
    if not cached and policy.scenario is not None and policy.scenario.build:
        baseline_mod.mark_built(tree)
    verdict = evaluate(policy.rules, got.measurement)
    res = results.build(
        measurement=got.measurement,
        verdict=verdict,
        policy=policy,
        scenario=got.scenario,
        environment=environment.describe(got.strace_version),
        trace=got.trace,
        extra_problems=got.problems,
        timing=got.timing,
    )
    res["revision"] = commit
    write_outputs(base_out, res)
    cost = time.monotonic() - t0
    return baseline_mod.Baseline(res, "merge-base", commit, cost, cached)


def _judged(policy: Policy, got: Any) -> Measurement:
    """What the rules are judged on: the measurement, unless nothing of it may count.

    A run that stopped before measuring, or whose copy was wrong, has every rule ERROR
    with the cause; the metrics of a wrong copy are still in the report, for debugging.
    """
    measured: Measurement | None = got.measurement
    if measured is not None and not any(p["code"] == "wrong-copy" for p in got.problems):
        return measured
    if measured is None:
        why = _stopped("the run stopped before measuring", got.problems)
    else:
        why = "the copy is wrong (verify: tree-equal), so no metric counts"
    return _nothing_counts(policy, why)


def _stopped(what: str, problems: list[dict[str, Any]]) -> str:
    """`what`, with the first error's first clause (its remedy and detail are in the problem)."""
    first = next((p for p in problems if p["severity"] == "error"), None)
    cause = first["message"].split("; ")[0] if first else ""
    return what + (f": {cause}" if cause else "")


def _nothing_counts(policy: Policy, why: str) -> Measurement:
    """A measurement in which every rule's metric is unmeasured, for this reason."""
    unmeasured = dict.fromkeys((r.metric for r in policy.rules), why)
    return Measurement(values={}, unmeasured=unmeasured, scope_missing={}, details={})


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


def _scenario_from(path: Path) -> tuple[dict[str, str], Fixture | None]:
    """Roots and fixture of an earlier run, from its results.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not JSON"
        raise MeasureError(
            "bad-scenario-file",
            f"cannot read {path}: {why}; give the results.json of a `syscall-gate run`",
        ) from exc
    try:
        roots = data["scenario"]["roots"]
        entries = (data.get("details", {}).get("scenario") or {}).get("fixture")
    except (KeyError, TypeError, AttributeError) as exc:
        raise MeasureError(
            "bad-scenario-file",
            f"{path} holds no scenario roots (scenario.roots): it is not the results.json of "
            "a `syscall-gate run`",
        ) from exc
    if not isinstance(roots, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in roots.items()
    ):
        raise MeasureError("bad-scenario-file", f"{path}: scenario.roots is not a mapping")
    fixture = None
    if isinstance(entries, dict):
        fixture = Fixture({str(k): str(v) for k, v in entries.items()})
    return roots, fixture


def _traced_in(path: Path) -> frozenset[str] | None:
    """The syscalls an earlier run traced (scenario.tracing: policy); None: all of them."""
    try:
        traced = json.loads(path.read_text(encoding="utf-8")).get("trace", {}).get("syscalls")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(traced, list) and all(isinstance(n, str) for n in traced):
        return frozenset(traced)
    return None


# -- analyze -------------------------------------------------------------------------------------


def _how_it_ended(parts: list[source.TracePart], m: Measurement) -> list[dict[str, Any]]:
    """What `run` knows from the process and a saved trace only shows in its last lines."""
    out: list[dict[str, Any]] = []
    if any(p.code in ("trace-truncated", "trace-empty", "not-strace") for p in m.problems):
        return out  # already said
    root, started = source.first_task(parts)
    cut = source.unfinished(parts) if started else []
    if cut:
        names = ", ".join(str(p.path) for p in cut[:3]) + (" ..." if len(cut) > 3 else "")
        out.append(
            problem(
                "trace-incomplete",
                f"{names} does not end with a process's end (`+++ exited with N +++`): the "
                "trace was cut short at a line boundary, or is an excerpt of a longer log; "
                "counts near the end are missing; analyze the whole trace",
            )
        )
    # strace -ff writes a file per task: a task a clone returned without one was lost.
    have = {p.pid for p in parts if p.pid is not None}
    lost = sorted(m.created - have) if have else []
    if lost:
        shown = ", ".join(map(str, lost[:10])) + (" ..." if len(lost) > 10 else "")
        out.append(
            problem(
                "trace-incomplete",
                f"the -ff trace has no file for {len(lost)} task(s) its clones and forks "
                f"created (pid {shown}): their calls are missing from every count; analyze "
                "all of strace's PREFIX.PID files",
            )
        )
    root = 0 if root is None else root  # the parser's pid for lines without one
    end = next((e for e in m.details.get("exits", []) if e["pid"] == root), None)
    if end is not None and end["signal"]:
        core = " (core dumped)" if end["core_dumped"] else ""
        out.append(
            problem(
                "target-crashed",
                f"the traced program (pid {root}) was killed by {end['signal']}{core}: the "
                "trace is of a run that did not finish, so its counts describe a crash",
            )
        )
    elif end is not None and end["code"]:
        out.append(
            problem(
                "target-failed",
                f"the traced program (pid {root}) exited with status {end['code']}; check "
                "that the run did what the policy expects",
                severity="warning",
            )
        )
    return out


def analyze(
    trace_spec: str,
    out_dir: Path,
    *,
    policy_path: Path | None,
    roots: list[str],
    cwd: str | None,
    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES,
    scenario_from: Path | None = None,
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
            if scenario_from is not None:
                mapping, fx = _scenario_from(scenario_from)
                scope = Scope(mapping, fx)
                scenario_info = {"roots": mapping, "files": fx.files if fx else None}
            elif roots:
                labels = ["src", "dst"] + [f"root{i}" for i in range(3, len(roots) + 1)]
                mapping = dict(zip(labels, roots, strict=False))
                src = Path(roots[0])
                fx = Fixture.scan(src) if src.is_dir() else None
                scope = Scope(mapping, fx)
                scenario_info = {"roots": mapping, "files": fx.files if fx else None}
            unexpected = policy.unexpected if policy is not None else Unexpected()
            measurement = _measure_shown(parts, scope, unexpected, cwd, None)
            traced = _traced_in(scenario_from) if scenario_from is not None else None
            if traced is not None:
                # That run traced only some syscalls: the others are unmeasured, not zero.
                trace_info["syscalls"] = sorted(traced)
                asked = [r.metric for r in policy.rules] if policy is not None else []
                restrict(measurement, traced, asked)
            measurement.scope_missing["kernel"] = (
                "opcode data is recorded only while `syscall-gate run` traces (as root, with "
                "tracefs); a saved strace log does not carry it"
            )
            problems += _how_it_ended(parts, measurement)
    except MeasureError as exc:
        problems.append(problem(exc.code, exc.message, exc.detail))
    except Interrupted as exc:
        interrupted = exc.signum
        problems.append(
            problem("interrupted", f"interrupted by {exc} before the analysis finished")
        )
    sid = policy.scenario.id if policy is not None and policy.scenario is not None else None
    if sid and sid != "default":
        # The policy's scenario id names this result too, so analyses can be merged.
        scenario_info = {**(scenario_info or {}), "id": sid}
    verdict = None
    if measurement is not None:
        verdict = evaluate(policy.rules if policy is not None else (), measurement)
    elif policy is not None:
        # Every rule is listed, ERROR with the cause, as when a run stops before measuring.
        why = _stopped("the trace could not be analysed", problems)
        verdict = evaluate(policy.rules, _nothing_counts(policy, why))
    res = results.build(
        measurement=measurement,
        verdict=verdict,
        policy=policy,
        scenario=scenario_info,
        environment={},
        trace=trace_info,
        extra_problems=problems,
    )
    if interrupted is not None:
        res["exit_code"] = 128 + int(interrupted)  # what the process exits with
    report_path, results_path = write_outputs(out_dir, res)
    return Outcome(res, report_path, results_path, interrupted)
