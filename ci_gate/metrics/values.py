"""Reading a metric's value back: measured, zero by definition, or unmeasured with a reason."""

from __future__ import annotations

from collections.abc import Mapping

from ci_gate.metrics import registry


def value_of(
    name: str,
    values: Mapping[str, float],
    unmeasured: Mapping[str, str],
    scope_missing: Mapping[str, str],
) -> tuple[float | None, str]:
    """(value, '') when known, else (None, why not).

    A count the run could have seen but did not (a syscall never called) is 0;
    a metric whose source was missing (no roots, no tracepoints) is unmeasured.
    """
    if name in values:
        return values[name], ""
    if name in unmeasured:
        return None, unmeasured[name]
    spec = registry.lookup(name)
    if spec is None:
        return None, f"unknown metric {name!r}"
    if spec.scope in scope_missing:
        return None, scope_missing[spec.scope]
    if spec.zero_when_absent or spec.scope == registry.SCENARIO:
        return 0.0, ""
    return None, "this run did not produce it"
