"""Several traces of one scenario combined into one Measurement.

Each rule aggregates its metric over the repeats (median by default, or
worst/best/mean); the combined Measurement carries every repeat's value of each
metric in `samples`, and the report shows min/median/max for those that varied.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from ci_gate.metrics.collector import Measurement, Problem
from ci_gate.metrics.values import value_of


def combine(runs: Sequence[Measurement]) -> Measurement:
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    names: set[str] = set()
    for m in runs:
        names |= set(m.values)
    samples: dict[str, list[float]] = {}
    values: dict[str, float] = {}
    unmeasured: dict[str, str] = {}
    for name in sorted(names):
        got = [value_of(name, m.values, m.unmeasured, m.scope_missing) for m in runs]
        missing = [why for v, why in got if v is None]
        if missing:
            unmeasured[name] = f"not measured in every repeat: {missing[0]}"
            continue
        series = [float(v) for v, _ in got if v is not None]
        samples[name] = series
        values[name] = statistics.median(series)
    for m in runs:
        for name, why in m.unmeasured.items():
            unmeasured.setdefault(name, why)
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for i, m in enumerate(runs, 1):
        for p in m.problems:
            key = (p.code, p.message)
            if key not in seen:
                seen.add(key)
                label = p.message if len(runs) == 1 else f"repeat {i}: {p.message}"
                problems.append(Problem(p.code, label, p.severity))
    notes = list(dict.fromkeys(n for m in runs for n in m.notes))
    varied = {
        name: _spread(series) for name, series in samples.items() if min(series) != max(series)
    }
    details: dict[str, Any] = dict(first.details)
    details["repeats"] = {"count": len(runs), "varied": varied}
    return Measurement(
        values, unmeasured, dict(first.scope_missing), details, problems, notes, samples
    )


def _spread(series: list[float]) -> dict[str, Any]:
    return {
        "min": min(series),
        "median": statistics.median(series),
        "max": max(series),
        "values": series,
    }


def aggregate(series: Sequence[float], how: str, direction: str) -> float:
    """One value for a rule from its metric's repeats.

    direction: 'up' when larger values are worse (the rule has a max bound),
    'down' when smaller are worse (a min bound), 'both' for eq bounds.
    """
    if how == "mean":
        return statistics.fmean(series)
    if how == "median" or direction == "both":
        return statistics.median(series)
    worse_is_larger = direction == "up"
    if how == "worst":
        return max(series) if worse_is_larger else min(series)
    if how == "best":
        return min(series) if worse_is_larger else max(series)
    raise ValueError(f"unknown aggregate {how!r}")
