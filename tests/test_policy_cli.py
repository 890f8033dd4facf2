"""The policy through the real command line: validate-policy, and verdicts on a real trace.

The trace is of /bin/true under the real strace: by construction it runs one
execve, never sets up io_uring, and `analyze` without --root has no scenario.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO, gate

DIGEST = r"sha256:[0-9a-f]{64}"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- validate-policy ------------------------------------------------------------------------------


def test_shipped_policies_are_valid() -> None:
    names = ["file-tool", "io-uring-copier", "minimal", "uring-copy-demo"]
    proc = gate("validate-policy", *(f"policies/{n}.yml" for n in names))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        raw = yaml.safe_load((REPO / "policies" / f"{name}.yml").read_text())
        extends = ""
        if name == "uring-copy-demo":  # all its rules come from the preset it extends
            raw = yaml.safe_load((REPO / "policies" / "io-uring-copier.yml").read_text())
            extends = ", extends builtin:io-uring-copier"
        rules = raw["rules"].values()
        enforced = sum(1 for r in rules if r.get("mode", "enforce") == "enforce")
        assert re.fullmatch(
            rf"policies/{name}\.yml: valid \({len(rules)} rules, {enforced} enforced{extends}; "
            rf"digest {DIGEST}\)",
            line,
        ), line


def test_invalid_policy_exits_2_listing_every_error(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yml",
        "version: 1\n"
        "rules:\n"
        "  a: {metric: syscalls.total, fail: {max: 1}, warn: {max: 1}}\n"  # warn.max at 59
        "  b: {metric: syscalls.total, mode: no, fail: {max: 1}}\n",  # no at 37
    )
    proc = gate("validate-policy", str(bad))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{bad}:3:59: error: rules.a.warn.max: warn.max (1) must be below fail.max (1): a value "
        "above warn.max warns before one above fail.max fails; as written the warning can "
        "never show",
        f"{bad}:4:37: error: rules.b.mode: 'no' is read by YAML 1.1 as the boolean false, not a "
        "mode; write enforce, advisory or disabled",
    ]


def test_mixed_files_report_each_and_exit_2(tmp_path: Path) -> None:
    good = write(tmp_path / "good.yml", "version: 1\nrules:\n  r: {metric: syscalls.total, "
                 "fail: {max: 5}}\n")  # fmt: skip
    newer = write(tmp_path / "newer.yml", "version: 2\n")
    missing = tmp_path / "missing.yml"
    proc = gate("validate-policy", str(good), str(newer), str(missing))
    assert proc.returncode == 2
    assert re.fullmatch(rf"{re.escape(str(good))}: valid \(1 rules, 1 enforced; digest "
                        rf"{DIGEST}\)\n", proc.stdout)  # fmt: skip
    assert proc.stderr.splitlines() == [
        f"{newer}:1:10: error: version: policy version 2 is newer than this gate understands "
        "(it reads version 1); upgrade syscall-gate: a newer action tag, or `pip install -U "
        "syscall-gate`",
        f"{missing}:1:1: error: no such policy file",
    ]


def test_no_enforced_rule_is_valid_with_a_warning(tmp_path: Path) -> None:
    text = "version: 1\nextends: [builtin:minimal]\nrules:\n"
    text += "  trace-intact: {mode: advisory}\n  no-legacy-calls: {mode: disabled}\n"
    path = write(tmp_path / "p.yml", text)
    proc = gate("validate-policy", str(path))
    assert proc.returncode == 0
    assert proc.stderr == (
        f"{path}:3:1: warning: rules: no rule is enforced: the report shows the metrics, but the "
        "gate can never fail on them\n"
    )
    assert re.fullmatch(rf"{re.escape(str(path))}: valid \(2 rules, 0 enforced, extends "
                        rf"builtin:minimal; digest {DIGEST}\)\n", proc.stdout)  # fmt: skip


@pytest.mark.parametrize("change", ["{}", "5"])
def test_a_wrong_change_limit_exits_2_not_3(tmp_path: Path, change: str) -> None:
    text = "version: 1\nrules:\n"
    limit = f"{{fail: {{max_increase: {change}}}}}"
    text += f"  b: {{metric: syscall.statx.calls, baseline: {limit}}}\n"
    path = write(tmp_path / "p.yml", text)
    proc = gate("validate-policy", str(path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"{path}:3:68: error: rules.b.baseline.fail.max_increase: "), (
        proc.stderr
    )
    assert "internal error" not in proc.stderr and "write pct and/or abs" in proc.stderr


def test_a_limit_that_can_never_trip_is_a_warning_and_exits_0(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  b: {metric: io_uring.batch.avg, fail: {min: -3}}\n"
    path = write(tmp_path / "p.yml", text)
    proc = gate("validate-policy", str(path))
    assert proc.returncode == 0
    assert proc.stderr == (
        f"{path}:3:47: warning: rules.b.fail.min: fail.min -3 can never trip: "
        "io_uring.batch.avg is never below 0\n"
    )


def test_hostile_policies_are_refused_quickly(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    obj = write(tmp_path / "obj.yml", "version: 1\nrules:\n  r:\n    metric: syscalls.total\n"
                f"    fail: !!python/object/apply:os.system ['touch {marker}']\n")  # fmt: skip
    proc = gate("validate-policy", str(obj), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"{obj}:5:11: error: rules.r.fail: the YAML tag !!python/object/apply:os.system is not "
        "allowed in a policy\n"
    )
    assert not marker.exists()


# -- verdicts on a real trace ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def true_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = tmp_path_factory.mktemp("trace") / "true.trace"
    subprocess.run(["strace", "-f", "-y", "-o", str(trace), "/bin/true"], check=True, timeout=60)
    assert "execve(" in trace.read_text()
    return trace


def analyze(trace: Path, policy: Path, out: Path) -> tuple[int, dict[str, Any], str]:
    proc = gate("analyze", str(trace), "--policy", str(policy), "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    return proc.returncode, results, (out / "report.md").read_text()


def statuses(results: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {r["id"]: (r["status"], r["mode"]) for r in results["rules"]}


def canonical_digest(resolved: dict[str, Any]) -> str:
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


RULES = {
    "one-exec": {"metric": "syscall.execve.calls", "fail": {"eq": 1}},
    "ops-read": {"metric": "io_uring.ops.READ", "fail": {"max": 0}},
    "opens": {"metric": "scenario.opens.user_files", "per": "file", "fail": {"max": 2}},
}


def test_unmeasured_metrics_make_their_rules_error_and_the_run_exit_3(
    tmp_path: Path, true_trace: Path
) -> None:
    policy = write(tmp_path / "p.yml", yaml.safe_dump({"version": 1, "rules": RULES}))
    code, results, report = analyze(true_trace, policy, tmp_path / "out")
    assert code == 3
    assert results["status"] == "ERROR"
    assert statuses(results) == {
        "one-exec": ("PASS", "enforce"),
        "ops-read": ("ERROR", "enforce"),
        "opens": ("ERROR", "enforce"),
    }
    by_id = {r["id"]: r for r in results["rules"]}
    assert by_id["one-exec"]["value"] == 1
    assert by_id["ops-read"]["value"] is None
    assert by_id["ops-read"]["message"].startswith("not measured: ")
    assert by_id["opens"]["message"].startswith("not measured: no scenario roots")
    assert report.startswith("## syscall-gate: **ERROR**")
    # The resolved policy's digest, in results.json and (shortened) in the report.
    digest = canonical_digest({"version": 1, "rules": RULES})
    assert results["policy"]["digest"] == digest
    assert f"`{digest[:19]}`" in report


def test_the_measurable_rule_alone_passes(tmp_path: Path, true_trace: Path) -> None:
    policy = write(tmp_path / "p.yml", yaml.safe_dump(
        {"version": 1, "rules": {"one-exec": RULES["one-exec"]}}))  # fmt: skip
    code, results, report = analyze(true_trace, policy, tmp_path / "out")
    assert (code, results["status"]) == (0, "PASS")
    assert "enforces no rule" not in report


def test_unmeasured_advisory_rule_shows_error_but_does_not_decide(
    tmp_path: Path, true_trace: Path
) -> None:
    rules = {"one-exec": RULES["one-exec"], "ops-read": {**RULES["ops-read"], "mode": "advisory"}}
    policy = write(tmp_path / "p.yml", yaml.safe_dump({"version": 1, "rules": rules}))
    code, results, _ = analyze(true_trace, policy, tmp_path / "out")
    assert (code, results["status"]) == (0, "PASS")
    assert statuses(results) == {"one-exec": ("PASS", "enforce"), "ops-read": ("ERROR", "advisory")}


def test_failing_rule_exits_1(tmp_path: Path, true_trace: Path) -> None:
    rules = {"no-exec": {"metric": "syscall.execve.calls", "fail": {"max": 0}}}
    policy = write(tmp_path / "p.yml", yaml.safe_dump({"version": 1, "rules": rules}))
    code, results, _ = analyze(true_trace, policy, tmp_path / "out")
    assert (code, results["status"], statuses(results)) == (
        1, "FAIL", {"no-exec": ("FAIL", "enforce")},
    )  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["version: 1\n",
     "version: 1\nrules:\n  r: {metric: syscall.execve.calls, fail: {max: 0}, mode: advisory}\n"],
    ids=["no-rules", "advisory-only"],
)  # fmt: skip
def test_report_says_when_no_rule_is_enforced(tmp_path: Path, true_trace: Path, text: str) -> None:
    policy = write(tmp_path / "p.yml", text)
    code, results, report = analyze(true_trace, policy, tmp_path / "out")
    assert code == 0
    assert results["policy"]["enforced_rules"] == 0
    assert "\n> This policy enforces no rule: the gate cannot fail on metrics.\n" in report


def test_report_names_the_presets_a_policy_extends(tmp_path: Path, true_trace: Path) -> None:
    policy = write(tmp_path / "p.yml", "version: 1\nextends: [builtin:minimal]\n")
    _, results, report = analyze(true_trace, policy, tmp_path / "out")
    assert results["policy"]["sources"] == ["builtin:minimal", str(policy)]
    preset = yaml.safe_load((REPO / "policies" / "minimal.yml").read_text())
    digest = canonical_digest({"version": 1, "rules": preset["rules"]})
    assert results["policy"]["digest"] == digest
    assert (
        f"| Policy | `{policy}` (resolved: `{digest[:19]}`), extends `builtin:minimal` |" in report
    )


def test_analyze_with_an_invalid_policy_exits_2(tmp_path: Path, true_trace: Path) -> None:
    policy = write(tmp_path / "p.yml", "version: 1\nrules:\n  r: {metric: syscalls.total}\n")
    proc = gate("analyze", str(true_trace), "--policy", str(policy), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"{policy}:3:3: error: rules.r: rule 'r' has neither `warn`, `fail` nor `baseline` "
        "bounds, so it can never trip\n"
    )


def test_security_score_is_unknown_when_a_deducting_rule_could_not_be_judged(
    tmp_path: Path, true_trace: Path
) -> None:
    rules = {
        "opens": {**RULES["opens"], "deduct": 5},
        "security": {"metric": "security.score", "warn": {"min": 80}},
    }
    policy = write(tmp_path / "p.yml", yaml.safe_dump({"version": 1, "rules": rules}))
    code, results, _ = analyze(true_trace, policy, tmp_path / "out")
    assert (code, results["status"]) == (3, "ERROR")
    by_id = {r["id"]: r for r in results["rules"]}
    assert by_id["security"]["status"] == "ERROR"
    assert by_id["security"]["message"] == (
        "not measured: the score depends on rule 'opens' (deduct 5), which could not be judged"
    )
    assert results["security"]["score"] is None


def test_security_score_counts_failing_deductions(tmp_path: Path, true_trace: Path) -> None:
    rules = {
        "no-exec": {"metric": "syscall.execve.calls", "fail": {"max": 0}, "deduct": 30},
        "one-exec": {**RULES["one-exec"], "deduct": 50},
        "security": {"metric": "security.score", "mode": "advisory", "warn": {"min": 80}},
    }
    policy = write(tmp_path / "p.yml", yaml.safe_dump({"version": 1, "rules": rules}))
    code, results, _ = analyze(true_trace, policy, tmp_path / "out")
    # One execve: no-exec fails (-30), one-exec passes; 100 - 30 = 70 < 80 warns (advisory).
    assert (code, results["status"]) == (1, "FAIL")
    assert results["security"]["score"] == 70
    assert statuses(results)["security"] == ("WARN", "advisory")
