"""GitHubClient against the loopback fake: headers, pagination, retries, errors."""

from __future__ import annotations

import email.utils
from collections.abc import Iterator

import pytest

from ci_gate.publish import GitHubAPIError, RetryPolicy
from ci_gate.publish.github_client import repo_path
from github_api.fake_server import DEFAULT_TOKEN, FakeGitHub
from github_api.helpers import FAST_RETRY, RecordingSleep, closed_port, make_client

LIST = "issues/list-comments"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
        server.assert_valid()


def comments_path(gh: FakeGitHub, issue: int = 2) -> str:
    return repo_path(f"{gh.owner}/{gh.repo}", "issues", issue, "comments")


def test_sends_the_documented_headers(gh: FakeGitHub) -> None:
    client = make_client(gh)
    client.get(comments_path(gh))
    (req,) = gh.requests
    assert req.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert req.headers["accept"] == "application/vnd.github+json"
    assert req.headers["x-github-api-version"] == "2022-11-28"
    assert req.headers["user-agent"].startswith("syscall-gate/")


def test_pagination_follows_link_headers(gh: FakeGitHub) -> None:
    for i in range(230):
        gh.add_comment(2, f"comment {i}", author="someone")
    client = make_client(gh)
    bodies = [c["body"] for c in client.paginate(comments_path(gh))]
    assert bodies == [f"comment {i}" for i in range(230)]
    reqs = gh.requests_for(LIST)
    assert len(reqs) == 3
    assert reqs[0].query == {"per_page": ["100"]}
    assert reqs[2].query == {"per_page": ["100"], "page": ["3"]}


def test_5xx_is_retried_then_succeeds(gh: FakeGitHub) -> None:
    gh.fail(LIST, 502, times=2)
    sleep = RecordingSleep()
    client = make_client(gh, sleep=sleep)
    assert client.get(comments_path(gh)) == []
    assert [r.status for r in gh.requests_for(LIST)] == [502, 502, 200]
    assert sleep.calls == [1.0, 2.0]  # exponential backoff, injected sleep


def test_a_route_that_always_fails_gives_up_within_the_bound(gh: FakeGitHub) -> None:
    gh.fail(LIST, 502, raw_body=b"<html>Bad gateway</html>", content_type="text/html")
    sleep = RecordingSleep()
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0, max_total_wait=12.0)
    client = make_client(gh, sleep=sleep, retry=policy)
    with pytest.raises(GitHubAPIError) as info:
        client.get(comments_path(gh))
    assert info.value.status == 502
    assert "gave up" in str(info.value)
    assert sleep.total <= policy.max_total_wait
    assert sleep.calls == [1.0, 2.0, 4.0]  # the next wait (8s) would exceed 12s in total
    assert len(gh.requests_for(LIST)) == 4


def test_attempts_are_bounded_too(gh: FakeGitHub) -> None:
    gh.fail(LIST, 503)
    sleep = RecordingSleep()
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, max_total_wait=100.0)
    with pytest.raises(GitHubAPIError):
        make_client(gh, sleep=sleep, retry=policy).get(comments_path(gh))
    assert len(gh.requests_for(LIST)) == 3
    assert len(sleep.calls) == 2


def test_429_honours_retry_after(gh: FakeGitHub) -> None:
    gh.fail(LIST, 429, times=1, headers={"Retry-After": "3"}, message="too many")
    sleep = RecordingSleep()
    assert make_client(gh, sleep=sleep).get(comments_path(gh)) == []
    assert sleep.calls == [3.0]


def test_secondary_rate_limit_403_with_retry_after(gh: FakeGitHub) -> None:
    gh.fail(
        LIST,
        403,
        times=1,
        headers={"Retry-After": "2"},
        message="You have exceeded a secondary rate limit.",
    )
    sleep = RecordingSleep()
    assert make_client(gh, sleep=sleep).get(comments_path(gh)) == []
    assert sleep.calls == [2.0]


def test_primary_rate_limit_waits_until_reset(gh: FakeGitHub) -> None:
    now = 1_700_000_000.0
    gh.fail(
        LIST,
        403,
        times=1,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 4)},
        message="API rate limit exceeded",
    )
    sleep = RecordingSleep()
    client = make_client(gh, sleep=sleep, clock=lambda: now)
    assert client.get(comments_path(gh)) == []
    assert sleep.calls == [5.0]  # until the reset, plus one second


