"""Property tests: printed calls parse back to the same calls; nothing makes the parser raise.

Calls are generated with strace's argument shapes (strings with escapes,
commas, parentheses and " = ", -y decorations, structs, arrays, comments),
every kind of return, printed in every prefix and timestamp style, and split
at argument boundaries into <unfinished ...> / <... resumed> halves whose
lines interleave across pids the way strace prints them. Example budgets are
fixed so the suite's time stays bounded.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_gate.errors import MeasureError
from ci_gate.trace import source
from ci_gate.trace.args import split_args
from ci_gate.trace.events import Call
from ci_gate.trace.parser import Selection, TraceParser

CORPUS = Path(__file__).parent / "corpus"
BUDGET = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- what a call looks like -------------------------------------------------------------

NAMES = [
    "read",
    "write",
    "openat",
    "newfstatat",
    "futex",
    "io_uring_enter",
    "clone3",
    "restart_syscall",
    "syscall_0x1f4",
    "epoll_wait",
    "rt_sigreturn",
    "exit_group",
]
_PATH_CHARS = "abc /,()=._-'" + "é"


def _escape_path(p: str) -> str:
    # How strace prints a path inside a -y decoration: quotes and backslashes
    # escaped, < and > as octal.
    return p.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\74").replace(">", "\\76")


strings = st.builds(
    lambda body, trunc: '"' + body + '"' + ("..." if trunc else ""),
    st.lists(
        st.sampled_from(
            [
                "a",
                " ",
                ",",
                "(",
                ")",
                " = ",
                ") = 1",
                "\\n",
                '\\"',
                "\\\\",
                "\\x41",
                "\\0",
                "<",
                ">",
                "[",
                "{",
                "}",
                "...",
                "/* */",
                " <unfinished ...>",
                "é",
            ]
        ),
        max_size=8,
    ).map("".join),
    st.booleans(),
)
decorated_fds = st.builds(
    lambda fd, path: f"{fd}<{path}>",
    st.integers(0, 1023),
    st.one_of(
        st.text(_PATH_CHARS + '<>"\\', min_size=1, max_size=12).map(
            lambda s: "/" + _escape_path(s)
        ),
        st.sampled_from(
            [
                "socket:[59935]",
                "pipe:[63273]",
                "anon_inode:[io_uring]",
                "TCP:[127.0.0.1:22->10.0.0.1:5000]",
                "/dev/null<char 1:3>",
            ]
        ),
    ),
)
atoms = st.one_of(
    st.integers(-1, 2**31).map(str),
    st.integers(0, 2**47).map(hex),
    st.sampled_from(
        [
            "NULL",
            "AT_FDCWD",
            "O_RDONLY|O_CLOEXEC",
            "-100 /* AT_FDCWD */",
            "AT_FDCWD</tmp/a b>",
            "IORING_ENTER_GETEVENTS",
            "~[]",
            "8192*1024",
            "<... resuming interrupted read ...>",
        ]
    ),
    strings,
    decorated_fds,
)
args_lists = st.lists(
    st.one_of(
        atoms,
        st.lists(atoms, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(["st_mode", "fd", "events"]), atoms), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}={v}" for k, v in kv) + "}"
        ),
    ),
    max_size=5,
)


@dataclass
class Outcome:
    text: str  # after "= "
    retval: int | None
    errno: str | None
    returned: bool
    timed: bool  # strace prints -T's duration after it


outcomes = st.one_of(
    st.integers(0, 2**31).map(lambda v: Outcome(str(v), v, None, True, True)),
    st.integers(0, 2**47).map(lambda v: Outcome(hex(v), v, None, True, True)),
    st.builds(
        lambda fd, p: Outcome(f"{fd}<{_escape_path(p)}>", fd, None, True, True),
        st.integers(0, 99),
        st.text(_PATH_CHARS, max_size=8).map(lambda s: "/" + s),
    ),
    st.sampled_from(
        [
            Outcome("-1 ENOENT (No such file or directory)", -1, "ENOENT", True, True),
            Outcome("-1 EAGAIN (Resource temporarily unavailable)", -1, "EAGAIN", True, True),
            Outcome("-1 EPERM (Operation not permitted) (INJECTED)", -1, "EPERM", True, True),
            Outcome("0 (Timeout)", 0, None, True, True),
            Outcome("1 ([{fd=3, revents=POLLIN}])", 1, None, True, True),
            Outcome("0x2 (flags O_RDWR)", 2, None, True, True),
            Outcome(
                "? ERESTARTSYS (To be restarted if SA_RESTART is set)",
                None,
                "ERESTARTSYS",
                True,
                True,
            ),
            Outcome("? <unavailable>", None, None, True, False),
            Outcome("?", None, None, False, False),
        ]
    ),
)


@dataclass
class GenCall:
    pid: int
    name: str
    args: list[str]
    outcome: Outcome | None  # None: never resumes (the trace ends first)
    cut: int | None  # split after this many arguments; None: one line
    ts: str = ""
    duration: str = ""


@st.composite
def traces(draw: Any) -> tuple[str, list[GenCall], str, bool]:
    """A trace's text, its calls, the prefix style, and whether -T durations are printed."""
    pids = draw(st.lists(st.integers(1, 4194303), min_size=1, max_size=3, unique=True))
    styles = ["file", "stderr", "none"] if len(pids) == 1 else ["file", "stderr"]
    style = draw(st.sampled_from(styles))
    ts_style = draw(st.sampled_from(["", "t", "tt", "ttt", "ns", "unix", "r", "t-r", "rel-s"]))
    if style == "none" and ts_style == "rel-s":
        ts_style = "r"
    with_n = draw(st.booleans())
    with_i = draw(st.booleans())
    timed = draw(st.booleans())
    per_pid: dict[int, list[GenCall]] = {}
    for pid in pids:
        calls = []
        for _ in range(draw(st.integers(0, 6))):
            args = draw(args_lists)
            cut = draw(st.one_of(st.none(), st.integers(0, len(args))))
            calls.append(GenCall(pid, draw(st.sampled_from(NAMES)), args, draw(outcomes), cut))
        if calls and calls[-1].cut is not None and draw(st.booleans()):
            calls[-1].outcome = None  # left unfinished when the trace ends
        per_pid[pid] = calls
    # Each call is one line, or two (first half, resumed half); the lines of
    # different pids interleave, each pid's in order.
    queues = {
        pid: [
            (c, half)
            for c in calls
            for half in ((0, 1) if c.cut is not None else (2,))
            if not (c.outcome is None and half == 1)
        ]
        for pid, calls in per_pid.items()
    }
    rng = random.Random(draw(st.integers(0, 2**32)))
    clock = 0
    lines: list[str] = []
    while any(queues.values()):
        pid = rng.choice([p for p, q in queues.items() if q])
        call, half = queues[pid].pop(0)
        clock += rng.randrange(1, 3_000_000)
        prefix = _prefix(pid, style, ts_style, with_n, with_i, clock, call)
        lines.append(prefix + _body(call, half, timed))
    text = "".join(line + "\n" for line in lines)
    return text, [c for cs in per_pid.values() for c in cs], style, timed


