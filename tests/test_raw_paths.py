"""A trace whose paths are pointers (strace -e raw=...) cannot be tied to the scenario's
files: the scenario figures are unmeasured (rules ERROR), never zeros that pass."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import gate

POLICY = """\
version: 1
rules:
  opens: {metric: scenario.opens.user_files, fail: {max: 1000}}
  legacy: {metric: scenario.legacy.calls, fail: {max: 0}}
  statx-class: {metric: statx.path_based, fail: {max: 1000}}
"""


@pytest.mark.parametrize(
    ("raw", "unmeasured"),
    [(["-e", "raw=all"], True), (["-e", "raw=openat"], True), ([], False)],
    ids=["raw=all", "raw=openat", "paths shown"],
)
def test_pointer_paths_make_scenario_rules_error(
    tmp_path: Path, raw: list[str], unmeasured: bool
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(b"x" * 100)
    trace = tmp_path / "trace.txt"
    subprocess.run(["strace", "-f", *raw, "-o", str(trace), "cp", "-a", str(src), str(dst)],
                   check=True)  # fmt: skip
    pol = tmp_path / "p.yml"
    pol.write_text(POLICY)
    out = tmp_path / "out"
    proc = gate("analyze", str(trace), "--policy", str(pol), "--root", str(src),
                "--root", str(dst), "--out", str(out))  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    status = {r["id"]: r["status"] for r in res["rules"]}
    if unmeasured:
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert status["opens"] == status["legacy"] == "ERROR"
        why = res["scope_missing"]["scenario"]
        assert why.startswith("strace printed pointers instead of paths for ")
        assert "openat (" in why
        assert not any(k.startswith("scenario.opens") for k in res["metrics"])
    else:
        # cp -a opens each of the 3 source files once to read it (and creates 3 copies).
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert res["metrics"]["scenario.opens.user_files"] >= 3
        assert status == {"opens": "PASS", "legacy": "PASS", "statx-class": "PASS"}
