"""Fuzzing the policy loader: whatever a pull request puts in the policy file, loading it
either succeeds or raises PolicyError with positions; nothing else escapes.
The example budget is fixed so CI time stays bounded.

Random text rarely gets past the YAML reader, so a second test builds well-formed policies
whose keys are the schema's, at every depth (baseline bounds included), and whose values are
right, wrong or YAML 1.1 traps: the semantic pass must survive any value the schema refused.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_gate.errors import PolicyError
from ci_gate.policy.load import load_policy

FRAGMENTS = [
    "version: 1\n", "version: 2\n", "rules:\n", "  r: {metric: syscalls.total, fail: {max: 1}}\n",
    "  r: {metric: io_uring.batch.avg, warn: {min: 4}, fail: {min: 2}}\n", "scenario:\n",
    "  command: x {src} {dst}\n", "  fixture: {files: 3, file_size: 5MiB}\n",
    "extends: [builtin:minimal]\n",
    "extends: [../../etc/passwd]\n", "&a [1,2]\n", "*a\n", "!!python/object:os.system ls\n",
    "mode: off\n", "- 1\n", "  timeout: 1:30\n", "{", "}", "[", "]", ":", "\t", "\0", "\ufeff",
    "unexpected: {scenario: [stat, opne]}\n", "  per: file\n", "  deduct: 101\n",
    "  b: {metric: syscall.statx.calls, baseline: {fail: {max_increase: {}}}}\n",
    "  b: {metric: syscall.statx.calls, baseline: {warn: {max_decrease: 5}}}\n",
]  # fmt: skip

# Scalars as written in YAML: valid values, wrong types, and YAML 1.1 traps.
SCALARS = [
    "1", "0", "-1", "2.5", "150", "010", "1:30", "yes", "off", "2024-01-31", "x", "''", "null",
    "5MiB", "90s", "file", "enforce", "tree-equal", "syscall.statx.calls", "security.score",
    "io_uring.batch.avg", "scenario.syscall.statx.calls", "syscal.statx.call", "cp {src} {dst}",
    "builtin:minimal", "[]", "{}",
]  # fmt: skip
METRICS = [
    "syscall.statx.calls",
    "security.score",
    "io_uring.batch.avg",
    "scenario.syscall.statx.calls",
    "scenario.statx.path_based",
]
KEYS = {
    "rule": ["metric", "per", "warn", "fail", "mode", "reason", "hint", "deduct", "aggregate",
             "baseline", "max_spread", "metrc"],
    "bound": ["min", "max", "eq", "mx"],
    "baseline": ["warn", "fail", "fial"],
    "change_bound": ["max_increase", "max_decrease", "max_incrase"],
    "change": ["pct", "abs", "pc"],
    "scenario": ["id", "build", "command", "fixture", "env", "verify", "timeout",
                 "build_timeout", "repeats", "tracing"],
    "fixture": ["files", "file_size", "dirs", "symlinks", "seed"],
    "env": ["X", "Y"],
    "unexpected": ["scenario", "anywhere", "direct_io_with_uring"],
    "policy_baseline": ["ref", "file", "on_unavailable"],
}  # fmt: skip
CHILD = {
    ("rule", "warn"): "bound", ("rule", "fail"): "bound", ("rule", "baseline"): "baseline",
    ("baseline", "warn"): "change_bound", ("baseline", "fail"): "change_bound",
    ("change_bound", "max_increase"): "change", ("change_bound", "max_decrease"): "change",
    ("scenario", "fixture"): "fixture", ("scenario", "env"): "env",
}  # fmt: skip


def flow(kind: str) -> st.SearchStrategy[str]:
    """A flow mapping of `kind` with some of its keys, each value right, wrong or a trap."""

    def value(key: str) -> st.SearchStrategy[str]:
        if key == "metric":  # mostly a real metric, or the semantic pass stops early
            return st.sampled_from(METRICS) | st.sampled_from(SCALARS)
        child = CHILD.get((kind, key))
        scalar = st.sampled_from(SCALARS)
        return scalar if child is None else flow(child) | scalar

    keys = st.lists(st.sampled_from(KEYS[kind]), max_size=4, unique=True)
    if kind == "rule":  # a rule with a metric and bounds reaches every check
        keys = st.tuples(keys, st.booleans()).map(
            lambda kb: ["metric", *(k for k in kb[0] if k != "metric")] if kb[1] else kb[0]
        )
    items = keys.flatmap(
        lambda keys: st.tuples(*(value(k).map(lambda v, k=k: f"{k}: {v}") for k in keys))
    )
    return items.map(lambda kv: "{" + ", ".join(kv) + "}")


@st.composite
def policies(draw: st.DrawFn) -> str:
    out = "version: 1\n"
    if draw(st.booleans()):
        out += f"scenario: {draw(flow('scenario'))}\n"
    if draw(st.booleans()):
        out += f"unexpected: {draw(flow('unexpected'))}\n"
    if draw(st.booleans()):
        out += f"baseline: {draw(flow('policy_baseline'))}\n"
    out += "rules:\n"
    for i in range(draw(st.integers(0, 3))):
        out += f"  r{i}: {draw(flow('rule'))}\n"
    return out


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(policies())
def test_semantic_pass_survives_values_the_schema_refused(tmp_path: Path, text: str) -> None:
    p = tmp_path / "fuzz.yml"
    p.write_text(text, encoding="utf-8")
    try:
        policy = load_policy(p)
    except PolicyError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert str(d).startswith(f"{p}:{d.line}:{d.col}: error: ")
    else:
        for w in policy.warnings:
            assert str(w).startswith(f"{p}:{w.line}:{w.col}: warning: ")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=40), max_size=12))
def test_loader_never_raises_anything_but_policy_errors(tmp_path: Path, parts: list[str]) -> None:
    p = tmp_path / "fuzz.yml"
    p.write_text("".join(parts), encoding="utf-8", errors="surrogatepass")
    try:
        load_policy(p)
    except PolicyError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.line >= 1 and d.col >= 1
            assert str(d).startswith(f"{p}:{d.line}:{d.col}: error: ")


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_loader_survives_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.yml"
    p.write_bytes(data)
    try:
        load_policy(p)
    except PolicyError as exc:
        assert exc.diagnostics
