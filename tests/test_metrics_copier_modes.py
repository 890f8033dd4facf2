"""Metrics of the reference copier in each mode, against its construction.

Every expected number is derived from the fixture's shape and the copier's
documented syscall pattern (examples/uring-copy/README.md), never from the gate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import COPIER, Tree, copier_expectations, gate

MiB = 1 << 20
TREE = Tree(files=3, file_size=MiB, dirs=2, symlinks=True)
N = math.ceil(TREE.file_size / 131072)  # chunks per file at the default chunk size


def run_mode(tmp_path: Path, flags: str, *, rules: str = "", command: str | None = None) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    pol = tmp_path / "policy.yml"
    cmd = command or f"{COPIER} {flags} {{src}} {{dst}}"
    pol.write_text(
        "version: 1\n"
        "scenario:\n"
        f"  command: {cmd}\n"
        "  fixture: {files: 3, file_size: 1MiB, dirs: 2, symlinks: true}\n"
        "  timeout: 60s\n" + (f"rules:\n{rules}" if rules else "")
    )
    proc = gate("run", "--policy", str(pol), "--out", str(tmp_path / "out"))
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    res["_proc"] = proc
    return res


def test_histogram_and_buckets_are_exact(tmp_path: Path, copier: Path) -> None:
    # 1 MiB in 64 KiB chunks = 16 chunks; batches of 3 -> 5 groups of 3 and 1 of 1,
    # for the reads and for the writes of each of the F files.
    res = run_mode(tmp_path, "--batch 3 --chunk 65536")
    m = res["metrics"]
    f = TREE.F
    assert res["details"]["io_uring"]["histogram"] == {"1": 2 * f, "3": 2 * 5 * f}
    assert m["io_uring.batch.single"] == m["io_uring.batch.size_1"] == 2 * f
    assert m["io_uring.batch.size_2_3"] == 10 * f
    assert m["io_uring.batch.multi"] == 10 * f
    assert m["io_uring.batch.max"] == 3
    assert m["io_uring.sqes_submitted"] == 2 * f * 16
    assert m["io_uring.batch.avg"] == pytest.approx((2 * f * 16) / (12 * f))


def test_wait_separately_counts_wait_only_calls(tmp_path: Path, copier: Path) -> None:
    res = run_mode(tmp_path, "--wait-separately")
    m = res["metrics"]
    groups = TREE.F * math.ceil(N / 8)
    assert m["io_uring.enter.calls"] == 4 * groups
    assert m["io_uring.enter.submitting"] == 2 * groups
    assert m["io_uring.enter.wait_only"] == 2 * groups
    assert m["io_uring.batch.avg"] == 8


def test_threads_each_have_a_ring(tmp_path: Path, copier: Path) -> None:
    res = run_mode(tmp_path, "--threads 3")
    m = res["metrics"]
    exp = copier_expectations(TREE)
    assert m["io_uring.setup.calls"] == m["io_uring.rings"] == 3
    for key in (
        "io_uring.enter.calls",
        "io_uring.sqes_submitted",
        "scenario.statx.dirfd_relative",
        "scenario.preserve.times.file",
        "scenario.opens.user_files",
    ):
        assert m[key] == exp[key], key
    assert len({r["pid"] for r in res["details"]["io_uring"]["rings"]}) == 3


def test_sqpoll_makes_batching_unmeasured_and_rules_error(tmp_path: Path, copier: Path) -> None:
    rules = "  batching: {metric: io_uring.batch.avg, fail: {min: 2}}\n"
    res = run_mode(tmp_path, "--sqpoll", rules=rules)
    assert res["metrics"]["io_uring.rings.sqpoll"] == 1
    assert "io_uring.batch.avg" not in res["metrics"]
    assert "SQPOLL" in res["unmeasured"]["io_uring.batch.avg"]
    rule = res["rules"][0]
    assert rule["status"] == "ERROR" and "SQPOLL" in rule["message"]
    assert res["status"] == "ERROR" and res["_proc"].returncode == 3


def test_registered_ring_is_still_measured(tmp_path: Path, copier: Path) -> None:
    res = run_mode(tmp_path, "--register-ring")
    exp = copier_expectations(TREE)
    m = res["metrics"]
    assert res["details"]["io_uring"]["registered_ring_enters"] == exp["io_uring.enter.calls"]
    assert m["io_uring.enter.submitting"] == exp["io_uring.enter.submitting"]
    assert m["io_uring.batch.avg"] == exp["io_uring.batch.avg"]


def test_defer_taskrun_flags_decoded_and_noted(tmp_path: Path, copier: Path) -> None:
    res = run_mode(tmp_path, "--defer-taskrun")
    flags = res["details"]["io_uring"]["rings"][0]["flags"]
    assert {"IORING_SETUP_SINGLE_ISSUER", "IORING_SETUP_DEFER_TASKRUN"} <= set(flags)
    assert any("DEFER_TASKRUN" in n for n in res["notes"])


def test_legacy_io_is_direct_io(tmp_path: Path, copier: Path) -> None:
    res = run_mode(tmp_path, "--legacy-io")
    m = res["metrics"]
    # read() until it returns 0: n+1 reads and n writes per file.
    assert m["scenario.syscall.read.calls"] == TREE.F * (N + 1)
    assert m["scenario.syscall.write.calls"] == TREE.F * N
    assert m["scenario.direct_io"] == TREE.F * (2 * N + 1)
    assert m["io_uring.rings"] == 0
    assert (
        m["scenario.syscall.statx.calls"]
        == copier_expectations(TREE)["scenario.statx.dirfd_relative"] + 1
    )


def test_fallocate_direct_and_through_the_ring(tmp_path: Path, copier: Path) -> None:
    direct = run_mode(tmp_path / "d", "--direct-fallocate")
    assert direct["metrics"]["syscall.fallocate.calls"] == TREE.F
    assert direct["metrics"]["scenario.syscall.fallocate.calls"] == TREE.F
    ring = run_mode(tmp_path / "r", "--uring-fallocate")
    exp = copier_expectations(TREE)
    assert ring["metrics"].get("syscall.fallocate.calls", 0) == 0
    assert ring["metrics"]["io_uring.enter.calls"] == exp["io_uring.enter.calls"] + TREE.F
    assert ring["metrics"]["io_uring.batch.single"] == TREE.F


def test_dynamic_loader_is_not_scenario_work(tmp_path: Path, copier: Path) -> None:
    res = run_mode(tmp_path, "")
    m = res["metrics"]
    # The loader opens ld.so.cache and libc by path: whole-process path-based opens
    # exceed the scenario's, which are exactly the two roots.
    assert m["openat.path_based"] > m["scenario.openat.path_based"] == 2


@pytest.mark.parametrize("errno", ["EPERM", "ENOSYS"])
def test_blocked_io_uring_is_an_error_not_a_regression(
    tmp_path: Path, copier: Path, deny_syscalls: Path, errno: str
) -> None:
    rules = (
        "  batching: {metric: io_uring.batch.avg, fail: {min: 2}}\n"
        "  uses-ring: {metric: io_uring.rings, fail: {min: 1}}\n"
        "  singles: {metric: io_uring.batch.single, fail: {max: 0}}\n"
    )
    command = f"{deny_syscalls} {errno} io_uring {COPIER} {{src}} {{dst}}"
    res = run_mode(tmp_path, "", rules=rules, command=command)
    assert res["status"] == "ERROR" and res["_proc"].returncode == 3
    blocked = [p for p in res["problems"] if p["code"] == "io_uring-blocked"]
    assert blocked and errno in blocked[0]["message"]
    assert "seccomp" in blocked[0]["message"] and "host mode" in blocked[0]["message"]
    assert res["metrics"]["io_uring.setup.failed"] == 1
    # Not "no ring: FAIL", not "no single-SQE submission: PASS": every rule on io_uring is ERROR.
    assert {r["id"]: r["status"] for r in res["rules"]} == {
        "batching": "ERROR",
        "uses-ring": "ERROR",
        "singles": "ERROR",
    }
    assert "io_uring.rings" not in res["metrics"]
    assert "blocked" in res["unmeasured"]["io_uring.rings"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "io_uring is unavailable here" in report
