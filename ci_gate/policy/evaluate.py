"""Numbers in, verdicts out: each rule against its metric, then the run's status."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ci_gate.compare.baseline import change
from ci_gate.compare.repeats import aggregate
from ci_gate.metrics.collector import Measurement, Problem
from ci_gate.metrics.values import value_of
from ci_gate.policy.model import ADVISORY, DISABLED, ENFORCE, Rule, fmt_number

PASS, WARN, FAIL, ERROR = "PASS", "WARN", "FAIL", "ERROR"
SKIPPED = "SKIPPED"
_RANK = {PASS: 0, SKIPPED: 0, WARN: 1, FAIL: 2, ERROR: 3}


def worst(statuses: list[str]) -> str:
    return max(statuses, key=_RANK.__getitem__, default=PASS)


@dataclass(frozen=True)
class Comparison:
    """The base side of one rule: what the base measured and how the head moved."""

    available: bool
    base: float | None = None
    delta: float | None = None
    pct: float | None = None
    status: str = PASS
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "base": self.base,
            "delta": self.delta,
            "pct": self.pct,
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True)
class Spread:
    """A rule's value over the repeats: its range and whether the verdict changed."""

    values: tuple[float, ...]
    unstable: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "min": min(self.values),
            "max": max(self.values),
            "values": list(self.values),
            "unstable": self.unstable,
        }


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    status: str
    value: float | None  # the value compared (divided by the file count for per-file rules)
    raw_value: float | None
    message: str
    comparison: Comparison | None = None
    spread: Spread | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.rule
        return {
            "id": r.id,
            "metric": r.metric,
            "per": r.per,
            "value": self.value,
            "raw_value": self.raw_value,
            "threshold": r.threshold(),
            "warn": r.warn.to_json() if r.warn else None,
            "fail": r.fail.to_json() if r.fail else None,
            "status": self.status,
            "mode": r.mode,
            "reason": r.reason,
            "hint": r.hint,
            "deduct": r.deduct,
            "message": self.message,
            "origin": {"file": r.origin.file, "line": r.origin.line, "col": r.origin.col},
            "baseline": (
                {**self.comparison.to_json(), "bounds": r.baseline.threshold()}
                if self.comparison is not None and r.baseline is not None
                else None
            ),
            "aggregate": r.aggregate if self.spread is not None else None,
            "spread": self.spread.to_json() if self.spread is not None else None,
        }


def metric_value(m: Measurement, name: str) -> tuple[float | None, str]:
    return value_of(name, m.values, m.unmeasured, m.scope_missing)


def _bounds_status(rule: Rule, value: float) -> str:
    if rule.fail is not None and rule.fail.violated(value):
        return FAIL
    if rule.warn is not None and rule.warn.violated(value):
        return WARN
    return PASS


def _direction(rule: Rule) -> str:
    """Which way is worse for this rule: up (max bounds), down (min bounds), or both."""
    bounds = [b for b in (rule.fail, rule.warn) if b is not None]
    up = any(b.max is not None for b in bounds)
    down = any(b.min is not None for b in bounds)
    if rule.baseline is not None:
        for cb in (rule.baseline.fail, rule.baseline.warn):
            if cb is not None:
                up |= cb.max_increase is not None
                down |= cb.max_decrease is not None
    if up and not down:
        return "up"
    if down and not up:
        return "down"
    return "both"


def _judge(rule: Rule, m: Measurement, base: BaseSide | None = None) -> RuleResult:
    if rule.mode == DISABLED:
        return RuleResult(rule, SKIPPED, None, None, "disabled")
    raw, why = metric_value(m, rule.metric)
    if raw is None:
        return RuleResult(rule, ERROR, None, None, f"not measured: {why}")
    divisor = 1.0
    if rule.per == "file":
        files, why_files = metric_value(m, "scenario.files")
        if files is None or files <= 0:
            reason = why_files or "the fixture has no regular files"
            return RuleResult(rule, ERROR, None, raw, f"per-file value unavailable: {reason}")
        divisor = files
    spread = None
    series = m.samples.get(rule.metric)
    if series is not None and len(series) > 1:
        per_run = [v / divisor for v in series]
        raw = aggregate(series, rule.aggregate, _direction(rule))
        verdicts = {_bounds_status(rule, v) for v in per_run}
        spread = Spread(tuple(per_run), len(verdicts) > 1)
    value = raw / divisor
    status = _bounds_status(rule, value)
    if status == FAIL:
        message = f"fails: {rule.fail.describe() if rule.fail else ''}"
    elif status == WARN:
        message = f"warns: {rule.warn.describe() if rule.warn else ''}"
    else:
        message = "within bounds"
    if spread is not None and spread.unstable and status == FAIL:
        width = max(spread.values) - min(spread.values)
        if rule.max_spread is None or width > rule.max_spread:
            status = WARN
            message = (
                f"unstable: the verdict changes across the {len(spread.values)} repeats "
                f"(range {fmt_number(min(spread.values))} to {fmt_number(max(spread.values))}"
                + (
                    f", wider than max_spread {fmt_number(rule.max_spread)}"
                    if rule.max_spread is not None
                    else ""
                )
                + "); FAIL shown as WARN"
            )
    comparison = None
    if rule.baseline is not None:
        comparison = _compare(rule, value, base)
        if _RANK[comparison.status] > _RANK[status]:
            status = comparison.status
            message = comparison.note
    return RuleResult(rule, status, value, raw, message, comparison, spread)


