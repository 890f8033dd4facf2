"""The C line filter (ci_gate/trace/_scan.c) proven equal to the pure-Python parser.

Both paths read the same bytes and must end in the same events, the same ParseStats (the
order in which names first appear included) and the same Measurement, field by field and
key by key in the same order. Inputs: every corpus file, generated traces (every prefix and
timestamp style, calls split across pids), path-taking calls in many argument and return
shapes with io_uring rings whose fds the filter must leave to Python, damaged real lines and
arbitrary bytes, each cut into chunks at random points.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trace_properties import _JUNK, _REAL_LINES, traces

from ci_gate.errors import MeasureError
from ci_gate.metrics.collector import Collector, Unexpected
from ci_gate.metrics.scope import Scope
from ci_gate.trace import parser as parser_mod
from ci_gate.trace import source
from ci_gate.trace.events import Call
from ci_gate.trace.parser import Selection, TraceParser
from helpers import REPO, speedups

CORPUS = Path(__file__).parent / "corpus"
C_FILTER = parser_mod._speedups
BUDGET = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_c_filter_is_built() -> None:
    """The machine that runs the suite has a compiler and Python's headers: the filter is
    there (a missing build would make every comparison below compare Python with itself)."""
    assert C_FILTER is not None, "ci_gate.trace._scan is not built (pip install -e . again)"


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def event_repr(ev: object) -> tuple[Any, ...]:
    if type(ev) is Call:
        return ("call", ev.pid, ev.name, ev.args, ev.ret, ev.retval, ev.errno, ev.lineno,
                ev.split, ev.ts, ev.duration, ev.returned)  # fmt: skip
    assert dataclasses.is_dataclass(ev)
    return (type(ev).__name__, *dataclasses.astuple(ev))  # type: ignore[arg-type]


def stats_repr(stats: object) -> str:
    # json keeps the dicts' order: names must first appear in the same order too.
    return json.dumps(dataclasses.asdict(stats), default=repr)  # type: ignore[call-overload]


def parse_both(
    data: bytes, select: Callable[[], Selection | None], cuts: list[int]
) -> tuple[Any, Any]:
    out = []
    for on in (True, False):
        parser = TraceParser(select=select())
        with speedups(on):
            events = list(parser.parse_chunks(chunked(data, cuts)))
            events += list(parser.finish())
        out.append(([event_repr(e) for e in events], stats_repr(parser.stats)))
    return out[0], out[1]


def measurement_repr(m: object) -> str:
    return json.dumps(dataclasses.asdict(m), default=repr)  # type: ignore[call-overload]


def measure_both(
    data: bytes,
    cuts: list[int],
    scope: Scope | None = None,
    unexpected: Unexpected | None = None,
) -> tuple[str, str, int, int]:
    """The collector's measurement with the filter and without; and how many events each saw."""
    out: list[str] = []
    seen: list[int] = []
    for on in (True, False):
        collector = Collector(scope, unexpected=unexpected or Unexpected(), cwd="/w")
        parser = TraceParser(select=collector.selection())
        n = 0

        def counted(events: Iterator[Any]) -> Iterator[Any]:
            nonlocal n
            for ev in events:
                n += 1
                yield ev

        with speedups(on):
            collector.consume(counted(parser.parse_chunks(chunked(data, cuts))))
            collector.consume(counted(parser.finish()))
        out.append(measurement_repr(collector.result(parser.stats)))
        seen.append(n)
    return out[0], out[1], seen[0], seen[1]


SELECTIONS: list[Callable[[], Selection | None]] = [
    lambda: Selection(()),
    lambda: Selection(("openat", "read", "close", "io_uring_enter")),
    lambda: Selection(("newfstatat", "futex", "write"), ("/tmp", "a b", "é")),
    lambda: Selection((), ("",)),
    lambda: None,
]

# -- the corpus -----------------------------------------------------------------------------


def _corpus_traces() -> list[Path]:
    found = []
    for p in sorted(CORPUS.rglob("*")):
        if p.suffix in (".yml", ".md", ".c") or "programs" in p.parts:
            continue
        if (p.is_dir() and any(p.glob("*.[0-9]*"))) or (p.is_file() and not p.name[-1].isdigit()):
            found.append(p)
    return found


