"""Numbers in, verdicts out: each rule against its metric, then the run's status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ci_gate.metrics.collector import Measurement, Problem
from ci_gate.metrics.values import value_of
from ci_gate.policy.model import ADVISORY, DISABLED, ENFORCE, Rule, fmt_number

PASS, WARN, FAIL, ERROR = "PASS", "WARN", "FAIL", "ERROR"
SKIPPED = "SKIPPED"
_RANK = {PASS: 0, SKIPPED: 0, WARN: 1, FAIL: 2, ERROR: 3}


def worst(statuses: list[str]) -> str:
    return max(statuses, key=_RANK.__getitem__, default=PASS)


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    status: str
    value: float | None  # the value compared (divided by the file count for per-file rules)
    raw_value: float | None
    message: str

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
        }


def metric_value(m: Measurement, name: str) -> tuple[float | None, str]:
    return value_of(name, m.values, m.unmeasured, m.scope_missing)


def _judge(rule: Rule, m: Measurement) -> RuleResult:
    if rule.mode == DISABLED:
        return RuleResult(rule, SKIPPED, None, None, "disabled")
    raw, why = metric_value(m, rule.metric)
    if raw is None:
        return RuleResult(rule, ERROR, None, None, f"not measured: {why}")
    value = raw
    if rule.per == "file":
        files, why_files = metric_value(m, "scenario.files")
        if files is None or files <= 0:
            reason = why_files or "the fixture has no regular files"
            return RuleResult(rule, ERROR, None, raw, f"per-file value unavailable: {reason}")
        value = raw / files
    if rule.fail is not None and rule.fail.violated(value):
        return RuleResult(rule, FAIL, value, raw, f"fails: {rule.fail.describe()}")
    if rule.warn is not None and rule.warn.violated(value):
        return RuleResult(rule, WARN, value, raw, f"warns: {rule.warn.describe()}")
    return RuleResult(rule, PASS, value, raw, "within bounds")


@dataclass(frozen=True)
class Verdict:
    status: str
    results: list[RuleResult]
    score: float | None  # None when a rule that deducts could not be judged
    deductions: list[dict[str, Any]]
    no_enforced_rule: bool


def evaluate(rules: tuple[Rule, ...] | list[Rule], m: Measurement) -> Verdict:
    """Judge every rule; security.score rules last, since failures feed the score."""
    first = [r for r in rules if r.metric != "security.score"]
    results = [_judge(r, m) for r in first]
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
    else:
        m.values["security.score"] = known
    results += [_judge(r, m) for r in rules if r.metric == "security.score"]
    order = {r.id: i for i, r in enumerate(rules)}
    results.sort(key=lambda res: order[res.rule.id])
    enforced = [res.status for res in results if res.rule.mode == ENFORCE]
    problems = [_problem_status(p) for p in m.problems]
    status = worst(enforced + problems)
    return Verdict(status, results, score, deductions, not enforced)


def _problem_status(p: Problem) -> str:
    return ERROR if p.severity == "error" else WARN


__all__ = ["ADVISORY", "ERROR", "FAIL", "PASS", "WARN", "RuleResult", "Verdict", "evaluate"]