@dataclass(frozen=True)
class BaseSide:
    """The baseline as the policy stage sees it."""

    metrics: dict[str, float] | None  # None: no baseline could be had
    why_not: str = ""
    environment_differs: list[str] = field(default_factory=list)
    on_unavailable: str = "warn"
    # Why the base lacks a metric, as its results.json says: absent is then not 0.
    unmeasured: dict[str, str] = field(default_factory=dict)
    scope_missing: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        if self.metrics is None:
            return None
        return value_of(name, self.metrics, self.unmeasured, self.scope_missing)[0]


def _compare(rule: Rule, value: float, base: BaseSide | None) -> Comparison:
    assert rule.baseline is not None
    missing_status = ERROR if base is not None and base.on_unavailable == "error" else WARN
    if base is None or base.metrics is None:
        why = base.why_not if base is not None else "no baseline was configured"
        return Comparison(False, status=missing_status, note=f"no baseline: {why}")
    b = base.value(rule.metric)
    if b is None:
        return Comparison(False, status=missing_status, note=f"the baseline has no {rule.metric!r}")
    if rule.per == "file":
        files = base.metrics.get("scenario.files")
        if not files:
            return Comparison(
                False, status=missing_status, note="the baseline has no fixture file count"
            )
        b = b / files
    delta, pct = change(b, value)
    status = PASS
    bounds = rule.baseline
    if bounds.fail is not None and bounds.fail.violated(b, value):
        status = FAIL
    elif bounds.warn is not None and bounds.warn.violated(b, value):
        status = WARN
    moved = f"{fmt_number(b)} -> {fmt_number(value)}"
    note = f"against the base: {moved}"
    if status != PASS:
        note = f"{'fails' if status == FAIL else 'warns'} against the base ({moved})"
    if status == FAIL and base.environment_differs:
        status = WARN
        note += (
            "; shown as WARN because the baseline ran in another environment ("
            + "; ".join(base.environment_differs)
            + ")"
        )
    shown_pct = None if pct is None or math.isinf(pct) else pct
    return Comparison(True, b, delta, shown_pct, status, note)


@dataclass(frozen=True)
class Verdict:
    status: str
    results: list[RuleResult]
    score: float | None  # None when a rule that deducts could not be judged
    deductions: list[dict[str, Any]]
    no_enforced_rule: bool


def evaluate(
    rules: tuple[Rule, ...] | list[Rule], m: Measurement, base: BaseSide | None = None
) -> Verdict:
    """Judge every rule; security.score rules last, since failures feed the score."""
    first = [r for r in rules if r.metric != "security.score"]
    results = [_judge(r, m, base) for r in first]
    deductions: list[dict[str, Any]] = [
        {"rule": res.rule.id, "points": res.rule.deduct, "reason": res.rule.reason or ""}
        for res in results
        if res.status == FAIL and res.rule.deduct
    ]
    known = max(0.0, 100.0 - sum(float(d["points"]) for d in deductions))
    score: float | None = known
    unknown = [res.rule for res in results if res.status == ERROR and res.rule.deduct]
    if unknown:
        # A rule that could not be judged might have failed: the score is not known,
        # and a rule on it must be ERROR rather than pass on a score that is too high.
        score = None
        m.values.pop("security.score", None)
        m.unmeasured["security.score"] = (
            "the score depends on "
            + ", ".join(f"rule {r.id!r} (deduct {fmt_number(r.deduct or 0)})" for r in unknown)
            + ", which could not be judged"
        )
    elif not m.values:
        # Nothing was measured (an empty or unreadable trace): no score either.
        score = None
        m.unmeasured["security.score"] = "nothing was measured"
    else:
        m.values["security.score"] = known
    results += [_judge(r, m, base) for r in rules if r.metric == "security.score"]
    order = {r.id: i for i, r in enumerate(rules)}
    results.sort(key=lambda res: order[res.rule.id])
    enforced = [res.status for res in results if res.rule.mode == ENFORCE]
    problems = [_problem_status(p) for p in m.problems]
    status = worst(enforced + problems)
    return Verdict(status, results, score, deductions, not enforced)


def _problem_status(p: Problem) -> str:
    return ERROR if p.severity == "error" else WARN


__all__ = ["ADVISORY", "ERROR", "FAIL", "PASS", "WARN", "RuleResult", "Verdict", "evaluate"]
