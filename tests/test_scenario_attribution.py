"""Which calls count as scenario work, by construction of tests/programs/scenario_edges.c.

Calls that name a scenario path without having path-class metrics (chdir, truncate, statfs)
count; a close() is attributed through the fd table when the trace has no -y decorations;
data with '<' in it does not hide an fd's file; and data that only looks like a -y
decoration ("log: 3</src/a.txt> done" written to /dev/null) is not a scenario call.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import gate, strace_summary


@pytest.mark.parametrize("no_speedups", ["", "1"], ids=["c", "python"])
@pytest.mark.parametrize("flags", [["-f", "-y"], ["-f"]], ids=["-y", "no -y"])
def test_scenario_calls_by_construction(
    tmp_path: Path, scenario_edges: Path, flags: list[str], no_speedups: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "a.txt").write_bytes(b"a<b and more")  # truncated to "a<b", then read
    trace = tmp_path / "trace.txt"
    subprocess.run(["strace", *flags, "-C", "-s", "4096", "-o", str(trace), str(scenario_edges),
                    str(src)], check=True)  # fmt: skip
    assert (src / "a.txt").read_bytes() == b"a<b"
    out = tmp_path / "out"
    env = {**os.environ, "SYSCALL_GATE_NO_SPEEDUPS": no_speedups}
    proc = gate("analyze", str(trace), "--root", str(src), "--root", str(dst), "--out", str(out),
                "--publish", "never", env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    scen = {k.split(".")[2]: v for k, v in m.items() if k.startswith("scenario.syscall.")
            and k.endswith(".calls")}  # fmt: skip
    assert scen == {"chdir": 1, "truncate": 1, "statfs": 1, "openat": 1, "read": 1, "close": 1}
    assert m["scenario.calls"] == 6
    assert m["scenario.direct_io"] == 1
    assert m["scenario.opens.user_files"] == 1
    # The whole process made 2 chdir, 2 close and 1 write (the log line), as strace counts.
    summary = strace_summary(trace)
    assert summary["chdir"][0] == 2 and summary["close"][0] == 2 and summary["write"][0] == 1
    per = {e["path"]: e["calls"] for e in res["details"]["scenario"]["per_path"]
           if e["root"] == "src"}  # fmt: skip
    assert per["a.txt"] == {"truncate": 1, "statfs": 1, "openat": 1, "read": 1, "close": 1}
    # The report's per-file row names every syscall (statfs and truncate are not folded away).
    report = (out / "report.md").read_text()
    assert "| `a.txt` | src | 5 | close 1, openat 1, read 1, statfs 1, truncate 1 |" in report


def test_unexpected_calls_need_the_roots(tmp_path: Path, scenario_edges: Path) -> None:
    """The default unexpected list flags legacy calls on scenario paths: without roots that
    part cannot be counted, so unexpected.calls is unmeasured (ERROR), not a passing 0."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a<b")
    trace = tmp_path / "trace.txt"
    subprocess.run(["strace", "-f", "-y", "-o", str(trace), str(scenario_edges), str(src)],
                   check=True)  # fmt: skip
    pol = tmp_path / "p.yml"
    pol.write_text("version: 1\nrules:\n  u: {metric: unexpected.calls, fail: {max: 0}}\n")
    verdicts = {}
    for roots in ([], ["--root", str(src)]):
        out = tmp_path / f"out{len(roots)}"
        proc = gate("analyze", str(trace), "--policy", str(pol), *roots, "--out", str(out),
                    "--publish", "never")  # fmt: skip
        res = json.loads((out / "results.json").read_text())
        verdicts[bool(roots)] = (proc.returncode, res["rules"][0]["status"],
                                 res["metrics"].get("unexpected.calls"))  # fmt: skip
        if not roots:
            assert "need the scenario's roots" in res["unmeasured"]["unexpected.calls"]
    # By construction the program makes no legacy path call (truncate and statfs are not
    # in the default list) and sets up no io_uring ring.
    assert verdicts == {False: (3, "ERROR", None), True: (0, "PASS", 0)}
