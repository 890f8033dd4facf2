"""Helpers shared by ``tests/test_publish_*.py``: payloads, an Actions environment pointing at
a :class:`FakeGitHub`, and a retry ``sleep`` that records instead of sleeping."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_gate.publish import GitHubClient, GitHubContext, RetryPolicy

from .fake_server import DEFAULT_TOKEN, FakeGitHub

PAYLOAD_DIR = Path(__file__).resolve().parent / "payloads"
#: What GITHUB_SHA is on a pull_request event: the test merge commit, not the PR head.
MERGE_SHA = "9f0e8d7c6b5a49382716f5e4d3c2b1a098765432"
RUN_ID = "4242424242"


def load_payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOAD_DIR / name).read_text(encoding="utf-8"))
    return data


def manifest() -> dict[str, Any]:
    return load_payload("MANIFEST.json")


@dataclass
class RecordingSleep:
    """Stands in for ``time.sleep``: records the requested delays, returns at once."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    @property
    def total(self) -> float:
        return sum(self.calls)


FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=4.0, max_total_wait=10.0)


def make_client(
    gh: FakeGitHub | str,
    *,
    token: str = DEFAULT_TOKEN,
    retry: RetryPolicy = FAST_RETRY,
    sleep: RecordingSleep | None = None,
    clock: Any = None,
) -> GitHubClient:
    api_url = gh.api_url if isinstance(gh, FakeGitHub) else gh
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    return GitHubClient(
        api_url,
        token,
        retry=retry,
        sleep=sleep if sleep is not None else RecordingSleep(),
        timeout=(2.0, 5.0),
        **kwargs,
    )


def actions_env(
    tmp_path: Path,
    *,
    api_url: str,
    server_url: str,
    event_name: str,
    payload: dict[str, Any] | None,
    sha: str = MERGE_SHA,
    token: str | None = DEFAULT_TOKEN,
    repository: str = "Codertocat/Hello-World",
    summary: bool = True,
) -> dict[str, str]:
    env = {
        "GITHUB_API_URL": api_url,
        "GITHUB_SERVER_URL": server_url,
        "GITHUB_REPOSITORY": repository,
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_SHA": sha,
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKFLOW": "syscall gate",
    }
    if payload is not None:
        event_path = tmp_path / "event.json"
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        env["GITHUB_EVENT_PATH"] = str(event_path)
    if token is not None:
        env["GITHUB_TOKEN"] = token
    if summary:
        env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "step_summary.md")
    return env


def context_for(
    gh: FakeGitHub,
    tmp_path: Path,
    *,
    event_name: str = "pull_request",
    payload_name: str | None = "pull_request.same_repo.json",
    payload: dict[str, Any] | None = None,
    **kwargs: Any,
) -> GitHubContext:
    if payload is None and payload_name is not None:
        payload = load_payload(payload_name)
    env = actions_env(
        tmp_path,
        api_url=gh.api_url,
        server_url=gh.server_url,
        event_name=event_name,
        payload=payload,
        **kwargs,
    )
    return GitHubContext.from_env(env)


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
