"""Sticky PR comment: find (paginated), create, update, de-duplicate, modes, identity."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ci_gate.publish import (
    COMMENT_MAX_CHARS,
    CommentMode,
    CommentResult,
    comment_marker,
    encode_scenario_id,
    resolve_identity,
    sync_sticky_comment,
)
from ci_gate.publish.sticky_comment import compose_body, has_marker
from github_api.fake_server import ACTIONS_BOT, FakeGitHub
from github_api.helpers import make_client

PR = 2
REPO = "Codertocat/Hello-World"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


def sync(
    gh: FakeGitHub,
    body: str,
    *,
    scenario: str = "uring-copy",
    status: str = "FAIL",
    mode: CommentMode | str = "always",
    delete_on_pass: bool = False,
    author: str = ACTIONS_BOT,
) -> CommentResult:
    return sync_sticky_comment(
        make_client(gh),
        REPO,
        PR,
        scenario_id=scenario,
        body=body,
        status=status,
        mode=mode,
        delete_on_pass=delete_on_pass,
        author_login=author,
    )


def writes(gh: FakeGitHub) -> list[tuple[str, str]]:
    return [(r.method, r.operation_id or "") for r in gh.iter_writes()]


def test_first_run_creates_second_run_updates_the_same_comment(gh: FakeGitHub) -> None:
    first = sync(gh, "report v1")
    assert first.action == "created"
    (comment,) = gh.issue_comments(PR)
    assert comment["id"] == first.comment_id
    assert comment["user"]["login"] == ACTIONS_BOT
    assert comment["body"] == comment_marker("uring-copy") + "\nreport v1"
    assert first.url == comment["html_url"]

    second = sync(gh, "report v2")
    assert second.action == "updated"
    assert second.comment_id == first.comment_id
    (comment,) = gh.issue_comments(PR)
    assert comment["body"].endswith("\nreport v2")
    assert comment["updated_at"] > comment["created_at"]

    third = sync(gh, "report v2")
    assert third.action == "unchanged"
    assert writes(gh) == [("POST", "issues/create-comment"), ("PATCH", "issues/update-comment")]


def test_scenarios_have_separate_comments(gh: FakeGitHub) -> None:
    a = sync(gh, "a", scenario="alpha")
    b = sync(gh, "b", scenario="alpha.beta")
    assert a.comment_id != b.comment_id
    assert sync(gh, "a2", scenario="alpha").comment_id == a.comment_id
    assert len(gh.issue_comments(PR)) == 2


def test_foreign_comment_with_our_marker_is_left_untouched(gh: FakeGitHub) -> None:
    forged = gh.add_comment(
        PR, comment_marker("uring-copy") + "\nI am not the bot", author="mallory"
    )
    result = sync(gh, "report")
    assert result.action == "created"
    assert result.comment_id != forged["id"]
    assert result.foreign_ignored == 1
    assert gh.comments[forged["id"]]["body"].endswith("I am not the bot")
    assert all(f"/comments/{forged['id']}" not in r.path for r in gh.iter_writes())
    # The bot's comment, once there, is the one updated; mallory's still untouched.
    again = sync(gh, "report 2")
    assert again.action == "updated" and again.comment_id == result.comment_id
    assert gh.comments[forged["id"]]["updated_at"] == forged["created_at"]


def test_our_comment_on_page_three_of_250(gh: FakeGitHub) -> None:
    for i in range(220):
        gh.add_comment(PR, f"chatter {i}", author=f"user{i % 7}")
    ours = gh.add_comment(PR, comment_marker("uring-copy") + "\nold report", author=ACTIONS_BOT)
    for i in range(29):
        gh.add_comment(PR, f"more chatter {i}", author="someone")
    assert len(gh.issue_comments(PR)) == 250
    assert [c["id"] for c in gh.issue_comments(PR)].index(ours["id"]) == 220  # page 3
    result = sync(gh, "new report")
    assert result.action == "updated"
    assert result.comment_id == ours["id"]
    pages = [r.query.get("page", ["1"])[0] for r in gh.requests_for("issues/list-comments")]
    assert pages == ["1", "2", "3"]
    assert len(gh.issue_comments(PR)) == 250


def test_duplicates_from_a_race_are_cleaned_up(gh: FakeGitHub) -> None:
    marker = comment_marker("uring-copy")
    oldest = gh.add_comment(PR, marker + "\nrun A", author=ACTIONS_BOT)
    unrelated = gh.add_comment(PR, "unrelated", author="someone")
    dup1 = gh.add_comment(PR, marker + "\nrun B", author=ACTIONS_BOT)
    dup2 = gh.add_comment(PR, marker + "\nrun C", author=ACTIONS_BOT)
    foreign = gh.add_comment(PR, marker + "\ncopy-paste", author="mallory")
    result = sync(gh, "run D")
    assert result.action == "updated"
    assert result.comment_id == oldest["id"]
    assert sorted(result.deleted_duplicates) == sorted([dup1["id"], dup2["id"]])
    remaining = {c["id"] for c in gh.issue_comments(PR)}
    assert remaining == {oldest["id"], unrelated["id"], foreign["id"]}
    assert gh.comments[oldest["id"]]["body"].endswith("run D")


def test_mode_never_makes_no_request(gh: FakeGitHub) -> None:
    result = sync(gh, "x", mode="never")
    assert result.action == "skipped"
    assert gh.requests == []


def test_mode_on_failure(gh: FakeGitHub) -> None:
    # Passing with no earlier comment: nothing posted.
    assert sync(gh, "all good", status="PASS", mode="on-failure").action == "skipped"
    assert gh.issue_comments(PR) == []
    # Failing: posted. WARN and ERROR count as "not PASS" too.
    created = sync(gh, "broken", status="FAIL", mode="on-failure")
    assert created.action == "created"
    assert sync(gh, "warned", status="WARN", mode="on-failure").action == "updated"
    # Passing again: the earlier comment is updated to say so (the caller's PASS body).
    passed = sync(gh, "syscall-gate passes now", status="PASS", mode="on-failure")
    assert passed.action == "updated" and passed.comment_id == created.comment_id
    assert gh.issue_comments(PR)[0]["body"].endswith("syscall-gate passes now")


def test_mode_on_failure_delete_on_pass(gh: FakeGitHub) -> None:
    created = sync(gh, "broken", status="ERROR", mode=CommentMode.ON_FAILURE)
    result = sync(gh, "ok", status="PASS", mode=CommentMode.ON_FAILURE, delete_on_pass=True)
    assert result.action == "deleted" and result.comment_id == created.comment_id
    assert gh.issue_comments(PR) == []
    # delete_on_pass does nothing in 'always' mode.
    assert sync(gh, "ok", status="PASS", mode="always", delete_on_pass=True).action == "created"


def test_identity_for_the_actions_token_is_the_configured_bot(gh: FakeGitHub) -> None:
    who = resolve_identity(make_client(gh))
    assert (who.login, who.source) == (ACTIONS_BOT, "configured")
    assert gh.requests_for("users/get-authenticated")[0].status == 403
    app = resolve_identity(make_client(gh), "my-app[bot]")
    assert app.login == "my-app[bot]"
    with pytest.raises(ValueError):
        resolve_identity(make_client(gh), "not a login")


def test_identity_for_a_user_token_comes_from_get_user() -> None:
    with FakeGitHub(token_user="octocat") as gh:
        who = resolve_identity(make_client(gh), "ignored[bot]")
        assert (who.login, who.source) == ("octocat", "GET /user")
        # The bot's marker comment is not octocat's: a new comment is made, by octocat.
        gh.add_comment(PR, comment_marker("s") + "\nbot", author=ACTIONS_BOT)
        result = sync(gh, "mine", scenario="s", author=who.login)
        assert result.action == "created" and result.foreign_ignored == 1
        assert gh.comments[result.comment_id or 0]["user"]["login"] == "octocat"
        gh.assert_valid()


@pytest.mark.parametrize(
    "scenario",
    ["a --> <b>", "x-->", "--!>", "**bold** [link](http://x)", "new\nline", "ü ß 名", "%41", "-"],
)
def test_scenario_ids_cannot_break_out_of_the_marker(scenario: str) -> None:
    marker = comment_marker(scenario)
    inner = marker[len("<!-- ") : -len(" -->")]
    assert "--" not in inner.replace("syscall-gate:scenario=", "")
    for bad in ("<", ">", "\n", " ", "*", "[", "]", "(", ")", "!"):
        assert bad not in inner
    assert marker.count("-->") == 1 and marker.endswith(" -->")
    assert has_marker(compose_body(scenario, "body"), scenario)


def test_scenario_id_encoding_is_injective_and_bounded() -> None:
    ids = ["a-b", "a--b", "a%2Db", "a-%2Db", "a b", "a+b", "A-B"]
    assert len({encode_scenario_id(i) for i in ids}) == len(ids)
    assert encode_scenario_id("uring-copy") == "uring-copy"
    for bad in ("", "x" * 201):
        with pytest.raises(ValueError):
            encode_scenario_id(bad)


def test_marker_must_be_a_whole_line() -> None:
    marker = comment_marker("abc")
    assert has_marker(f"{marker}\nbody", "abc")
    assert not has_marker(f"quote: {marker}", "abc")
    assert not has_marker(comment_marker("abcd"), "abc")


def test_long_bodies_are_truncated_to_the_comment_limit(gh: FakeGitHub) -> None:
    body = "```\n" + "é" * (COMMENT_MAX_CHARS + 500)
    result = sync(gh, body)
    stored = gh.comments[result.comment_id or 0]["body"]
    assert len(stored) <= COMMENT_MAX_CHARS
    assert stored.startswith(comment_marker("uring-copy"))
    assert "truncated" in stored
    assert stored.count("```") % 2 == 0  # the open code fence was closed
