"""From a results.json to GitHub: what ``syscall-gate publish`` and the end of ``run`` /
``analyze`` do in GitHub Actions.

The bodies are rendered here from the results (never taken pre-rendered from anywhere),
each within its channel's limit: the PR comment in characters, the check-run summary and
the step summary in UTF-8 bytes. Failing rules become check-run annotations on the policy
file. Nothing here changes a verdict or an exit code: every GitHub problem is a warning,
printed once as a ``::warning::`` line with its text escaped.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from ci_gate.errors import UsageError
from ci_gate.report import markdown
from ci_gate.report import results as results_mod
from ci_gate.report.escape import md_text, printable

from ._text import CHECK_SUMMARY_MAX_BYTES, COMMENT_MAX_CHARS, STEP_SUMMARY_MAX_BYTES
from .checks import ANNOTATIONS_PER_REQUEST, CONCLUSIONS, Annotation, AnnotationLevel
from .context import ContextError, GitHubContext
from .github_client import GitHubClient, RetryPolicy
from .publisher import PublishOutcome, publish, verify_pr_head
from .results_input import (
    ArtifactRefused,
    ResultsError,
    check_artifact_github,
    load_results,
    validate,
)
from .sticky_comment import CommentMode, comment_marker, is_login
from .summary import append_step_summary
from .workflow_commands import WarningLog

#: Annotations sent at most (GitHub takes 50 per request; the rest are in the report).
MAX_ANNOTATIONS: Final = 5 * ANNOTATIONS_PER_REQUEST
#: Environment variable bounding the total time spent retrying GitHub API calls (seconds).
MAX_WAIT_ENV: Final = "SYSCALL_GATE_API_MAX_WAIT"
PUBLISH_MODES: Final = ("auto", "always", "never")
GATE_STATUSES: Final = ("PASS", "WARN", "FAIL", "ERROR")
_LOGGER = "ci_gate.publish"


@dataclass(frozen=True)
class PublishOptions:
    comment: CommentMode = CommentMode.ALWAYS
    delete_on_pass: bool = False
    conclusion_map: Mapping[str, str] | None = None
    comment_author: str | None = None
    report_url: str | None = None


# ----------------------------------------------------------------------------- option parsing


def parse_conclusion_map(text: str) -> dict[str, str]:
    """``WARN=success,ERROR=neutral`` -> ``{"WARN": "success", "ERROR": "neutral"}``."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        status, sep, conclusion = (s.strip() for s in item.partition("="))
        status = status.upper()
        if not sep or status not in GATE_STATUSES:
            statuses = ", ".join(GATE_STATUSES)
            raise ValueError(f"{item!r}: expected STATUS=CONCLUSION, STATUS one of {statuses}")
        if conclusion not in CONCLUSIONS:
            raise ValueError(
                f"{item!r}: the conclusion must be one of {', '.join(sorted(CONCLUSIONS))}"
            )
        out[status] = conclusion
    return out


def check_login(text: str) -> str:
    if not is_login(text):
        raise ValueError(f"not a GitHub login: {text!r}")
    return text


def check_report_url(text: str) -> str:
    if not re.match(r"^https?://[^\s]+$", text):
        raise ValueError(f"not an http(s) URL: {text!r}")
    return text


def link_url(url: str) -> str:
    """A URL that cannot break out of a Markdown link target."""
    return quote(url, safe=":/?#@!$&'*+,;=%~-._")


# ----------------------------------------------------------------------------- bodies


def scenario_id(res: Mapping[str, Any]) -> str:
    scen = res.get("scenario")
    sid = scen.get("id") if isinstance(scen, Mapping) else None
    return sid if isinstance(sid, str) and sid else "default"


def check_title(res: Mapping[str, Any]) -> str:
    counts = res.get("summary") or {}
    tally = ", ".join(f"{counts[s]} {s}" for s in GATE_STATUSES if counts.get(s))
    title = str(res["status"])
    if markdown.is_merged(dict(res)):
        title += f" · {len(res['scenarios'])} scenarios"
    return f"{title} · rules: {tally}" if tally else f"{title} · no rule evaluated"


@dataclass(frozen=True)
class Bodies:
    comment: str
    check_summary: str
    step_summary: str


def render_bodies(res: dict[str, Any], *, report_url: str | None, summary_used: int = 0) -> Bodies:
    """The three Markdown bodies, each within its limit (see the module docstring)."""
    url = link_url(report_url) if report_url else None
    marker_line = len(comment_marker(scenario_id(res))) + 1  # sticky_comment adds it
    comment = markdown.render(res, max_chars=COMMENT_MAX_CHARS - marker_line, full_report_url=url)
    check = markdown.render(
        res, max_chars=CHECK_SUMMARY_MAX_BYTES, full_report_url=url, size=markdown.utf8_size
    )
    room = max(STEP_SUMMARY_MAX_BYTES - summary_used - 1, 1024)
    step = markdown.render(res, max_chars=room, full_report_url=url, size=markdown.utf8_size)
    return Bodies(comment, check, step)


