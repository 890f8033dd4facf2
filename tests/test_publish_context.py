"""GitHubContext.from_env with the committed webhook payloads."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from ci_gate.publish import ContextError, GitHubContext, Secret
from github_api.helpers import MERGE_SHA, RUN_ID, actions_env, load_payload

API = "https://ghe.example.test/api/v3"
SERVER = "https://ghe.example.test"


def ctx_for(
    tmp_path: Path, event_name: str, payload: dict[str, Any] | None, **kw: Any
) -> GitHubContext:
    env = actions_env(
        tmp_path, api_url=API, server_url=SERVER, event_name=event_name, payload=payload, **kw
    )
    return GitHubContext.from_env(env)


def test_pull_request_same_repo_uses_the_pr_head_not_github_sha(tmp_path: Path) -> None:
    payload = load_payload("pull_request.same_repo.json")
    ctx = ctx_for(tmp_path, "pull_request", payload)
    head = payload["pull_request"]["head"]["sha"]
    assert ctx.head_sha == head != ctx.sha == MERGE_SHA
    assert ctx.pr_number == payload["number"] == 2
    assert ctx.pr_number_trusted
    assert not ctx.is_fork
    assert ctx.head_repository == "Codertocat/Hello-World"
    assert ctx.warnings == ()


def test_pull_request_from_fork(tmp_path: Path) -> None:
    payload = load_payload("pull_request.fork.json")
    ctx = ctx_for(tmp_path, "pull_request", payload)
    assert ctx.is_fork
    assert ctx.head_repository == "forkuser/Hello-World"
    assert ctx.head_sha == payload["pull_request"]["head"]["sha"]


def test_pull_request_target_and_deleted_fork(tmp_path: Path) -> None:
    payload = load_payload("pull_request.fork.json")
    payload["pull_request"]["head"]["repo"] = None
    ctx = ctx_for(tmp_path, "pull_request_target", payload)
    assert ctx.is_fork
    assert ctx.head_repository is None
    assert ctx.pr_number == 2


def test_push_uses_github_sha(tmp_path: Path) -> None:
    payload = load_payload("push.json")
    ctx = ctx_for(tmp_path, "push", payload, sha=payload["after"])
    assert ctx.head_sha == payload["after"]
    assert ctx.pr_number is None
    assert not ctx.is_fork


def test_merge_group_uses_its_head_sha(tmp_path: Path) -> None:
    payload = load_payload("merge_group.json")
    ctx = ctx_for(tmp_path, "merge_group", payload)
    assert ctx.head_sha == payload["merge_group"]["head_sha"]
    assert ctx.pr_number is None


def test_workflow_run_pull_requests_are_untrusted(tmp_path: Path) -> None:
    payload = load_payload("workflow_run.json")
    run = payload["workflow_run"]
    ctx = ctx_for(tmp_path, "workflow_run", payload)
    assert ctx.head_sha == run["head_sha"]
    assert ctx.head_repository == run["head_repository"]["full_name"]
    # The example's only entry has another head sha and another base repository: ignored.
    assert run["pull_requests"][0]["head"]["sha"] != run["head_sha"]
    assert ctx.pr_number is None
    assert not ctx.pr_number_trusted


def test_workflow_run_with_a_consistent_pull_request_entry(tmp_path: Path) -> None:
    payload = load_payload("workflow_run.json")
    run = payload["workflow_run"]
    entry = run["pull_requests"][0]
    entry["head"]["sha"] = run["head_sha"]
    entry["base"]["repo"]["id"] = run["repository"]["id"]
    ctx = ctx_for(tmp_path, "workflow_run", payload)
    assert ctx.pr_number == entry["number"]
    assert not ctx.pr_number_trusted  # still to be verified against the API
    # Two plausible entries: ambiguous, so none is used.
    run["pull_requests"].append(copy.deepcopy(entry) | {"number": 99})
    assert ctx_for(tmp_path, "workflow_run", payload).pr_number is None


def test_workflow_run_from_a_fork(tmp_path: Path) -> None:
    payload = load_payload("workflow_run.json")
    run = payload["workflow_run"]
    run["head_repository"] = copy.deepcopy(run["head_repository"])
    run["head_repository"]["id"] += 1
    run["head_repository"]["full_name"] = "forkuser/octo-repo"
    run["pull_requests"] = []  # GitHub leaves it empty for fork PRs
    ctx = ctx_for(tmp_path, "workflow_run", payload)
    assert ctx.is_fork
    assert ctx.pr_number is None
    assert ctx.head_repository == "forkuser/octo-repo"


def test_urls_come_from_the_environment(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, "push", load_payload("push.json"))
    assert ctx.api_url == API
    assert ctx.server_url == SERVER
    assert ctx.run_url == f"{SERVER}/Codertocat/Hello-World/actions/runs/{RUN_ID}"
    assert (ctx.owner, ctx.repo) == ("Codertocat", "Hello-World")


def test_defaults_and_ghes_api_url_derivation() -> None:
    ctx = GitHubContext.from_env({"GITHUB_REPOSITORY": "o/r"})
    assert ctx.api_url == "https://api.github.com"
    assert ctx.server_url == "https://github.com"
    assert ctx.token is None and not ctx.has_token
    assert ctx.step_summary_path is None
    ghes = GitHubContext.from_env({"GITHUB_REPOSITORY": "o/r", "GITHUB_SERVER_URL": SERVER + "/"})
    assert ghes.api_url == API


def test_bad_environment(tmp_path: Path) -> None:
    with pytest.raises(ContextError):
        GitHubContext.from_env({})
    with pytest.raises(ContextError):
        GitHubContext.from_env({"GITHUB_REPOSITORY": "no-slash"})
    with pytest.raises(ContextError):
        GitHubContext.from_env({"GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": "ftp://x"})
    broken = tmp_path / "event.json"
    broken.write_text("{not json", encoding="utf-8")
    ctx = GitHubContext.from_env(
        {
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(broken),
            "GITHUB_SHA": MERGE_SHA,
        }
    )
    assert ctx.event == {}
    assert ctx.head_sha == MERGE_SHA
    assert any("event payload" in w for w in ctx.warnings)
    assert any("pull_request.head.sha" in w for w in ctx.warnings)


def test_token_does_not_show_itself(tmp_path: Path) -> None:
    token = "ghs_ContextSentinel000111222333444555666"
    ctx = ctx_for(tmp_path, "push", load_payload("push.json"), token=token)
    assert ctx.token is not None and ctx.token.reveal() == token
    for text in (repr(ctx), str(ctx), repr(ctx.token), str(ctx.token), f"{ctx.token}"):
        assert token not in text
    with pytest.raises(TypeError):
        pickle.dumps(ctx)
    with pytest.raises(TypeError):
        json.dumps(dataclasses.asdict(ctx))
    assert Secret("abc").redact("xabcx") == "x***x"