def _prefix(
    pid: int, style: str, ts_style: str, with_n: bool, with_i: bool, clock: int, call: GenCall
) -> str:
    sec, usec = divmod(clock, 1_000_000)
    hms = f"{(sec // 3600) % 24:02d}:{(sec // 60) % 60:02d}:{sec % 60:02d}"
    ts, shown = {
        "": ("", ""),
        "t": (hms, hms),
        "tt": (f"{hms}.{usec:06d}", f"{hms}.{usec:06d}"),
        "ttt": (f"{1796316822 + sec}.{usec:06d}", f"{1796316822 + sec}.{usec:06d}"),
        "ns": (f"{hms}.{usec:06d}123", f"{hms}.{usec:06d}123"),
        "unix": (f"{1796316822 + sec}", f"{1796316822 + sec}"),
        "r": (f"{sec:6d}.{usec:06d}", f"{sec}.{usec:06d}"),
        "t-r": (f"{hms} (+ {sec:6d}.{usec:06d})", hms),
        "rel-s": (f"{sec:6d}", f"{sec}"),
    }[ts_style]
    if not call.ts:
        call.ts = shown
    out = {"file": f"{pid:<5} ", "stderr": f"[pid {pid:5d}] ", "none": ""}[style]
    if ts:
        out += ts + " "
    if with_n:
        out += "[ 257] "
    if with_i:
        out += "[00007f0a1b2c3d4e] "
    return out


def _body(call: GenCall, half: int, timed: bool) -> str:
    text = ", ".join(call.args)
    if half in (0, 1):
        assert call.cut is not None
        head = ", ".join(call.args[: call.cut]) + (", " if 0 < call.cut < len(call.args) else "")
        if half == 0:
            return f"{call.name}({head} <unfinished ...>"
        body = f"<... {call.name} resumed>{text[len(head) :]}"
    else:
        body = f"{call.name}({text}"
    assert call.outcome is not None
    out = f"{body}) = {call.outcome.text}"
    if timed and call.outcome.timed:
        call.duration = "0.000123"
        out += " <0.000123>"
    return out


def _expected_args(call: GenCall) -> str:
    if call.outcome is None:
        assert call.cut is not None
        head = ", ".join(call.args[: call.cut]) + (", " if 0 < call.cut < len(call.args) else "")
        return head.rstrip()
    return ", ".join(call.args)


def _parse(
    text: str, select: Selection | None = None, default_pid: int = 0
) -> tuple[list[Call], Any]:
    parser = TraceParser(select=select)
    events = list(parser.parse(text.splitlines(keepends=True), default_pid=default_pid))
    events += list(parser.finish())
    return [e for e in events if type(e) is Call], parser.stats


