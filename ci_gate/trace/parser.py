"""Streaming strace parser: text lines in, one event per system call out.

Memory is bounded by the number of tasks with a call in flight (one pending
half per pid), never by the trace's length. Lines that cannot be read are
counted and sampled, and the rest of the trace still counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ci_gate.trace.args import scan
from ci_gate.trace.events import (
    Call,
    DamagedLine,
    ParseStats,
    ProcessExit,
    SignalDelivery,
    SummaryRow,
)

Event = Call | ProcessExit | SignalDelivery

MAX_DAMAGED_SAMPLES = 10

_NAME = r"[a-z_][a-z0-9_]*|syscall_(?:0x[0-9a-f]+|\d+)"

# One regex for every prefix strace can print, in the order it prints them:
# pid ("1234  " or "[pid  1234] ", with -Y "1234<comm> "), a timestamp
# (-t/-tt/-ttt/-r, --absolute-timestamps), "(+ 0.000012)" for -r with -t,
# "[ 257]" for -n, "[00007f..]" for -i; then the body.
_LINE = re.compile(
    r"""
    (?:\[pid\s+(\d+)(?:<[^>]*>)?\]\s+|(\d+)(?:<[^>]*>)?\s+)?
    \s*(?:(\d+:\d+:\d+(?:\.\d+)?|\d+\.\d+)\s+)?
    (?:\(\+\s*\d+\.\d+\)\s+)?
    (?:\[\s*\d+\]\s+)?
    (?:\[\s*[0-9a-f?]+\]\s+)?
    (?:
        ("""
    + _NAME
    + r""")\((.*)
      | <\.\.\.\s("""
    + _NAME
    + r""")\sresumed>(.*)
      | ((?:---|\+\+\+)\s.*)
    )$
    """,
    re.X | re.S,
)

_UNFINISHED = " <unfinished ...>"
_DETACHED = " <detached ...>"
_DURATION = re.compile(r"\s<(\d+(?:\.\d+)?)>$")
_RET = re.compile(
    r"""
    (-?\d+|0x[0-9a-fA-F]+|\?)          # value
    (?:<.*>)?                          # -y decoration of the returned fd
    (?:\s<unavailable>)?
    (?:\s+(E[A-Z0-9_]+|ERRNO_\d+)\s+\([^()]*(?:\([^()]*\)[^()]*)*\))?   # errno (text)
    (?:\s+\(.*\))?                     # (Timeout), (flags ...), (INJECTED), (DELAYED)
    $
    """,
    re.X | re.S,
)
_EXITED = re.compile(r"\+\+\+ exited with (-?\d+) \+\+\+")
_KILLED = re.compile(r"\+\+\+ killed by (\w+)( \(core dumped\))? \+\+\+")
_SUPERSEDED = re.compile(r"\+\+\+ superseded by execve in pid (\d+) \+\+\+")
_SIGNAL = re.compile(r"--- (?:stopped by )?(\w+)")
_STRACE_MSG = re.compile(r"strace: (?:Process \d+ (?:attached|detached|suspended)|\[ .* \])")
_SUMMARY_HEADER = re.compile(r"^\s*(?:%\s*)?time\s+(?:total\s+)?seconds\s")
_STACK_FRAME = re.compile(r"^\s*> ")
_HEX_DUMP = re.compile(r"^\s*\| [0-9a-f]{5} ")


def parse_return(ret: str) -> tuple[int | None, str | None] | None:
    """(retval, errno) for the text after ' = ', or None when it is not a return.

    '?' gives retval None; '= ? ERESTARTSYS (...)' gives (None, 'ERESTARTSYS').
    """
    if ret.isdigit():
        return int(ret), None
    m = _RET.match(ret)
    if m is None:
        return None
    value, errno = m.group(1), m.group(2)
    if errno is not None:
        return (None if value == "?" else int(value)), errno
    if value == "?":
        return None, None
    return int(value, 0), None


class TraceParser:
    """Feed it lines (from one or several files) and iterate the events it yields.

    Use one parser per trace; call `finish()` after the last line to flush
    calls that never resumed.
    """

    def __init__(self, source: str = "trace") -> None:
        self.stats = ParseStats()
        self.source = source
        # pid -> (name, argument text so far, line number, timestamp)
        self._pending: dict[int, tuple[str, str, int, str | None]] = {}
        # A call line that ended without a return (program output spliced in).
        self._incomplete: tuple[int, str, str, int, str | None] | None = None
        self._in_summary: list[str] | None = None

    # -- public -----------------------------------------------------------

    def parse(
        self, lines: Iterable[str], *, default_pid: int = 0, source: str | None = None
    ) -> Iterator[Event]:
        if source is not None:
            self.source = source
        stats = self.stats
        pending = self._pending
        match = _LINE.match
        lineno = 0
        for lineno, raw in enumerate(lines, 1):
            line = raw[:-1] if raw.endswith("\n") else raw
            if not line:
                continue
            if self._in_summary is not None and self._summary_line(line):
                continue
            if "strace: " in line:
                line = _STRACE_MSG.sub("", line)
                if not line.strip():
                    continue
            m = match(line)
            if m is None:
                yield from self._unmatched(line, lineno)
                continue
            p1, p2, ts, name, rest, rname, rrest, other = m.groups()
            pid = int(p1 or p2) if (p1 or p2) else default_pid
            if self._incomplete is not None:
                self._drop_incomplete()
            if name is not None:
                if rest.endswith(_UNFINISHED):
                    if pid in pending:
                        yield self._never_resumed(pid)
                    pending[pid] = (name, rest[:-17], lineno, ts)
                    continue
                call = self._complete(pid, name, rest, lineno, ts, False)
                if call is None:
                    self._incomplete = (pid, name, rest, lineno, ts)
                    continue
                stats.calls += 1
                yield call
            elif rname is not None:
                head = pending.pop(pid, None)
                if head is not None and head[0] != rname:
                    pending[pid] = head
                    yield self._never_resumed(pid)
                    head = None
                if head is None:
                    stats.orphan_resumed += 1
                    text = rrest
                    start_line, start_ts = lineno, ts
                else:
                    text = head[1] + rrest
                    start_line, start_ts = head[2], head[3]
                if rrest.endswith(_UNFINISHED):
                    pending[pid] = (rname, text[:-17], start_line, start_ts)
                    continue
                call = self._complete(pid, rname, text, start_line, start_ts, True)
                if call is None:
                    self._damage(lineno, line, "resumed call without a readable return value")
                    continue
                stats.calls += 1
                stats.split_calls += 1
                yield call
            else:
                yield from self._other(pid, other, lineno)
        stats.lines += lineno

    def finish(self) -> Iterator[Event]:
        """Flush what never completed: pending halves and a trailing partial line."""
        if self._incomplete is not None:
            self.stats.truncated_last_line = True
            self._drop_incomplete()
        for pid in sorted(self._pending):
            yield self._never_resumed(pid)
        if self._in_summary is not None:
            self._end_summary()

    # -- pieces ---------------------------------------------------------------

    def _complete(
        self, pid: int, name: str, text: str, lineno: int, ts: str | None, split: bool
    ) -> Call | None:
        """Build a Call from 'ARGS) = RET'; None when the text has no return."""
        duration = None
        if text.endswith(">"):
            dm = _DURATION.search(text)
            if dm is not None:
                duration = float(dm.group(1))
                text = text[: dm.start()]
        if text.endswith(_DETACHED):
            return self._unreturned(pid, name, text[: -len(_DETACHED)], lineno, ts, split)
        eq = text.rfind(" = ")
        if eq >= 0:
            close = len(text[:eq].rstrip()) - 1
            if close >= 0 and text[close] == ")":
                ret = text[eq + 3 :].strip()
                parsed = parse_return(ret)
                if parsed is not None:
                    if parsed[0] is None and parsed[1] is None:
                        self._count_unreturned(name)
                    return Call(
                        pid,
                        name,
                        text[:close],
                        ret,
                        parsed[0],
                        parsed[1],
                        lineno,
                        split=split,
                        ts=ts,
                        duration=duration,
                    )
        return self._complete_slow(pid, name, text, lineno, ts, split, duration)

    def _complete_slow(
        self,
        pid: int,
        name: str,
        text: str,
        lineno: int,
        ts: str | None,
        split: bool,
        duration: float | None,
    ) -> Call | None:
        # A string or decoration containing ' = ' or ')' defeated the fast
        # path: find the call's closing parenthesis by scanning tokens.
        _, close = scan(text, stop_at_close=True)
        if close >= len(text):
            return None
        tail = text[close + 1 :].strip()
        if not tail.startswith("="):
            return None
        ret = tail[1:].strip()
        parsed = parse_return(ret)
        if parsed is None:
            return None
        if parsed[0] is None and parsed[1] is None:
            self._count_unreturned(name)
        return Call(
            pid,
            name,
            text[:close],
            ret,
            parsed[0],
            parsed[1],
            lineno,
            split=split,
            ts=ts,
            duration=duration,
        )

    def _unreturned(
        self, pid: int, name: str, args: str, lineno: int, ts: str | None, split: bool
    ) -> Call:
        self._count_unreturned(name)
        return Call(pid, name, args.rstrip(), None, None, None, lineno, split=split, ts=ts)

    def _count_unreturned(self, name: str) -> None:
        stats = self.stats
        stats.unreturned += 1
        stats.unreturned_by_name[name] = stats.unreturned_by_name.get(name, 0) + 1

    def _never_resumed(self, pid: int) -> Call:
        name, args, lineno, ts = self._pending.pop(pid)
        self.stats.never_resumed += 1
        self.stats.calls += 1
        return self._unreturned(pid, name, args, lineno, ts, True)

    def _other(self, pid: int, text: str, lineno: int) -> Iterator[Event]:
        self.stats.pids.add(pid)
        if text.startswith("+++"):
            m = _EXITED.match(text)
            if m is not None:
                yield from self._task_gone(pid)
                yield ProcessExit(pid, int(m.group(1)), None, False, lineno)
                return
            m = _KILLED.match(text)
            if m is not None:
                yield from self._task_gone(pid)
                yield ProcessExit(pid, None, m.group(1), m.group(2) is not None, lineno)
                return
            m = _SUPERSEDED.match(text)
            if m is not None:
                # A non-leader thread ran execve: its pending execve finishes
                # under the leader's pid, whose own pending call never will.
                leader = int(m.group(1))
                moved = self._pending.pop(pid, None)
                if leader in self._pending:
                    yield self._never_resumed(leader)
                if moved is not None:
                    self._pending[leader] = moved
                return
        else:
            m = _SIGNAL.match(text)
            if m is not None:
                yield SignalDelivery(pid, m.group(1), lineno)
                return
        self._damage(lineno, text, "unrecognised status line")

    def _task_gone(self, pid: int) -> Iterator[Event]:
        if pid in self._pending:
            yield self._never_resumed(pid)

    def _unmatched(self, line: str, lineno: int) -> Iterator[Event]:
        if self._incomplete is not None:
            pid, name, text, start, ts = self._incomplete
            joined = text + "\n" + line
            call = self._complete(pid, name, joined, start, ts, False)
            self.stats.program_output_lines += 1
            if call is None:
                self._incomplete = (pid, name, joined, start, ts)
            else:
                self._incomplete = None
                self.stats.calls += 1
                yield call
            return
        if _SUMMARY_HEADER.match(line):
            self._in_summary = [line]
            return
        if _STACK_FRAME.match(line) or _HEX_DUMP.match(line):
            return
        if line.startswith("strace: ") or line.startswith("????"):
            return
        self._damage(lineno, line, "not a strace line")

    def _drop_incomplete(self) -> None:
        assert self._incomplete is not None
        _pid, name, text, start, _ts = self._incomplete
        self._incomplete = None
        first = text.split("\n", 1)[0]
        self._damage(start, f"{name}({first}", "call line without a return value")

    def _damage(self, lineno: int, text: str, why: str) -> None:
        stats = self.stats
        stats.damaged += 1
        if len(stats.damaged_samples) < MAX_DAMAGED_SAMPLES:
            shown = text if len(text) <= 300 else text[:300] + "..."
            stats.damaged_samples.append(DamagedLine(lineno, shown, why))

    # -- the -c / -C summary table ------------------------------------------------

    def _summary_line(self, line: str) -> bool:
        """Consume one line of a summary table; False when the table has ended."""
        assert self._in_summary is not None
        stripped = line.strip()
        self._in_summary.append(line)
        if stripped.split()[-1:] == ["total"]:
            self._end_summary()
        return True

    def _end_summary(self) -> None:
        assert self._in_summary is not None
        rows = parse_summary_table(self._in_summary)
        self._in_summary = None
        if self.stats.summary is None:
            self.stats.summary = rows
        else:
            self.stats.summary.extend(rows)


def parse_summary_table(lines: list[str]) -> list[SummaryRow]:
    """Rows of strace's -c/-C table, found by its header's column names."""
    header = lines[0].replace("% time", "%time").split()
    try:
        calls_col = header.index("calls")
    except ValueError:
        return []
    errors_col = header.index("errors") if "errors" in header else None
    rows: list[SummaryRow] = []
    for line in lines[1:]:
        parts = line.split()
        if not parts or set(parts[0]) <= {"-"} or parts[-1] == "total":
            continue
        name = parts[-1]
        numbers = parts[:-1]
        # The errors column is blank when a syscall had none, so rows are
        # one short; the columns before it are always present.
        try:
            calls = int(numbers[calls_col])
            errors = 0
            if errors_col is not None and len(numbers) > errors_col:
                errors = int(numbers[errors_col])
        except (IndexError, ValueError):
            continue
        rows.append(SummaryRow(name, calls, errors))
    return rows
