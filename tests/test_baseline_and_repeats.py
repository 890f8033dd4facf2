"""Issue 8: compare with the base branch, and never flap.

A git repository made here holds two commits of the reference copier: the second
regresses batching (batch 8 -> 1) and adds a path-based statx per file. Expected
values follow from the copier's construction (examples/uring-copy/README.md).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from ci_gate.compare.baseline import metric_deltas
from ci_gate.policy.evaluate import BaseSide
from helpers import REPO, gate

MiB = 1 << 20
F = 3 + 2  # regular files of the fixture below: 3 files + one per nested directory
N = math.ceil(MiB / 131072)  # chunks per file

RULES = """\
rules:
  batching:
    metric: io_uring.batch.avg
    baseline: {warn: {max_decrease: {pct: 5}}, fail: {max_decrease: {pct: 15, abs: 1}}}
  path-statx:
    metric: scenario.statx.path_based
    baseline: {fail: {max_increase: {abs: 0}}}
  enters:
    metric: io_uring.enter.calls
    fail: {max: 1000}
"""


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()  # fmt: skip


def make_repo(tmp_path: Path, baseline: str) -> tuple[Path, str]:
    """main: the good copier; pr: batching regressed and a path-based statx per file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for name in ("uring-copy.c", "Makefile"):
        shutil.copy(REPO / "examples" / "uring-copy" / name, repo / name)
    (repo / "policy.yml").write_text(
        textwrap.dedent(f"""\
            version: 1
            {baseline}
            scenario:
              build: make -s
              command: ./uring-copy {{src}} {{dst}}
              fixture: {{files: 3, file_size: 1MiB, dirs: 2}}
            """)
        + RULES
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "good copier")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "pr")
    source = (repo / "uring-copy.c").read_text()
    assert "\t.batch = 8,\n" in source
    source = source.replace("\t.batch = 8,\n", "\t.batch = 1,\n\t.extra_statx = 1,\n")
    (repo / "uring-copy.c").write_text(source)
    git(repo, "commit", "-q", "-am", "regress: one SQE per enter, and a statx by path")
    return repo, base


def run_in(repo: Path, out: Path, *args: str) -> tuple[int, dict, str]:
    proc = gate("run", "--policy", str(repo / "policy.yml"), "--workdir", str(repo),
                "--out", str(out), *args)  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    return proc.returncode, res, proc.stdout + proc.stderr


def rule(res: dict, rid: str) -> dict:
    return next(r for r in res["rules"] if r["id"] == rid)


def test_merge_base_baseline_shows_the_regression(tmp_path: Path) -> None:
    repo, base = make_repo(tmp_path, "baseline: {ref: main}")
    rc, res, out = run_in(repo, tmp_path / "out")
    assert rc == 1, out
    b = res["baseline"]
    assert b["available"] and b["source"] == "merge-base" and b["commit"] == base
    assert b["environment_differences"] == []
    assert b["cost_seconds"] > 0 and b["cached_build"] is False
    assert res["revision"] == git(repo, "rev-parse", "HEAD")
    # Head: batch 1 -> every enter takes one SQE; base: batch 8.
    batching = rule(res, "batching")
    assert batching["status"] == "FAIL"
    assert batching["baseline"]["base"] == 8 and batching["value"] == 1
    assert batching["baseline"]["delta"] == -7
    statx = rule(res, "path-statx")
    assert statx["status"] == "FAIL"
    assert statx["baseline"]["base"] == 0 and statx["value"] == F
    # A syscall one side never called is 0 there, as the rules count it; not "n/a".
    assert [d["metric"] for d in res["deltas"] if d["base"] is None or d["head"] is None] == []
    moved = {d["metric"]: d for d in res["deltas"] if d["moved"]}
    assert moved["io_uring.enter.calls"]["base"] == 2 * F * math.ceil(N / 8)
    assert moved["io_uring.enter.calls"]["head"] == 2 * F * N
    assert moved["scenario.statx.path_based"]["delta"] == F
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### Changes against the base" in report
    assert f"commit `{base[:12]}`" in report
    assert "| `io_uring.batch.avg` | 8 | 1 | -7, -87.5% |" in report
    # The base's own report is kept beside the head's.
    assert (tmp_path / "out" / "baseline" / "report.md").exists()

    # A second run reuses the base's build.
    rc2, res2, out2 = run_in(repo, tmp_path / "out2")
    assert rc2 == 1, out2
    assert res2["baseline"]["cached_build"] is True
    assert "build reused" in out2


def test_baseline_from_another_kernel_downgrades_to_warn(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path, "")
    git(repo, "checkout", "-q", "main")
    rc, base_res, out = run_in(repo, tmp_path / "base")
    assert rc == 0, out
    base_res["environment"]["kernel"] = "5.4.0-other"
    saved = tmp_path / "base-results.json"
    saved.write_text(json.dumps(base_res))
    git(repo, "checkout", "-q", "pr")
    rc, res, out = run_in(repo, tmp_path / "head", "--baseline-file", str(saved))
    assert rc == 0, out  # WARN, not FAIL
    assert res["baseline"]["source"] == "file"
    assert any("kernel" in d for d in res["baseline"]["environment_differences"])
    for rid in ("batching", "path-statx"):
        r = rule(res, rid)
        assert r["status"] == "WARN"
        assert "another environment" in r["message"]
    report = (tmp_path / "head" / "report.md").read_text()
    assert "the baseline ran in another environment" in report