def _events_via_source(spec: Path, select: Selection | None, on: bool) -> tuple[Any, ...]:
    parser = TraceParser(select=select)
    error = None
    with speedups(on):
        try:
            events = [event_repr(e) for e in source.events(source.resolve(str(spec)), parser)]
        except MeasureError as exc:
            events, error = [], exc.code
    return events, stats_repr(parser.stats), error


@pytest.mark.parametrize("trace", _corpus_traces(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_reads_the_same_both_ways(trace: Path) -> None:
    for select in SELECTIONS:
        assert _events_via_source(trace, select(), True) == _events_via_source(
            trace, select(), False
        )
    data = b"".join(p.path.read_bytes() for p in source.resolve(str(trace)) if p.path)
    if trace.is_file():
        with_c, without, _, _ = measure_both(data, [])
        assert with_c == without
        scope = Scope({"src": "/tmp", "dst": "/home"}, None)
        with_c, without, _, _ = measure_both(data, [], scope)
        assert with_c == without


@pytest.mark.parametrize(
    ("prefix", "duration"),
    [("7 ", ""), ("7 ", " <0.000012>"), ("7 12:00:01.123456 ", ""), ("7 1700000000.123 ", " <1>"),
     ("7      0.000012 ", ""), ("", "")],
)  # fmt: skip
def test_the_filter_takes_the_path_calls(prefix: str, duration: str) -> None:
    """Without scenario roots, path calls are classified in C, not handed over as events
    (in the output forms of -f -o FILE, -T, -tt, -ttt, -r, and -ff files)."""
    lines = [f'{prefix}openat(AT_FDCWD</w>, "/d/f{i}", O_RDONLY) = 3</d/f{i}>{duration}\n'
             for i in range(200)]  # fmt: skip
    lines += [f'{prefix}newfstatat(3</d/f{i}>, "", {{st_mode=S_IFREG}}, AT_EMPTY_PATH) = 0\n'
              for i in range(200)]  # fmt: skip
    lines += [f"{prefix}close(3</d/f0>)                = 0\n"] * 50
    # A timestamp is known once the general path has read one line with it.
    lines.insert(0, f"{prefix}--- SIGCHLD {{si_signo=SIGCHLD}} ---\n")
    data = "".join(lines).encode()
    with_c, without, seen_c, seen_py = measure_both(data, [])
    assert with_c == without
    # The signal, and the first open (it tells whether fds are decorated).
    assert seen_py == 401 and seen_c == 2
    values = json.loads(with_c)["values"]
    assert values["openat.path_based"] == 200 and values["newfstatat.fd_based"] == 200


def test_ring_fds_are_left_to_python() -> None:
    """Once a ring exists, an open returning its fd number or a close of it is an event."""
    lines = [
        "9 io_uring_setup(8, {flags=0, sq_thread_cpu=0}) = 3<anon_inode:[io_uring]>\n",
        '9 openat(AT_FDCWD, "/a", O_RDONLY) = 4</a>\n',
        "9 close(3<anon_inode:[io_uring]>) = 0\n",
        '9 openat(AT_FDCWD, "/b", O_RDONLY) = 3</b>\n',
        "9 io_uring_enter(3</b>, 1, 0, 0, NULL, 8) = 1\n",
        "9 close(4</a>) = 0\n",
        # A second ring whose close the trace does not show: the open returning its fd
        # number is what tells the collector the ring is gone.
        "9 io_uring_setup(8, {flags=0, sq_thread_cpu=0}) = 5<anon_inode:[io_uring]>\n",
        '9 openat(AT_FDCWD, "/c", O_RDONLY) = 5</c>\n',
        "9 io_uring_enter(5</c>, 1, 0, 0, NULL, 8) = 1\n",
    ]
    data = "".join(lines).encode()
    with_c, without, seen_c, seen_py = measure_both(data, [])
    assert with_c == without
    # Python sees: the setups, the first open, the ring's close, the enters, the open of
    # fd 5; the second open's fd 3 is free again (the ring's close was an event), and
    # close(4) is not a ring's.
    assert (seen_c, seen_py) == (7, 9)
    got = json.loads(with_c)
    assert got["values"]["io_uring.enter.calls"] == 2
    assert got["details"]["io_uring"]["unknown_ring_submitting"] == 2  # /b and /c, no ring


def test_unprefixed_lines_of_a_mixed_stream_are_left_to_python() -> None:
    """On a shared stderr an unprefixed line belongs to the one task left (parser's
    _unprefixed_pid), which the filter does not track: such opens go to Python, whose
    closing of the ring's fd number changes what io_uring_enter finds."""
    lines = [
        "[pid 10] io_uring_setup(8, {flags=0}) = 3<anon_inode:[io_uring]>\n",
        'openat(AT_FDCWD, "/a", O_RDONLY) = 4</a>\n',
        'openat(AT_FDCWD, "/b", O_RDONLY) = 3</b>\n',
        "io_uring_enter(3</b>, 1, 0, 0, NULL, 8) = 1\n",
    ]
    with_c, without, _, _ = measure_both("".join(lines).encode(), [])
    assert with_c == without
    assert json.loads(with_c)["details"]["io_uring"]["unknown_ring_submitting"] == 1


def test_many_names_of_one_length() -> None:
    """Names the filter's small name cache must tell apart (same length, same slot)."""
    names = [a + b + c for a in "abcdefgh" for b in "ijklmnop" for c in "qrstuvwx"]
    data = "".join(f"1 {n}(3) = 0\n" for n in names * 2).encode()
    for select in SELECTIONS[:2]:
        a, b = parse_both(data, select, [])
        assert a == b
    assert len(json.loads(a[1])["tally"]) == len(names)


# -- generated traces ------------------------------------------------------------------------

cut_points = st.lists(st.integers(0, 10**6), max_size=6)


@BUDGET
@given(traces(), cut_points, st.integers(0, len(SELECTIONS) - 1))
def test_generated_traces_read_the_same_both_ways(
    generated: tuple[str, Any, str, bool], cuts: list[int], which: int
) -> None:
    data = generated[0].encode("utf-8", "surrogateescape")
    with_c, without = parse_both(data, SELECTIONS[which], cuts)
    assert with_c == without


# Path calls in the argument and return shapes strace prints, and some it does not, by
# tasks that also set up io_uring rings, clone, close and dup (the fd tables the filter must
# consult), in every prefix style, split or whole. Most lines are well formed (so that they
# reach the classification); the odd pieces come in at a lower rate.
_DIRFDS = ["AT_FDCWD", "AT_FDCWD</w d>", "-100", "3", "3</d>", "4</d/e>", "12</d é>",
           "5<anon_inode:[io_uring]>", "3<\\x2f\\x64>",
           "AT_FDCWD<\\x2f\\x77\\x20\\x64>"]  # fmt: skip
_ODD_DIRFDS = ["-100 /* AT_FDCWD */", "7</a\\74b>", "AT_FDCWD<", "AT_FDCWDX", '"x"', "3 ", "\t3",
               "0x3", "3</p<q>>", "3</p<q>", "\tAT_FDCWD", "\u00a0AT_FDCWD", "3\x1c",
               "AT_FDCWD\u00a0", "-1000", "AT_FDCWD</a>x"]  # fmt: skip
_PATHS = ['"/abs"', '"rel"', '""', "NULL", '"a, b"', '"é/x"', '"x\\"y"', '"/t"...', '"r"...',
          '"/a) = 3"', '"(x"', '"\\x2f\\x64\\x2f\\x66"', '"\\x72\\x65\\x6c"']  # fmt: skip
_ODD_PATHS = ["0x7ffd", '"/u" "v"', '"/x\\\\"', '"', "[/x]", '"\\x2f"', "/abs", '"a\x01"',
              '"\\"/x"', 'NULL"', '"/a"é', '\t"/abs"', '\u00a0"/abs"', '\u2003""', ' "/abs"',
              '"/abs"\t', '"/abs"\x0b', "NULLX", '""x', '"/"', "(NULL)"]  # fmt: skip
_REST = ["O_RDONLY|O_CLOEXEC", "AT_EMPTY_PATH", "0", "{st_mode=S_IFREG|0644, st_size=3, ...}",
         "AT_STATX_SYNC_AS_STAT", "STATX_ALL", "0666", "[1, 2]"]  # fmt: skip
_ODD_REST = ["0x100 /* AT_SYMLINK_NOFOLLOW */", "O_RDONLY /* 0 */", "a b", "é", "\tO_RDONLY",
             "O_RDONLY)", "(x", "{", "]"]  # fmt: skip
_RETURNS = ["3</d/f>", "3", "4", "5</x>", "-1 ENOENT (No such file or directory)", "0", "0x1f",
            "3<\\x2f\\x64\\x2f\\x66>",
            "0 <0.000012>", "3</x> <0.01>", "7 (x)", "3<anon_inode:[io_uring]>",
            "0x1 (flags O_RDWR)", "-1 EAGAIN (Resource temporarily unavailable) <0.1>"]  # fmt: skip
_ODD_RETURNS = ["3</x> <5.>", "?", "03", "-1 EAGAIN (x) (INJECTED)", "-1 E (x)",
                "? ERESTARTSYS (To be restarted)", "? <unavailable>", "-3",
                "12345678901234567890", "0x12345678901234567890", "5 ENOENT (x)", "3</x>\r",
                "3 <unavailable>", "1 <0.5>", "3 <é>", "٣", "3\t(x)",
                "-1 EBADF (Bad file (descriptor))", "0y1f", "0X1F", "0x", "0xg", "0b1", "-0x1",
                "1 ", " 1", "-", "-1 ENOENT", "-1 ENOENT (", "-1 enoent (x)", "-1 E_1 (x)",
                "-1  ENOENT  (x)", "1 (", "(x)", "3</x> <0.1> <0.2>", "3 <0.1", "<1>",
                "3</a <b>\t<5>", "3<>", "3</x>>", "7<", "1 <0..1>", "1 <.5>"]  # fmt: skip
_NAMES = ["openat", "openat", "newfstatat", "statx", "unlinkat", "renameat2", "linkat",
          "symlinkat", "readlinkat", "utimensat", "fgetxattr", "getxattr", "open", "stat",
          "access", "rename", "mkdir", "close", "close", "io_uring_setup", "io_uring_enter",
          "dup2", "clone", "fcntl", "read", "exit_group", "creat"]  # fmt: skip


@st.composite
def path_call_traces(draw: Any) -> str:
    rng = random.Random(draw(st.integers(0, 2**32)))
    odd = rng.choice([0.0, 0.05, 0.3])

    def pick(common: list[str], unusual: list[str]) -> str:
        return rng.choice(unusual if rng.random() < odd else common)

    pids = [rng.randrange(1, 99999) for _ in range(rng.randrange(1, 4))]
    style = rng.choice(["file", "file", "stderr", "none", "mixed"])
    stamps = ["", "", "10:20:30 ", "1700000000.123456 ", "     0.000123 ", "10:20:30.5 ",
              "1700000000. ", "10:2 ", "12:34:56:78 ", "1.2.3 ", "123 ", "12345678 ", "0 ",
              "10:20:30  ", "10:20:3x ", "(+ 0.000012) ", "[ 257] ", "[00007f0a1b2c3d4e] ",
              "<comm> "]  # fmt: skip
    ts = rng.choice(stamps)
    pending: dict[int, str] = {}
    lines = []
    for _ in range(rng.randrange(1, 40)):
        pid = rng.choice(pids)
        if style == "file":
            prefix = f"{pid:<5} "
        elif style == "stderr":
            prefix = f"[pid {pid:5d}] "
        elif style == "none":
            prefix = ""
        else:
            prefix = rng.choice([f"{pid} ", f"[pid {pid}] ", ""])
        prefix += ts if rng.random() >= odd else rng.choice(stamps)
        name = pending.pop(pid, None)
        if name is not None and rng.random() < 0.8:
            if rng.random() < 0.1:
                name = rng.choice(_NAMES)  # another call's resumed half
            rest = ", ".join(pick(_REST, _ODD_REST) for _ in range(rng.randrange(0, 3)))
            lines.append(f"{prefix}<... {name} resumed>{rest}) = {pick(_RETURNS, _ODD_RETURNS)}")
            continue
        name = rng.choice(_NAMES)
        args = [pick(_DIRFDS, _ODD_DIRFDS), pick(_PATHS, _ODD_PATHS)]
        if name in ("renameat2", "linkat", "symlinkat", "rename"):
            args += [pick(_DIRFDS, _ODD_DIRFDS), pick(_PATHS, _ODD_PATHS)]
        if name in ("open", "stat", "access", "mkdir", "creat", "getxattr"):
            args = args[1:]
        args += [pick(_REST, _ODD_REST) for _ in range(rng.randrange(0, 3))]
        if name == "io_uring_setup":
            args = ["8", rng.choice(["{flags=0}", "{flags=IORING_SETUP_SQPOLL, sq_thread_cpu=0}"])]
        if rng.random() < odd:
            rng.shuffle(args)
        if rng.random() < odd:
            args = args[: rng.randrange(0, len(args) + 1)]
        text = ", ".join(args)
        if rng.random() < 0.3:
            cut = rng.randrange(0, len(text) + 1)
            lines.append(f"{prefix}{name}({text[:cut]} <unfinished ...>")
            pending[pid] = name
            if rng.random() < odd:
                lines.append(rng.choice(_REAL_LINES).rstrip("\n"))
            continue
        lines.append(f"{prefix}{name}({text}) = {pick(_RETURNS, _ODD_RETURNS)}")
    if rng.random() < 0.1:
        lines.append(f"{pids[0]} +++ exited with 0 +++")
    ends = ["\n"] if rng.random() >= odd else ["\n", "\n", "\r\n"]
    return "".join(line + rng.choice(ends) for line in lines)


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(path_call_traces(), cut_points, st.booleans())
def test_path_calls_measure_the_same_both_ways(text: str, cuts: list[int], rooted: bool) -> None:
    data = text.encode("utf-8", "surrogateescape")
    scope = Scope({"src": "/d", "dst": "/w d"}, None) if rooted else None
    with_c, without, _, _ = measure_both(data, cuts, scope)
    assert with_c == without
    for select in SELECTIONS:
        a, b = parse_both(data, select, cuts)
        assert a == b


@BUDGET
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_REAL_LINES),
            st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20), _JUNK), max_size=3),
        ),
        max_size=40,
    ),
    cut_points,
)
def test_damaged_real_lines_read_the_same_both_ways(
    edits: list[tuple[str, list[tuple[int, int, str]]]], cuts: list[int]
) -> None:
    lines = []
    for line, changes in edits:
        for at, cut, junk in changes:
            line = line[:at] + junk + line[at + cut :]
        lines.append(line)
    data = "".join(lines).encode("utf-8", "surrogateescape")
    for select in SELECTIONS:
        a, b = parse_both(data, select, cuts)
        assert a == b
    with_c, without, _, _ = measure_both(data, cuts)
    assert with_c == without


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=3000), cut_points)
def test_arbitrary_bytes_read_the_same_both_ways(data: bytes, cuts: list[int]) -> None:
    for select in SELECTIONS[:3]:
        a, b = parse_both(data, select, cuts)
        assert a == b


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_REAL_LINES), max_size=60), cut_points)
def test_real_lines_shuffled_read_the_same_both_ways(lines: list[str], cuts: list[int]) -> None:
    """Real lines in any order: resumed halves without their first half, halves of another
    name, status lines between them."""
    data = "".join(lines).encode("utf-8", "surrogateescape")
    for select in SELECTIONS[:3]:
        a, b = parse_both(data, select, cuts)
        assert a == b
    with_c, without, _, _ = measure_both(data, cuts)
    assert with_c == without