# ----------------------------------------------------------------------------- annotations


def _repo_relative(file: str, workspace: str | None, cwd: str) -> str | None:
    """The policy file's path relative to the repository root, or None if it has none."""
    if file.startswith("builtin:") or "\\" in file or printable(file, 4096) != file:
        return None
    path = file
    if workspace:
        full = posixpath.normpath(posixpath.join(cwd, file))
        root = posixpath.normpath(workspace)
        if full != root and not full.startswith(root.rstrip("/") + "/"):
            return None
        path = posixpath.relpath(full, root)
    elif posixpath.isabs(file):
        return None
    path = posixpath.normpath(path)
    if path in (".", "") or path.startswith("../") or path == ".." or len(path) > 1024:
        return None
    return path


def annotations_for(
    res: Mapping[str, Any], *, workspace: str | None, cwd: str
) -> tuple[list[Annotation], int]:
    """Annotations on the policy file for failing/erroring rules, and how many were left out
    (no repository path, e.g. a ``builtin:`` preset, or beyond :data:`MAX_ANNOTATIONS`)."""
    found: list[tuple[int, Annotation]] = []
    left_out = 0
    for rule in res.get("rules", []):
        if rule.get("status") not in ("FAIL", "ERROR") or rule.get("mode") == "disabled":
            continue
        origin = rule.get("origin") or {}
        file, line = origin.get("file"), origin.get("line")
        path = _repo_relative(file, workspace, cwd) if isinstance(file, str) else None
        if path is None or not isinstance(line, int) or line < 1:
            left_out += 1
            continue
        enforced = rule.get("mode") == "enforce"
        level: AnnotationLevel = "failure" if enforced else "warning"
        where = f" in scenario {rule['scenario']}" if rule.get("scenario") else ""
        metric = str(rule["metric"]) + (" per file" if rule.get("per") == "file" else "")
        value = "not measured" if rule.get("value") is None else markdown.num(rule["value"])
        message = (
            f"Rule {rule['id']}{where} is {rule['status']}"
            f"{'' if enforced else ' (advisory)'}: {metric} = {value.replace(chr(92), '')}; "
            f"{rule.get('message', '')}"
        )
        detail = rule.get("hint") or rule.get("reason")
        annotation = Annotation(
            path=path,
            start_line=line,
            end_line=line,
            annotation_level=level,
            message=printable(message, 2000),
            title=printable(f"syscall-gate: {rule['id']} {rule['status']}", 200),
            raw_details=printable(detail, 4000) if isinstance(detail, str) and detail else None,
        )
        found.append((0 if enforced else 1, annotation))
    found.sort(key=lambda pair: pair[0])  # enforced failures first, if some must go
    left_out += max(0, len(found) - MAX_ANNOTATIONS)
    return [a for _, a in found[:MAX_ANNOTATIONS]], left_out


# ----------------------------------------------------------------------------- logging


class _ToWarningLog(logging.Handler):
    """The publish layer's log records, to our escaped, deduplicated output."""

    def __init__(self, out: WarningLog) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not break publishing
            text = str(record.msg)
        if record.levelno >= logging.WARNING:
            self.out.warning(text)
        else:
            self.out.note(text)


@contextmanager
def _bridged_logs(out: WarningLog) -> Iterator[logging.Logger]:
    """Route ``ci_gate.publish.*`` records (INFO and up) to ``out`` only, for the duration:
    nothing reaches Python's last-resort stderr handler unescaped."""
    logger = logging.getLogger(_LOGGER)
    handler = _ToWarningLog(out)
    old = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logging.getLogger(f"{_LOGGER}.gate")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old[0])
        logger.propagate = old[1]


def retry_policy(environ: Mapping[str, str]) -> RetryPolicy:
    raw = environ.get(MAX_WAIT_ENV, "").strip()
    try:
        max_wait = float(raw) if raw else 60.0
    except ValueError:
        max_wait = 60.0
    max_wait = min(max(max_wait, 0.0), 600.0)
    return RetryPolicy(max_total_wait=max_wait, rate_limit_default_wait=min(60.0, max_wait))


# ----------------------------------------------------------------------------- publishing


