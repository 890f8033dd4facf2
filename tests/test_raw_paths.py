"""A trace whose paths are pointers (strace -e raw=...) cannot be tied to the scenario's
files: the scenario figures are unmeasured (rules ERROR), never zeros that pass. Nor can it
say how a call with a directory fd named its file, so those calls' path classes are
unmeasured too, with or without roots; calls relative to AT_FDCWD (raw: 0xffffff9c) keep
theirs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import gate, strace_summary

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


CLASS_POLICY = """\
version: 1
rules:
  openat-path: {metric: openat.path_based, fail: {max: 1000}}
  fstatat-fd: {metric: newfstatat.fd_based, fail: {max: 1000}}
  all-path: {metric: pathcalls.path_based, fail: {max: 1000}}
"""


@pytest.mark.parametrize("no_speedups", ["", "1"], ids=["c", "python"])
@pytest.mark.parametrize("mode", ["fdcwd", "dirfd"])
def test_pointer_paths_classes_without_roots(
    tmp_path: Path, raw_paths: Path, mode: str, no_speedups: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    trace = tmp_path / "trace.txt"
    subprocess.run(["strace", "-f", "-C", "-e", "raw=all", "-o", str(trace), str(raw_paths),
                    mode, str(work)], check=True)  # fmt: skip
    pol = tmp_path / "p.yml"
    pol.write_text(CLASS_POLICY)
    out = tmp_path / "out"
    env = {**os.environ, "SYSCALL_GATE_NO_SPEEDUPS": no_speedups}
    proc = gate("analyze", str(trace), "--policy", str(pol), "--out", str(out), env=env)
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    status = {r["id"]: r["status"] for r in res["rules"]}
    summary = strace_summary(trace)
    # By construction: open(DIR) and 3 openat(AT_FDCWD, DIR), all printed as 0xffffff9c.
    if mode == "fdcwd":
        assert summary["openat"][0] == 4
        assert proc.returncode == 0, proc.stdout + proc.stderr
        classes = (m["openat.path_based"], m["openat.dirfd_relative"], m["openat.fd_based"])
        assert classes == (4, 0, 0)
        # Static glibc's start-up may call readlink(2) (no dirfd: path-based by definition).
        readlinks = summary.get("readlink", (0, 0))[0]
        assert m["pathcalls.path_based"] == 4 + readlinks
        assert status["all-path"] == "PASS"
    else:
        # ...then openat(dirfd, "f") and fstatat(dirfd, "", AT_EMPTY_PATH): the pointers hide
        # whether the path was absolute, relative or empty.
        assert summary["openat"][0] == 5 and summary["newfstatat"][0] == 1
        assert proc.returncode == 3, proc.stdout + proc.stderr
        for key in ("openat", "newfstatat", "pathcalls"):
            for cls in ("path_based", "fd_based", "dirfd_relative"):
                assert f"{key}.{cls}" not in m
                assert "printed pointers instead of paths" in res["unmeasured"][f"{key}.{cls}"]
        assert "newfstatat (1), openat (1) " in res["unmeasured"]["openat.path_based"]
        assert status == {"openat-path": "ERROR", "fstatat-fd": "ERROR", "all-path": "ERROR"}
    assert m["syscall.openat.calls"] == summary["openat"][0]