# -- odd inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n\n\n",
        b'1 read(3, "x", 1) = 1',  # no newline at the end
        b'1 read(3, "x", 1) = 1\r\n',
        b"1 read(" + b"x" * (3 << 20) + b") = 1\n2 close(3) = 0\n",  # a line longer than a read
        b"1 read(" + b"\x00\xff" * 1000,
        b"1 close(3) = 0\n" * 5000,
        '1 openat(AT_FDCWD, "/\u00e9\udcff", O_RDONLY) = 3\n'.encode("utf-8", "surrogateescape"),
        b'1 openat(AT_FDCWD, "\xc3", O_RDONLY <unfinished ...>\n1 <... openat resumed>) = 3\n',
        # Numbers int() refuses, where the collector reads numbers (found by fuzzing).
        b"1 io_uring_setup(8, {flags=0644}) = 3\n1 syscall_0123(1) = 0\n"
        b"1 io_uring_setup(\xc2\xb2, {flags=0x2}) = 4\n1 clone(flags=0123) = 5\n",
    ],
    ids=lambda d: repr(d[:24]),
)
def test_odd_inputs_read_the_same_both_ways(data: bytes) -> None:
    for cuts in ([], [1], [7, 8, 9], list(range(0, 200, 3))):
        for select in SELECTIONS:
            a, b = parse_both(data, select, cuts)
            assert a == b
        with_c, without, _, _ = measure_both(data, cuts)
        assert with_c == without


