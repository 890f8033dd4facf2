"""One pull-request comment per (PR, scenario), found again and updated in place.

Ours = the body contains the hidden marker ``<!-- syscall-gate:scenario=ID -->`` **and** the
author is the token's identity. A comment carrying the marker but written by anyone else is
never edited or deleted (anyone can paste the marker).

Identity of the token (:func:`resolve_identity`):

1. ``GET /user``. This answers for user tokens (classic or fine-grained PAT) with the login.
2. For the Actions ``GITHUB_TOKEN`` — an installation token of the GitHub Actions app — and
   for other GitHub App installation tokens it answers ``403 Resource not accessible by
   integration`` (``401`` if the token is bad). ``GET /app`` would need the app's JWT, which a
   workflow does not have, so the login is then taken from configuration: by default
   ``github-actions[bot]`` (the author GitHub shows for comments made with ``GITHUB_TOKEN``);
   a workflow that posts with its own app's installation token configures ``<app-slug>[bot]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from ._text import COMMENT_MAX_CHARS, to_utf8, truncate_chars
from .github_client import GitHubAPIError, GitHubClient, repo_path

DEFAULT_BOT_LOGIN: Final = "github-actions[bot]"
MARKER_PREFIX: Final = "<!-- syscall-gate:scenario="
MARKER_SUFFIX: Final = " -->"
SCENARIO_ID_MAX_CHARS: Final = 200
_SAFE = re.compile(r"[A-Za-z0-9._-]")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")

_log = logging.getLogger("ci_gate.publish.comment")


class CommentMode(StrEnum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


def is_login(text: str) -> bool:
    """A plausible GitHub login (``name`` or ``app-slug[bot]``)."""
    return bool(_LOGIN.match(text))


def encode_scenario_id(scenario_id: str) -> str:
    """The id as it appears in the marker: every character outside ``[A-Za-z0-9._-]`` is
    percent-encoded (UTF-8), and so is the second ``-`` of any ``--``, so the result can
    neither end the HTML comment (``-->``, ``--!>``), nor contain spaces, ``<``, ``>``,
    newlines or Markdown. The encoding is injective (``%`` itself is encoded)."""
    if not scenario_id or len(scenario_id) > SCENARIO_ID_MAX_CHARS:
        raise ValueError(f"scenario id must have 1..{SCENARIO_ID_MAX_CHARS} characters")
    out: list[str] = []
    for ch in scenario_id:
        if _SAFE.fullmatch(ch) and not (ch == "-" and out and out[-1] == "-"):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", errors="strict")))
    return "".join(out)


def comment_marker(scenario_id: str) -> str:
    return f"{MARKER_PREFIX}{encode_scenario_id(scenario_id)}{MARKER_SUFFIX}"


def has_marker(body: str, scenario_id: str) -> bool:
    marker = comment_marker(scenario_id)
    return any(line.strip() == marker for line in body.splitlines())


def compose_body(scenario_id: str, body: str, *, max_chars: int = COMMENT_MAX_CHARS) -> str:
    """The marker line followed by ``body``, truncated (with a note) to ``max_chars``."""
    marker = comment_marker(scenario_id) + "\n"
    body = to_utf8(body).decode("utf-8")  # lone surrogates -> '?'
    note = "\n\n_… comment truncated by syscall-gate to fit GitHub's size limit; see the run._\n"
    text, _ = truncate_chars(body, max_chars - len(marker), note)
    return marker + text


# ---------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    login: str
    source: Literal["GET /user", "configured"]


def resolve_identity(client: GitHubClient, configured_login: str | None = None) -> Identity:
    """Who the token writes as; see the module docstring. Other API errors propagate."""
    fallback = configured_login or DEFAULT_BOT_LOGIN
    if not _LOGIN.match(fallback):
        raise ValueError(f"not a GitHub login: {fallback!r}")
    try:
        data = client.get("/user")
    except GitHubAPIError as exc:
        if exc.status in (401, 403, 404) and exc.kind == "http":
            _log.debug("GET /user answered %s; using the configured login %s", exc.status, fallback)
            return Identity(fallback, "configured")
        raise
    login = data.get("login") if isinstance(data, Mapping) else None
    if not isinstance(login, str) or not login:
        raise GitHubAPIError(
            "GET /user: answer has no login", kind="invalid-response", method="GET", path="/user"
        )
    return Identity(login, "GET /user")


# ---------------------------------------------------------------------------- lookup


@dataclass(frozen=True)
class FoundComments:
    ours: tuple[Mapping[str, Any], ...]  # oldest first
    foreign: tuple[Mapping[str, Any], ...]  # marker present, someone else wrote it


def _author(comment: Mapping[str, Any]) -> str:
    user = comment.get("user")
    login = user.get("login") if isinstance(user, Mapping) else None
    return login if isinstance(login, str) else ""


def classify_comments(
    comments: Iterable[Any], scenario_id: str, author_login: str
) -> FoundComments:
    ours: list[Mapping[str, Any]] = []
    foreign: list[Mapping[str, Any]] = []
    for comment in comments:
        if not isinstance(comment, Mapping) or not isinstance(comment.get("id"), int):
            raise GitHubAPIError("comment list holds a malformed entry", kind="invalid-response")
        body = comment.get("body")
        if not isinstance(body, str) or not has_marker(body, scenario_id):
            continue
        if _author(comment).lower() == author_login.lower():
            ours.append(comment)
        else:
            foreign.append(comment)
    ours.sort(key=lambda c: (str(c.get("created_at", "")), int(c["id"])))
    return FoundComments(tuple(ours), tuple(foreign))


def find_comments(
    client: GitHubClient, repository: str, pr_number: int, scenario_id: str, author_login: str
) -> FoundComments:
    """All comments of the PR (every page), classified."""
    path = repo_path(repository, "issues", pr_number, "comments")
    return classify_comments(client.paginate(path), scenario_id, author_login)


# ---------------------------------------------------------------------------- sync


CommentAction = Literal["created", "updated", "unchanged", "deleted", "skipped"]


@dataclass(frozen=True)
class CommentResult:
    action: CommentAction
    comment_id: int | None = None
    url: str | None = None
    deleted_duplicates: tuple[int, ...] = ()
    foreign_ignored: int = 0
    reason: str = ""


def _comment_ref(data: Any) -> tuple[int | None, str | None]:
    if isinstance(data, Mapping):
        cid, url = data.get("id"), data.get("html_url")
        return (cid if isinstance(cid, int) else None, url if isinstance(url, str) else None)
    return None, None


def sync_sticky_comment(
    client: GitHubClient,
    repository: str,
    pr_number: int,
    *,
    scenario_id: str,
    body: str,
    status: str,
    mode: CommentMode | str = CommentMode.ALWAYS,
    delete_on_pass: bool = False,
    author_login: str,
) -> CommentResult:
    """Create, update or delete our comment according to ``mode`` (see :class:`CommentMode`).

    * ``always``: create or update.
    * ``on-failure``: create or update unless ``status`` is ``PASS``; on PASS an existing
      comment is updated with ``body`` (the caller's text for a passing gate) or, with
      ``delete_on_pass``, deleted; without one nothing is posted.
    * ``never``: no API call at all.

    Extra comments of ours for the same scenario (a race between two runs) are deleted,
    keeping the oldest. :class:`GitHubAPIError` propagates.
    """
    mode = CommentMode(mode)
    if mode is CommentMode.NEVER:
        return CommentResult("skipped", reason="comment mode is 'never'")
    if pr_number <= 0:
        raise ValueError("pr_number must be positive")
    text = compose_body(scenario_id, body)
    found = find_comments(client, repository, pr_number, scenario_id, author_login)
    if found.foreign:
        _log.info(
            "ignoring %d comment(s) with the syscall-gate marker not written by %s",
            len(found.foreign),
            author_login,
        )
    keep = found.ours[0] if found.ours else None
    duplicates = [int(c["id"]) for c in found.ours[1:]]
    deleted: list[int] = []
    for cid in duplicates:
        client.delete(repo_path(repository, "issues", "comments", cid))
        deleted.append(cid)
    passing = status.upper() == "PASS"

    def result(
        action: CommentAction, cid: int | None = None, url: str | None = None, reason: str = ""
    ) -> CommentResult:
        return CommentResult(action, cid, url, tuple(deleted), len(found.foreign), reason)

    if mode is CommentMode.ON_FAILURE and passing:
        if keep is None:
            return result("skipped", reason="gate passes; no earlier comment")
        if delete_on_pass:
            gone = int(keep["id"])
            client.delete(repo_path(repository, "issues", "comments", gone))
            return result("deleted", gone, reason="gate passes")

    if keep is None:
        data = client.post(repo_path(repository, "issues", pr_number, "comments"), {"body": text})
        new_id, new_url = _comment_ref(data)
        return result("created", new_id, new_url)
    kept_id = int(keep["id"])
    _, kept_url = _comment_ref(keep)
    if keep.get("body") == text:
        return result("unchanged", kept_id, kept_url)
    data = client.patch(repo_path(repository, "issues", "comments", kept_id), {"body": text})
    new_id, new_url = _comment_ref(data)
    return result("updated", new_id or kept_id, new_url or kept_url)
