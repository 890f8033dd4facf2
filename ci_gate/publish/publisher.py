"""Publish an already-decided gate result on GitHub.

:func:`publish` writes, in this order: the step summary (a local file: works even when GitHub
is unreachable), the sticky PR comment, the check run on the PR head commit (or a commit
status when check runs are refused). It never changes or decides the verdict, never renders
reports (bodies come from the caller) and never raises for GitHub trouble: a refused write
(403) becomes one warning naming the missing ``permissions:`` entries (and, for a fork PR,
the two-stage ``pull_request`` → ``workflow_run`` pattern); an unreachable API or a garbage
answer becomes a warning. Everything done is recorded in :class:`PublishOutcome`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ._text import CHECK_SUMMARY_MAX_BYTES, COMMENT_MAX_CHARS
from .checks import (
    Annotation,
    CheckRunResult,
    CommitStatusResult,
    check_run_name,
    create_check_run,
    create_commit_status,
    map_conclusion,
    map_status_state,
    status_context,
    status_description,
)
from .context import GitHubContext
from .github_client import GitHubAPIError, GitHubClient, RetryPolicy, repo_path
from .sticky_comment import (
    CommentMode,
    CommentResult,
    encode_scenario_id,
    resolve_identity,
    sync_sticky_comment,
)
from .summary import SummaryResult, append_step_summary

__all__ = [
    "CHECK_SUMMARY_MAX_BYTES",
    "COMMENT_MAX_CHARS",
    "PERMISSION_FOR",
    "PublishOutcome",
    "publish",
    "verify_pr_head",
]

#: The ``permissions:`` entry each write needs.
PERMISSION_FOR: Final[Mapping[str, str]] = {
    "comment": "pull-requests: write",
    "check run": "checks: write",
    "commit status": "statuses: write",
}
_PR_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
_log = logging.getLogger("ci_gate.publish")


@dataclass(frozen=True)
class PublishOutcome:
    """What :func:`publish` did. ``warnings`` were also logged at WARNING level."""

    head_sha: str
    pr_number: int | None
    summary: SummaryResult | None
    comment: CommentResult | None
    check_run: CheckRunResult | None
    commit_status: CommitStatusResult | None
    identity: str | None
    warnings: tuple[str, ...]

    @property
    def summary_written(self) -> bool:
        return self.summary is not None and self.summary.written

    @property
    def comment_id(self) -> int | None:
        return self.comment.comment_id if self.comment else None

    @property
    def comment_url(self) -> str | None:
        return self.comment.url if self.comment else None

    @property
    def check_run_id(self) -> int | None:
        return self.check_run.check_run_id if self.check_run else None

    @property
    def status_fallback_used(self) -> bool:
        return self.commit_status is not None


def _status_key(status: object) -> str:
    value = status.value if isinstance(status, enum.Enum) else status
    if not isinstance(value, str) or not value:
        raise ValueError(f"gate status must be a non-empty string, got {status!r}")
    return value.upper()


def verify_pr_head(
    client: GitHubClient,
    repository: str,
    pr_number: int,
    expected_head_sha: str,
    *,
    expected_head_repository: str | None,
    log: logging.Logger | None = None,
) -> bool:
    """Two-stage mode: is ``pr_number`` (from an artifact or ``workflow_run.pull_requests``,
    both untrusted) really at ``expected_head_sha``, from ``expected_head_repository`` (the
    ``workflow_run``'s head repository; ``None`` skips that check)?

    ``GET /repos/{owner}/{repo}/pulls/{n}``; any API failure counts as "no" (fail closed).
    """
    log = log or _log
    try:
        pr = client.get(repo_path(repository, "pulls", pr_number))
    except GitHubAPIError as exc:
        log.warning("cannot verify PR #%s: %s", pr_number, exc)
        return False
    head = pr.get("head") if isinstance(pr, Mapping) else None
    if not isinstance(head, Mapping):
        log.warning("cannot verify PR #%s: the answer has no head", pr_number)
        return False
    sha = head.get("sha")
    if not isinstance(sha, str) or sha.lower() != expected_head_sha.lower():
        log.warning(
            "PR #%s head is %s, not the measured %s: not publishing to it",
            pr_number,
            sha,
            expected_head_sha,
        )
        return False
    if expected_head_repository is not None:
        repo = head.get("repo")
        name = repo.get("full_name") if isinstance(repo, Mapping) else None
        if not isinstance(name, str) or name.lower() != expected_head_repository.lower():
            log.warning(
                "PR #%s head repository is %s, not %s: not publishing to it",
                pr_number,
                name,
                expected_head_repository,
            )
            return False
    return True


def _permission_warning(denied: Mapping[str, bool], ctx: GitHubContext) -> str:
    """One message for every 403: ``denied`` maps channel -> whether a fallback worked."""
    parts = []
    for channel, fell_back in denied.items():
        text = f"the {channel} (needs `{PERMISSION_FOR[channel]}`)"
        if fell_back:
            text += "; a commit status was posted instead"
        parts.append(text)
    needed = ", ".join(f"`{PERMISSION_FOR[c]}`" for c in denied)
    msg = (
        "syscall-gate: GitHub refused (HTTP 403) " + "; ".join(parts) + ". Give the job "
        f"`permissions:` {needed}. The gate's verdict is unaffected."
    )
    if ctx.is_fork:
        msg += (
            " This run is for a pull request from a fork, whose token is read-only whatever "
            "`permissions:` says: use the two-stage pattern — measure on `pull_request` and "
            "upload the report as an artifact, then post it from a separate workflow "
            "triggered by `workflow_run` (which has a write token) with `syscall-gate publish "
            "--from-artifact`, which checks the PR's current head first."
        )
    return msg


def publish(
    ctx: GitHubContext,
    *,
    scenario_id: str,
    status: object,
    comment_body: str,
    check_summary: str,
    check_title: str,
    annotations: Sequence[Annotation] = (),
    comment_mode: CommentMode | str = CommentMode.ALWAYS,
    delete_on_pass: bool = False,
    conclusion_map: Mapping[str, str] | None = None,
    log: logging.Logger | None = None,
    step_summary: str | None = None,
    several_scenarios: bool = False,
    author_login: str | None = None,
    pr_number: int | None = None,
    client: GitHubClient | None = None,
    retry: RetryPolicy | None = None,
) -> PublishOutcome:
    """Publish one scenario's result; see the module docstring.

    ``status`` is the gate's verdict (``PASS``/``WARN``/``FAIL``/``ERROR``, a string or an
    enum whose value is one); ``conclusion_map`` overrides the check conclusions.
    ``step_summary`` defaults to ``check_summary``. ``several_scenarios`` suffixes the check
    name / status context with the scenario. ``author_login`` is the comment author to use
    when ``GET /user`` is refused (default ``github-actions[bot]``). ``pr_number`` overrides
    the PR from the event (two-stage mode: from the artifact); a PR number that did not come
    from a pull_request event payload is checked with :func:`verify_pr_head` first.
    ``client``/``retry`` are for tests and tuning.

    Raises only for caller errors (unknown status or conclusion, invalid scenario id).
    """
    log = log or _log
    key = _status_key(status)
    conclusion = map_conclusion(key, conclusion_map)
    mode = CommentMode(comment_mode)
    encode_scenario_id(scenario_id)  # ValueError now, for the caller, not mid-way
    warnings: list[str] = []
    denied: dict[str, bool] = {}

    def warn(message: str) -> None:
        message = ctx.token.redact(message) if ctx.token else message
        warnings.append(message)
        log.warning("%s", message)

    for note in ctx.warnings:
        warn(note)

    # 1. Step summary: local, first, independent of the API.
    summary: SummaryResult | None = None
    try:
        summary = append_step_summary(
            ctx.step_summary_path, check_summary if step_summary is None else step_summary
        )
        if summary.truncated:
            warn("the step summary was truncated to GitHub's 1 MiB limit")
    except OSError as exc:
        warn(f"could not write the step summary: {exc.strerror or type(exc).__name__}")

    pr = pr_number if pr_number is not None else ctx.pr_number
    if not ctx.has_token:
        warn("GITHUB_TOKEN is not set: nothing was published on GitHub besides the step summary")
        return PublishOutcome(ctx.head_sha, pr, summary, None, None, None, None, tuple(warnings))

    own_client = client is None
    api = client or GitHubClient(ctx.api_url, ctx.token, retry=retry, log=log)
    unreachable = False

    def failed(channel: str, exc: Exception) -> None:
        nonlocal unreachable
        if isinstance(exc, GitHubAPIError):
            if exc.is_permission_error:
                denied[channel] = False
                log.info("%s refused: %s", channel, exc)
                return
            if exc.kind == "unreachable":
                unreachable = True
                warn(f"GitHub API unreachable; the {channel} was not published: {exc}")
                return
            warn(f"the {channel} was not published: {exc}")
            return
        warn(f"the {channel} was not published: internal error {type(exc).__name__}: {exc}")

    identity: str | None = None
    comment: CommentResult | None = None
    check: CheckRunResult | None = None
    commit_status: CommitStatusResult | None = None
    try:
        # 2. Sticky comment.
        if mode is CommentMode.NEVER:
            comment = CommentResult("skipped", reason="comment mode is 'never'")
        elif pr is None:
            comment = CommentResult("skipped", reason=f"no pull request for {ctx.event_name!r}")
        else:
            try:
                trusted = pr_number is None and ctx.pr_number_trusted
                if not trusted and not verify_pr_head(
                    api,
                    ctx.repository,
                    pr,
                    ctx.head_sha,
                    expected_head_repository=ctx.head_repository,
                    log=log,
                ):
                    warn(
                        f"PR #{pr} does not (or no longer) point at {ctx.head_sha} from "
                        f"{ctx.head_repository}: the comment was not posted"
                    )
                    comment = CommentResult("skipped", reason="PR head verification failed")
                else:
                    who = resolve_identity(api, author_login)
                    identity = who.login
                    comment = sync_sticky_comment(
                        api,
                        ctx.repository,
                        pr,
                        scenario_id=scenario_id,
                        body=comment_body,
                        status=key,
                        mode=mode,
                        delete_on_pass=delete_on_pass,
                        author_login=who.login,
                    )
            except Exception as exc:  # publishing must not break the gate
                failed("comment", exc)

        # 3. Check run, or commit status.
        if unreachable:
            warn("the check run was not attempted: GitHub API unreachable")
        elif not ctx.head_sha:
            warn("no head commit sha (GITHUB_SHA unset): no check run")
        else:
            name_suffix = scenario_id if several_scenarios else None
            try:
                check = create_check_run(
                    api,
                    ctx.repository,
                    ctx.head_sha,
                    name=check_run_name(name_suffix),
                    conclusion=conclusion,
                    title=check_title,
                    summary=check_summary,
                    annotations=annotations,
                    details_url=ctx.run_url if ctx.run_id else None,
                )
                if check.summary_truncated:
                    warn("the check run summary was truncated to 65,535 bytes")
            except GitHubAPIError as exc:
                if not exc.is_permission_error:
                    failed("check run", exc)
                else:
                    denied["check run"] = False
                    try:
                        commit_status = create_commit_status(
                            api,
                            ctx.repository,
                            ctx.head_sha,
                            context=status_context(name_suffix),
                            state=map_status_state(key, conclusion),
                            description=status_description(key, check_title),
                            target_url=ctx.run_url if ctx.run_id else None,
                        )
                        denied["check run"] = True
                    except Exception as exc2:
                        failed("commit status", exc2)
            except Exception as exc:
                failed("check run", exc)
    finally:
        if own_client:
            api.close()

    if denied:
        warn(_permission_warning(denied, ctx))
    return PublishOutcome(
        ctx.head_sha, pr, summary, comment, check, commit_status, identity, tuple(warnings)
    )
