"""Every way a run can fail to measure: a clear ERROR (exit 3), the cause named, and
whatever was measured kept. Each case uses real processes and real strace."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import COPIER, REPO, gate


def write_policy(tmp_path: Path, command: str, *, timeout: str = "60s", extra: str = "") -> Path:
    # Only the copier makes a copy; other targets are judged on running, not on verify.
    verify = "tree-equal" if str(COPIER) in command else "none"
    p = tmp_path / "policy.yml"
    p.write_text(
        textwrap.dedent(f"""\
            version: 1
            scenario:
              command: {command}
              fixture: {{files: 2, file_size: 64KiB, dirs: 1}}
              timeout: {timeout}
              verify: {verify}
            """)
        + extra
    )
    return p


def run(tmp_path: Path, pol: Path, *args: str, env: dict[str, str] | None = None):
    out = tmp_path / "out"
    proc = gate("run", "--policy", str(pol), "--out", str(out), *args, env=env)
    res_file = out / "results.json"
    res = json.loads(res_file.read_text()) if res_file.exists() else None
    return proc, res


def codes(res: dict) -> list[str]:
    return [p["code"] for p in res["problems"]]


def processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline.replace(b"\0", b" "):
            found.append(int(pid))
    return found


def test_strace_missing(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    pol = write_policy(tmp_path, "true {src} {dst}")
    proc, res = run(tmp_path, pol, env=dict(os.environ, PATH=str(empty)))
    assert proc.returncode == 3
    assert codes(res) == ["strace-missing"]
    assert "apt-get install -y strace" in res["problems"][0]["message"]


def test_ptrace_refused(tmp_path: Path, deny_syscalls: Path, copier: Path) -> None:
    # The gate itself runs in a sandbox whose seccomp filter refuses ptrace.
    pol = write_policy(tmp_path, f"{COPIER} {{src}} {{dst}}")
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(deny_syscalls), "EPERM", "ptrace", sys.executable, "-m", "ci_gate", "run",
         "--policy", str(pol), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert codes(res) == ["ptrace-denied"]
    assert "SYS_PTRACE" in res["problems"][0]["message"]


def test_target_not_executable(tmp_path: Path) -> None:
    target = tmp_path / "not-exec"
    target.write_text("#!/bin/sh\necho hi\n")
    target.chmod(0o644)
    proc, res = run(tmp_path, write_policy(tmp_path, f"{target} {{src}} {{dst}}"))
    assert proc.returncode == 3
    assert codes(res) == ["target-not-executable"]


def test_target_crash_keeps_what_was_measured(tmp_path: Path, crasher: Path) -> None:
    proc, res = run(tmp_path, write_policy(tmp_path, f"{crasher} {{src}} {{dst}}"))
    assert proc.returncode == 3
    assert "target-crashed" in codes(res)
    assert "SIGSEGV" in res["problems"][codes(res).index("target-crashed")]["message"]
    # The stat of the source before the crash was traced and counted.
    m = res["metrics"]
    stats = m.get("scenario.syscall.stat.calls", 0) + m.get("scenario.syscall.newfstatat.calls", 0)
    assert stats == 1
    assert (tmp_path / "out" / "report.md").exists()


def test_hang_past_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    # The target double-forks a daemon into its own session, then hangs.
    cmd = "sh -c '(setsid sleep 913 &); sleep 914' {src}"
    proc, res = run(tmp_path, write_policy(tmp_path, cmd, timeout="2s"))
    assert proc.returncode == 3
    assert "target-timeout" in codes(res)
    assert "2s timeout" in res["problems"][0]["message"]
    assert processes_with("sleep 913") == []
    assert processes_with("sleep 914") == []
    # What was traced before the deadline is still analysed.
    assert res["metrics"]["syscall.execve.calls"] >= 2


def test_timeout_kills_the_tracees_first_and_strace_ends_the_trace(tmp_path: Path) -> None:
    """On a timeout the gate kills the traced processes before strace, so strace writes how
    their calls ended and its summary: no line is cut, the sleeping call counts as entered
    and unreturned (README's counting rule), nothing is damaged, no second ERROR."""
    cmd = "sh -c 'sleep 30; true' {src}"  # the shell waits in wait4, sleep in its sleep call
    proc, res = run(tmp_path, write_policy(tmp_path, cmd, timeout="2s"))
    assert proc.returncode == 3
    assert [c for c in codes(res) if c.startswith(("target", "trace"))] == ["target-timeout"]
    trace = (tmp_path / "out" / "trace.txt").read_bytes()
    assert trace.endswith(b"\n")
    assert b"+++ killed by SIGKILL +++" in trace
    m = res["metrics"]
    assert m["trace.damaged_lines"] == 0
    assert m["syscalls.unreturned"] == 2  # wait4 in sh, the sleep in sleep
    assert m["trace.summary_mismatches"] == 0  # strace lived to print its -C table
    assert "The trace's last line was cut when the run was stopped." not in res["notes"]


def test_daemon_left_behind_is_killed_and_reported(tmp_path: Path) -> None:
    cmd = "sh -c '(setsid sleep 917 &); true' {src}"
    proc, res = run(tmp_path, write_policy(tmp_path, cmd))
    assert "target-leftovers" in codes(res)
    assert processes_with("sleep 917") == []
    assert proc.returncode == 0  # a warning: the run itself measured fine


def test_no_shell_for_the_scenario_command(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pol = write_policy(tmp_path, f"/bin/echo $(touch {marker}) ; touch {marker}2 {{src}}")
    proc, _ = run(tmp_path, pol)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists() and not Path(f"{marker}2").exists()
    stdout = (tmp_path / "out" / "target.stdout").read_text()
    assert stdout.startswith(f"$(touch {marker}) ; touch {marker}2 ")


def test_token_never_reaches_the_target_or_the_outputs(tmp_path: Path) -> None:
    token = "ghs_" + "S3cr3tT0k3n" * 3
    pol = write_policy(tmp_path, "env")
    env = dict(os.environ, GITHUB_TOKEN=token, **{"INPUT_GITHUB-TOKEN": token})
    proc, _ = run(tmp_path, pol, env=env)
    assert proc.returncode == 0, proc.stderr
    for f in (tmp_path / "out").iterdir():
        assert token not in f.read_text(errors="replace"), f.name
    assert token not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("", "trace-empty"),
        ("hello world\nthis is not strace\n", "not-strace"),
        ('123 openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3\n123 read(3, "roo', "trace-truncated"),
        # Cut inside the call's name: no "(" left, yet no strace line ends without "\n".
        ('123 openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3\n7162  utime', "trace-truncated"),
    ],
)
def test_bad_traces(tmp_path: Path, content: str, code: str) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text(content)
    pol = tmp_path / "p.yml"
    pol.write_text("version: 1\nrules:\n  calls: {metric: syscalls.total, fail: {min: 1}}\n"
                   "  io: {metric: io_uring.rings, fail: {max: 9}}\n")  # fmt: skip
    proc = gate("analyze", str(trace), "--policy", str(pol), "--out", str(tmp_path / "out"))
    assert proc.returncode == 3
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code in codes(res)
    # Every rule is listed, on the terminal and in the report ("no rules" before); with
    # nothing measured, each is ERROR (a cut trace's rules judge what was read).
    assert [r["id"] for r in res["rules"]] == ["calls", "io"]
    assert "`calls`" in (tmp_path / "out" / "report.md").read_text()
    if code != "trace-truncated":
        assert [r["status"] for r in res["rules"]] == ["ERROR", "ERROR"]
    if code == "not-strace":
        assert "ERROR calls, io: not measured: the trace could not be analysed" in proc.stdout
    if code == "not-strace":
        assert "line 1" in res["problems"][0]["message"]
    if code != "trace-truncated":
        # Nothing was measured: no table of zeros that would read as a measurement.
        report = (tmp_path / "out" / "report.md").read_text()
        assert "### io_uring usage" not in report and "### Summary" in report


