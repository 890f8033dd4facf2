"""The GitHub REST endpoints the publishing layer calls.

This tuple is the single source of truth for ``tools/regen_github_openapi.py`` (which trims
GitHub's OpenAPI description down to exactly these operations) and for the test that checks
the committed subset covers every endpoint the client uses.
"""

from __future__ import annotations

from typing import Final

#: ``(HTTP method, OpenAPI path template)`` for every request ``ci_gate.publish`` makes.
USED_ENDPOINTS: Final[tuple[tuple[str, str], ...]] = (
    ("GET", "/user"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("POST", "/repos/{owner}/{repo}/check-runs"),
    ("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("POST", "/repos/{owner}/{repo}/statuses/{sha}"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"),
)
