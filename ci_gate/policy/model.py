"""The resolved policy: what the other stages read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ci_gate.compare.bounds import BaselineRule
from ci_gate.errors import Diagnostic
from ci_gate.metrics.collector import Unexpected

ENFORCE = "enforce"
ADVISORY = "advisory"
DISABLED = "disabled"


@dataclass(frozen=True)
class Bound:
    min: float | None = None
    max: float | None = None
    eq: float | None = None

    def violated(self, value: float) -> bool:
        if self.min is not None and value < self.min:
            return True
        if self.max is not None and value > self.max:
            return True
        return self.eq is not None and abs(value - self.eq) > 1e-9 * max(1.0, abs(self.eq))

    def describe(self) -> str:
        """The condition under which this bound is violated, e.g. '< 101' or '> 0'."""
        parts = []
        if self.min is not None:
            parts.append(f"< {fmt_number(self.min)}")
        if self.max is not None:
            parts.append(f"> {fmt_number(self.max)}")
        if self.eq is not None:
            parts.append(f"≠ {fmt_number(self.eq)}")
        return " or ".join(parts)

    def to_json(self) -> dict[str, float]:
        return {
            k: v
            for k, v in (("min", self.min), ("max", self.max), ("eq", self.eq))
            if v is not None
        }


def fmt_number(value: float) -> str:
    # Whole numbers in full up to 1e15; past that (1e300 from a policy) in exponent form.
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


@dataclass(frozen=True)
class Origin:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Rule:
    id: str
    metric: str
    origin: Origin
    per: str | None = None
    warn: Bound | None = None
    fail: Bound | None = None
    mode: str = ENFORCE
    reason: str | None = None
    hint: str | None = None
    deduct: float | None = None
    aggregate: str = "median"
    baseline: BaselineRule | None = None
    max_spread: float | None = None

    def threshold(self) -> str:
        """The rule's bounds as the report quotes them."""
        per = " per file" if self.per == "file" else ""
        parts = []
        if self.fail is not None:
            parts.append(f"fail if {self.fail.describe()}{per}")
        if self.warn is not None:
            parts.append(f"warn if {self.warn.describe()}{per}")
        if self.baseline is not None:
            parts.append(self.baseline.threshold())
        return "; ".join(parts) or "no bounds"


@dataclass(frozen=True)
class Fixture:
    files: int = 3
    file_size: int = 5 * 1024 * 1024
    dirs: int = 2
    symlinks: bool = True
    seed: int = 1


@dataclass(frozen=True)
class Scenario:
    id: str = "default"
    build: str | None = None
    fixture: Fixture = field(default_factory=Fixture)
    command: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    verify: str = "tree-equal"
    timeout: float = 300.0
    build_timeout: float = 1800.0
    repeats: int = 1
    tracing: str = "full"  # or "policy": trace only the syscalls the rules need


@dataclass(frozen=True)
class BaselineSpec:
    """Where the base side comes from: a ref to take the merge base with, or a file."""

    ref: str = "merge-base"
    file: str | None = None  # resolved path of a saved results.json
    on_unavailable: str = "warn"


@dataclass(frozen=True)
class Policy:
    path: str
    digest: str
    rules: tuple[Rule, ...]
    scenario: Scenario | None
    unexpected: Unexpected
    sources: tuple[str, ...]
    resolved: dict[str, Any]
    warnings: tuple[Diagnostic, ...] = ()  # valid, but probably not what was meant
    baseline: BaselineSpec | None = None  # set when the policy or a rule asks for one

    @property
    def enforced(self) -> list[Rule]:
        return [r for r in self.rules if r.mode == ENFORCE]
