"""Streaming strace parser: text lines in, one event per system call out.

How calls are counted
---------------------
Every system call a task *entered* is exactly one call, however strace
printed it: one complete line; an ``<unfinished ...>`` half joined with the
``<... NAME resumed>`` half of the same pid (also across ``+++ superseded by
execve +++`` and ``<pid changed to N ...>``); a resumed half whose first half
is not in the trace (tracing began mid-call); or a first half that never
resumes (the task was killed, detached, or the trace ended).
``syscalls.total`` counts entered calls.

A call *returned* when strace saw it come back from the kernel: a return
value, an errno (the ERESTART* family included: the kernel reports those as
errors), or ``= ? <unavailable>`` (strace saw the exit but could not read the
registers, and still counts the call). A call did *not* return when strace
printed a bare ``= ?`` (the task exited or was replaced by execve inside the
call, e.g. ``exit_group``), ``<detached ...>``, or no second half at all.
strace's own ``-c``/``-C`` table counts returned calls only, so for every
syscall strace has a name for, returned calls and errors here equal the
table's ``calls`` and ``errors`` columns. Unknown syscalls (``syscall_0x1f4``)
are counted here but never in strace's table. Calls that never returned are
counted apart (``ParseStats.unreturned_by_name``).

Damage
------
A line that is none of strace's shapes is counted as damaged and sampled with
its line number (``ParseStats.damaged_samples``); the rest still counts. A
call line without its return, followed by lines that are not strace's, is a
call with a program's output spliced into it (strace and the program sharing
stderr): it completes on the line that ends it. Input in which no line is a
call is refused by ``source.events`` (``not-strace``), never reported as zeros.

Speed and memory
----------------
One regex match per line reads the shapes strace prints most (``-f -o
FILE``, with ``-y``, ``-T`` or a timestamp): pid, name, where the arguments
end and the return. A call nobody selected (``Selection``) is then only
counted: the first characters of its return tell returned from failed.
Everything else (``[pid N]`` prefixes, ``-i``/``-n``/``-Y``, odd returns,
status lines, damage) goes through the general path, which reads the line in
full. Arguments stay raw text until a metric splits them. Memory is bounded by
the number of tasks with a call in flight (one pending half per pid) and the
number of distinct syscall names, never by the trace's length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType

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

# The optional C line filter (_scan.c): it takes the lines the fast path below
# would only count and hands the rest over unchanged. Built when a compiler and
# Python's headers are there; SYSCALL_GATE_NO_SPEEDUPS=1 turns it off.
_speedups: ModuleType | None
try:
    from ci_gate.trace import _scan
except ImportError:  # an install without a compiler or Python's headers
    _speedups = None
else:
    _speedups = _scan
SPEEDUPS: ModuleType | None = None if os.environ.get("SYSCALL_GATE_NO_SPEEDUPS") else _speedups

MAX_DAMAGED_SAMPLES = 10
# Program output spliced into one call line (strace and the program sharing
# stderr) is skipped up to this many lines; after that the call is damaged.
MAX_SPLICED_LINES = 10_000

_NAME = r"[a-z_][a-z0-9_]*|syscall_(?:0x[0-9a-f]+|\d+)"

# Every prefix strace prints, in its order: the pid ("1234  " with -f to a
# file, "[pid  1234] " on stderr, nothing when one task is traced; "<comm>"
# after it with -Y), a timestamp (-t, -tt, -ttt, -r, --absolute-timestamps
# and --relative-timestamps in every precision, "s" precision printing an
# integer), "(+ 0.000012)" for -r with -t, "[ 257]" for -n, "[00007f..]" for
# -i. A pid has at most 7 digits (pid_max is 2^22), which tells a unix
# timestamp in seconds from a pid. Then the body.
_PREFIX = r"""
    (?:\[pid\s+(\d{1,7})(?:<[^>\n]*>)?\]\s+|(\d{1,7})(?:<[^>\n]*>)?\s+)?
    \s*(?:(\d+:\d\d:\d\d(?:\.\d+)?|\d+(?:\.\d+)?)\s+)?
    (?:\(\+\s*\d+(?:\.\d+)?\)\s+)?
    (?:\[\s*\d+\]\s+)?
    (?:\[\s*[0-9a-f?]+\]\s+)?