def _summary_used(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _revalidate(res: dict[str, Any]) -> dict[str, Any]:
    """In-memory results, checked exactly as they would be read back from results.json."""
    return validate(json.loads(results_mod.dumps(res)))


def write_step_summary(res: dict[str, Any], path: str | None, out: WarningLog) -> None:
    """Only the step summary (when the API is not used), from results this process made."""
    if not path:
        return
    used = _summary_used(path)
    room = max(STEP_SUMMARY_MAX_BYTES - used - 1, 1024)
    try:
        text = markdown.render(res, max_chars=room, size=markdown.utf8_size)
        append_step_summary(path, text)
    except OSError as exc:
        out.warning(f"could not write the step summary: {exc.strerror or exc}")


def publish_results(
    res: dict[str, Any],
    ctx: GitHubContext,
    options: PublishOptions,
    out: WarningLog,
    *,
    environ: Mapping[str, str],
    pr_number: int | None = None,
    report_url: str | None = None,
    client: GitHubClient | None = None,
) -> PublishOutcome | None:
    """Render and publish validated results; never raises for GitHub trouble."""
    if ctx.token:
        out.set_redact(ctx.token.redact)
    sid = scenario_id(res)
    url = options.report_url or report_url or (ctx.run_url if ctx.run_id else None)
    body = render_bodies(res, report_url=url, summary_used=_summary_used(ctx.step_summary_path))
    annotations, left_out = annotations_for(
        res, workspace=environ.get("GITHUB_WORKSPACE") or None, cwd=os.getcwd()
    )
    if left_out:
        out.note(
            f"{left_out} failing rule(s) have no annotation (defined in a builtin: preset, "
            f"outside the workspace, or past {MAX_ANNOTATIONS}); all are in the report"
        )
    merged = markdown.is_merged(res)
    with _bridged_logs(out) as log:
        try:
            outcome = publish(
                ctx,
                scenario_id=sid,
                status=res["status"],
                comment_body=body.comment,
                check_summary=body.check_summary,
                check_title=check_title(res),
                annotations=annotations,
                comment_mode=options.comment,
                delete_on_pass=options.delete_on_pass,
                conclusion_map=options.conclusion_map,
                log=log,
                step_summary=body.step_summary,
                several_scenarios=not merged and sid != "default",
                author_login=options.comment_author,
                pr_number=pr_number,
                client=client,
                retry=retry_policy(environ),
            )
        except Exception as exc:  # publishing must never change the gate's outcome
            out.warning(f"publishing failed: internal error {type(exc).__name__}: {exc}")
            return None
    for warning in outcome.warnings:
        out.warning(warning)
    _report(outcome, out)
    return outcome


def _report(outcome: PublishOutcome, out: WarningLog) -> None:
    if outcome.summary_written:
        out.note("step summary written")
    if outcome.comment is not None:
        where = f" {outcome.comment_url}" if outcome.comment_url else ""
        reason = f" ({outcome.comment.reason})" if outcome.comment.reason else ""
        out.note(f"PR comment: {outcome.comment.action}{where}{reason}")
    if outcome.check_run is not None:
        where = f" {outcome.check_run.url}" if outcome.check_run.url else ""
        out.note(
            f"check run{where} on {outcome.head_sha[:12]} "
            f"({outcome.check_run.annotations_sent} annotation(s))"
        )
    if outcome.commit_status is not None:
        out.note(
            f"commit status {outcome.commit_status.context}: {outcome.commit_status.state} "
            f"on {outcome.head_sha[:12]}"
        )


def github_block(ctx: GitHubContext) -> dict[str, Any]:
    return results_mod.github_block(
        repository=ctx.repository,
        event_name=ctx.event_name,
        run_id=ctx.run_id,
        head_sha=ctx.head_sha,
        pr_number=ctx.pr_number if ctx.pr_number_trusted else None,
    )


def after_run(
    res: dict[str, Any],
    results_path: Path,
    *,
    mode: str,
    options: PublishOptions,
    environ: Mapping[str, str],
    out: WarningLog,
) -> None:
    """The end of ``run``/``analyze``: record where it ran and publish (see ``--publish``).

    ``auto`` publishes inside GitHub Actions (``GITHUB_ACTIONS=true``); ``never`` only
    writes the step summary. Never raises: the gate's exit code is decided already.
    """
    try:
        _after_run(res, results_path, mode, options, environ, out)
    except Exception as exc:  # the verdict stands whatever happens here
        out.warning(f"publishing failed: internal error {type(exc).__name__}: {exc}")


def _after_run(
    res: dict[str, Any],
    results_path: Path,
    mode: str,
    options: PublishOptions,
    environ: Mapping[str, str],
    out: WarningLog,
) -> None:
    in_actions = environ.get("GITHUB_ACTIONS") == "true"
    summary_path = environ.get("GITHUB_STEP_SUMMARY") or None
    ctx: GitHubContext | None = None
    if in_actions or mode == "always":
        try:
            ctx = GitHubContext.from_env(environ)
        except ContextError as exc:
            # With --publish never the context is read only to record it (two-stage flow).
            what = "not recording the GitHub context" if mode == "never" else "not publishing"
            out.warning(f"{what} on GitHub: {exc}")
    if ctx is not None:
        if ctx.token:
            out.set_redact(ctx.token.redact)
        try:
            results_mod.attach_github(results_path, res, github_block(ctx))
        except OSError as exc:
            out.warning(f"could not record the GitHub context in results.json: {exc}")
    publishing = ctx is not None and (mode == "always" or (mode == "auto" and in_actions))
    clean: dict[str, Any] | None = None
    if publishing:
        try:
            # Checked as any results.json is before publishing; ours should always pass.
            clean = _revalidate(res)
        except ResultsError as exc:
            out.warning(f"not publishing (a bug in syscall-gate): {exc}")
    if ctx is None or clean is None:
        write_step_summary(res, summary_path, out)
        return
    publish_results(clean, ctx, options, out, environ=environ)


def publish_command(
    *,
    results: Path | None,
    artifact: Path | None,
    options: PublishOptions,
    environ: Mapping[str, str],
    out: WarningLog,
) -> int:
    """``syscall-gate publish``: 0 whatever GitHub answers; :class:`UsageError` (exit 2)
    for a missing environment or an unreadable or invalid results file."""
    try:
        ctx = GitHubContext.from_env(environ)
    except ContextError as exc:
        raise UsageError(f"publish needs the GitHub Actions environment: {exc}") from exc
    if ctx.token:
        out.set_redact(ctx.token.redact)
    if artifact is None:
        assert results is not None
        try:
            res = load_results(results)
        except ResultsError as exc:
            raise UsageError(str(exc)) from exc
        publish_results(res, ctx, options, out, environ=environ)
        return 0
    return _publish_artifact(artifact, ctx, options, environ, out)


def _measuring_run_url(ctx: GitHubContext) -> str | None:
    run = ctx.event.get("workflow_run")
    run_id = run.get("id") if isinstance(run, Mapping) else None
    if isinstance(run_id, int) and not isinstance(run_id, bool) and run_id > 0:
        return f"{ctx.server_url}/{ctx.repository}/actions/runs/{run_id}"
    return None


def _publish_artifact(
    artifact: Path,
    ctx: GitHubContext,
    options: PublishOptions,
    environ: Mapping[str, str],
    out: WarningLog,
) -> int:
    if ctx.event_name != "workflow_run":
        raise UsageError(
            "--from-artifact is for the second stage of the fork-safe pattern: a job "
            f"triggered by `workflow_run` (this is {printable(ctx.event_name or 'no event')!r})"
        )
    try:
        res = load_results(artifact)
    except ResultsError as exc:
        raise UsageError(f"the artifact: {exc}") from exc

    def refuse(reason: str) -> int:
        out.warning(f"syscall-gate did not publish the artifact: {reason}")
        if ctx.step_summary_path:
            note = f"**syscall-gate** did not publish the measured results: {md_text(reason)}\n"
            try:
                append_step_summary(ctx.step_summary_path, note)
            except OSError as exc:
                out.warning(f"could not write the step summary: {exc}")
        return 0

    try:
        target = check_artifact_github(res, ctx)
    except ArtifactRefused as exc:
        return refuse(str(exc))
    client: GitHubClient | None = None
    if target.pr_number is not None and ctx.token:
        client = GitHubClient(ctx.api_url, ctx.token, retry=retry_policy(environ))
        with _bridged_logs(out) as log:
            ok = verify_pr_head(
                client,
                ctx.repository,
                target.pr_number,
                target.head_sha,
                expected_head_repository=ctx.head_repository,
                log=log,
            )
        if not ok:
            client.close()
            return refuse(
                f"PR #{target.pr_number}'s current head is not the measured commit "
                f"{target.head_sha} from {ctx.head_repository or 'its head repository'} "
                "(the PR was updated since, or the artifact does not belong to it); nothing "
                "was posted: the run for the newer commit will post its own results"
            )
    try:
        publish_results(
            res,
            ctx,
            options,
            out,
            environ=environ,
            pr_number=target.pr_number,
            report_url=_measuring_run_url(ctx),
            client=client,
        )
    finally:
        if client is not None:
            client.close()
    return 0


def options_from(
    comment: str,
    delete_on_pass: bool,
    conclusion_map: Mapping[str, str] | None,
    comment_author: str | None,
    report_url: str | None,
) -> PublishOptions:
    return PublishOptions(
        comment=CommentMode(comment),
        delete_on_pass=delete_on_pass,
        conclusion_map=conclusion_map,
        comment_author=comment_author,
        report_url=report_url,
    )
