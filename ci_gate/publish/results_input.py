"""Reading results.json for publishing, as untrusted input.

A results file handed to ``publish`` may come from an artifact of a pull request's run, and
that run executed the pull request's code: every field may have been forged. So:

* the file is size-capped, NaN/Infinity are refused, and the structure is checked against
  :data:`RESULTS_SCHEMA` (types and enums of everything the report and the publisher read);
* strings the Markdown renderer inserts as they are (rule thresholds) are escaped here;
* the status is made consistent with the rules and problems it claims (the worse wins);
* the ``github`` block of a two-stage artifact is checked against the trusted
  ``workflow_run`` event (:func:`check_artifact_github`), never believed on its own.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsonschema

from ci_gate.policy.evaluate import worst
from ci_gate.report.escape import md_text, printable
from ci_gate.report.results import SCHEMA

from .context import GitHubContext

MAX_RESULTS_BYTES: Final = 64 * 1024 * 1024
PR_NUMBER_MAX: Final = 2**31 - 1
_SHA_RE = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
_RUN_ID_RE = re.compile(r"^[0-9]{1,20}$")

_STATUS = {"enum": ["PASS", "WARN", "FAIL", "ERROR"]}
_RULE_STATUS = {"enum": ["PASS", "WARN", "FAIL", "ERROR", "SKIPPED"]}
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_NUM = {"type": "number"}
_OPT_NUM = {"type": ["number", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_STR_MAP = {"type": "object", "additionalProperties": _STR}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


_RULE = _obj(
    ["id", "metric", "value", "threshold", "status", "mode", "message"],
    id={"type": "string", "minLength": 1, "maxLength": 500},
    metric={"type": "string", "maxLength": 500},
    per=_OPT_STR,
    value=_OPT_NUM,
    threshold={"type": "string", "maxLength": 1000},
    status=_RULE_STATUS,
    mode={"enum": ["enforce", "advisory", "disabled"]},
    reason=_OPT_STR,
    hint=_OPT_STR,
    message=_STR,
    scenario=_STR,
    aggregate=_OPT_STR,
    spread={
        "type": ["object", "null"],
        "required": ["min", "max", "values"],
        "properties": {
            "min": _NUM,
            "max": _NUM,
            "values": {"type": "array", "items": _NUM},
            "unstable": {"type": "boolean"},
        },
    },
    baseline={
        "type": ["object", "null"],
        "required": ["available"],
        "properties": {
            "available": {"type": "boolean"},
            "base": _OPT_NUM,
            "delta": _OPT_NUM,
            "pct": _OPT_NUM,
            "status": _RULE_STATUS,
            "note": _STR,
            "bounds": _STR,
        },
    },
    origin=_obj(
        ["file", "line"],
        file={"type": "string", "maxLength": 4096},
        line={"type": "integer", "minimum": 1},
        col={"type": "integer"},
    ),
)
_PROBLEM = _obj(
    ["message"],
    code=_STR,
    message=_STR,
    severity=_STR,
    detail=_OPT_STR,
    scenario=_STR,
)
_DETAILS = _obj(
    [],
    io_uring=_obj(
        [],
        histogram={"type": "object", "additionalProperties": _COUNT},
        rings={
            "type": "array",
            "items": _obj(
                ["id", "pid", "flags", "enter_calls", "submitting", "sqes"],
                id={"type": "integer"},
                pid={"type": "integer"},
                entries=_OPT_NUM,
                flags={"type": "array", "items": _STR},
                enter_calls=_NUM,
                submitting=_NUM,
                sqes=_NUM,
            ),
        },
    ),
    io_uring_ops={"type": ["object", "null"], "properties": {"notes": {"items": _STR}}},
    paths={"type": "object", "additionalProperties": {"type": "object"}},
    scenario={
        "type": ["object", "null"],
        "properties": {
            "roots": _STR_MAP,
            "fixture": {"type": ["object", "null"], "additionalProperties": _STR},
            "classes": {"type": "object"},
            "per_path": {
                "type": "array",
                "items": _obj(
                    ["root", "path", "calls"],
                    root=_STR,
                    path=_STR,
                    calls={"type": "object", "additionalProperties": _COUNT},
                ),
            },
        },
    },
    unexpected={
        "type": "array",
        "items": _obj(
            ["syscall", "calls", "scope", "why"], syscall=_STR, calls=_NUM, scope=_STR, why=_STR
        ),
    },
    inventory={
        "type": "array",
        "items": _obj(
            ["syscall", "calls", "errors", "category"],
            syscall=_STR,
            calls=_NUM,
            errors=_NUM,
            unreturned=_NUM,
            category=_STR,
        ),
    },
    parse={"type": "object"},
    repeats=_obj(
        ["count"],
        count={"type": "integer", "minimum": 1},
        varied={
            "type": "object",
            "additionalProperties": _obj(["min", "median", "max"], min=_NUM, median=_NUM, max=_NUM),
        },
    ),
    summary_check={
        "type": ["array", "null"],
        "items": _obj(["match"], match={"type": "boolean"}),
    },
)
_GITHUB = _obj(
    [],
    repository=_OPT_STR,
    event_name=_OPT_STR,
    run_id={"type": ["string", "integer", "null"]},
    head_sha=_OPT_STR,
    pr_number={"type": ["integer", "null"], "minimum": 1, "maximum": PR_NUMBER_MAX},
)
_SINGLE_PROPS: dict[str, Any] = {
    "schema": {"const": SCHEMA},
    "tool": _obj([], version=_STR),
    "generated_at": _STR,
    "status": _STATUS,
    "problems": {"type": "array", "items": _PROBLEM},
    "notes": {"type": "array", "items": _STR},
    "scenario": {
        "type": ["object", "null"],
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 200},
            "command": {"type": "array", "items": _STR},
            "fixture_text": _STR,
        },
    },
    "policy": {"type": ["object", "null"], "properties": {"path": _STR, "digest": _STR}},
    "environment": {"type": "object"},
    "trace": _obj([], source=_STR),
    "summary": {"type": "object", "additionalProperties": _COUNT},
    "no_enforced_rule": {"type": "boolean"},
    "rules": {"type": "array", "items": _RULE},
    "security": _obj(
        [],
        score=_OPT_NUM,
        deductions={
            "type": "array",
            "items": _obj(["rule", "points", "reason"], rule=_STR, points=_NUM, reason=_STR),
        },
    ),
    "metrics": {"type": "object", "additionalProperties": _NUM},
    "unmeasured": _STR_MAP,
    "scope_missing": _STR_MAP,
    "details": _DETAILS,
    "github": _GITHUB,
    "revision": _OPT_STR,
    "baseline": _obj(
        [],
        available={"type": "boolean"},
        source=_STR,
        file=_STR,
        ref=_STR,
        commit=_OPT_STR,
        why_not=_STR,
        on_unavailable=_STR,
        cost_seconds=_OPT_NUM,
        cached_build={"type": "boolean"},
        environment={
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "null"]},
        },
        environment_differences={"type": "array", "items": _STR},
        metrics={"type": "object", "additionalProperties": _NUM},
    ),
    "deltas": {
        "type": "array",
        "items": _obj(
            ["metric"],
            metric=_STR,
            base=_OPT_NUM,
            head=_OPT_NUM,
            delta=_OPT_NUM,
            pct=_OPT_NUM,
            moved={"type": "boolean"},
        ),
    },
}
_SINGLE: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "status", "rules"],
    "properties": _SINGLE_PROPS,
}
#: What :func:`load_results` accepts: one scenario's results, or a merge of several.
RESULTS_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "oneOf": [
        {**_SINGLE, "not": {"required": ["scenarios"]}},
        {
            "type": "object",
            "required": ["schema", "status", "rules", "scenarios", "scenario"],
            "properties": {
                **_SINGLE_PROPS,
                "kind": {"const": "merged"},
                "scenarios": {"type": "array", "minItems": 1, "items": _SINGLE},
            },
        },
    ],
}
_VALIDATOR = jsonschema.Draft202012Validator(RESULTS_SCHEMA)


class ResultsError(ValueError):
    """The results file is missing, unreadable or not a valid syscall-gate results file."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_results(path: Path) -> dict[str, Any]:
    """Read and validate a results.json (``DIR`` means ``DIR/results.json``); see the module
    docstring. Raises :class:`ResultsError` with a message safe to print."""
    file = path / "results.json" if path.is_dir() else path
    shown = printable(str(file), 300)
    try:
        size = file.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise ResultsError(f"{shown} is {size:,} bytes, over the {MAX_RESULTS_BYTES:,} cap")
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh, parse_constant=_refuse_constant)
    except FileNotFoundError as exc:
        raise ResultsError(f"{shown}: no such file") from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{shown}: not readable JSON ({type(exc).__name__})") from exc
    return validate(data, shown)