def test_empty_chunks_anywhere() -> None:
    """A source may yield b"" (an empty first read included): nothing is lost or doubled."""
    data = b'1 close(3) = 0\n1 openat(AT_FDCWD, "/a", O_RDONLY) = 3\n1 read(3, "x", 1) = 1'
    pieces = [b"", data[:5], b"", b"", data[5:40], b"", data[40:], b""]
    for select in SELECTIONS:
        got = []
        for on in (True, False):
            parser = TraceParser(select=select())
            with speedups(on):
                events = list(parser.parse_chunks(iter(pieces)))
                events += list(parser.finish())
            got.append(([event_repr(e) for e in events], stats_repr(parser.stats)))
        assert got[0] == got[1]
        stats = json.loads(got[0][1])
        assert stats["lines"] == 3 and stats["damaged"] == 0
        assert {k: v[0] for k, v in stats["tally"].items()} == {"close": 1, "openat": 1, "read": 1}


def test_lines_hands_over_every_line_when_all_are_wanted() -> None:
    """Selection(None): the filter takes nothing and the lines are decoded as a file's."""
    assert C_FILTER is not None
    data = '1 read(3, "é", 2) = 2\r\nx\udcff\n\nlast'.encode("utf-8", "surrogateescape")
    parser = TraceParser()
    got = list(C_FILTER.Lines(parser, chunked(data, [3, 4, 5, 13])))
    assert got == ['1 read(3, "é", 2) = 2\r\n', "x\udcff\n", "\n", "last"]


