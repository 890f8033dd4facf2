"""Several results.json (one per scenario or matrix job) in, one merged results.json out.

The merged record keeps every input whole under ``scenarios`` (so the report can give each
its own section) and adds, at the top, what one comment and one check need: the worst
status, the summed rule counts, every rule tagged with its scenario, and every problem
tagged likewise. ``markdown.render`` recognises it by its ``scenarios`` list.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ci_gate
from ci_gate.errors import UsageError
from ci_gate.policy.evaluate import worst
from ci_gate.report.escape import printable
from ci_gate.report.results import SCHEMA, exit_code

MERGED_KIND = "merged"
DEFAULT_ID = "merged"
STATUSES = ("PASS", "WARN", "FAIL", "ERROR")
#: The fields of the ``github`` block that must agree between inputs for the merged record
#: to keep it (one workflow run measured them all).
_GITHUB_KEYS = ("repository", "event_name", "run_id", "head_sha", "pr_number")


def results_file(path: Path) -> Path:
    """``DIR`` -> ``DIR/results.json``; a file is taken as it is."""
    return path / "results.json" if path.is_dir() else path


def load(path: Path) -> dict[str, Any]:
    """One results.json, checked enough to be merged; :class:`UsageError` otherwise."""
    file = results_file(path)
    shown = printable(str(file), 300)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{shown}: no such file (give a results.json or its directory)") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"{shown}: not a readable results.json ({type(exc).__name__})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{shown}: not a syscall-gate results file (schema {SCHEMA!r} expected)")
    if data.get("kind") == MERGED_KIND:
        raise UsageError(f"{shown}: already a merged result; merge the original ones instead")
    if data.get("status") not in STATUSES or not isinstance(data.get("rules", []), list):
        raise UsageError(f"{shown}: malformed results (status or rules)")
    return data


def scenario_id(res: dict[str, Any]) -> str:
    scen = res.get("scenario")
    sid = scen.get("id") if isinstance(scen, dict) else None
    return sid if isinstance(sid, str) and sid else "default"


def merge(
    inputs: Sequence[dict[str, Any]],
    *,
    merged_id: str = DEFAULT_ID,
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The merged record (see the module docstring). Scenario ids must be unique."""
    if not inputs:
        raise UsageError("merge needs at least one results.json")
    names = list(sources) if sources is not None else [f"input {i + 1}" for i in range(len(inputs))]
    seen: dict[str, str] = {}
    for res, name in zip(inputs, names, strict=True):
        sid = scenario_id(res)
        if sid in seen:
            raise UsageError(
                f"scenario id {printable(sid)!r} appears twice ({printable(seen[sid], 200)} and "
                f"{printable(name, 200)}); give each scenario its own `scenario.id` in its policy"
            )
        seen[sid] = name
    if merged_id in seen and len(inputs) > 1:
        raise UsageError(f"the merged id {merged_id!r} is also a scenario id; choose another")

    statuses = [str(r["status"]) for r in inputs]
    status = worst(statuses)
    summary: dict[str, int] = {}
    rules: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for res in inputs:
        sid = scenario_id(res)
        for key, count in (res.get("summary") or {}).items():
            if isinstance(count, int):
                summary[key] = summary.get(key, 0) + count
        rules += [{**rule, "scenario": sid} for rule in res.get("rules", [])]
        problems += [{**p, "scenario": sid} for p in res.get("problems", [])]
    merged: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": MERGED_KIND,
        "tool": {"name": "syscall-gate", "version": ci_gate.__version__},
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "status": status,
        "exit_code": exit_code(status),
        "scenario": {"id": merged_id},
        "summary": {k: summary[k] for k in STATUSES if k in summary},
        "problems": problems,
        "rules": rules,
        "scenarios": list(inputs),
    }
    block = _common_github(inputs)
    if block is not None:
        merged["github"] = block
    return merged


def _common_github(inputs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The inputs' ``github`` block if they all carry the same one, else None."""
    blocks = [r.get("github") for r in inputs]
    first = blocks[0]
    if not isinstance(first, dict):
        return None
    common = {k: first.get(k) for k in _GITHUB_KEYS}
    for other in blocks[1:]:
        if not isinstance(other, dict) or {k: other.get(k) for k in _GITHUB_KEYS} != common:
            return None
    return common