@BUDGET
@given(traces())
def test_printed_calls_parse_back(generated: tuple[str, list[GenCall], str, bool]) -> None:
    text, calls, style, _ = generated
    got, stats = _parse(text)
    assert stats.damaged == 0, (stats.damaged_samples, text)
    assert stats.orphan_resumed == 0 and stats.program_output_lines == 0
    want = Counter(
        (
            0 if style == "none" else c.pid,
            c.name,
            _expected_args(c),
            c.outcome.retval if c.outcome else None,
            c.outcome.errno if c.outcome else None,
            c.outcome.returned if c.outcome else False,
            c.ts or None,
        )
        for c in calls
    )
    have = Counter((c.pid, c.name, c.args, c.retval, c.errno, c.returned, c.ts) for c in got)
    assert have == want, text
    assert stats.calls == len(calls)
    assert stats.never_resumed == sum(1 for c in calls if c.outcome is None)
    assert stats.split_calls == sum(1 for c in calls if c.cut is not None)


@BUDGET
@given(traces(), st.sampled_from([(), ("openat", "futex"), ("read", "write", "exit_group")]))
def test_counting_without_events_agrees(
    generated: tuple[str, list[GenCall], str, bool], names: tuple[str, ...]
) -> None:
    """The fast path (calls nobody selected are only counted) gives the same numbers."""
    text, _, _, _ = generated
    full_calls, full = _parse(text)
    sel_calls, sel = _parse(text, Selection(names))
    assert sel.tally == full.tally
    assert sel.unreturned_by_name == full.unreturned_by_name
    assert (sel.split_calls, sel.never_resumed, sel.damaged) == (
        full.split_calls,
        full.never_resumed,
        full.damaged,
    )
    assert [(c.lineno, c.name, c.args, c.ret) for c in sel_calls] == [
        (c.lineno, c.name, c.args, c.ret) for c in full_calls if c.name in names
    ]


@BUDGET
@given(args_lists)
def test_arguments_split_back(args: list[str]) -> None:
    assert split_args(", ".join(args)) == args


# -- fuzzing: nothing raises ----------------------------------------------------------------

_REAL_LINES = [
    line
    for path in sorted(CORPUS.rglob("*.log"))
    for line in path.read_text(errors="surrogateescape").splitlines(keepends=True)[:40]
]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.text(max_size=120), max_size=30))
def test_arbitrary_lines_never_raise(lines: list[str]) -> None:
    for select in (None, Selection(())):
        parser = TraceParser(select=select)
        list(parser.parse(lines))
        list(parser.finish())
        assert parser.stats.damaged >= 0


# Pieces of strace's grammar, to splice into real lines where they do not belong.
_JUNK = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["(", ")", " = ", " <unfinished ...>", "<... read resumed>", '"', "\\",
                     "[pid 12] ", "12 ", "+++ ", "--- ", "strace: Process 1 attached", "\n",
                     " <detached ...>", " <pid changed to 5 ...>", "+++ superseded by execve in "
                     "pid 7 +++", "% time     seconds  usecs/call     calls    errors syscall\n",
                     "?", "-1 E", "0x", "...>", "01", " <0.1>"]),
)  # fmt: skip


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_REAL_LINES),
            st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20), _JUNK), max_size=3),
        ),
        max_size=40,
    )
)
def test_damaged_real_lines_never_raise(
    edits: list[tuple[str, list[tuple[int, int, str]]]],
) -> None:
    """Real strace lines with slices cut out and junk put in their place.

    Nothing raises, and counting alone (the fast path) agrees with the full parse.
    """
    lines = []
    for line, cuts in edits:
        for at, cut, junk in cuts:
            line = line[:at] + junk + line[at + cut :]
        lines.append(line)
    # As a file gives them: junk may have brought new line ends.
    lines = "".join(lines).splitlines(keepends=True)
    stats = []
    for select in (None, Selection(()), Selection(("read", "openat"), ("/tmp",))):
        parser = TraceParser(select=select)
        events = list(parser.parse(lines)) + list(parser.finish())
        st_ = parser.stats
        assert len([e for e in events if type(e) is Call]) <= st_.calls
        assert sum(t[1] for t in st_.tally.values()) <= st_.calls
        stats.append(st_)
    for other in stats[1:]:
        assert other.tally == stats[0].tally
        assert (other.damaged, other.split_calls, other.unreturned) == (
            stats[0].damaged,
            stats[0].split_calls,
            stats[0].unreturned,
        )


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "trace.txt"
    path.write_bytes(data)
    parser = TraceParser()
    try:
        list(source.events(source.resolve(str(path)), parser))
    except MeasureError as exc:
        # The one way out: input with no call in it is refused, by name.
        assert exc.code in ("not-strace", "summary-only")
        assert parser.stats.calls == 0