def test_lines_refuses_what_is_not_bytes() -> None:
    assert C_FILTER is not None
    with pytest.raises(TypeError):
        list(C_FILTER.Lines(TraceParser(select=Selection(())), ["text"]))


# -- installs without the filter -----------------------------------------------------------


@pytest.mark.parametrize("how", ["env", "missing"])
def test_analyze_without_the_filter_gives_the_same_results(tmp_path: Path, how: str) -> None:
    """SYSCALL_GATE_NO_SPEEDUPS=1, and an install where the module is absent (no compiler):
    the pure-Python path runs and results.json says the same."""
    trace = CORPUS / "real"
    logs = sorted(trace.glob("*.log"))
    assert logs
    target = logs[0]
    code = (
        "import sys\n"
        "{block}"
        "from ci_gate.trace import parser\n"
        "assert (parser.SPEEDUPS is None) == {expect_none}, parser.SPEEDUPS\n"
        "from ci_gate.cli import main\n"
        "sys.exit(main(['analyze', sys.argv[1], '--out', sys.argv[2]]))\n"
    )
    env = dict(os.environ)
    results = {}
    for label, block, extra in (
        ("with", "", {}),
        ("without", "sys.modules['ci_gate.trace._scan'] = None\n" if how == "missing" else "",
         {"SYSCALL_GATE_NO_SPEEDUPS": "1"} if how == "env" else {}),
    ):  # fmt: skip
        out = tmp_path / label
        script = code.format(block=block, expect_none=label == "without")
        proc = subprocess.run(
            [sys.executable, "-c", script, str(target), str(out)],
            env={**env, **extra},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode in (0, 1), proc.stderr
        res = json.loads((out / "results.json").read_text())
        res.pop("generated_at", None)
        res.pop("timing", None)
        results[label] = res
    assert results["with"]["metrics"]
    assert results["with"] == results["without"]