def test_missing_baseline_follows_on_unavailable(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path, "baseline: {file: nowhere.json, on_unavailable: error}")
    rc, res, _ = run_in(repo, tmp_path / "out")
    assert rc == 3
    assert res["baseline"]["available"] is False
    assert "does not exist" in res["baseline"]["why_not"]
    assert rule(res, "batching")["status"] == "ERROR"
    assert rule(res, "enters")["status"] == "PASS"


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [("id", "cp", 'its id is "cp"'),
     ("fixture", {"files": 9, "file_size": 1024, "dirs": 0, "symlinks": False},
      'its fixture is {"files": 9')],
)  # fmt: skip
def test_a_baseline_of_another_scenario_is_not_compared(
    tmp_path: Path, key: str, value: object, shown: str
) -> None:
    repo, _ = make_repo(tmp_path, "")
    git(repo, "checkout", "-q", "main")
    rc, base_res, out = run_in(repo, tmp_path / "base")
    assert rc == 0, out
    base_res["scenario"][key] = value
    saved = tmp_path / "base-results.json"
    saved.write_text(json.dumps(base_res))
    rc, res, out = run_in(repo, tmp_path / "head", "--baseline-file", str(saved))
    b = res["baseline"]
    assert b["available"] is False
    assert f"the baseline is of another scenario: {shown}" in b["why_not"]
    # on_unavailable defaults to warn: the change rules say so, the value rules stand.
    assert rule(res, "batching")["status"] == "WARN"
    assert rule(res, "enters")["status"] == "PASS"
    assert rc == 0, out


def test_repeats_of_a_deterministic_target_have_no_spread(tmp_path: Path, copier: Path) -> None:
    pol = tmp_path / "p.yml"
    pol.write_text(
        "version: 1\nscenario:\n"
        f"  command: {copier} {{src}} {{dst}}\n"
        "  fixture: {files: 2, file_size: 512KiB, dirs: 1}\n"
        "  repeats: 3\n"
        "rules:\n"
        "  statx: {metric: scenario.syscall.statx.calls, fail: {max: 100}}\n"
        "  batching: {metric: io_uring.batch.avg, fail: {min: 2}, aggregate: worst}\n"
    )
    proc = gate("run", "--policy", str(pol), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["details"]["repeats"]["count"] == 3
    varied = res["details"]["repeats"]["varied"]
    assert not [m for m in varied if m.startswith(("scenario.", "io_uring."))]
    for r in res["rules"]:
        assert r["spread"]["min"] == r["spread"]["max"] and len(r["spread"]["values"]) == 3
    assert (tmp_path / "out" / "trace-r3.txt").exists()


def test_a_varying_target_turns_a_borderline_fail_into_unstable(
    tmp_path: Path, copier: Path
) -> None:
    # Each run reads a counter and adds that many path-based statx per file: 0, then F, then 2F.
    state = tmp_path / "state"
    state.write_text("0")
    wrapper = tmp_path / "varying.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {state}); echo $((n + 1)) > {state}\n"
        f'exec {copier} --extra-statx "$n" "$1" "$2"\n'
    )
    wrapper.chmod(0o755)

    def run_with(max_spread: str, out: Path) -> dict:
        state.write_text("0")
        pol = tmp_path / "p.yml"
        pol.write_text(
            "version: 1\nscenario:\n"
            f"  command: {wrapper} {{src}} {{dst}}\n"
            "  fixture: {files: 3, file_size: 64KiB, dirs: 2}\n"
            "  repeats: 3\n"
            "rules:\n"
            f"  path-statx: {{metric: scenario.statx.path_based, fail: {{max: 3}}{max_spread}}}\n"
        )
        gate("run", "--policy", str(pol), "--out", str(out))
        return json.loads((out / "results.json").read_text())

    res = run_with("", tmp_path / "a")
    r = rule(res, "path-statx")
    assert r["spread"]["values"] == [0, F, 2 * F]
    assert r["value"] == F  # the median fails (> 3) ...
    assert r["status"] == "WARN" and r["message"].startswith(
        "unstable"
    )  # ... but one repeat passed
    assert f"range 0 to {2 * F}" in r["message"]
    assert res["details"]["repeats"]["varied"]["scenario.statx.path_based"] == {
        "min": 0, "median": F, "max": 2 * F, "values": [0, F, 2 * F]
    }  # fmt: skip
    report = (tmp_path / "a" / "report.md").read_text()
    assert "**WARN** unstable" in report and "### Repeated runs" in report

    # A spread the policy calls noise keeps the aggregated verdict.
    res = run_with(", max_spread: 20", tmp_path / "b")
    assert rule(res, "path-statx")["status"] == "FAIL"


def test_deltas_look_up_what_a_side_lacks_as_the_rules_do() -> None:
    base = BaseSide({"syscall.read.calls": 2.0}, unmeasured={"io_uring.ops.READ": "not root"})
    head = BaseSide({"syscall.read.calls": 2.0, "syscall.access.calls": 1.0,
                     "io_uring.ops.READ": 5.0})  # fmt: skip
    assert base.metrics is not None and head.metrics is not None
    rows = {d["metric"]: d for d in metric_deltas(base.metrics, head.metrics, base.value,
                                                   head.value)}  # fmt: skip
    # access never called in the base: 0 there, as a rule on it would count it.
    assert (rows["syscall.access.calls"]["base"], rows["syscall.access.calls"]["delta"]) == (0, 1)
    # Not measured in the base (no tracepoints there): no number to compare.
    assert rows["io_uring.ops.READ"]["base"] is None and rows["io_uring.ops.READ"]["moved"]
    assert rows["syscall.read.calls"]["moved"] is False
