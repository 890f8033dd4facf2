"""Where trace text comes from: one file, stdin, or strace -ff's per-pid files."""

from __future__ import annotations

import functools
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ci_gate.errors import MeasureError
from ci_gate.progress import Reading
from ci_gate.trace.events import ParseStats
from ci_gate.trace.parser import Event, TraceParser, decoded_lines

_PID_SUFFIX = re.compile(r"^(?P<prefix>.*)\.(?P<pid>\d+)$")


@dataclass(frozen=True)
class TracePart:
    path: Path | None  # None for stdin
    pid: int | None  # set for -ff files, whose lines carry no pid
    size: int


def resolve(spec: str) -> list[TracePart]:
    """Files making up the trace named by `spec`.

    `spec` may be a file, '-' (stdin), a directory holding strace -ff output
    (PREFIX.PID files), or the -o PREFIX itself when only PREFIX.PID exist.
    """
    if spec == "-":
        return [TracePart(None, None, 0)]
    path = Path(spec)
    if path.is_file():
        return [TracePart(path, None, path.stat().st_size)]
    candidates: list[Path]
    if path.is_dir():
        candidates = [p for p in path.iterdir() if p.is_file()]
    else:
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise MeasureError("trace-missing", f"no trace at {spec}")
        candidates = [p for p in parent.iterdir() if p.name.startswith(path.name + ".")]
    parts: list[TracePart] = []
    prefixes: set[str] = set()
    for p in candidates:
        m = _PID_SUFFIX.match(p.name)
        if m is None:
            continue
        prefixes.add(m.group("prefix"))
        parts.append(TracePart(p, int(m.group("pid")), p.stat().st_size))
    if not parts:
        raise MeasureError(
            "trace-missing",
            f"no trace at {spec}: not a file, and no strace -ff files (PREFIX.PID) found",
        )
    if len(prefixes) > 1:
        raise MeasureError(
            "trace-ambiguous",
            f"{spec} holds -ff files with several prefixes ({', '.join(sorted(prefixes))}); "
            "name the prefix instead of the directory",
        )
    # Parents start before their children, so lower pids first keeps the
    # fd tables' inheritance order in the common case.
    return sorted(parts, key=lambda t: t.pid or 0)


# How a task's last line reads when strace saw it end, or let it go (-p attach, Ctrl-C).
_TASK_END = re.compile(
    rb"\+\+\+ (?:exited with -?\d+|killed by \w+(?: \(core dumped\))?|superseded by execve in "
    rb"pid \d+) \+\+\+\s*$|<detached \.\.\.>|strace: Process \d+ detached"
    # -ff: a thread's file ends with the execve it did, the leader's pid taking over.
    rb"|<pid changed to \d+ \.\.\.>"
)
# strace -c/-C's table: from its header to the end of the file.
_SUMMARY_HEADER = re.compile(rb"^\s*% time\s+seconds")
_FIRST_PID = re.compile(rb"^\s*(?:\[pid\s+(\d+)|(\d+)\s)")
_LOOK = 64 * 1024


def unfinished(parts: list[TracePart]) -> list[TracePart]:
    """The files whose last line is not a task's end (`+++ exited with 0 +++`, a detach).

    strace writes every traced task's end, so a trace of a program it started that stops
    elsewhere was cut short at a line boundary (a partial copy, a pasted excerpt, a killed
    tracer) or was taken from the middle of a longer log. stdin cannot be looked at again:
    never reported.
    """
    out: list[TracePart] = []
    for part in parts:
        if part.path is None or part.size == 0:
            continue
        with part.path.open("rb") as f:
            f.seek(max(0, part.size - _LOOK))
            lines = f.read().splitlines()
        for i in range(len(lines) - 1, -1, -1):
            if _SUMMARY_HEADER.match(lines[i]):
                lines = lines[:i]
                break
        last = next((line for line in reversed(lines) if line.strip()), b"")
        if not _TASK_END.search(last):
            out.append(part)
    return out


def first_task(parts: list[TracePart]) -> tuple[int | None, bool]:
    """The trace's first task: its pid, if lines carry one, and whether strace started it
    (its first line an execve) rather than attached to it (-p, a window Ctrl-C may end
    anywhere)."""
    first = parts[0] if parts else None
    if first is None or first.path is None:
        return None, False
    with first.path.open("rb") as f:
        line = next((ln for ln in f.read(_LOOK).splitlines() if ln.strip()), b"")
    started = b"execve(" in line
    if first.pid is not None:
        return first.pid, started
    m = _FIRST_PID.match(line)
    return (int(m.group(1) or m.group(2)) if m else None), started


def total_size(parts: list[TracePart]) -> int:
    return sum(p.size for p in parts)


