"""The wiring between results.json and the publisher: size budgets, annotations, untrusted
input, workflow-command escaping, merging. (End to end through the CLI: test_cli_publish.py.)"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ci_gate.errors import UsageError
from ci_gate.publish import CHECK_SUMMARY_MAX_BYTES, COMMENT_MAX_CHARS, comment_marker
from ci_gate.publish.gate import (
    MAX_ANNOTATIONS,
    annotations_for,
    link_url,
    parse_conclusion_map,
    render_bodies,
)
from ci_gate.publish.results_input import ResultsError, load_results, validate
from ci_gate.publish.sticky_comment import compose_body
from ci_gate.publish.workflow_commands import WarningLog, command, escape_data, escape_property
from ci_gate.report import markdown, merge
from ci_gate.report.results import SCHEMA


def rule(rid: str, status: str = "PASS", **extra: Any) -> dict[str, Any]:
    out = {
        "id": rid,
        "metric": "syscall.openat.calls",
        "per": None,
        "value": 5,
        "threshold": "fail if > 4",
        "status": status,
        "mode": "enforce",
        "reason": None,
        "hint": None,
        "message": "fails: > 4" if status == "FAIL" else "within bounds",
        "origin": {"file": "policy/gate.yml", "line": 7, "col": 3},
    }
    out.update(extra)
    return out


def results(rules: list[dict[str, Any]], *, sid: str = "s1", **extra: Any) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for x in rules:
        counts[x["status"]] = counts.get(x["status"], 0) + 1
    statuses = [x["status"] for x in rules if x["mode"] == "enforce"]
    status = next((s for s in ("ERROR", "FAIL", "WARN") if s in statuses), "PASS")
    out = {
        "schema": SCHEMA,
        "tool": {"name": "syscall-gate", "version": "0.1.0"},
        "generated_at": "2024-05-01 12:00:00 UTC",
        "status": status,
        "problems": [],
        "notes": [],
        "scenario": {"id": sid},
        "summary": counts,
        "rules": rules,
        "metrics": {"syscall.openat.calls": 5},
    }
    out.update(extra)
    return out


# ----------------------------------------------------------------------------- workflow commands


def test_workflow_command_escaping() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = command("warning", "x\n::error::y", title="t:1,2")
    assert line == "::warning title=t%3A1%2C2::x%0A::error::y"
    assert "\n" not in line


def test_warning_log_prints_each_warning_once_without_the_token() -> None:
    lines: list[str] = []
    log = WarningLog(lines.append, redact=lambda s: s.replace("SECRET", "***"))
    log.warning("refused with SECRET\n::error::x")
    log.warning("refused with SECRET\n::error::x")
    log.note("done\n::error::y")
    assert len(lines) == 2
    assert lines[0].startswith("::warning title=syscall-gate::refused with ***")
    assert all("SECRET" not in line and "\n" not in line for line in lines)
    assert lines[1].startswith("syscall-gate: ")


# ----------------------------------------------------------------------------- options


def test_parse_conclusion_map() -> None:
    assert parse_conclusion_map("WARN=success, error=neutral") == {
        "WARN": "success",
        "ERROR": "neutral",
    }
    assert parse_conclusion_map("") == {}
    for bad in ("WARN", "WARN=green", "MAYBE=success", "WARN=stale"):
        with pytest.raises(ValueError):
            parse_conclusion_map(bad)


def test_link_url_cannot_leave_a_markdown_link() -> None:
    url = link_url("https://ghes.example/o/r/actions/runs/1?x=a b)(<script>")
    assert not any(c in url for c in " ()<>")
    assert url.startswith("https://ghes.example/o/r/actions/runs/1?x=")


# ----------------------------------------------------------------------------- size budgets


def test_the_check_summary_budget_is_in_bytes() -> None:
    # 30 failing rules with 1,000 three-byte characters of hint each: ~33k characters,
    # ~93k bytes. The comment (characters) keeps everything; the check summary (bytes)
    # must drop sections.
    res = results([rule(f"r{i}", "FAIL", hint="€" * 1000) for i in range(30)])
    full = markdown.render(res)
    assert len(full) < COMMENT_MAX_CHARS < CHECK_SUMMARY_MAX_BYTES * 1.2 < len(full.encode())
    bodies = render_bodies(res, report_url="https://example.test/run/1")
    assert bodies.comment == full
    assert len(bodies.check_summary.encode()) <= CHECK_SUMMARY_MAX_BYTES
    assert "left out to fit GitHub's size limit" in bodies.check_summary
    assert "[the full report](https://example.test/run/1)" in bodies.check_summary
    assert all(f"`r{i}`" in bodies.check_summary for i in range(30))
    composed = compose_body("s1", bodies.comment)
    assert len(composed) <= COMMENT_MAX_CHARS and "truncated" not in composed


def test_a_summary_table_longer_than_the_budget_keeps_the_worst_rows() -> None:
    rules = [rule(f"passing-rule-{i:04d}") for i in range(3000)]
    rules += [rule("late-failure", "FAIL"), rule("late-error", "ERROR", value=None)]
    res = results(rules)
    bodies = render_bodies(res, report_url=None)
    composed = compose_body("s1", bodies.comment)
    assert len(composed) <= COMMENT_MAX_CHARS and "truncated" not in composed
    assert len(bodies.check_summary.encode()) <= CHECK_SUMMARY_MAX_BYTES
    for text in (bodies.comment, bodies.check_summary):
        assert "### Summary" in text
        assert "`late-failure`" in text and "`late-error`" in text  # shown first
        assert "more rule(s) left out" in text
        assert "report.md in the run's artifact" in text


def test_merged_report_keeps_the_table_and_drops_scenarios_from_the_bottom() -> None:
    one = results([rule("a", "FAIL", hint="x" * 40_000)], sid="one")
    two = results([rule("b", hint="y" * 40_000)], sid="two")
    merged = merge.merge([one, two])
    text = markdown.render(merged, max_chars=60_000)
    assert len(text) <= 60_000
    assert "| `one` | `a` |" in text and "| `two` | `b` |" in text
    assert "2 scenarios" in text


# ----------------------------------------------------------------------------- annotations


def test_annotations_only_for_failing_rules_with_a_repository_path() -> None:
    ws = "/home/runner/work/r/r"
    res = results(
        [
            rule("fail-rel", "FAIL"),
            rule("fail-abs", "FAIL", origin={"file": f"{ws}/p.yml", "line": 3, "col": 1}),
            rule("fail-outside", "FAIL", origin={"file": "/etc/p.yml", "line": 3, "col": 1}),
            rule("fail-up", "FAIL", origin={"file": "../../x.yml", "line": 3, "col": 1}),
            rule("fail-builtin", "FAIL", origin={"file": "builtin:x", "line": 3, "col": 1}),
            rule("error", "ERROR", value=None),
            rule("advisory", "FAIL", mode="advisory"),
            rule("warn", "WARN"),
            rule("pass"),
        ]
    )
    found, left_out = annotations_for(res, workspace=ws, cwd=ws)
    got = [(a.path, a.start_line, a.annotation_level, a.title) for a in found]
    assert got == [
        ("policy/gate.yml", 7, "failure", "syscall-gate: fail-rel FAIL"),
        ("p.yml", 3, "failure", "syscall-gate: fail-abs FAIL"),
        ("policy/gate.yml", 7, "failure", "syscall-gate: error ERROR"),
        ("policy/gate.yml", 7, "warning", "syscall-gate: advisory FAIL"),
    ]
    assert left_out == 3
    # Run from a subdirectory, relative policy paths are relative to it.
    found, _ = annotations_for(res, workspace=ws, cwd=f"{ws}/sub")
    assert found[0].path == "sub/policy/gate.yml"


def test_annotations_are_capped() -> None:
    res = results([rule(f"r{i}", "FAIL") for i in range(MAX_ANNOTATIONS + 7)])
    found, left_out = annotations_for(res, workspace=None, cwd="/w")
    assert len(found) == MAX_ANNOTATIONS and left_out == 7


# ----------------------------------------------------------------------------- untrusted input


def test_validate_escapes_thresholds_and_reconciles_the_status() -> None:
    res = results([rule("a", "FAIL", threshold="<b>x</b> | `y`")])
    res["status"] = "PASS"  # forged
    clean = validate(res)
    assert clean["status"] == "FAIL"
    assert clean["rules"][0]["threshold"] == "&lt;b&gt;x&lt;/b&gt; \\| \\`y\\`"
    assert res["rules"][0]["threshold"] == "<b>x</b> | `y`"  # the input is not modified
    problem = {"code": "x", "message": "m", "severity": "error"}
    assert validate(results([rule("a")], problems=[problem]))["status"] == "ERROR"


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(status="OK"),
        lambda r: r["rules"][0].update(status="fine"),
        lambda r: r["rules"][0].update(value=True),
        lambda r: r["rules"][0].update(threshold=["x"]),
        lambda r: r["rules"][0]["origin"].update(line="7"),
        lambda r: r.update(summary={"PASS": "1"}),
        lambda r: r["scenario"].update(id=""),
        lambda r: r.update(details={"io_uring": {"rings": [{"id": "1<b>", "pid": 1}]}}),
        lambda r: r.update(github={"pr_number": 0}),
        lambda r: r.update(schema="other"),
    ],
)
def test_validate_rejects_wrong_types(change: Any) -> None:
    res = results([rule("a")])
    change(res)
    with pytest.raises(ResultsError, match="not a valid syscall-gate results file"):
        validate(res)


def test_load_results_refuses_nan_deep_nesting_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    res = results([rule("a")])
    path.write_text(json.dumps(res).replace('"value": 5', '"value": NaN'))
    with pytest.raises(ResultsError, match="not readable JSON"):
        load_results(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ResultsError):
        load_results(tmp_path)
    with pytest.raises(ResultsError, match="no such file"):
        load_results(tmp_path / "nothing.json")
    path.write_text(json.dumps(res))
    assert load_results(tmp_path)["rules"][0]["id"] == "a"


# ----------------------------------------------------------------------------- merge


def test_merge_status_counts_and_github_block() -> None:
    gh = {"repository": "o/r", "event_name": "pull_request", "run_id": "1",
          "head_sha": "a" * 40, "pr_number": 2}  # fmt: skip
    one = results([rule("a", "WARN"), rule("b")], sid="one", github=gh)
    two = results([rule("a", "FAIL")], sid="two", github=dict(gh))
    merged = merge.merge([one, two], merged_id="all")
    assert merged["status"] == "FAIL" and merged["exit_code"] == 1
    assert merged["summary"] == {"PASS": 1, "WARN": 1, "FAIL": 1}
    assert [(x["scenario"], x["id"]) for x in merged["rules"]] == [
        ("one", "a"),
        ("one", "b"),
        ("two", "a"),
    ]
    assert merged["github"] == gh and merged["scenario"] == {"id": "all"}
    validate(merged)  # publishable
    other = copy.deepcopy(two)
    other["github"]["head_sha"] = "b" * 40
    assert "github" not in merge.merge([one, other])


def test_merge_refuses_duplicate_ids_and_merged_inputs(tmp_path: Path) -> None:
    one = results([rule("a")], sid="same")
    with pytest.raises(UsageError, match="appears twice"):
        merge.merge([one, copy.deepcopy(one)], sources=["x", "y"])
    with pytest.raises(UsageError, match="also a scenario id"):
        merge.merge([one, results([], sid="merged")])
    (tmp_path / "results.json").write_text(json.dumps(merge.merge([one])))
    with pytest.raises(UsageError, match="already a merged result"):
        merge.load(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        merge.load(tmp_path / "nothing")


def test_comment_marker_budget_accounts_for_the_marker() -> None:
    sid = "a-long-scenario-id-" * 10
    res = results([rule(f"r{i}", "FAIL", hint="x" * 700) for i in range(100)], sid=sid)
    body = render_bodies(res, report_url=None).comment
    composed = compose_body(sid, body)
    assert composed.startswith(comment_marker(sid))
    assert len(composed) <= COMMENT_MAX_CHARS and "truncated by syscall-gate" not in composed
