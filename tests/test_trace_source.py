"""Where traces come from, and what `syscall-gate analyze` does when they are no traces."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_gate.errors import MeasureError
from ci_gate.trace import source
from ci_gate.trace.parser import Selection, TraceParser
from helpers import gate

CORPUS = Path(__file__).parent / "corpus"

# Each test runs with the parser's C line filter and without it (conftest.parser_path).
pytestmark = pytest.mark.usefixtures("parser_path")


def analyze(tmp_path: Path, trace: Path | str) -> tuple[int, dict, str]:
    out = tmp_path / "out"
    proc = gate("analyze", str(trace), "--out", str(out))
    res = json.loads((out / "results.json").read_text())
    return proc.returncode, res, proc.stdout + proc.stderr


def test_not_strace_is_an_error_naming_the_lines(tmp_path: Path) -> None:
    rc, res, output = analyze(tmp_path, CORPUS / "not-strace.txt")
    assert rc == 3
    assert res["status"] == "ERROR"
    codes = [p["code"] for p in res["problems"]]
    assert codes == ["not-strace"]
    message = res["problems"][0]["message"]
    assert "is not strace output" in message
    # The first lines that did not parse, by number and text.
    assert "line 1: 'Traceback (most recent call last):'" in message
    assert "line 2: " in message and "line 3: " in message
    assert "is not strace output" in output
    # No numbers at all, rather than a report of zeros.
    assert res["metrics"] == {}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "not-strace" in report


def test_binary_junk_is_not_strace(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 40)
    rc, res, _ = analyze(tmp_path, junk)
    assert rc == 3
    assert [p["code"] for p in res["problems"]] == ["not-strace"]
    assert res["metrics"] == {}


def test_bytes_that_are_not_utf8_are_shown_as_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x7fELF\xd0'q\\udc80\n")
    rc, res, _ = analyze(tmp_path, junk)
    assert rc == 3
    # Each byte as repr() shows bytes; a literal backslash stays a doubled one.
    assert "line 1: '\\x7fELF\\xd0\\'q\\\\udc80'" in res["problems"][0]["message"]


def test_summary_table_alone_is_refused(tmp_path: Path) -> None:
    rc, res, _ = analyze(tmp_path, CORPUS / "c-only.log")
    assert rc == 3
    assert [p["code"] for p in res["problems"]] == ["summary-only"]
    assert "-c summary table but no system call lines" in res["problems"][0]["message"]


def test_a_real_trace_is_measured(tmp_path: Path) -> None:
    """The contrast: the same command on a trace measures it (forms.c's calls, counted by hand)."""
    rc, res, _ = analyze(tmp_path, CORPUS / "C.log")
    assert rc == 0, res["problems"]
    m = res["metrics"]
    assert m["syscalls.total"] == 22  # sequences.yml: forms
    assert m["syscall.openat.calls"] == 2 and m["syscall.openat.errors"] == 1
    assert m["syscall.exit_group.calls"] == 1 and m["syscalls.unreturned"] == 1
    assert m["trace.summary_mismatches"] == 0


def test_summary_mismatch_is_reported(tmp_path: Path) -> None:
    rc, res, _ = analyze(tmp_path, CORPUS / "C-mismatch.log")
    assert [p["code"] for p in res["problems"]] == ["summary-mismatch"]
    assert "openat (trace 2, strace 3)" in res["problems"][0]["message"]
    assert res["metrics"]["trace.summary_mismatches"] == 1
    assert rc == 3


@pytest.mark.parametrize("spec", ["ff-superseded", "ff-superseded/trace"])
def test_ff_directory_or_prefix(tmp_path: Path, spec: str) -> None:
    rc, res, _ = analyze(tmp_path, CORPUS / spec)
    assert rc == 0, res["problems"]
    # ff-superseded.yml: 28 calls; execve twice (the program's, the thread's).
    assert res["metrics"]["syscalls.total"] == 28
    assert res["metrics"]["syscall.execve.calls"] == 2


def test_trace_from_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with (CORPUS / "f.log").open("rb") as stdin:
        proc = subprocess.run(
            ["python", "-m", "ci_gate", "analyze", "-", "--out", str(out)],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[1],
            check=False,
        )
    res = json.loads((out / "results.json").read_text())
    assert proc.returncode == 0, res["problems"]
    assert res["metrics"]["syscalls.total"] == 22


def test_truncated_trace_warns_and_counts_the_rest(tmp_path: Path) -> None:
    rc, res, _ = analyze(tmp_path, CORPUS / "truncated.log")
    codes = [p["code"] for p in res["problems"]]
    assert "trace-truncated" in codes
    # truncated.log.yml: 19 calls before the cut line.
    assert res["metrics"]["syscalls.total"] == 19
    assert res["metrics"]["trace.damaged_lines"] == 1
    assert rc == 3


def test_events_raise_not_strace_with_samples() -> None:
    parts = source.resolve(str(CORPUS / "not-strace.txt"))
    with pytest.raises(MeasureError) as err:
        list(source.events(parts))
    assert err.value.code == "not-strace"
    assert "line 3: '    main(sys.argv)'" in err.value.message


# -- memory: bounded by live tasks, not by the trace's length --------------------------------


def _many_processes(n: int) -> Iterator[str]:
    """n short-lived processes one after another, each with a split call and an exit."""
    for i in range(n):
        pid = 1000 + i
        yield f'{pid} openat(AT_FDCWD</t>, "/t/f{i}", O_RDONLY) = 3</t/f{i}>\n'
        yield f"{pid} read(3</t/f{i}>,  <unfinished ...>\n"
        yield f"{1000 + n + i} getpid() = {1000 + n + i}\n"
        yield f'{pid} <... read resumed>"x", 1) = 1\n'
        yield f"{pid} futex(0x1, FUTEX_WAIT, 0, NULL <unfinished ...>\n"
        yield f"{pid} +++ exited with 0 +++\n"


@pytest.mark.parametrize(
    "select",
    [None, Selection(()), Selection(("openat",), ("/t/f1",))],
    ids=["all", "count-only", "some"],
)
def test_state_is_bounded_by_live_tasks(select: Selection | None) -> None:
    parser = TraceParser(select=select)
    for _ev in parser.parse(_many_processes(20_000)):
        # Nothing piles up while the trace streams by.
        assert len(parser._pending) <= 2 and len(parser._live) <= 2
    list(parser.finish())
    stats = parser.stats
    assert stats.calls == 20_000 * 4
    assert stats.never_resumed == 20_000  # the futex each process exits inside
    assert len(stats.tally) == 4 and len(stats.damaged_samples) == 0


def test_lines_without_pid_belong_to_the_task_left() -> None:
    """On stderr, strace drops the pid again once one task is left (stderr-f.log's shape)."""
    lines = [
        'execve("./a", ["./a"], 0x7ffd /* 1 vars */) = 0\n',
        "clone(child_stack=NULL, flags=SIGCHLD) = 20701\n",
        "[pid 20700] close(3)                    = 0\n",
        "[pid 20701] close(4)                    = 0\n",
        "[pid 20701] +++ exited with 0 +++\n",
        "close(5)                                = 0\n",
        "exit_group(0)                           = ?\n",
    ]
    parser = TraceParser()
    calls = [(c.pid, c.name) for c in parser.parse(lines) if hasattr(c, "name")]
    assert calls == [(0, "execve"), (0, "clone"), (20700, "close"), (20701, "close"),
                     (20700, "close"), (20700, "exit_group")]  # fmt: skip
