"""Check runs (annotations in batches, summary limit), commit statuses, status mapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ci_gate.publish import (
    CHECK_SUMMARY_MAX_BYTES,
    Annotation,
    check_run_name,
    create_check_run,
    create_commit_status,
    map_conclusion,
    map_status_state,
    status_context,
)
from ci_gate.publish.checks import status_description
from github_api.fake_server import FakeGitHub
from github_api.helpers import make_client

REPO = "Codertocat/Hello-World"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


def make_annotations(n: int) -> list[Annotation]:
    return [
        Annotation(
            path="policy/syscall-gate.yml",
            start_line=i + 1,
            end_line=i + 1,
            annotation_level="failure" if i % 2 else "warning",
            message=f"rule {i} exceeded",
            title=f"rule-{i}",
        )
        for i in range(n)
    ]


def test_annotations_beyond_50_are_sent_in_batches(gh: FakeGitHub) -> None:
    result = create_check_run(
        make_client(gh),
        REPO,
        SHA,
        name="syscall-gate",
        conclusion="failure",
        title="3 rules failed",
        summary="## Summary",
        annotations=make_annotations(123),
    )
    assert result.annotations_sent == 123
    assert result.requests == 3
    bodies = gh.check_run_requests[result.check_run_id]
    assert [len(b["output"].get("annotations", [])) for b in bodies] == [50, 50, 23]
    assert bodies[0]["status"] == "completed" and bodies[0]["conclusion"] == "failure"
    assert bodies[0]["head_sha"] == SHA
    stored = gh.check_run_annotations[result.check_run_id]
    assert [a["start_line"] for a in stored] == list(range(1, 124))
    assert gh.check_runs[result.check_run_id]["output"]["annotations_count"] == 123
    ops = [r.operation_id for r in gh.iter_writes()]
    assert ops == ["checks/create", "checks/update", "checks/update"]


def test_exactly_50_annotations_need_one_request(gh: FakeGitHub) -> None:
    result = create_check_run(
        make_client(gh),
        REPO,
        SHA,
        name="syscall-gate",
        conclusion="success",
        title="ok",
        summary="ok",
        annotations=make_annotations(50),
    )
    assert result.requests == 1 and result.annotations_sent == 50


def test_too_large_summary_is_truncated_at_a_utf8_boundary(gh: FakeGitHub) -> None:
    summary = "| a | b |\n" + "€" * 30000  # 3 bytes each: ~90 kB
    result = create_check_run(
        make_client(gh),
        REPO,
        SHA,
        name="syscall-gate",
        conclusion="failure",
        title="big",
        summary=summary,
    )
    assert result.summary_truncated
    sent = gh.check_run_requests[result.check_run_id][0]["output"]["summary"]
    assert len(sent.encode("utf-8")) <= CHECK_SUMMARY_MAX_BYTES
    assert sent.startswith("| a | b |\n€€€")
    assert "truncated" in sent
    assert "\ufffd" not in sent


def test_summary_within_limit_is_sent_verbatim(gh: FakeGitHub) -> None:
    summary = "x" * CHECK_SUMMARY_MAX_BYTES
    result = create_check_run(
        make_client(gh), REPO, SHA, name="n", conclusion="neutral", title="t", summary=summary
    )
    assert not result.summary_truncated
    assert gh.check_runs[result.check_run_id]["output"]["summary"] == summary


def test_commit_status(gh: FakeGitHub) -> None:
    res = create_commit_status(
        make_client(gh),
        REPO,
        SHA,
        context="syscall-gate/uring-copy",
        state="success",
        description="WARN: " + "long " * 60,
        target_url="https://example.test/run",
    )
    (stored,) = gh.statuses
    assert stored["sha"] == SHA and stored["context"] == "syscall-gate/uring-copy"
    assert len(stored["description"]) <= 140 and stored["description"] == res.description


def test_status_mapping_and_overrides() -> None:
    assert [map_conclusion(s) for s in ("PASS", "WARN", "FAIL", "ERROR")] == [
        "success",
        "neutral",
        "failure",
        "failure",
    ]
    assert map_conclusion("warn", {"WARN": "failure"}) == "failure"
    assert map_conclusion("SKIP", {"SKIP": "skipped"}) == "skipped"
    with pytest.raises(ValueError):
        map_conclusion("MAYBE")
    with pytest.raises(ValueError):
        map_conclusion("PASS", {"PASS": "green"})
    assert map_status_state("PASS", "success") == "success"
    assert map_status_state("WARN", "neutral") == "success"
    assert map_status_state("FAIL", "failure") == "failure"
    assert map_status_state("ERROR", "failure") == "error"
    assert status_description("WARN", "2 rules near the limit").startswith("WARN: ")
    assert len(status_description("FAIL", "x" * 500)) == 140


def test_names() -> None:
    assert check_run_name() == "syscall-gate"
    assert check_run_name("uring-copy") == "syscall-gate (uring-copy)"
    assert status_context() == "syscall-gate"
    assert status_context("uring-copy") == "syscall-gate/uring-copy"


def test_annotation_validation() -> None:
    with pytest.raises(ValueError):
        Annotation("/abs/path.yml", 1, 1, "failure", "m")
    with pytest.raises(ValueError):
        Annotation("p.yml", 3, 2, "failure", "m")
    with pytest.raises(ValueError):
        Annotation("p.yml", 1, 1, "error", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Annotation("p.yml", 1, 1, "notice", "")
    big = Annotation("p.yml", 1, 1, "notice", "m" * 70000, title="t" * 300).to_api()
    assert len(big["message"].encode()) <= 64 * 1024
    assert len(big["title"]) == 255


def test_invalid_sha_is_refused_before_any_request(gh: FakeGitHub) -> None:
    with pytest.raises(ValueError):
        create_check_run(
            make_client(gh), REPO, "main", name="n", conclusion="success", title="t", summary="s"
        )
    assert gh.requests == []
