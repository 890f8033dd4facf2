"""Bounds on how far a metric may move from its baseline.

`max_increase: {pct: 15, abs: 1}` trips when the head is more than 15 % AND
more than 1 above the base (with both given, both must be exceeded, so a tiny
base cannot turn +1 into +100 %); `max_decrease` is the same downwards, for
metrics where lower is worse (batching).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ci_gate.compare.baseline import change


@dataclass(frozen=True)
class Change:
    pct: float | None = None
    abs: float | None = None

    def exceeded(self, delta: float, pct: float | None) -> bool:
        """delta/pct measured in the direction this bound guards (positive = worse)."""
        if delta <= 0:
            return False
        checks = []
        if self.pct is not None:
            checks.append(pct is None or math.isinf(pct) or pct > self.pct)
        if self.abs is not None:
            checks.append(delta > self.abs)
        return bool(checks) and all(checks)

    def describe(self, word: str) -> str:
        parts = []
        if self.pct is not None:
            parts.append(f"{word} > {self.pct:g}%")
        if self.abs is not None:
            parts.append(f"{word} > {self.abs:g}")
        return " and ".join(parts)

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in (("pct", self.pct), ("abs", self.abs)) if v is not None}


@dataclass(frozen=True)
class ChangeBound:
    max_increase: Change | None = None
    max_decrease: Change | None = None

    def violated(self, base: float, head: float) -> bool:
        delta, pct = change(base, head)
        if self.max_increase is not None and self.max_increase.exceeded(delta, pct):
            return True
        return self.max_decrease is not None and self.max_decrease.exceeded(
            -delta, None if pct is None else -pct
        )

    def describe(self) -> str:
        parts = []
        if self.max_increase is not None:
            parts.append(self.max_increase.describe("rise"))
        if self.max_decrease is not None:
            parts.append(self.max_decrease.describe("drop"))
        return " or ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.max_increase is not None:
            out["max_increase"] = self.max_increase.to_json()
        if self.max_decrease is not None:
            out["max_decrease"] = self.max_decrease.to_json()
        return out

    @classmethod
    def from_raw(cls, raw: dict[str, Any] | None) -> ChangeBound | None:
        if raw is None:
            return None

        def one(key: str) -> Change | None:
            v = raw.get(key)
            return None if v is None else Change(v.get("pct"), v.get("abs"))

        return cls(one("max_increase"), one("max_decrease"))


@dataclass(frozen=True)
class BaselineRule:
    warn: ChangeBound | None = None
    fail: ChangeBound | None = None

    def threshold(self) -> str:
        parts = []
        if self.fail is not None:
            parts.append(f"fail if {self.fail.describe()} vs base")
        if self.warn is not None:
            parts.append(f"warn if {self.warn.describe()} vs base")
        return "; ".join(parts)

    @classmethod
    def from_raw(cls, raw: dict[str, Any] | None) -> BaselineRule | None:
        if raw is None:
            return None
        return cls(ChangeBound.from_raw(raw.get("warn")), ChangeBound.from_raw(raw.get("fail")))
