"""Assemble results.json, the single record every later stage reads."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import ci_gate
from ci_gate.errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from ci_gate.metrics.collector import Measurement, Problem
from ci_gate.policy.evaluate import ERROR, FAIL, Verdict
from ci_gate.policy.model import Policy

SCHEMA = "syscall-gate/results/v1"


def exit_code(status: str) -> int:
    if status == ERROR:
        return EXIT_ERROR
    if status == FAIL:
        return EXIT_FAIL
    return EXIT_PASS


def _clean(value: float) -> float | int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return value


def build(
    *,
    measurement: Measurement | None,
    verdict: Verdict | None,
    policy: Policy | None,
    scenario: dict[str, Any] | None,
    environment: dict[str, Any],
    trace: dict[str, Any],
    extra_problems: list[dict[str, Any]] | None = None,
    timing: dict[str, float] | None = None,
) -> dict[str, Any]:
    problems: list[dict[str, Any]] = list(extra_problems or [])
    if measurement is not None:
        problems += [_problem(p) for p in measurement.problems]
    status = verdict.status if verdict is not None else ERROR
    if any(p["severity"] == "error" for p in problems):
        status = ERROR
    rules = [res.to_json() for res in verdict.results] if verdict is not None else []
    summary: dict[str, int] = {}
    for x in rules:
        if x["mode"] == "disabled":
            continue
        summary[x["status"]] = summary.get(x["status"], 0) + 1
    metrics = {k: _clean(v) for k, v in sorted(measurement.values.items())} if measurement else {}
    return {
        "schema": SCHEMA,
        "tool": {"name": "syscall-gate", "version": ci_gate.__version__},
        "generated_at": _now().strftime("%Y-%m-%d %H:%M:%S UTC"),
        "status": status,
        "exit_code": exit_code(status),
        "problems": problems,
        "notes": list(measurement.notes) if measurement else [],
        "scenario": scenario,
        "policy": _policy(policy),
        "environment": environment,
        "trace": trace,
        "timing": timing or {},
        "summary": summary,
        "no_enforced_rule": bool(verdict and verdict.no_enforced_rule and rules),
        "rules": rules,
        "security": {
            "score": verdict.score if verdict else None,
            "deductions": verdict.deductions if verdict else [],
        },
        "metrics": metrics,
        "unmeasured": dict(sorted(measurement.unmeasured.items())) if measurement else {},
        "scope_missing": dict(measurement.scope_missing) if measurement else {},
        "details": measurement.details if measurement else {},
    }


def _now() -> dt.datetime:
    # SOURCE_DATE_EPOCH makes reports reproducible (golden tests, archived runs).
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    return dt.datetime.now(dt.UTC)


def _problem(p: Problem) -> dict[str, Any]:
    return {"code": p.code, "message": p.message, "severity": p.severity}


def _policy(policy: Policy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "path": policy.path,
        "digest": policy.digest,
        "sources": list(policy.sources),
        "enforced_rules": len(policy.enforced),
    }


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file, so a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        # mkstemp makes it 0600; the report is as readable as any file written (the trace).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# Containers nested deeper than this are written on one line each. json.dumps with an
# indent runs the pure-Python encoder, 5x slower than the C one: for a 20,000-file
# scenario (a per-path entry per file) that was most of a second of every run.
_EXPANDED_LEVELS = 4


def _encode(value: Any, level: int, out: list[str]) -> None:
    if level >= _EXPANDED_LEVELS or not isinstance(value, (dict, list)) or not value:
        # ASCII escapes keep the file valid UTF-8 even for names that were not.
        out.append(json.dumps(value, ensure_ascii=True))
        return
    pad = "\n" + "  " * (level + 1)
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + pad + json.dumps(str(key), ensure_ascii=True) + ": ")
            _encode(item, level + 1, out)
        out.append("\n" + "  " * level + "}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + pad)
            _encode(item, level + 1, out)
        out.append("\n" + "  " * level + "]")


def dumps(results: dict[str, Any]) -> str:
    """results.json's text: indented to a few levels, deeper containers one per line."""
    out: list[str] = []
    _encode(results, 0, out)
    return "".join(out) + "\n"


def github_block(
    *,
    repository: str,
    event_name: str,
    run_id: str,
    head_sha: str,
    pr_number: int | None,
) -> dict[str, Any]:
    """The ``github`` entry of results.json: where a run in GitHub Actions measured, so a
    later ``publish --from-artifact`` (two-stage mode) knows which PR and commit it belongs to.

    It holds no secret. Whoever reads it back must treat it as untrusted: the measuring job
    ran the pull request's code.
    """
    return {
        "repository": repository,
        "event_name": event_name,
        "run_id": run_id,
        "head_sha": head_sha,
        "pr_number": pr_number,
    }


def attach_github(results_path: Path, res: dict[str, Any], block: dict[str, Any]) -> None:
    """Add the ``github`` block to ``res`` and rewrite results.json with it."""
    res["github"] = block
    write_atomic(results_path, dumps(res))
