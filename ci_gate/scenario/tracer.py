"""Run the scenario's command under strace, once, and say how it ended."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_gate.errors import MeasureError, UsageError
from ci_gate.scenario import process

# -f: follow every thread and child. -y: print the path behind every fd, which
# is how calls are attributed to the scenario's files. -s 4096: PATH_MAX, so a
# path argument is never truncated. -C: strace's own per-syscall summary is
# appended to the trace, and the parser cross-checks its counts against it.
STRACE_FLAGS = ("-f", "-y", "-s", "4096", "-C")
MAX_TAIL = 4000
# follow(trace file, finished): reads the trace while it is written.
Follow = Callable[[Path, Callable[[], bool]], None]
# strace prefixes its messages with argv[0]: "strace: " or "/usr/bin/strace: ".
_STRACE_MSG = re.compile(rb"^(?:\S*/)?strace: ")


@dataclass
class TraceRun:
    argv: list[str]
    trace: Path
    stdout: Path
    stderr: Path
    returncode: int | None
    timed_out: bool
    elapsed: float
    leftovers: int
    strace_messages: list[str] = field(default_factory=list)
    oversize: bool = False


def strace_path() -> str:
    found = shutil.which("strace")
    if found is None:
        raise MeasureError(
            "strace-missing",
            "strace is not installed or not on PATH; install it (Debian/Ubuntu: "
            "`sudo apt-get install -y strace`), or use the container action, which ships it",
        )
    return found


def strace_version(strace: str | None = None) -> str:
    try:
        out = subprocess.run(
            [strace or strace_path(), "-V"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError, MeasureError):
        return "unknown"
    m = re.search(r"version\s+(\S+)", out)
    return m.group(1) if m else "unknown"


def filter_flags(syscalls: frozenset[str] | None) -> tuple[str, ...]:
    """strace flags that trace only `syscalls` (None: every one).

    --seccomp-bpf leaves the other syscalls unstopped, which is where the time
    goes; "?" lets a name this strace does not know (newer than it) through
    without an error.
    """
    if syscalls is None:
        return ()
    return ("--seccomp-bpf", "-e", "trace=" + ",".join("?" + n for n in sorted(syscalls)))


def command_argv(command: str, src: Path, dst: Path) -> list[str]:
    """Split the scenario command like a POSIX shell (no shell runs) and fill {src}/{dst}.

    Substitution happens per word after splitting, so a path with spaces or
    quotes stays one argument and is never interpreted by a shell.
    """
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"scenario.command cannot be split into words: {exc}") from exc
    if not words:
        raise UsageError("scenario.command is empty")
    return [w.replace("{src}", str(src)).replace("{dst}", str(dst)) for w in words]


def trace(
    argv: list[str],
    *,
    out_dir: Path,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    extra_flags: tuple[str, ...] = (),
    suffix: str = "",
    max_bytes: int | None = None,
    follow: Follow | None = None,
) -> TraceRun:
    """One traced run: out_dir/trace{suffix}.txt and target{suffix}.stdout/.stderr.

    With `follow`, `follow(trace_file, finished)` runs in this thread while
    strace writes the trace (strace and the target run in another thread's
    child processes), so the trace is read as it grows instead of after the
    run: `finished()` turns true once strace has exited and written its last
    line. If `follow` raises, the run is stopped (the tree killed) and, unless
    strace's own failure explains more, the exception goes on.
    """
    strace = strace_path()
    trace_file = out_dir / f"trace{suffix}.txt"
    stdout, stderr = out_dir / f"target{suffix}.stdout", out_dir / f"target{suffix}.stderr"
    if trace_file.exists():
        trace_file.unlink()
    full = [strace, *STRACE_FLAGS, *extra_flags, "-o", str(trace_file), "--", *argv]
    kw: dict[str, Any] = {
        "cwd": cwd,
        "env": env,
        "stdout": stdout,
        "stderr": stderr,
        "timeout": timeout,
        "tracer": True,
        "watch": (trace_file, max_bytes) if max_bytes is not None else None,
    }
    if follow is None:
        done = process.run(full, **kw)
    else:
        done = _run_following(full, kw, trace_file, follow, argv, cwd)
    messages = strace_messages(stderr)
    run = TraceRun(
        full,
        trace_file,
        stdout,
        stderr,
        done.returncode,
        done.timed_out,
        done.elapsed,
        done.killed,
        messages,
        done.oversize,
    )
    _raise_if_not_started(run, argv, cwd)
    return run


def _run_following(
    full: list[str],
    kw: dict[str, Any],
    trace_file: Path,
    follow: Follow,
    argv: list[str],
    cwd: Path,
) -> process.Finished:
    stop = threading.Event()
    result: list[process.Finished] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(process.run(full, stop=stop, **kw))
        except BaseException as exc:  # handed to the calling thread
            failure.append(exc)

    worker = threading.Thread(target=target, name="strace", daemon=True)
    worker.start()
    try:
        follow(trace_file, lambda: not worker.is_alive())
    except BaseException:
        stop.set()
        worker.join()
        if result:
            # strace's own failure (ptrace refused, no target) is the cause to report.
            d = result[0]
            _raise_if_not_started(
                TraceRun(full, trace_file, kw["stdout"], kw["stderr"], d.returncode,
                         d.timed_out, d.elapsed, d.killed, strace_messages(kw["stderr"])),
                argv,
                cwd,
            )  # fmt: skip
        raise
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


def strace_messages(stderr: Path) -> list[str]:
    """strace's own complaints, picked out of the target's stderr."""
    out = []
    try:
        with open(stderr, "rb") as f:
            for raw in f:
                m = _STRACE_MSG.match(raw)
                if m is not None:
                    out.append("strace: " + raw[m.end() :].decode("utf-8", "replace").rstrip())
                    if len(out) >= 20:
                        break
    except OSError:
        pass
    return out


def _raise_if_not_started(run: TraceRun, argv: list[str], cwd: Path) -> None:
    """Turn strace's start-up failures into causes a user can act on."""
    text = "\n".join(run.strace_messages)
    traced_anything = run.trace.exists() and run.trace.stat().st_size > 0
    if "ptrace" in text.lower() and ("not permitted" in text or "denied" in text.lower()):
        raise MeasureError(
            "ptrace-denied",
            "strace could not trace the target: ptrace was refused "
            f"({run.strace_messages[0] if run.strace_messages else 'no detail'}). In a container "
            "add the SYS_PTRACE capability (or run without a seccomp profile that blocks "
            "ptrace); on the host check /proc/sys/kernel/yama/ptrace_scope.",
        )
    if not traced_anything and ("Can't stat" in text or "No such file" in text):
        raise MeasureError(
            "target-not-found",
            f"the target {argv[0]!r} was not found (looked from {cwd}); did the build produce "
            "it, and is scenario.command relative to the working directory?",
            text,
        )
    exec_failed = next((m for m in run.strace_messages if m.startswith("strace: exec: ")), None)
    if exec_failed is not None:
        # strace forked, but the target's execve failed (-1 EACCES, ENOEXEC, ...).
        raise MeasureError(
            "target-not-executable",
            f"the target {argv[0]!r} could not be executed ({exec_failed.split(': ', 2)[-1]}); "
            "is it a built program with its execute bit set?",
            text,
        )
    if not traced_anything:
        raise MeasureError(
            "trace-empty",
            "strace produced no trace" + (f": {text}" if text else " (no message)"),
            text,
        )


def tail(path: Path, limit: int = MAX_TAIL) -> str:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size > limit:
                f.seek(size - limit)
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > limit:
        text = "...\n" + text.split("\n", 1)[-1]
    return text


def target_environment(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    # The traced command never sees the gate's credentials.
    for key in (
        "GITHUB_TOKEN",
        "INPUT_GITHUB-TOKEN",
        "INPUT_GITHUB_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ):
        env.pop(key, None)
    return env