def test_rate_limit_longer_than_the_budget_fails_at_once(gh: FakeGitHub) -> None:
    gh.fail(LIST, 429, headers={"Retry-After": "3600"})
    sleep = RecordingSleep()
    with pytest.raises(GitHubAPIError) as info:
        make_client(gh, sleep=sleep).get(comments_path(gh))
    assert info.value.kind == "rate-limited"
    assert sleep.calls == []


def test_plain_403_is_a_permission_error_and_not_retried(gh: FakeGitHub) -> None:
    gh.fail(LIST, 403, message="Resource not accessible by integration")
    with pytest.raises(GitHubAPIError) as info:
        make_client(gh).get(comments_path(gh))
    err = info.value
    assert err.status == 403 and err.is_permission_error
    assert err.github_message == "Resource not accessible by integration"
    assert "Resource not accessible by integration" in str(err)
    assert len(gh.requests_for(LIST)) == 1


def test_garbage_answers_are_typed_errors(gh: FakeGitHub) -> None:
    gh.fail(LIST, 200, times=1, raw_body=b"<!DOCTYPE html><p>hi</p>", content_type="text/html")
    with pytest.raises(GitHubAPIError) as info:
        make_client(gh).get(comments_path(gh))
    assert info.value.kind == "invalid-response"
    assert "not JSON" in str(info.value)
    gh.fail(LIST, 200, times=1, raw_body=b'{"truncated": ', content_type="application/json")
    with pytest.raises(GitHubAPIError, match="not JSON"):
        make_client(gh).get(comments_path(gh))
    gh.fail(LIST, 200, times=1, json_body={"not": "a list"}, off_spec=True)
    with pytest.raises(GitHubAPIError, match="expected a JSON array"):
        list(make_client(gh).paginate(comments_path(gh)))


def test_unreachable_api_is_retried_then_reported() -> None:
    sleep = RecordingSleep()
    client = make_client(f"http://127.0.0.1:{closed_port()}/api/v3", sleep=sleep)
    with pytest.raises(GitHubAPIError) as info:
        client.get("/user")
    assert info.value.kind == "unreachable"
    assert info.value.status is None
    assert sleep.total <= FAST_RETRY.max_total_wait
    assert DEFAULT_TOKEN not in str(info.value) and DEFAULT_TOKEN not in repr(info.value)


def test_next_links_to_another_origin_are_not_followed(gh: FakeGitHub) -> None:
    client = make_client(gh)
    with pytest.raises(GitHubAPIError, match="another origin"):
        client.request("GET", "http://127.0.0.2:1/user")
    assert gh.requests == []


def test_repr_and_errors_never_show_the_token(gh: FakeGitHub) -> None:
    gh.fail(LIST, 422, message=f"echoing {DEFAULT_TOKEN} back")
    client = make_client(gh)
    assert DEFAULT_TOKEN not in repr(client)
    with pytest.raises(GitHubAPIError) as info:
        client.get(comments_path(gh))
    assert DEFAULT_TOKEN not in str(info.value)
    assert DEFAULT_TOKEN not in repr(info.value)
    assert DEFAULT_TOKEN not in (info.value.github_message or "")


def test_retry_after_as_an_http_date(gh: FakeGitHub) -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 6, usegmt=True)
    gh.fail(LIST, 429, times=1, headers={"Retry-After": date})
    sleep = RecordingSleep()
    assert make_client(gh, sleep=sleep, clock=lambda: now).get(comments_path(gh)) == []
    assert sleep.calls == [6.0]


def test_exhausted_rate_limit_without_reset_uses_the_default_wait(gh: FakeGitHub) -> None:
    gh.fail(LIST, 403, times=1, headers={"x-ratelimit-remaining": "0"}, message="limit")
    sleep = RecordingSleep()
    policy = RetryPolicy(rate_limit_default_wait=7.0, max_total_wait=10.0)
    assert make_client(gh, sleep=sleep, retry=policy).get(comments_path(gh)) == []
    assert sleep.calls == [7.0]
