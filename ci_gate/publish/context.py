"""Where the gate runs on GitHub: the Actions environment, read once into a frozen value.

Only environment variables and the event payload are used; nothing assumes github.com, so
GitHub Enterprise Server works from ``GITHUB_API_URL`` / ``GITHUB_SERVER_URL``.

Head commit and pull request, by event (the check run must go on the commit the PR shows,
which for ``pull_request`` is *not* ``GITHUB_SHA`` — that is the test merge commit):

* ``pull_request``, ``pull_request_target``, ``pull_request_review``,
  ``pull_request_review_comment``: ``pull_request.head.sha`` and ``pull_request.number``;
  fork = the head repository differs from the base repository (or was deleted).
* ``merge_group``: ``merge_group.head_sha``; no PR.
* ``push`` and anything else: ``GITHUB_SHA``; no PR.
* ``workflow_run`` (two-stage publishing): ``workflow_run.head_sha``; the PR comes from
  ``workflow_run.pull_requests``, which is **untrusted**: it is used only when exactly one
  entry has that head sha and targets this repository (for fork PRs the list is empty, so the
  caller passes the PR number from its artifact), and :attr:`GitHubContext.pr_number_trusted`
  stays ``False``; :func:`ci_gate.publish.publisher.verify_pr_head` must confirm it before
  anything is written to the PR.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA_RE = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
_PR_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)


class ContextError(ValueError):
    """The Actions environment is unusable (e.g. no or malformed GITHUB_REPOSITORY)."""


class Secret:
    """A token that does not show itself: ``repr``/``str`` give ``***``, pickling and JSON
    serialisation fail, copies are the same object. Use :meth:`reveal` to get the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def _clean_url(value: str, name: str) -> str:
    url = value.strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ContextError(f"{name} must be an http(s) URL, got {value!r}")
    return url


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _same_repo(a: Any, b: Any) -> bool:
    """Two repository objects from a payload denote the same repository."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return False
    if isinstance(a.get("id"), int) and isinstance(b.get("id"), int):
        return bool(a["id"] == b["id"])
    fa, fb = a.get("full_name"), b.get("full_name")
    return isinstance(fa, str) and isinstance(fb, str) and fa.lower() == fb.lower()


def _sha(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and _SHA_RE.match(value) else None


@dataclass(frozen=True)
class GitHubContext:
    """The Actions run, as seen by the publisher. Build it with :meth:`from_env`."""

    repository: str
    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    event_name: str = ""
    event: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    sha: str = ""
    run_id: str = ""
    run_attempt: str = "1"
    workflow: str = ""
    step_summary_path: str | None = None
    token: Secret | None = field(default=None, repr=False)
    head_sha: str = ""
    pr_number: int | None = None
    pr_number_trusted: bool = False
    head_repository: str | None = None
    is_fork: bool = False
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _REPO_RE.match(self.repository):
            raise ContextError(f"repository must be 'owner/name', got {self.repository!r}")

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def repo(self) -> str:
        return self.repository.split("/", 1)[1]

    @property
    def run_url(self) -> str:
        """The run's page: ``{server}/{owner}/{repo}/actions/runs/{run_id}``."""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def has_token(self) -> bool:
        return bool(self.token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitHubContext:
        """Read the standard Actions variables (``os.environ`` by default).

        Raises :class:`ContextError` only when ``GITHUB_REPOSITORY`` or a URL is malformed; an
        unreadable event payload becomes an empty one plus an entry in ``warnings``.
        """
        env = os.environ if environ is None else environ
        warnings: list[str] = []
        repository = env.get("GITHUB_REPOSITORY", "").strip()
        if not repository:
            raise ContextError("GITHUB_REPOSITORY is not set (not running in GitHub Actions?)")
        server_url = _clean_url(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL, "SERVER_URL")
        if env.get("GITHUB_API_URL"):
            api_url = _clean_url(env["GITHUB_API_URL"], "GITHUB_API_URL")
        elif server_url == DEFAULT_SERVER_URL:
            api_url = DEFAULT_API_URL
        else:  # GitHub Enterprise Server layout
            api_url = f"{server_url}/api/v3"

        event: Mapping[str, Any] = {}
        event_path = env.get("GITHUB_EVENT_PATH")
        if event_path:
            try:
                with open(event_path, encoding="utf-8") as fh:
                    loaded = json.load(fh)
                if isinstance(loaded, Mapping):
                    event = loaded
                else:
                    warnings.append("GITHUB_EVENT_PATH does not hold a JSON object; ignored")
            except (OSError, ValueError) as exc:
                warnings.append(f"cannot read the event payload ({type(exc).__name__}); ignored")

        token_value = env.get("GITHUB_TOKEN", "").strip()
        event_name = env.get("GITHUB_EVENT_NAME", "")
        sha = (env.get("GITHUB_SHA") or "").strip().lower()
        derived = derive_head(event_name, event, sha, repository)
        warnings.extend(derived.warnings)
        summary = env.get("GITHUB_STEP_SUMMARY") or None
        return cls(
            repository=repository,
            api_url=api_url,
            server_url=server_url,
            event_name=event_name,
            event=event,
            sha=sha,
            run_id=env.get("GITHUB_RUN_ID", ""),
            run_attempt=env.get("GITHUB_RUN_ATTEMPT", "1") or "1",
            workflow=env.get("GITHUB_WORKFLOW", ""),
            step_summary_path=summary,
            token=Secret(token_value) if token_value else None,
            head_sha=derived.head_sha,
            pr_number=derived.pr_number,
            pr_number_trusted=derived.pr_number_trusted,
            head_repository=derived.head_repository,
            is_fork=derived.is_fork,
            warnings=tuple(warnings),
        )


@dataclass(frozen=True)
class DerivedHead:
    head_sha: str
    pr_number: int | None
    pr_number_trusted: bool
    head_repository: str | None
    is_fork: bool
    warnings: tuple[str, ...]


def derive_head(
    event_name: str, event: Mapping[str, Any], github_sha: str, repository: str
) -> DerivedHead:
    """Head commit, PR number and fork-ness for an event (see the module docstring)."""
    warnings: list[str] = []

    def fallback(what: str) -> str:
        warnings.append(
            f"{what} missing or malformed in the {event_name} payload; using GITHUB_SHA"
        )
        return github_sha

    if event_name in _PR_EVENTS:
        pr = _get(event, "pull_request")
        head_sha = _sha(_get(pr, "head", "sha")) or fallback("pull_request.head.sha")
        number = _get(pr, "number")
        head_repo = _get(pr, "head", "repo")
        base_repo = _get(pr, "base", "repo")
        head_name = _get(head_repo, "full_name")
        # A deleted head repository (null) can only have been a fork.
        fork = head_repo is None or not _same_repo(head_repo, base_repo)
        return DerivedHead(
            head_sha,
            number if isinstance(number, int) and number > 0 else None,
            isinstance(number, int),
            head_name if isinstance(head_name, str) else None,
            fork,
            tuple(warnings),
        )
    if event_name == "merge_group":
        head_sha = _sha(_get(event, "merge_group", "head_sha")) or fallback("merge_group.head_sha")
        return DerivedHead(head_sha, None, False, repository, False, tuple(warnings))
    if event_name == "workflow_run":
        run = _get(event, "workflow_run")
        head_sha = _sha(_get(run, "head_sha")) or fallback("workflow_run.head_sha")
        head_repo = _get(run, "head_repository")
        this_repo = _get(run, "repository") or _get(event, "repository")
        head_name = _get(head_repo, "full_name")
        fork = not _same_repo(head_repo, this_repo)
        pr_number: int | None = None
        entries = _get(run, "pull_requests")
        if isinstance(entries, list):
            matching = [
                e
                for e in entries
                if _sha(_get(e, "head", "sha")) == head_sha
                and _same_repo(_get(e, "base", "repo"), this_repo)
                and isinstance(_get(e, "number"), int)
            ]
            if len(matching) == 1:
                pr_number = int(matching[0]["number"])
        return DerivedHead(
            head_sha,
            pr_number,
            False,
            head_name if isinstance(head_name, str) else None,
            fork,
            tuple(warnings),
        )
    return DerivedHead(github_sha, None, False, repository, False, tuple(warnings))
