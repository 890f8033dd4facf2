"""Fuzzing the policy loader: whatever a pull request puts in the policy file, loading it
either succeeds or raises PolicyError with positions; nothing else escapes.
The example budget is fixed so CI time stays bounded."""

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
]  # fmt: skip


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
