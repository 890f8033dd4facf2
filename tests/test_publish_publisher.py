"""publish() end to end against the loopback fake GitHub (validated against the OpenAPI subset)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_gate.publish import (
    Annotation,
    GitHubContext,
    PublishOutcome,
    comment_marker,
    publish,
    verify_pr_head,
)
from github_api.fake_server import ACTIONS_BOT, FakeGitHub, RecordedRequest
from github_api.helpers import (
    MERGE_SHA,
    RUN_ID,
    RecordingSleep,
    closed_port,
    context_for,
    load_payload,
    make_client,
)

PR_HEAD = load_payload("pull_request.same_repo.json")["pull_request"]["head"]["sha"]
FORK_HEAD = load_payload("pull_request.fork.json")["pull_request"]["head"]["sha"]


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


def run(
    ctx: GitHubContext,
    gh: FakeGitHub | str,
    *,
    status: str = "FAIL",
    sleep: RecordingSleep | None = None,
    **kwargs: Any,
) -> PublishOutcome:
    options: dict[str, Any] = {
        "scenario_id": "uring-copy",
        "status": status,
        "comment_body": f"## syscall-gate: {status}\n\nreport body",
        "check_summary": f"## syscall-gate: {status}",
        "check_title": f"syscall-gate {status}",
        "annotations": [Annotation("policy/gate.yml", 12, 14, "failure", "openat > 40")],
    }
    options.update(kwargs)
    return publish(ctx, client=make_client(gh, sleep=sleep), **options)


def only_warning(outcome: PublishOutcome) -> str:
    assert len(outcome.warnings) == 1, outcome.warnings
    return outcome.warnings[0]


def test_pull_request_publishes_summary_comment_and_check_on_the_head_sha(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    ctx = context_for(gh, tmp_path)
    assert ctx.head_sha == PR_HEAD != MERGE_SHA == ctx.sha
    summary = Path(ctx.step_summary_path or "")
    summary_existed: list[bool] = []

    def observe(_: RecordedRequest) -> None:
        summary_existed.append(summary.exists())

    gh.before_request = observe
    out = run(ctx, gh)
    assert out.warnings == ()
    assert summary_existed and all(summary_existed)  # the summary was written first
    assert summary.read_text(encoding="utf-8") == "## syscall-gate: FAIL\n"
    assert out.summary_written

    assert out.comment is not None and out.comment.action == "created"
    (comment,) = gh.issue_comments(2)
    assert out.comment_id == comment["id"] and out.comment_url == comment["html_url"]
    assert comment["body"].startswith(comment_marker("uring-copy"))
    assert out.identity == ACTIONS_BOT

    assert out.check_run_id is not None and not out.status_fallback_used
    check = gh.check_runs[out.check_run_id]
    assert check["head_sha"] == PR_HEAD  # not GITHUB_SHA (the merge commit)
    assert check["name"] == "syscall-gate"
    assert check["conclusion"] == "failure"
    assert check["details_url"] == f"{gh.server_url}/Codertocat/Hello-World/actions/runs/{RUN_ID}"
    assert gh.check_run_annotations[out.check_run_id][0]["path"] == "policy/gate.yml"
    ops = [r.operation_id for r in gh.iter_writes()]
    assert ops == ["issues/create-comment", "checks/create"]  # comment, then check

    again = run(ctx, gh, status="WARN")
    assert again.comment is not None and again.comment.action == "updated"
    assert again.comment_id == out.comment_id
    assert len(gh.issue_comments(2)) == 1
    assert gh.check_runs[again.check_run_id or 0]["conclusion"] == "neutral"


def test_ghes_base_url(tmp_path: Path) -> None:
    with FakeGitHub(base_path="/api/v3") as gh:
        ctx = context_for(gh, tmp_path)
        assert ctx.api_url.endswith("/api/v3") and not ctx.server_url.endswith("/api/v3")
        out = run(ctx, gh, several_scenarios=True)
        assert out.warnings == ()
        assert all(r.operation_id for r in gh.requests)  # each matched an operation
        assert out.comment_url is not None and out.comment_url.startswith(gh.server_url + "/")
        check = gh.check_runs[out.check_run_id or 0]
        assert check["name"] == "syscall-gate (uring-copy)"
        assert check["details_url"].startswith(gh.server_url + "/Codertocat/")
        gh.assert_valid()  # every request was under /api/v3 and matched the description


def test_403_on_check_run_falls_back_to_a_commit_status(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.fail("checks/create", 403, message="Resource not accessible by integration")
    ctx = context_for(gh, tmp_path)
    out = run(ctx, gh, status="WARN")
    assert out.status_fallback_used and out.check_run_id is None
    (status,) = gh.statuses
    assert status["sha"] == PR_HEAD
    assert status["context"] == "syscall-gate"
    assert status["state"] == "success"  # neutral -> success ...
    assert status["description"].startswith("WARN: ")  # ... saying WARN
    assert len(status["description"]) <= 140
    assert status["target_url"] == ctx.run_url
    warning = only_warning(out)
    assert "`checks: write`" in warning and "commit status was posted instead" in warning
    assert "two-stage" not in warning  # not a fork


def test_user_token_cannot_create_check_runs_so_statuses_are_used(tmp_path: Path) -> None:
    with FakeGitHub(token_user="octocat") as gh:
        ctx = context_for(gh, tmp_path)
        out = run(ctx, gh, status="ERROR", several_scenarios=True)
        assert out.identity == "octocat"
        assert gh.issue_comments(2)[0]["user"]["login"] == "octocat"
        (status,) = gh.statuses
        assert (status["state"], status["context"]) == ("error", "syscall-gate/uring-copy")
        gh.assert_valid()


def test_fork_pr_read_only_token_gives_one_warning_and_the_summary(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    for op in ("issues/create-comment", "checks/create", "repos/create-commit-status"):
        gh.fail(op, 403, message="Resource not accessible by integration")
    ctx = context_for(gh, tmp_path, payload_name="pull_request.fork.json")
    assert ctx.is_fork
    out = run(ctx, gh)
    warning = only_warning(out)
    for needed in ("`pull-requests: write`", "`checks: write`", "`statuses: write`"):
        assert needed in warning
    assert "two-stage" in warning and "workflow_run" in warning and "pull_request" in warning
    assert out.summary_written
    assert Path(ctx.step_summary_path or "").read_text(encoding="utf-8").startswith("## sys")
    assert out.comment is None and out.check_run_id is None and not out.status_fallback_used
    assert gh.requests_for("checks/create")[0].json["head_sha"] == FORK_HEAD


def test_fork_pr_comment_403_names_the_permission_and_the_pattern(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    gh.fail("issues/create-comment", 403, message="Resource not accessible by integration")
    ctx = context_for(gh, tmp_path, payload_name="pull_request.fork.json")
    out = run(ctx, gh)
    warning = only_warning(out)
    assert "`pull-requests: write`" in warning and "two-stage" in warning
    assert "`checks: write`" not in warning
    assert out.summary_written and out.check_run_id is not None


def test_502_then_success(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.fail("issues/list-comments", 502, times=1)
    gh.fail("checks/create", 502, times=2, raw_body=b"<html>502</html>", content_type="text/html")
    sleep = RecordingSleep()
    out = run(context_for(gh, tmp_path), gh, sleep=sleep)
    assert out.warnings == ()
    assert out.comment_id is not None and out.check_run_id is not None
    assert len(gh.check_runs) == 1
    assert sleep.calls == [1.0, 1.0, 2.0]


def test_route_that_always_502s_is_a_bounded_warning(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.fail("checks/create", 502)
    sleep = RecordingSleep()
    out = run(context_for(gh, tmp_path), gh, sleep=sleep)
    (warning,) = out.warnings
    assert "check run was not published" in warning and "502" in warning and "gave up" in warning
    assert sleep.total <= 10.0  # FAST_RETRY.max_total_wait
    assert out.comment_id is not None  # the comment went through before
    assert not gh.statuses  # a 502 is not a reason for the status fallback


def test_garbage_html_answer_is_a_warning(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.fail(
        "issues/list-comments",
        200,
        raw_body=b"<!DOCTYPE html><html><body>Unicorn!</body></html>",
        content_type="text/html",
    )
    out = run(context_for(gh, tmp_path), gh)
    (warning,) = out.warnings
    assert "comment was not published" in warning and "not JSON" in warning
    assert out.check_run_id is not None


def test_invalid_json_on_check_creation_is_a_warning(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.fail("checks/create", 201, raw_body=b'{"id": 12,', content_type="application/json")
    out = run(context_for(gh, tmp_path), gh)
    (warning,) = out.warnings
    assert "check run was not published" in warning
    assert out.comment_id is not None


def test_unreachable_github_still_writes_the_summary(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    ctx = GitHubContext.from_env(
        {
            "GITHUB_API_URL": dead,
            "GITHUB_SERVER_URL": dead,
            "GITHUB_REPOSITORY": "Codertocat/Hello-World",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_SHA": MERGE_SHA,
            "GITHUB_TOKEN": "ghs_unreachable",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md"),
        }
    )
    sleep = RecordingSleep()
    out = run(ctx, dead, sleep=sleep)
    assert out.summary_written
    assert any("unreachable" in w for w in out.warnings)
    assert out.check_run_id is None and out.comment is not None
    assert sleep.total <= 10.0


def test_push_event_has_no_comment_and_checks_github_sha(gh: FakeGitHub, tmp_path: Path) -> None:
    payload = load_payload("push.json")
    ctx = context_for(gh, tmp_path, event_name="push", payload=payload, sha=payload["after"])
    out = run(ctx, gh)
    assert out.comment is not None and out.comment.action == "skipped"
    assert gh.check_runs[out.check_run_id or 0]["head_sha"] == payload["after"]
    assert gh.requests_for("issues/list-comments") == []


def test_comment_modes_through_publish(gh: FakeGitHub, tmp_path: Path) -> None:
    ctx = context_for(gh, tmp_path)
    out = run(ctx, gh, status="PASS", comment_mode="on-failure")
    assert out.comment is not None and out.comment.action == "skipped"
    assert out.check_run_id is not None
    run(ctx, gh, status="FAIL", comment_mode="on-failure")
    deleted = run(ctx, gh, status="PASS", comment_mode="on-failure", delete_on_pass=True)
    assert deleted.comment is not None and deleted.comment.action == "deleted"
    never = run(ctx, gh, comment_mode="never")
    assert never.comment is not None and never.comment.action == "skipped"
    assert gh.issue_comments(2) == []


def test_conclusion_map_and_bad_status(gh: FakeGitHub, tmp_path: Path) -> None:
    ctx = context_for(gh, tmp_path)
    out = run(ctx, gh, status="WARN", conclusion_map={"WARN": "failure"}, comment_mode="never")
    assert gh.check_runs[out.check_run_id or 0]["conclusion"] == "failure"
    count = len(gh.requests)
    with pytest.raises(ValueError):
        run(ctx, gh, status="MAYBE")
    with pytest.raises(ValueError):
        run(ctx, gh, scenario_id="")
    assert len(gh.requests) == count


def test_no_token_means_summary_only(gh: FakeGitHub, tmp_path: Path) -> None:
    ctx = context_for(gh, tmp_path, token=None)
    out = publish(
        ctx,
        scenario_id="s",
        status="FAIL",
        comment_body="b",
        check_summary="s",
        check_title="t",
    )
    assert out.summary_written
    assert "GITHUB_TOKEN is not set" in only_warning(out)
    assert gh.requests == []


# ----------------------------------------------------------------------------- two-stage


WR = load_payload("workflow_run.json")
WR_HEAD = WR["workflow_run"]["head_sha"]
WR_HEAD_REPO = WR["workflow_run"]["head_repository"]["full_name"]


@pytest.fixture
def octo() -> Iterator[FakeGitHub]:
    with FakeGitHub(owner="octo-org", repo="octo-repo") as server:
        yield server
        server.assert_valid()


def workflow_run_ctx(gh: FakeGitHub, tmp_path: Path) -> GitHubContext:
    return context_for(
        gh, tmp_path, event_name="workflow_run", payload=WR, repository="octo-org/octo-repo"
    )


def stored_pr(gh: FakeGitHub, *, head_sha: str, head_repo: str) -> None:
    pr = load_payload("pull_request.same_repo.json")["pull_request"]
    gh.add_pull(pr, head_sha=head_sha, head_repo_full_name=head_repo)


def test_two_stage_workflow_run_posts_after_verifying_the_pr(
    octo: FakeGitHub, tmp_path: Path
) -> None:
    stored_pr(octo, head_sha=WR_HEAD, head_repo=WR_HEAD_REPO)
    ctx = workflow_run_ctx(octo, tmp_path)
    assert ctx.pr_number is None  # untrusted payload entry ignored; number from the artifact
    out = run(ctx, octo, pr_number=2)
    assert out.warnings == ()
    assert out.comment is not None and out.comment.action == "created"
    assert octo.requests[0].operation_id == "pulls/get"
    assert octo.check_runs[out.check_run_id or 0]["head_sha"] == WR_HEAD


def test_two_stage_refuses_a_pr_that_moved_on(octo: FakeGitHub, tmp_path: Path) -> None:
    stored_pr(octo, head_sha="1" * 40, head_repo=WR_HEAD_REPO)
    out = run(workflow_run_ctx(octo, tmp_path), octo, pr_number=2)
    assert out.comment is not None and out.comment.action == "skipped"
    assert any("does not (or no longer) point at" in w for w in out.warnings)
    assert octo.issue_comments(2) == []
    assert out.check_run_id is not None  # the measured commit still gets its check


def test_verify_pr_head(octo: FakeGitHub) -> None:
    stored_pr(octo, head_sha=WR_HEAD, head_repo=WR_HEAD_REPO)
    client = make_client(octo)
    repo = "octo-org/octo-repo"
    assert verify_pr_head(client, repo, 2, WR_HEAD, expected_head_repository=WR_HEAD_REPO)
    assert verify_pr_head(client, repo, 2, WR_HEAD.upper(), expected_head_repository=None)
    assert not verify_pr_head(client, repo, 2, "2" * 40, expected_head_repository=WR_HEAD_REPO)
    assert not verify_pr_head(client, repo, 2, WR_HEAD, expected_head_repository="evil/fork")
    assert not verify_pr_head(client, repo, 3, WR_HEAD, expected_head_repository=WR_HEAD_REPO)


# ----------------------------------------------------------------------------- the token


SENTINEL = "ghs_SENTINEL0token0that0must0never0appear0Zq"


def test_token_never_appears_in_logs_errors_or_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import traceback

    root = logging.getLogger()
    handler = logging.StreamHandler()  # to the real stderr, captured by capfd
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    outcomes: list[PublishOutcome] = []
    try:
        with FakeGitHub(token=SENTINEL) as gh:
            ctx = context_for(gh, tmp_path, token=SENTINEL, payload_name="pull_request.fork.json")
            outcomes.append(run(ctx, gh))  # success
            gh.fail("issues/create-comment", 403, message="Resource not accessible by integration")
            gh.fail("checks/create", 403)
            gh.fail("repos/create-commit-status", 403)
            outcomes.append(run(ctx, gh))  # every write refused
            gh.clear_faults()
            gh.fail("issues/list-comments", 502)
            gh.fail("checks/create", 200, raw_body=b"<html>oops</html>", content_type="text/html")
            outcomes.append(run(ctx, gh))  # retries exhausted + garbage
            gh.clear_faults()
            gh.fail("checks/create", 422, message=f"Invalid token {SENTINEL}")  # echoed back
            outcomes.append(run(ctx, gh))
            client = make_client(gh, token=SENTINEL)
            gh.fail("users/get-authenticated", 500)
            try:
                client.get("/user")
            except Exception:
                traceback.print_exc()  # a traceback as a crashing caller would print it
            gh.assert_valid()
        dead = GitHubContext.from_env(
            {
                "GITHUB_API_URL": f"http://127.0.0.1:{closed_port()}",
                "GITHUB_REPOSITORY": "Codertocat/Hello-World",
                "GITHUB_EVENT_NAME": "push",
                "GITHUB_SHA": MERGE_SHA,
                "GITHUB_TOKEN": SENTINEL,
                "GITHUB_STEP_SUMMARY": str(tmp_path / "dead.md"),
            }
        )
        outcomes.append(run(dead, dead.api_url))
        try:
            make_client(dead.api_url, token=SENTINEL).get("/user")
        except Exception:
            traceback.print_exc()
        print(repr(dead), repr(ctx), outcomes)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    captured = capfd.readouterr()
    assert any(o.warnings for o in outcomes)
    assert "Traceback" in captured.err and "GitHubAPIError" in captured.err
    assert "retrying" in caplog.text  # the logs did run at DEBUG/INFO
    assert SENTINEL not in caplog.text
    assert SENTINEL not in captured.out
    assert SENTINEL not in captured.err
    for outcome in outcomes:
        assert SENTINEL not in repr(outcome)
        assert all(SENTINEL not in w for w in outcome.warnings)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