def validate(data: Any, shown: str = "results") -> dict[str, Any]:
    """A validated, sanitised deep copy of ``data`` (see the module docstring)."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ResultsError(
            f"{shown} is not a valid syscall-gate results file: at {printable(where, 200)}: "
            f"{printable(error.message, 300)}"
        )
    clean: dict[str, Any] = copy.deepcopy(data)
    for res in [clean, *clean.get("scenarios", [])]:
        for rule in res.get("rules", []):
            # The renderer puts thresholds in the table as they are (the policy stage builds
            # them from numbers); a forged one must not carry Markdown or HTML.
            rule["threshold"] = md_text(rule["threshold"], 300)
    for res in clean.get("scenarios", []):
        res["status"] = consistent_status(res)
    statuses = [clean["status"], consistent_status(clean)]
    statuses += [s["status"] for s in clean.get("scenarios", [])]
    clean["status"] = worst(statuses)
    return clean


def consistent_status(res: Mapping[str, Any]) -> str:
    """The worse of the claimed status and what the rules and problems imply."""
    implied = [str(res["status"])]
    implied += [r["status"] for r in res.get("rules", []) if r.get("mode") == "enforce"]
    if any(p.get("severity") == "error" for p in res.get("problems", [])):
        implied.append("ERROR")
    return worst([s for s in implied if s != "SKIPPED"])


# ----------------------------------------------------------------------------- two-stage


@dataclass(frozen=True)
class ArtifactTarget:
    """What the two-stage artifact may be posted to, after :func:`check_artifact_github`."""

    pr_number: int | None
    head_sha: str


class ArtifactRefused(ValueError):
    """The artifact does not belong to the ``workflow_run`` being handled: post nothing."""


def check_artifact_github(results: Mapping[str, Any], ctx: GitHubContext) -> ArtifactTarget:
    """Check the artifact's ``github`` block against the trusted ``workflow_run`` payload.

    The repository is always ``GITHUB_REPOSITORY`` (the artifact's must equal it), the commit
    always ``workflow_run.head_sha`` (the artifact's must equal it), the event and run id
    must be the ``workflow_run``'s. The PR number may come from the artifact (fork PRs: the
    payload's list is empty) or the payload; if both, they must agree. The caller must still
    confirm with the API that the PR's head is that commit (:func:`verify_pr_head`).
    """
    block = results.get("github")
    if not isinstance(block, Mapping):
        raise ArtifactRefused(
            "the artifact's results.json has no `github` block: it was not written by "
            "`syscall-gate run` in GitHub Actions"
        )
    run = ctx.event.get("workflow_run") if isinstance(ctx.event, Mapping) else None
    run = run if isinstance(run, Mapping) else {}

    repo = block.get("repository")
    if not isinstance(repo, str) or repo.lower() != ctx.repository.lower():
        raise ArtifactRefused(
            f"the artifact names repository {printable(str(repo), 200)!s}, not "
            f"{ctx.repository} (GITHUB_REPOSITORY)"
        )
    sha = block.get("head_sha")
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise ArtifactRefused("the artifact's head_sha is missing or not a commit sha")
    if not ctx.head_sha or sha.lower() != ctx.head_sha.lower():
        raise ArtifactRefused(
            f"the artifact measured {sha.lower()}, but the workflow_run is for "
            f"{ctx.head_sha or 'an unknown commit'}"
        )
    event = block.get("event_name")
    run_event = run.get("event")
    if isinstance(run_event, str) and event != run_event:
        raise ArtifactRefused(
            f"the artifact comes from a {printable(str(event), 100)!s} run, but the "
            f"workflow_run was triggered by {printable(run_event, 100)}"
        )
    run_id = block.get("run_id")
    trusted_id = run.get("id")
    if run_id is not None and not _RUN_ID_RE.match(str(run_id)):
        raise ArtifactRefused("the artifact's run_id is not a run id")
    if run_id is not None and isinstance(trusted_id, int) and str(run_id) != str(trusted_id):
        raise ArtifactRefused(
            f"the artifact comes from run {run_id}, not from the workflow_run's run {trusted_id}"
        )
    number = block.get("pr_number")
    if number is not None and (
        isinstance(number, bool) or not isinstance(number, int) or not 0 < number <= PR_NUMBER_MAX
    ):
        raise ArtifactRefused("the artifact's pr_number is not a pull request number")
    if number is not None and ctx.pr_number is not None and number != ctx.pr_number:
        raise ArtifactRefused(
            f"the artifact names PR #{number}, the workflow_run PR #{ctx.pr_number}"
        )
    pr = number if number is not None else ctx.pr_number
    return ArtifactTarget(pr, ctx.head_sha)
