"""Publishing the gate's verdict on GitHub: step summary, sticky PR comment, check run.

The verdict and the report bodies come from the caller; this package only delivers them.
See :func:`publish` for the entry point and :class:`GitHubContext` for the environment.
"""

from ._text import (
    CHECK_SUMMARY_MAX_BYTES,
    COMMENT_MAX_CHARS,
    STATUS_DESCRIPTION_MAX_CHARS,
    STEP_SUMMARY_MAX_BYTES,
)
from .checks import (
    DEFAULT_CONCLUSIONS,
    Annotation,
    CheckRunResult,
    CommitStatusResult,
    check_run_name,
    create_check_run,
    create_commit_status,
    map_conclusion,
    map_status_state,
    status_context,
)
from .context import ContextError, GitHubContext, Secret
from .github_client import ApiResponse, GitHubAPIError, GitHubClient, RetryPolicy
from .publisher import PERMISSION_FOR, PublishOutcome, publish, verify_pr_head
from .sticky_comment import (
    DEFAULT_BOT_LOGIN,
    CommentMode,
    CommentResult,
    Identity,
    comment_marker,
    encode_scenario_id,
    resolve_identity,
    sync_sticky_comment,
)
from .summary import SummaryResult, append_step_summary

__all__ = [
    "CHECK_SUMMARY_MAX_BYTES",
    "COMMENT_MAX_CHARS",
    "DEFAULT_BOT_LOGIN",
    "DEFAULT_CONCLUSIONS",
    "PERMISSION_FOR",
    "STATUS_DESCRIPTION_MAX_CHARS",
    "STEP_SUMMARY_MAX_BYTES",
    "Annotation",
    "ApiResponse",
    "CheckRunResult",
    "CommentMode",
    "CommentResult",
    "CommitStatusResult",
    "ContextError",
    "GitHubAPIError",
    "GitHubClient",
    "GitHubContext",
    "Identity",
    "PublishOutcome",
    "RetryPolicy",
    "Secret",
    "SummaryResult",
    "append_step_summary",
    "check_run_name",
    "comment_marker",
    "create_check_run",
    "create_commit_status",
    "encode_scenario_id",
    "map_conclusion",
    "map_status_state",
    "publish",
    "resolve_identity",
    "status_context",
    "sync_sticky_comment",
    "verify_pr_head",
]