def events(
    parts: list[TracePart], parser: TraceParser | None = None, reading: Reading | None = None
) -> Iterator[Event]:
    """Parse every part in order; the caller reads parser.stats afterwards.

    Raises MeasureError('not-strace') when no line of the input was a system
    call but some lines were there: a report of zeros would be a lie.
    `reading`, when given, tells a progress line how far the parts are read.
    """
    parser = parser or TraceParser()
    yield from _parse(parts, parser, reading)
    check_is_strace(parser.stats, parts)


def _parse(
    parts: list[TracePart], parser: TraceParser, reading: Reading | None = None
) -> Iterator[Event]:
    for part in parts:
        if part.path is None:
            stream = open(  # noqa: SIM115 - stdin is not ours to close
                sys.stdin.fileno(), encoding="utf-8", errors="surrogateescape", closefd=False
            )
            yield from parser.parse(stream, source="<stdin>")
            continue
        name = os.fspath(part.path)
        pid = part.pid or 0
        # Binary reads for the C line filter; a text file otherwise (same lines).
        with (
            open(part.path, "rb")
            if parser.accelerated()
            else open(part.path, encoding="utf-8", errors="surrogateescape", newline="\n")
        ) as f:
            if reading is not None:
                reading.fd = f.fileno()
            if isinstance(f, io.BufferedReader):
                chunks = iter(functools.partial(f.read, READ_CHUNK), b"")
                yield from parser.parse_chunks(chunks, default_pid=pid, source=name)
            else:
                yield from parser.parse(f, default_pid=pid, source=name)
            if reading is not None:
                reading.fd = -1
                reading.base += part.size
    yield from parser.finish()


# How long to wait for more of a trace that is still being written.
FOLLOW_POLL = 0.01
FOLLOW_CHUNK = 1 << 20
READ_CHUNK = 1 << 20


def follow_chunks(
    path: Path, finished: Callable[[], bool], reading: Reading | None = None
) -> Iterator[bytes]:
    """The bytes of a file another process is still writing, as they arrive.

    Ends once `finished()` is true and the file has been read to its end
    (checked in that order, so nothing written before the writer exited is
    missed).
    """
    f = None
    try:
        while f is None:
            done = finished()
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                if done:
                    return
                time.sleep(FOLLOW_POLL)
        if reading is not None:
            reading.fd = f.fileno()
        while True:
            done = finished()
            chunk = f.read(FOLLOW_CHUNK)
            if not chunk:
                if not done:
                    time.sleep(FOLLOW_POLL)
                    continue
                break
            yield chunk
    finally:
        if f is not None:
            if reading is not None:
                reading.fd = -1
            f.close()


def follow_lines(
    path: Path, finished: Callable[[], bool], reading: Reading | None = None
) -> Iterator[str]:
    """The lines of a file another process is still writing, as they arrive.

    Lines are split on "\n" only and decoded as `events` reads a file, so the
    parser sees exactly what it would see reading the finished file.
    """
    return decoded_lines(follow_chunks(path, finished, reading))


def follow_events(
    path: Path, finished: Callable[[], bool], parser: TraceParser, reading: Reading | None = None
) -> Iterator[Event]:
    """`events` for a trace file still being written (see `follow_chunks`)."""
    chunks = follow_chunks(path, finished, reading)
    yield from parser.parse_chunks(chunks, source=os.fspath(path))
    yield from parser.finish()
    check_is_strace(parser.stats, [TracePart(path, None, _size(path))])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check_is_strace(stats: ParseStats, parts: list[TracePart]) -> None:
    """Refuse input in which no line was a system call (but some line was something)."""
    if stats.calls:
        return
    if stats.summary:
        raise MeasureError(
            "summary-only",
            "the trace holds strace's -c summary table but no system call lines; trace with "
            "`strace -f -o FILE` (add -C to keep the table after the calls)",
        )
    if not stats.damaged:
        return
    shown = []
    for d in stats.damaged_samples[:3]:
        text = d.text if len(d.text) <= 80 else d.text[:80] + "..."
        where = f"{d.source}:{d.lineno}" if d.source else f"line {d.lineno}"
        shown.append(f"{where}: {_quoted(text)}")
    name = parts[0].path if len(parts) == 1 and parts[0].path is not None else "the input"
    raise MeasureError(
        "not-strace",
        f"{name} is not strace output: none of its {stats.lines} line(s) is a system call. "
        f"First lines that did not parse: {'; '.join(shown)}",
    )


def parse_all(parts: list[TracePart]) -> tuple[list[Event], ParseStats]:
    """Whole trace into memory: for tests and small traces only."""
    parser = TraceParser()
    return list(_parse(parts, parser)), parser.stats


def _quoted(text: str) -> str:
    """Like repr(), but a byte that was not UTF-8 shows as the byte (\\xd0), not as the
    surrogate that stands for it (\\udcd0)."""
    out = []
    for c in text:
        o = ord(c)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif c == "'":
            out.append("\\'")
        else:
            out.append(repr(c)[1:-1])
    return "'" + "".join(out) + "'"