"""
_LINE = re.compile(
    _PREFIX
    + r"""
    (?:
        (NAME)\((.*)
      | <\.\.\.\s(NAME)\sresumed>(.*)
      | ((?:---|\+\+\+)\s.*)
    )$
    """.replace("NAME", _NAME),
    re.X | re.S,
)
# The fast path's shapes: an optional "PID  " and (once the trace has shown
# one) a timestamp; a call or a resumed half. Groups: pid, ts, name, resumed
# name. Only the head of the line is read by the regex: the return is found
# from the line's end (_tail), so the cost does not grow with the arguments.
# Nothing longer than a name or a return is copied out of the line.
_FAST_HEAD = r"""
    (?:([a-z_][a-z0-9_]*)\(|<\.\.\.\ ([a-z_][a-z0-9_]*)\ resumed>)
"""
_FAST = re.compile(r"(?:(\d{1,7})\ +)?(?:(x)(?!))?" + _FAST_HEAD, re.X)
_FAST_TS = re.compile(
    r"(?:(\d{1,7})\ +)?\ *(?:(\d+(?::\d\d:\d\d)?(?:\.\d+)?)\ +)?" + _FAST_HEAD, re.X
)


def _tail(raw: str, start: int) -> tuple[int, str | None]:
    """(where the arguments end, the return) after `start`; (-1, None) without a return.

    The last ") = " (any number of spaces before the "=") on the line's first
    row, and what follows it up to that row's end: what the regex
    `.*()[)][ ]+=[ ](.*)` matched from `start`, found from the end instead.
    """
    nl = raw.find("\n", start)
    if nl < 0:
        nl = len(raw)
    e = raw.rfind(" = ", start, nl)
    while e > start:
        if raw[e - 1] == ")":
            return e - 1, raw[e + 3 : nl]
        k = start + len(raw[start:e].rstrip(" ")) - 1
        if k >= start and raw[k] == ")":
            return k, raw[e + 3 : nl]
        e = raw.rfind(" = ", start, e + 2)
    return -1, None


_UNFINISHED = " <unfinished ...>"
_DETACHED = " <detached ...>"
_PID_CHANGED = re.compile(r" <pid changed to (\d+) \.\.\.>$")
_DURATION = re.compile(r"\s<(\d+(?:\.\d+)?)>$")
_RET = re.compile(
    r"""
    (-?\d+|0x[0-9a-fA-F]+|\?)          # value
    (?:<[^\n]*>)?                      # -y / -Y decoration of the returned fd or pid
    (\s<unavailable>)?
    (?:\s+(E[A-Z0-9_]+|ERRNO_\d+|E\?\?\?)\s+\([^()]*(?:\([^()]*\)[^()]*)*\))?   # errno (text)
    (?:\s+\(.*\))?                     # (Timeout), (flags ...), (INJECTED), (DELAYED)
    $
    """,
    re.X | re.S,
)
_EXITED = re.compile(r"\+\+\+ exited with (-?\d+) \+\+\+$")
_KILLED = re.compile(r"\+\+\+ killed by (\w+)( \(core dumped\))? \+\+\+$")
_SUPERSEDED = re.compile(r"\+\+\+ superseded by execve in pid (\d+) \+\+\+$")
_SIGNAL = re.compile(r"--- (?:stopped by )?(\w+)\b.* ---$", re.S)
# strace's own messages. On a shared stderr they can land in the middle of a
# call line ("vfork(strace: Process 9 attached\n <unfinished ...>").
# strace names itself by its argv[0] ("strace: ", "/usr/bin/strace: ").
_STRACE_MSG = re.compile(
    r"(?:\.{0,2}(?:/[^\s/]+)*/)?strace: "
    r"(?:Process \d+ (?:attached(?: with \d+ threads)?|detached|suspended)|\[ [^\n]* \])$"
)
_STRACE_LINE = re.compile(r"\s*\S*strace: ")
_STACK_FRAME = re.compile(r"\s*> ")
_HEX_DUMP = re.compile(r"\s*\| [0-9a-f]{5} ")
# Column names of the -c/-C table (any -U selection of them).
_SUMMARY_COLUMNS = frozenset(
    ("%", "time", "seconds", "usecs/call", "calls", "errors", "syscall", "shortest",
     "longest", "wall-total", "wall-min", "wall-max", "wall-avg")
)  # fmt: skip
_SUMMARY_ROW = re.compile(r"\s*(?:[\d.]+\s+)*\d+\s+\S+\s*$|\s*-+(?:\s+-+)*\s*$")
_PERSONALITY = re.compile(r"System call usage summary for .* mode:$")


def _parens_pair(text: str, end: int, begin: int = 0) -> bool:
    """Whether no "(" in text[begin:end] after its last quote is left open.

    Program output spliced into a call line (strace and the program sharing
    stderr) can end like a return ("...", 15a "q", (p) = 1) while the call's
    real end follows on the next line; what follows the last string argument
    then has an unpaired "(". Strings themselves may hold any parentheses.
    """
    start = max(text.rfind('"', begin, end) + 1, begin)
    return text.count("(", start, end) <= text.count(")", start, end)


_QUIET_CACHE: dict[str, tuple[str | None]] = {}


def _quiet_return(ret: str) -> str | None:
    """The errno of a return the fast path may take (None: no error), or "" if it may not.

    "" for what the general path must read: no return at all, "= ?" and its
    kin, and anything parse_return would refuse. The common shapes are
    recognised without a regex; the rest (errnos with their text, mostly)
    repeat, and their answers are remembered.
    """
    if ret.endswith(">"):
        i = ret.rfind(" <")
        if i > 0 and ret[i + 2 : -1].replace(".", "", 1).isdigit():
            ret = ret[:i]  # a -T duration
            if ret.isdigit():
                return None
        else:
            lt = ret.find("<")
            if lt > 0 and ret[:lt].isdigit():
                return None  # 3</path>: an fd with its -y decoration
    if ret[:2] == "0x":
        try:
            int(ret, 16)
            return None
        except ValueError:
            pass
    known = _QUIET_CACHE.get(ret)
    if known is not None:
        return known[0]
    parsed = parse_return(ret)
    answer = "" if parsed is None or parsed[0] is None else parsed[1]
    if len(_QUIET_CACHE) >= 4096:
        _QUIET_CACHE.clear()  # bounded, whatever the trace holds
    _QUIET_CACHE[ret] = (answer,)
    return answer


def _number(text: str) -> int:
    """A return value as strace prints it: decimal, 0x hex, or 0-prefixed octal (umask)."""
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if len(text) > 1 and text[0] == "0":
        try:
            return int(text, 8)
        except ValueError:
            pass
    return int(text)


def parse_return(ret: str) -> tuple[int | None, str | None, bool] | None:
    """(retval, errno, returned) for the text after ' = '; None when it is no return.

    '?' gives (None, None, False): the call never returned. '? <unavailable>'
    gives (None, None, True). '? ERESTARTSYS (...)' gives (None, 'ERESTARTSYS', True).
    """
    if ret.isdigit():
        return _number(ret), None, True
    m = _RET.match(ret)
    if m is None:
        return None
    value, unavailable, errno = m.group(1), m.group(2), m.group(3)
    if errno is not None:
        if value == "?":
            return None, errno, True
        return (-_number(value[1:]) if value[0] == "-" else _number(value)), errno, True
    if value == "?":
        return None, None, unavailable is not None
    if value[0] == "-":
        return -_number(value[1:]), None, True
    return _number(value), None, True


class Quiet:
    """Selected calls whose only effect on the consumer an accelerated parser may apply itself.

    The pure-Python parser ignores this and yields these calls as events; the
    C line filter (`_scan`) counts a call of `classify` by its resolution
    class into `counts` (name -> {class: n}, a new entry a copy of
    `template`), and lets a call of `fd_calls` (close) go, when that is all
    the consumer would have done with the event. The consumer keeps these
    objects up to date; both paths must end in the same numbers
    (tests/test_trace_speedups.py).

    classify: name -> (how many leading arguments to read (1-4), its (dirfd
        index or -1, path index) pairs, fd_only, whether a returned fd >= 0
        must be absent from the task's fd table).
    keys: the class names for path_based, fd_based and dirfd_relative, in
        that order.
    fd_calls: calls taking one fd, which matter only when the task's table
        in `fd_tables` (pid -> {fd: target}) holds that fd.
    """

    __slots__ = ("classify", "counts", "fd_calls", "fd_tables", "keys", "template")

    def __init__(
        self,
        classify: dict[str, tuple[int, tuple[tuple[int, int], ...], bool, bool]],
        counts: dict[str, dict[str, int]],
        template: dict[str, int],
        keys: tuple[str, str, str],
        fd_calls: frozenset[str],
        fd_tables: Mapping[int, Mapping[int, object]],
    ) -> None:
        self.classify = classify
        self.counts = counts
        self.template = template
        self.keys = keys
        self.fd_calls = fd_calls
        self.fd_tables = fd_tables


class Selection:
    """Which calls the parser turns into events; the rest are only counted.

    `names` None means every call. A call is also an event when its line
    contains one of `needles` (a scenario root, say). A consumer may change
    the selection while it handles an event; the parser reads it again after
    each event it yields. `quiet` lets an accelerated parser absorb some
    selected calls (see Quiet).
    """

    __slots__ = ("names", "needles", "quiet")

    def __init__(
        self,
        names: Iterable[str] | None = None,
        needles: Iterable[str] = (),
        quiet: Quiet | None = None,
    ) -> None:
        self.names: frozenset[str] | None = frozenset(names) if names is not None else None
        self.needles: tuple[str, ...] = tuple(needles)
        self.quiet = quiet


# The first half of a split call, waiting for its resumed half: name,
# argument text so far, line number, timestamp, and whether it arrived by
# "<pid changed to N ...>" (then it is N's execve, not a call N left pending).
_Pending = tuple[str, str, int, str | None, bool]


class TraceParser:
    """Feed it lines (from one or several files) and iterate the events it yields.

    Use one parser per trace; call `finish()` after the last line to flush
    calls that never resumed. `stats.tally` counts every call, selected or not.
    """

    def __init__(self, source: str = "trace", *, select: Selection | None = None) -> None:
        self.stats = ParseStats()
        self.source = source
        self.select = select if select is not None else Selection()
        self._pending: dict[int, _Pending] = {}
        # A call line that ended without its return: program output was
        # spliced in, or a strace message, and the rest follows later.
        # (pid, name, argument text, line number, timestamp, the line as read)
        self._incomplete: tuple[int, str, str, int, str | None, str] | None = None
        self._last_damaged = 0
        # The input's last line had no "\n" and did not read as a whole call: strace
        # ends every line, so the trace was cut there.
        self._cut_short = False
        self._spliced = 0
        self._glued = False
        self._in_summary: list[str] | None = None
        # execve by a non-leader thread, seen from the leader's side before
        # the thread's half (-ff files in pid order): leader -> thread, and
        # thread -> leader once the leader's resumed half has been counted.
        self._superseded: dict[int, int] = {}
        self._counted_elsewhere: dict[int, int] = {}
        self._out: list[Event] = []
        self._default_pid = 0
        self._prefixed_seen = False
        self._unprefixed_seen = False
        self._mixed = False
        self._timestamps = False
        # Tasks seen with a pid prefix (in the general path) and not gone yet.
        self._live: dict[int, None] = {}

    # -- public -----------------------------------------------------------

    def parse(
        self, lines: Iterable[str], *, default_pid: int = 0, source: str | None = None
    ) -> Iterator[Event]:
        """Events for `lines`; lines without a pid prefix belong to `default_pid`."""
        if source is not None:
            self.source = source
        self._default_pid = default_pid
        self._prefixed_seen = self._unprefixed_seen = self._mixed = False
        self._last_damaged = 0
        stats = self.stats
        stats.files += 1
        tally = stats.tally
        out = self._out
        general = self._general
        pending = self._pending
        sel = self.select
        names = sel.names
        needles = sel.needles
        fast = (_FAST_TS if self._timestamps else _FAST).match
        busy = self._incomplete is not None
        unfinished_nl = _UNFINISHED + "\n"
        split = 0
        lineno = 0
        # The C filter: it counts the lines it takes itself (line numbers, joins).
        accel: _scan.Lines | None = None
        if SPEEDUPS is not None and type(lines) is SPEEDUPS.Lines:
            accel = lines  # type: ignore[assignment]
        raw = "\n"
        for raw in lines:
            lineno = lineno + 1 if accel is None else accel.lineno
            # The fast path reads the shapes strace prints most (`strace -f -o
            # FILE`, with -y, -T, a timestamp) in one regex match. What it does
            # not take (stderr's "[pid N]", a return that is neither a number
            # nor an errno, a half whose other half is elsewhere, a stream that
            # mixes lines with and without pids) goes to the general path.
            m = None if busy else fast(raw)
            if m is not None:
                pid_s, ts, name, rname = m.groups()
                close, ret = _tail(raw, m.end())
                if ret is not None:
                    # What counting needs from the return: that it is one, and
                    # its errno. A plain number is the common case; anything
                    # else is checked as the general path would (an unfinished
                    # line whose arguments hold ") = 1" is no return).
                    errno = None if ret.isdigit() else _quiet_return(ret)
                    if errno != "":
                        if name is not None:
                            # A complete call, unless program output spliced into
                            # the line (a shared stderr) ends like a return ("(p)
                            # = 1"): then the parentheses before it do not pair up.
                            begin = m.end(3) + 1
                            if raw.find("(", begin, close) < 0 or _parens_pair(raw, close, begin):
                                t = tally.get(name)
                                if t is None:
                                    t = tally[name] = [0, 0, 0]
                                t[0] += 1
                                t[1] += 1
                                if errno is not None:
                                    t[2] += 1
                                if names is not None and name not in names:
                                    for needle in needles:
                                        if needle in raw:
                                            break
                                    else:
                                        continue
                                call = self._fast_call(
                                    pid_s, name, raw[begin:close], ret, errno, lineno, ts, False
                                )
                                if call is not None:
                                    yield call
                                    if sel.names is not names or sel.needles is not needles:
                                        names = sel.names
                                        needles = sel.needles
                                    continue
                                t[0] -= 1  # the general path reads it again
                                t[1] -= 1
                                if errno is not None:
                                    t[2] -= 1
                        elif pid_s is not None:
                            # A resumed half that returned, under a pid.
                            pid = int(pid_s)
                            half = pending.get(pid)
                            if half is not None and half[0] == rname:
                                del pending[pid]
                                t = tally.get(rname)
                                if t is None:
                                    t = tally[rname] = [0, 0, 0]
                                t[0] += 1
                                t[1] += 1
                                if errno is not None:
                                    t[2] += 1
                                split += 1
                                if names is not None and rname not in names:
                                    for needle in needles:
                                        if needle in raw or needle in half[1]:
                                            break
                                    else:
                                        continue
                                args = half[1] + raw[m.end(4) + 9 : close]
                                call = self._fast_call(
                                    pid_s, rname, args, ret, errno, half[2], half[3], True
                                )
                                if call is not None:
                                    yield call
                                    if sel.names is not names or sel.needles is not needles:
                                        names = sel.names
                                        needles = sel.needles
                                    continue
                                # Put it back as it was for the general path.
                                pending[pid] = half
                                split -= 1
                                t[0] -= 1
                                t[1] -= 1
                                if errno is not None:
                                    t[2] -= 1
                elif name is not None and pid_s is not None and raw.endswith(unfinished_nl):
                    # The first half of a split call, under a pid.
                    pid = int(pid_s)
                    if pid not in pending:
                        pending[pid] = (name, raw[m.end(3) + 1 : -18], lineno, ts, False)
                        continue
            general(raw, lineno, default_pid)
            busy = self._incomplete is not None
            if out:
                yield from out
                out.clear()
                if sel.names is not names or sel.needles is not needles:
                    names = sel.names
                    needles = sel.needles
            if self._timestamps and fast is not _FAST_TS.match:
                fast = _FAST_TS.match
        # Only the input's last line can lack its "\n" (the C filter hands that one over).
        if not raw.endswith("\n") and self._last_damaged == lineno and lineno:
            self._cut_short = True
        if accel is not None:
            lineno = accel.lineno
            split += accel.split
        stats.split_calls += split
        stats.lines += lineno

    def accelerated(self) -> bool:
        """Whether parse_chunks uses the C line filter (it helps only when calls are left out)."""
        return SPEEDUPS is not None and self.select.names is not None

    def parse_chunks(
        self, chunks: Iterable[bytes], *, default_pid: int = 0, source: str | None = None
    ) -> Iterator[Event]:
        """`parse` for a trace given as bytes, cut anywhere (a binary file's reads).

        Lines end at "\n" only and are decoded as UTF-8 with surrogateescape,
        as a file opened with those settings and newline="\n" reads them.
        """
        if self.accelerated():
            assert SPEEDUPS is not None
            lines: Iterable[str] = SPEEDUPS.Lines(self, chunks)
        else:
            lines = decoded_lines(chunks)
        return self.parse(lines, default_pid=default_pid, source=source)

    def _fast_call(
        self,
        pid_s: str | None,
        name: str,
        args: str,
        ret: str,
        errno: str | None,
        lineno: int,
        ts: str | None,
        split: bool,
    ) -> Call | None:
        """The event for a call the fast path took; None if the return needs a closer look."""
        duration = None
        if ret.endswith(">") and " <" in ret:
            dm = _DURATION.search(ret)
            if dm is not None:
                duration = float(dm.group(1))
                ret = ret[: dm.start()]
        lt = ret.find("<")
        if ret.isdigit():
            retval: int | None = _number(ret)
        elif lt > 0 and ret.endswith(">") and ret[:lt].isdigit():
            retval = _number(ret[:lt])  # 3</path>: an fd with its -y decoration
        else:
            parsed = parse_return(ret)
            if parsed is None or parsed[1] != errno:
                return None
            retval = parsed[0]
        pid = int(pid_s) if pid_s is not None else self._unprefixed_pid()
        return Call(pid, name, args, ret, retval, errno, lineno,
                    split=split, ts=ts, duration=duration, returned=True)  # fmt: skip

    def finish(self) -> Iterator[Event]:
        """Flush what never completed: pending halves and a trailing partial line."""
        if self._incomplete is not None or self._cut_short:
            self.stats.truncated_last_line = True
        if self._incomplete is not None:
            self._drop_incomplete()
        for pid in list(self._pending):
            self._never_resumed(pid)
        if self._in_summary is not None:
            self._end_summary()
        out = self._out
        yield from out
        out.clear()

    # -- the general path -----------------------------------------------------

    def _general(self, raw: str, lineno: int, default_pid: int) -> None:
        line = raw.rstrip("\r\n")
        if not line:
            return
        if self._in_summary is not None and self._summary_line(line):
            return
        glued = False
        if "strace: " in line:
            cut = _STRACE_MSG.sub("", line)
            if cut != line:
                self.stats.strace_messages += 1
                if not cut.strip():
                    return
                line = cut
                glued = True
        m = _LINE.match(line)
        if m is None:
            self._unmatched(line, lineno)
            return
        if self._incomplete is not None:
            self._drop_incomplete()
        p1, p2, ts, name, rest, rname, rrest, other = m.groups()
        if ts is not None:
            self._timestamps = True
        if p1 or p2:
            pid = int(p1 or p2)
            if not self._mixed and self._unprefixed_seen:
                self._mixed = True
            self._prefixed_seen = True
            self._live[pid] = None
        else:
            if not self._mixed and self._prefixed_seen:
                self._mixed = True
            self._unprefixed_seen = True
            pid = self._unprefixed_pid()
        if name is not None:
            self._call_line(pid, name, rest, lineno, ts, line)
            # A strace message that cut the line: the call goes on on the next one.
            self._glued = glued and self._incomplete is not None
        elif rname is not None:
            self._resumed_line(pid, rname, rrest, lineno, ts, line, p1 is None and p2 is None)
        else:
            self._status_line(pid, other, lineno)

    def _unprefixed_pid(self) -> int:
        """The pid of a line strace printed without one."""
        if self._prefixed_seen:
            self._mixed = True
        if self._mixed and len(self._live) == 1:
            # On a shared stderr strace drops the pid again when one task is left.
            return next(iter(self._live))
        return self._default_pid

    def _call_line(
        self, pid: int, name: str, rest: str, lineno: int, ts: str | None, line: str
    ) -> None:
        pending = self._pending
        if rest.endswith(_UNFINISHED):
            if pid in pending:
                self._never_resumed(pid)
            pending[pid] = (name, rest[: -len(_UNFINISHED)], lineno, ts, False)
            return
        if rest.endswith("...>"):
            m = _PID_CHANGED.search(rest)
            if m is not None:
                self._pid_changed(pid, int(m.group(1)), name, rest[: m.start()], lineno, ts)
                return
        if not self._complete(pid, name, rest, lineno, ts, False):
            self._incomplete = (pid, name, rest, lineno, ts, line)
            self._spliced = 0

    def _resumed_line(
        self,
        pid: int,
        name: str,
        rest: str,
        lineno: int,
        ts: str | None,
        line: str,
        unprefixed: bool,
    ) -> None:
        stats = self.stats
        pending = self._pending
        head = pending.pop(pid, None)
        if head is not None and head[0] != name:
            pending[pid] = head
            self._never_resumed(pid)
            head = None
        if head is None:
            adopted = self._adopt(pid, name, unprefixed)
            if adopted is not None:
                owner, head = adopted
                if unprefixed:
                    pid = owner
        if rest.startswith(_UNFINISHED):
            # "<... read resumed> <unfinished ...>) = ?": the task went away
            # inside the call; strace had nothing more to print.
            rest = rest[len(_UNFINISHED) :]
        if head is None:
            leader_of = self._superseded.pop(pid, None)
            if leader_of is not None and name == "execve":
                # The thread's first half is in a file not read yet (-ff):
                # count the call here, drop that half when it comes.
                self._counted_elsewhere[leader_of] = pid
            else:
                stats.orphan_resumed += 1
            text = rest
            start_line, start_ts = lineno, ts
        else:
            text = head[1] + rest
            start_line, start_ts = head[2], head[3]
        if rest.endswith(_UNFINISHED):
            # "<... read resumed> <unfinished ...>": interrupted again before
            # it returned; its end comes later (or never).
            pending[pid] = (name, text[: -len(_UNFINISHED)], start_line, start_ts, False)
            return
        if not self._complete(pid, name, text, start_line, start_ts, True):
            self._damage(lineno, line, "resumed call without a readable return value")
            # It was entered all the same.
            self._unreturned(pid, name, text, start_line, start_ts, True)

    def _adopt(self, pid: int, name: str, unprefixed: bool) -> tuple[int, _Pending] | None:
        """The first half of a resumed call printed under another pid, if any.

        On a shared stderr strace omits the pid while one task is traced, so a
        call that started unprefixed resumes as "[pid N]", and the other way
        round once the other tasks have exited. Only a stream that mixes both
        kinds of line is searched this way.
        """
        if not self._mixed:
            return None
        pending = self._pending
        if not unprefixed:
            cand = pending.get(self._default_pid)
            if cand is not None and cand[0] == name:
                del pending[self._default_pid]
                return self._default_pid, cand
            return None
        for key in reversed(list(pending)):
            if pending[key][0] == name:
                return key, pending.pop(key)
        return None

    def _pid_changed(
        self, pid: int, new: int, name: str, text: str, lineno: int, ts: str | None
    ) -> None:
        """-ff: "execve(...) <pid changed to N ...>" in the execve'ing thread's file."""
        if self._counted_elsewhere.get(pid) == new:
            # The leader's file, read earlier, held the resumed half and the
            # call was counted there.
            del self._counted_elsewhere[pid]
            return
        pending = self._pending
        if new in pending:
            self._never_resumed(new)
        pending[new] = (name, text, lineno, ts, True)

    def _complete(
        self,
        pid: int,
        name: str,
        text: str,
        lineno: int,
        ts: str | None,
        split: bool,
        tail: int = 0,
    ) -> bool:
        """Count and select the call in 'ARGS) = RET'; False when the text has no return.

        `tail` > 0: the text is a call line, program output and the line that
        ends the call, joined; the closing parenthesis is in that last line,
        at or after `tail`, whatever the output held.
        """
        duration = None
        if text.endswith(">"):
            if text.endswith(_DETACHED):
                self._unreturned(pid, name, text[: -len(_DETACHED)], lineno, ts, split)
                return True
            dm = _DURATION.search(text)
            if dm is not None:
                duration = float(dm.group(1))
                text = text[: dm.start()]
        close = -1
        ret = ""
        parsed = None
        eq = text.rfind(" = ", tail)
        if eq >= 0:
            k = text.rfind(")", tail, eq)
            if (
                k >= 0
                and (k + 1 == eq or text[k + 1 : eq].isspace())
                # Unpaired parentheses before it: program output spliced into
                # the line ends like a return ("(p) = 1"), or a string holds one.
                and (tail or _parens_pair(text, k))
            ):
                ret = text[eq + 3 :].strip()
                parsed = parse_return(ret)
                if parsed is not None:
                    close = k
        if parsed is None:
            if tail:
                return False
            # A string or decoration containing ' = ' or ')' defeated the
            # quick split: find the call's closing parenthesis by its tokens.
            _, close = scan(text, stop_at_close=True)
            if close >= len(text):
                return False
            after = text[close + 1 :].strip()
            if not after.startswith("="):
                return False
            ret = after[1:].strip()
            parsed = parse_return(ret)
            if parsed is None:
                return False
        retval, errno, returned = parsed
        t = self._count(name)
        t[0] += 1
        stats = self.stats
        if split:
            stats.split_calls += 1
        if returned:
            t[1] += 1
            if errno is not None:
                t[2] += 1
        else:
            stats.unreturned += 1
            by_name = stats.unreturned_by_name
            by_name[name] = by_name.get(name, 0) + 1
        sel = self.select
        names = sel.names
        if names is None or name in names or self._has_needle(text):
            self._out.append(
                Call(pid, name, text[:close], ret, retval, errno, lineno,
                     split=split, ts=ts, duration=duration, returned=returned)
            )  # fmt: skip
        return True

    def _has_needle(self, text: str) -> bool:
        return any(n in text for n in self.select.needles)

    def _count(self, name: str) -> list[int]:
        tally = self.stats.tally
        t = tally.get(name)
        if t is None:
            t = tally[name] = [0, 0, 0]
        return t

    def _unreturned(
        self, pid: int, name: str, args: str, lineno: int, ts: str | None, split: bool
    ) -> None:
        stats = self.stats
        self._count(name)[0] += 1
        if split:
            stats.split_calls += 1
        stats.unreturned += 1
        by_name = stats.unreturned_by_name
        by_name[name] = by_name.get(name, 0) + 1
        names = self.select.names
        if names is None or name in names or self._has_needle(args):
            self._out.append(Call(pid, name, args.rstrip(), None, None, None, lineno,
                                  split=split, ts=ts, returned=False))  # fmt: skip

    def _never_resumed(self, pid: int) -> None:
        name, text, lineno, ts, _moved = self._pending.pop(pid)
        self.stats.never_resumed += 1
        self._unreturned(pid, name, text, lineno, ts, True)

    def _status_line(self, pid: int, text: str, lineno: int) -> None:
        if text.startswith("+++"):
            m = _EXITED.match(text)
            if m is not None:
                self._task_gone(pid)
                self._out.append(ProcessExit(pid, int(m.group(1)), None, False, lineno))
                return
            m = _KILLED.match(text)
            if m is not None:
                self._task_gone(pid)
                self._out.append(ProcessExit(pid, None, m.group(1), m.group(2) is not None,
                                             lineno))  # fmt: skip
                return
            m = _SUPERSEDED.match(text)
            if m is not None:
                self._superseded_by(pid, int(m.group(1)))
                return
        else:
            m = _SIGNAL.match(text)
            if m is not None:
                if not text.startswith("--- stopped by "):
                    # "stopped by SIGSTOP" follows the SIGSTOP's own delivery line.
                    self._out.append(SignalDelivery(pid, m.group(1), lineno))
                return
        self._damage(lineno, text, "unrecognised status line")

    def _superseded_by(self, leader: int, thread: int) -> None:
        """A non-leader thread ran execve; it continues under the leader's pid.

        The thread's execve resumes as "<... execve resumed>" under the
        leader; whatever the leader itself had in flight never returns.
        """
        pending = self._pending
        own = pending.get(leader)
        if own is not None and not own[4]:
            self._never_resumed(leader)
        self._live.pop(thread, None)
        moved = pending.pop(thread, None)
        if moved is not None:
            pending[leader] = moved
        elif leader not in pending:
            self._superseded[leader] = thread

    def _task_gone(self, pid: int) -> None:
        if pid in self._pending:
            self._never_resumed(pid)
        self._live.pop(pid, None)
        self._superseded.pop(pid, None)

    def _unmatched(self, line: str, lineno: int) -> None:
        incomplete = self._incomplete
        if incomplete is not None:
            self._continue_incomplete(incomplete, line)
            return
        stripped = line.strip()
        if self._summary_header(stripped):
            self._in_summary = [line]
            return
        if (
            _STACK_FRAME.match(line)
            or _HEX_DUMP.match(line)
            or _STRACE_LINE.match(line)
            or stripped.startswith("????")
            or _PERSONALITY.match(stripped)
        ):
            return
        self._damage(lineno, line, "not a strace line")

    def _continue_incomplete(
        self, incomplete: tuple[int, str, str, int, str | None, str], line: str
    ) -> None:
        """A line that is not strace's own, after a call line without a return.

        It is program output or the rest of the call line: " <unfinished ...>"
        after a strace message, or ") = 129" after the program's output.
        """
        pid, name, text, start, ts, _ = incomplete
        stripped = line.strip()
        if stripped in ("<unfinished ...>", "<detached ...>"):
            self._incomplete = None
            self._call_line(pid, name, text + " " + stripped, start, ts, line)
            return
        if self._glued:
            # strace's own message ended the line; this is the call's rest.
            self._glued = False
            joined = text + line
            tail = len(text)
        else:
            self.stats.program_output_lines += 1
            joined = text + "\n" + line
            tail = len(text) + 1
        self._spliced += 1
        if " = " in line and self._complete(pid, name, joined, start, ts, False, tail):
            self._incomplete = None
            return
        if self._spliced > MAX_SPLICED_LINES:
            self._drop_incomplete()

    def _drop_incomplete(self) -> None:
        assert self._incomplete is not None
        _pid, _name, _text, start, _ts, line = self._incomplete
        self._incomplete = None
        self._damage(start, line, "call line without a return value")

    def _damage(self, lineno: int, text: str, why: str) -> None:
        stats = self.stats
        stats.damaged += 1
        self._last_damaged = lineno
        if len(stats.damaged_samples) < MAX_DAMAGED_SAMPLES:
            shown = text if len(text) <= 300 else text[:300] + "..."
            source = self.source if stats.files > 1 else None
            stats.damaged_samples.append(DamagedLine(lineno, shown, why, source))

    # -- the -c / -C summary table ------------------------------------------------

    @staticmethod
    def _summary_header(stripped: str) -> bool:
        words = stripped.split()
        return "calls" in words and "syscall" in words and _SUMMARY_COLUMNS.issuperset(words)

    def _summary_line(self, line: str) -> bool:
        """Take one line of a summary table; False when the table has ended before it."""
        assert self._in_summary is not None
        if not _SUMMARY_ROW.match(line):
            self._end_summary()
            return False
        self._in_summary.append(line)
        if line.split()[-1] == "total":
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


def decoded_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines in a stream of byte chunks, as a text file with newline="\n" reads them."""
    rest = b""
    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            rest += chunk
            continue
        text = (rest + chunk[: cut + 1]).decode("utf-8", "surrogateescape")
        rest = chunk[cut + 1 :]
        lines = text.split("\n")
        lines.pop()
        for line in lines:
            yield line + "\n"
    if rest:
        yield rest.decode("utf-8", "surrogateescape")


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
