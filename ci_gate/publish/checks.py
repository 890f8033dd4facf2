"""The check run on the head commit, and the commit-status fallback.

A check run is created completed, with the conclusion mapped from the gate status and the
first 50 annotations; further annotations go in ``PATCH /check-runs/{id}`` requests of at
most 50 each (GitHub appends them). When creating the check run answers 403 (the token lacks
``checks: write``, a user token, or a read-only fork-PR token) the caller falls back to a
commit status (:func:`create_commit_status`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._text import (
    CHECK_SUMMARY_MAX_BYTES,
    CHECK_TITLE_MAX_CHARS,
    STATUS_DESCRIPTION_MAX_CHARS,
    truncate_plain,
    truncate_utf8,
)
from .github_client import GitHubAPIError, GitHubClient, repo_path

CHECK_NAME: Final = "syscall-gate"
STATUS_CONTEXT: Final = "syscall-gate"
ANNOTATIONS_PER_REQUEST: Final = 50
ANNOTATION_TEXT_MAX_BYTES: Final = 64 * 1024
ANNOTATION_TITLE_MAX_CHARS: Final = 255

GATE_STATUSES: Final = ("PASS", "WARN", "FAIL", "ERROR")
Conclusion = Literal[
    "success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"
]
CONCLUSIONS: Final[frozenset[str]] = frozenset(
    {"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"}
)
DEFAULT_CONCLUSIONS: Final[Mapping[str, str]] = {
    "PASS": "success",
    "WARN": "neutral",
    "FAIL": "failure",
    "ERROR": "failure",
}
AnnotationLevel = Literal["notice", "warning", "failure"]
StatusState = Literal["success", "failure", "error", "pending"]

_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class Annotation:
    """One annotation: a policy file line range (paths relative to the repository root)."""

    path: str
    start_line: int
    end_line: int
    annotation_level: AnnotationLevel
    message: str
    title: str | None = None
    raw_details: str | None = None

    def __post_init__(self) -> None:
        if not self.path or self.path.startswith("/") or "\\" in self.path:
            raise ValueError(f"annotation path must be repository-relative: {self.path!r}")
        if self.start_line < 1 or self.end_line < self.start_line:
            raise ValueError(f"bad annotation lines {self.start_line}..{self.end_line}")
        if self.annotation_level not in ("notice", "warning", "failure"):
            raise ValueError(f"bad annotation level {self.annotation_level!r}")
        if not self.message:
            raise ValueError("annotation message must not be empty")

    def to_api(self) -> dict[str, Any]:
        note = "\n…(truncated)"
        out: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "annotation_level": self.annotation_level,
            "message": truncate_utf8(self.message, ANNOTATION_TEXT_MAX_BYTES, note)[0],
        }
        if self.title:
            out["title"] = truncate_plain(self.title, ANNOTATION_TITLE_MAX_CHARS)
        if self.raw_details:
            out["raw_details"] = truncate_utf8(self.raw_details, ANNOTATION_TEXT_MAX_BYTES, note)[0]
        return out


def check_run_name(scenario_id: str | None = None) -> str:
    """``syscall-gate``, or ``syscall-gate (scenario)`` when a run has several scenarios."""
    return CHECK_NAME if not scenario_id else f"{CHECK_NAME} ({truncate_plain(scenario_id, 100)})"


def status_context(scenario_id: str | None = None) -> str:
    return STATUS_CONTEXT if not scenario_id else f"{STATUS_CONTEXT}/{scenario_id}"


def map_conclusion(status: str, overrides: Mapping[str, str] | None = None) -> str:
    """Gate status -> check conclusion (:data:`DEFAULT_CONCLUSIONS`, then ``overrides``)."""
    mapping = {**DEFAULT_CONCLUSIONS, **{k.upper(): v for k, v in (overrides or {}).items()}}
    key = status.upper()
    if key not in mapping:
        raise ValueError(f"unknown gate status {status!r}")
    conclusion = mapping[key]
    if conclusion not in CONCLUSIONS or conclusion == "stale":
        raise ValueError(f"not a check run conclusion: {conclusion!r}")
    return conclusion


def map_status_state(status: str, conclusion: str) -> StatusState:
    """Commit status state: ``error`` for a gate ERROR, else from the conclusion (neutral
    counts as success; the description then says WARN)."""
    if status.upper() == "ERROR":
        return "error"
    if conclusion in ("success", "neutral", "skipped"):
        return "success"
    return "failure"


def summary_within_limit(
    summary: str, max_bytes: int = CHECK_SUMMARY_MAX_BYTES
) -> tuple[str, bool]:
    note = (
        "\n\n> **Note:** syscall-gate truncated this summary to GitHub's limit of "
        f"{max_bytes:,} bytes; the full report is in the job summary and the run's artifacts.\n"
    )
    return truncate_utf8(summary, max_bytes, note)


@dataclass(frozen=True)
class CheckRunResult:
    check_run_id: int
    url: str | None
    annotations_sent: int
    requests: int
    summary_truncated: bool


def _validate_sha(sha: str) -> str:
    sha = sha.lower()
    if not _SHA_RE.match(sha):
        raise ValueError(f"not a commit sha: {sha!r}")
    return sha


def create_check_run(
    client: GitHubClient,
    repository: str,
    head_sha: str,
    *,
    name: str,
    conclusion: str,
    title: str,
    summary: str,
    annotations: Sequence[Annotation] = (),
    details_url: str | None = None,
    external_id: str | None = None,
) -> CheckRunResult:
    """Create a completed check run; annotations beyond 50 are sent by ``PATCH`` in batches.

    :class:`GitHubAPIError` propagates (a 403 on creation means: fall back to a status).
    """
    head_sha = _validate_sha(head_sha)
    if conclusion not in CONCLUSIONS:
        raise ValueError(f"not a check run conclusion: {conclusion!r}")
    title = truncate_plain(title, CHECK_TITLE_MAX_CHARS) or name
    summary, truncated = summary_within_limit(summary)
    batches = [
        [a.to_api() for a in annotations[i : i + ANNOTATIONS_PER_REQUEST]]
        for i in range(0, len(annotations), ANNOTATIONS_PER_REQUEST)
    ] or [[]]
    output: dict[str, Any] = {"title": title, "summary": summary}
    if batches[0]:
        output["annotations"] = batches[0]
    body: dict[str, Any] = {
        "name": name,
        "head_sha": head_sha,
        "status": "completed",
        "conclusion": conclusion,
        "output": output,
    }
    if details_url:
        body["details_url"] = details_url
    if external_id:
        body["external_id"] = external_id
    data = client.post(repo_path(repository, "check-runs"), body)
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), int):
        raise GitHubAPIError(
            "POST check-runs: answer has no id", kind="invalid-response", method="POST"
        )
    run_id = int(data["id"])
    url = data.get("html_url") if isinstance(data.get("html_url"), str) else None
    sent = len(batches[0])
    requests_made = 1
    for batch in batches[1:]:
        client.patch(
            repo_path(repository, "check-runs", run_id),
            {"output": {"title": title, "summary": summary, "annotations": batch}},
        )
        sent += len(batch)
        requests_made += 1
    return CheckRunResult(run_id, url, sent, requests_made, truncated)


@dataclass(frozen=True)
class CommitStatusResult:
    context: str
    state: StatusState
    description: str


def status_description(status: str, title: str) -> str:
    """``<STATUS>: <title>`` on one line, at most 140 characters."""
    return truncate_plain(f"{status.upper()}: {title}", STATUS_DESCRIPTION_MAX_CHARS)


def create_commit_status(
    client: GitHubClient,
    repository: str,
    sha: str,
    *,
    context: str,
    state: StatusState,
    description: str,
    target_url: str | None,
) -> CommitStatusResult:
    sha = _validate_sha(sha)
    description = truncate_plain(description, STATUS_DESCRIPTION_MAX_CHARS)
    body: dict[str, Any] = {"state": state, "context": context, "description": description}
    if target_url:
        body["target_url"] = target_url
    client.post(repo_path(repository, "statuses", sha), body)
    return CommitStatusResult(context, state, description)