def test_a_whole_last_call_without_its_newline_is_not_truncation(tmp_path: Path) -> None:
    """A pasted log often loses its final newline; a last line that reads whole is
    counted, and only damage in the middle of the trace would make it WARN."""
    trace = tmp_path / "trace.txt"
    trace.write_text("1 close(3) = 0\ngarbage\n1 close(4) = 0\n1 +++ exited with 0 +++")
    proc = gate("analyze", str(trace), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert codes(res) == ["damaged-lines"] and res["metrics"]["syscall.close.calls"] == 2


@pytest.mark.parametrize(
    ("tail", "code"),
    [
        # An excerpt, or a cut that fell between lines: strace always ends a task's story.
        ("1 close(4) = 0\n", "trace-incomplete"),
        ("1 close(4) = 0\n1 +++ exited with 0 +++\n", None),
        ("1 close(4) = 0\n1 +++ killed by SIGSEGV (core dumped) +++\n", "target-crashed"),
        ("1 close(4) = 0\n1 +++ exited with 2 +++\n", "target-failed"),  # a warning
        # strace -c/-C's table after the last line of the story is not the story.
        ("1 +++ exited with 0 +++\n% time     seconds  usecs/call     calls    errors syscall\n"
         "------ ----------- ----------- --------- --------- ----------------\n"
         "100.00    0.000001           0         1           close\n"
         "  0.00    0.000000           0         1           execve\n", None),
    ],
)  # fmt: skip
def test_how_the_traced_program_ended(tmp_path: Path, tail: str, code: str | None) -> None:
    trace = tmp_path / "trace.txt"
    # The program strace started: its first line is the execve, and its story has an end.
    trace.write_text('1 execve("/bin/x", ["x"], 0x7ffd /* 1 var */) = 0\n1 close(3) = 0\n' + tail)
    proc = gate("analyze", str(trace), "--out", str(tmp_path / "out"))
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert codes(res) == ([code] if code else [])
    assert proc.returncode == (3 if code in ("trace-incomplete", "target-crashed") else 0)
    if code == "target-crashed":
        assert "killed by SIGSEGV (core dumped)" in res["problems"][0]["message"]


def test_damaged_lines_are_reported_with_samples(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text(
        '7 openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3\n'
        "garbage <img src=x> line\n"
        "7 close(3) = 0\n"
        "7 +++ exited with 0 +++\n"
    )
    proc = gate("analyze", str(trace), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0  # a warning: the rest of the trace still counts
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["metrics"]["syscalls.total"] == 2
    assert res["metrics"]["trace.damaged_lines"] == 1
    assert codes(res) == ["damaged-lines"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Lines that could not be parsed" in report
    assert "| 2 | `garbage <img src=x> line` |" in report


def test_trace_over_the_size_cap(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text('1 openat(AT_FDCWD, "/x", O_RDONLY) = 3\n' * 100)
    proc = gate("analyze", str(trace), "--out", str(tmp_path / "out"), "--max-trace-bytes", "1000")
    assert proc.returncode == 3
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert codes(res) == ["trace-too-large"]
    assert "--max-trace-bytes" in res["problems"][0]["message"]


@pytest.mark.parametrize(("size", "over"), [("1KiB", True), ("1 KB", True), ("1MiB", False)])
def test_size_cap_takes_units(tmp_path: Path, size: str, over: bool) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text('1 openat(AT_FDCWD, "/x", O_RDONLY) = 3\n' * 100 + "1 +++ exited with 0 +++\n")
    proc = gate("analyze", str(trace), "--out", str(tmp_path / "out"), "--max-trace-bytes", size)
    assert proc.returncode == (3 if over else 0), proc.stderr


def test_size_cap_refuses_what_is_not_a_size(tmp_path: Path) -> None:
    proc = gate("analyze", "t", "--out", str(tmp_path / "o"), "--max-trace-bytes", "12XB")
    assert proc.returncode == 2
    assert "'12XB' is not a size" in proc.stderr and "GiB" in proc.stderr


def test_relative_out_with_another_workdir(tmp_path: Path) -> None:
    """--out is relative to where the gate was started, not to --workdir (where strace runs)."""
    pol = write_policy(tmp_path, "/bin/true")
    here = tmp_path / "here"
    here.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate", "run", "--policy", str(pol), "--out", "rel-out",
         "--workdir", str(tmp_path), "--no-build", "--publish", "never"],
        cwd=here, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads((here / "rel-out" / "results.json").read_text())
    assert res["status"] == "PASS" and (here / "rel-out" / "trace.txt").is_file()


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_output_directory_not_writable(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        pol = write_policy(tmp_path, "true {src}")
        proc = gate("run", "--policy", str(pol), "--out", str(ro / "out"))
    assert proc.returncode == 3
    assert "out-dir-unwritable" in proc.stderr and "--out" in proc.stderr


def test_a_directory_where_the_trace_goes(tmp_path: Path) -> None:
    (tmp_path / "out" / "trace.txt").mkdir(parents=True)
    pol = write_policy(tmp_path, "true {src}")
    proc = gate("run", "--policy", str(pol), "--out", str(tmp_path / "out"))
    assert proc.returncode == 3, proc.stderr
    assert "internal error" not in proc.stderr
    assert (
        "out-dir-unwritable): cannot write to the output directory "
        f"{tmp_path / 'out'}: 'trace.txt' is a directory where the gate writes a file"
    ) in proc.stderr


def test_disk_full_while_writing_the_trace(tmp_path: Path, copier: Path) -> None:
    with tmpfs(tmp_path / "small", "size=8k") as small:
        pol = write_policy(tmp_path, f"{COPIER} {{src}} {{dst}}")
        proc = gate("run", "--policy", str(pol), "--out", str(small / "out"))
    assert proc.returncode == 3
    assert "disk filled up" in proc.stdout
    assert "report-unwritable" in proc.stdout or "could not write the report" in proc.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_cleans_up_and_reports(tmp_path: Path, sig: signal.Signals) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    marker = f"sleep {900 + int(sig)}"
    pol = write_policy(tmp_path, f"sh -c '{marker}' {{src}}")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_gate", "run", "--policy", str(pol), "--out", str(out),
         "--scratch", str(scratch)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker), "the target never started"
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + int(sig)
    res = json.loads((out / "results.json").read_text())
    assert "interrupted" in codes(res)
    assert res["status"] == "ERROR"
    assert res["exit_code"] == proc.returncode  # not 3: what the process exited with
    assert processes_with(marker) == []
    assert list(scratch.iterdir()) == []  # the fixture is gone
    assert shutil.which("strace")


def test_runaway_trace_is_capped(tmp_path: Path) -> None:
    # A target that makes system calls forever: its trace grows until the cap stops it.
    pol = write_policy(tmp_path, "sh -c 'while :; do :> /dev/null; done'", timeout="120s")
    proc, res = run(tmp_path, pol, "--max-trace-bytes", "200000")
    assert proc.returncode == 3
    assert "trace-too-large" in codes(res)
    assert "200,000-byte cap" in res["problems"][0]["message"]
    assert processes_with("while :; do") == []
    assert res["metrics"]["syscalls.total"] > 100  # what was traced is analysed


def test_a_short_run_over_the_cap_is_an_error_too(tmp_path: Path) -> None:
    # `true` ends before the first size check (every 0.1 s); its trace still passes 100
    # bytes (the execve line alone names the full path): the cap holds after the run.
    pol = write_policy(tmp_path, "true {src}")
    proc, res = run(tmp_path, pol, "--max-trace-bytes", "100B")
    assert proc.returncode == 3, proc.stderr
    assert res["status"] == "ERROR"
    assert codes(res)[0] == "trace-too-large"
    size = (tmp_path / "out" / "trace.txt").stat().st_size
    assert size > 100
    assert (
        f"100-byte cap ({size:,} bytes): the target finished first" in res["problems"][0]["message"]
    )


def test_a_second_signal_does_not_cut_the_clean_up_short() -> None:
    """CI cancellation sends SIGINT, then SIGTERM: the second must not interrupt the clean-up
    and the partial report the first one started (it left no report, a fixture behind)."""
    from ci_gate.pipeline import Interrupted, interruptible

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cleaned = False
    try:
        with pytest.raises(Interrupted), interruptible():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # never reached: the handler raises
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives during the clean-up
                time.sleep(0.05)
                cleaned = True
        assert cleaned
        # Until the process exits (report written), further signals are ignored.
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_out_that_is_a_file_and_a_scenario_file_that_is_not_results(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("1 close(3) = 0\n1 +++ exited with 0 +++\n")
    (tmp_path / "afile").write_text("")
    proc = gate("analyze", str(trace), "--out", str(tmp_path / "afile"))
    assert proc.returncode == 3
    assert f"the output directory {tmp_path / 'afile'} is a file, not a directory" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("1")
    proc = gate("analyze", str(trace), "--scenario", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 3
    assert f"{bad} holds no scenario roots (scenario.roots)" in proc.stdout
    assert "subscriptable" not in proc.stdout + proc.stderr
    # The report and results are as readable as the trace (mkstemp made them 0600).
    for name in ("report.md", "results.json"):
        assert (tmp_path / "o" / name).stat().st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_attached_process_is_a_window_that_may_end_anywhere(tmp_path: Path) -> None:
    """strace -p PID, stopped with Ctrl-C: no execve first, no exit last; not incomplete."""
    trace = tmp_path / "trace.txt"
    trace.write_text('7 read(3, "x", 1) = 1\n7 write(4, "x", 1) = 1\n')
    proc = gate("analyze", str(trace), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout
    assert codes(json.loads((tmp_path / "out" / "results.json").read_text())) == []


def test_a_reader_that_leaves_early_does_not_change_the_verdict(tmp_path: Path) -> None:
    """`syscall-gate analyze ... | head -1`: a closed stdout is not an error (was exit 3)."""
    trace = tmp_path / "trace.txt"
    trace.write_text("1 close(3) = 0\n1 +++ exited with 0 +++\n")
    pol = tmp_path / "p.yml"
    pol.write_text("version: 1\nrules:\n  r: {metric: syscall.close.calls, fail: {max: 0}}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_gate", "analyze", str(trace), "--policy", str(pol),
         "--out", str(tmp_path / "out")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the gate prints its first line
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1, err  # FAIL: one close, at most 0 allowed


def test_analyses_of_two_scenarios_merge(tmp_path: Path) -> None:
    """analyze records the policy's scenario id, so a matrix of analyses merges."""
    trace = tmp_path / "trace.txt"
    trace.write_text("1 close(3) = 0\n1 +++ exited with 0 +++\n")
    outs = []
    for sid in ("small", "large"):
        pol = tmp_path / f"{sid}.yml"
        pol.write_text(f"version: 1\nscenario: {{id: {sid}, command: 'x {{src}} {{dst}}'}}\n"
                       "rules:\n  r: {metric: syscall.close.calls, fail: {max: 5}}\n")  # fmt: skip
        out = tmp_path / sid
        assert gate("analyze", str(trace), "--policy", str(pol), "--out", str(out)).returncode == 0
        assert json.loads((out / "results.json").read_text())["scenario"]["id"] == sid
        outs.append(str(out))
    proc = gate("merge", *outs, "--out", str(tmp_path / "merged"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ff_output_with_a_task_file_missing(tmp_path: Path) -> None:
    """strace -ff writes a file per task: a child's file lost is a trace with calls missing."""
    d = tmp_path / "ff"
    d.mkdir()
    # sh forks two children (the subshell and its `true`), each with its own file.
    subprocess.run(["strace", "-ff", "-o", str(d / "tr"), "sh", "-c", "(true &); wait"],
                   check=True)  # fmt: skip
    files = sorted(d.iterdir(), key=lambda p: int(p.suffix[1:]))
    assert len(files) >= 2
    proc = gate("analyze", str(d), "--out", str(tmp_path / "whole"))
    assert proc.returncode == 0, proc.stdout
    files[-1].unlink()  # the last child's file
    proc = gate("analyze", str(d), "--out", str(tmp_path / "lost"))
    assert proc.returncode == 3, proc.stdout
    res = json.loads((tmp_path / "lost" / "results.json").read_text())
    assert codes(res) == ["trace-incomplete"]
    assert f"(pid {files[-1].suffix[1:]})" in res["problems"][0]["message"]
