"""Real programs under the real strace: our counts against strace's own -C table.

Every trace here is recorded by the test with `strace -f -C` (the summary
printed after the calls). For every syscall that returned, the calls and
errors the parser counts must equal the table's (tests/helpers.strace_summary
reads it, independently of ci_gate). strace's table leaves out calls that
never returned (exit_group, a thread killed inside futex) and syscalls it has
no name for (syscall_0x1f4), which the comparison therefore skips.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ci_gate.metrics.collector import Collector
from ci_gate.trace import source
from ci_gate.trace.events import Call
from ci_gate.trace.parser import Selection, TraceParser
from helpers import speedups, strace_summary

PROGRAMS = Path(__file__).parent / "corpus" / "programs"

# Each test runs with the parser's C line filter and without it (conftest.parser_path).
pytestmark = pytest.mark.usefixtures("parser_path")


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus's C programs, built for this machine."""
    out = tmp_path_factory.mktemp("programs")
    for name in ("mt", "killmid", "restart", "thread_exec", "misc"):
        src = PROGRAMS / f"{name}.c"
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(out / name), str(src)], check=True)
    return out


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source tree with nested directories, symlinks and awkward names."""
    root = tmp_path_factory.mktemp("tree") / "src"
    for d in range(4):
        sub = root / f"dir {d}" / "sub,(x) = 1"
        sub.mkdir(parents=True)
        for f in range(12):
            (sub / f"file-{f}.dat").write_bytes(os.urandom(3000 + f))
        (root / f"dir {d}" / 'we "q" <a>.txt').write_text("x\n")
        os.symlink("sub,(x) = 1/file-0.dat", root / f"dir {d}" / "link")
    return root


def record(tmp_path: Path, argv: list[str], *flags: str, cwd: Path | None = None) -> Path:
    trace = tmp_path / "trace.txt"
    proc = subprocess.run(
        ["strace", "-f", "-C", *flags, "-o", str(trace), "--", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return trace


def ours(trace: Path, select: Selection | None) -> tuple[dict[str, tuple[int, int]], object]:
    """name -> (returned, errors) for every named syscall that returned, and the stats."""
    parser = TraceParser(select=select)
    calls = [e for e in source.events(source.resolve(str(trace)), parser) if type(e) is Call]
    if select is None:
        # The events and the counts must tell the same story.
        assert len(calls) == parser.stats.calls
    counts = {
        name: (t[1], t[2])
        for name, t in parser.stats.tally.items()
        if t[1] and not name.startswith("syscall_")
    }
    return counts, parser.stats


def assert_matches_strace(trace: Path) -> None:
    theirs = strace_summary(trace)
    for select in (None, Selection(())):
        counts, stats = ours(trace, select)
        assert counts == theirs
        assert stats.damaged == 0, stats.damaged_samples
    # The collector's own cross-check agrees.
    collector = Collector()
    parser = TraceParser(select=collector.selection())
    collector.consume(source.events(source.resolve(str(trace)), parser))
    m = collector.result(parser.stats)
    assert m.values["trace.summary_mismatches"] == 0, m.details["summary_check"]
    assert m.values["syscalls.total"] == parser.stats.calls
    # The parser's C line filter and its pure-Python path measure the same, key for key.
    assert measured(trace, speedups_on=True) == measured(trace, speedups_on=False)


def measured(trace: Path, *, speedups_on: bool) -> str:
    with speedups(speedups_on):
        collector = Collector()
        parser = TraceParser(select=collector.selection())
        collector.consume(source.events(source.resolve(str(trace)), parser))
        m = collector.result(parser.stats)
    return json.dumps(dataclasses.asdict(m), default=repr)


def test_cp_a(tmp_path: Path, tree: Path) -> None:
    trace = record(tmp_path, ["cp", "-a", str(tree), str(tmp_path / "dst")], "-y")
    assert_matches_strace(trace)


def test_rsync_a(tmp_path: Path, tree: Path) -> None:
    assert shutil.which("rsync"), "rsync is needed: scripts/install-deps.sh --test"
    # rsync forks a receiver and a generator that talk over pipes: split calls.
    trace = record(tmp_path, ["rsync", "-a", f"{tree}/", str(tmp_path / "dst")], "-y", "-s", "4096")
    assert "resumed>" in trace.read_text()
    assert_matches_strace(trace)


def test_fio_io_uring_four_jobs(tmp_path: Path) -> None:
    assert shutil.which("fio"), "fio is needed: scripts/install-deps.sh --test"
    work = tmp_path / "fio"
    work.mkdir()
    argv = [
        "fio",
        "--name=t",
        f"--directory={work}",
        "--ioengine=io_uring",
        "--numjobs=4",
        "--size=1M",
        "--bs=4k",
        "--rw=randrw",
        "--iodepth=8",
        "--group_reporting",
    ]
    trace = record(tmp_path, argv, "-y")
    counts, _ = ours(trace, None)
    assert counts["io_uring_setup"][0] >= 4 and counts["io_uring_enter"][0] > 0
    assert_matches_strace(trace)


def test_threads_splitting_calls(tmp_path: Path, programs: Path) -> None:
    """Four threads ping-pong through pipes, so most blocking calls are split."""
    work = tmp_path / "mt"
    work.mkdir()
    trace = record(tmp_path, [str(programs / "mt"), str(work)])
    text = trace.read_text()
    assert text.count("<unfinished ...>") > 50
    counts, stats = ours(trace, None)
    # By construction (mt.c): 4 threads x 50 rounds of open, a failing open,
    # stat, a pipe write and a pipe read; the failing opens are ENOENT.
    assert stats.tally["openat"][2] >= 200
    assert counts["read"][0] >= 200 and counts["write"][0] >= 400
    assert_matches_strace(trace)


# Flags that change how lines look, on a program with threads, splits, a
# killed child, signals and restarts.
FLAG_SETS = [
    ["-t"],
    ["-tt", "-T"],
    ["-ttt"],
    ["-r"],
    ["-tt", "-r"],
    ["--absolute-timestamps=format:unix,precision:ns", "--syscall-times=ns", "-T"],
    ["--relative-timestamps=s"],
    ["-i", "-n"],
    ["-Y"],
    ["-y"],
    ["-yy"],
    ["-x"],
    ["-xx"],
    ["-X", "raw"],
    ["-X", "verbose"],
    ["-e", "read=all", "-e", "write=all"],
    ["-k"],
    ["-qq"],
    ["-s", "0"],
    ["-tt", "-T", "-y", "-i", "-n", "-Y"],
]


# strace 6.1 -k cannot unwind a thread that calls execve ("walk: cannot
# initialize libunwind"), so that one pair is left out.
MATRIX = [
    pytest.param(prog, flags, id=f"{prog} {' '.join(flags)}")
    for prog in ("mt", "restart", "killmid", "thread_exec")
    for flags in FLAG_SETS
    if not (prog == "thread_exec" and flags == ["-k"])
]


@pytest.mark.parametrize(("prog", "flags"), MATRIX)
def test_flag_matrix(tmp_path: Path, programs: Path, prog: str, flags: list[str]) -> None:
    argv = [str(programs / prog)]
    if prog == "mt":
        (tmp_path / "mt").mkdir()
        argv.append(str(tmp_path / "mt"))
    trace = record(tmp_path, argv, *flags)
    assert_matches_strace(trace)


def test_superseded_execve_counts_once(tmp_path: Path, programs: Path) -> None:
    """thread_exec.c: two execve calls (the program's own and the thread's), each once."""
    trace = record(tmp_path, [str(programs / "thread_exec")])
    assert "superseded by execve" in trace.read_text()
    _, stats = ours(trace, None)
    assert stats.tally["execve"][:2] == [2, 2]
    assert stats.orphan_resumed == 0 and stats.never_resumed == 0
    assert_matches_strace(trace)


def test_ff_files_count_like_one_file(tmp_path: Path, programs: Path) -> None:
    """-ff (no -C allowed with it): the same program gives the same counts as with -f."""
    one = record(tmp_path, [str(programs / "thread_exec")])
    ff = tmp_path / "ff"
    ff.mkdir()
    subprocess.run(
        ["strace", "-ff", "-o", str(ff / "trace"), str(programs / "thread_exec")],
        check=True,
        capture_output=True,
    )
    assert len(list(ff.iterdir())) == 2
    for spec in (str(ff), str(ff / "trace")):  # the directory, or the -o prefix
        counts, stats = ours(Path(spec), None)
        assert counts == strace_summary(one)
        assert stats.tally["execve"][:2] == [2, 2]
        assert stats.orphan_resumed == 0 and stats.damaged == 0


def test_unknown_syscall_and_deleted_fd(tmp_path: Path, programs: Path) -> None:
    trace = record(tmp_path, [str(programs / "misc"), str(tmp_path)], "-y")
    _, stats = ours(trace, None)
    assert stats.tally["syscall_0x1f4"] == [1, 1, 1]
    assert_matches_strace(trace)
