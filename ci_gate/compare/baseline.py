"""The base side of a comparison: where it comes from, and how head differs from it.

A baseline is the results.json of the same scenario on the pull request's merge
base, either run now in a separate git worktree (same job, same machine) or
read from a file saved earlier (a push run on main, restored from a cache).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_gate.errors import MeasureError

# Environment fields that change syscall behaviour: a baseline from another
# kernel, strace or image cannot judge a regression.
ENV_KEYS = ("kernel", "arch", "strace", "container", "image", "io_uring_probe")


@dataclass(frozen=True)
class Baseline:
    results: dict[str, Any]
    source: str  # "merge-base" or "file"
    commit: str | None
    cost_seconds: float | None
    cached_build: bool = False

    @property
    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = self.results.get("metrics", {})
        return metrics


def git(workdir: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(workdir), *args], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise MeasureError(
            "baseline-git",
            f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}",
        )
    return proc.stdout.strip()


def base_ref(configured: str) -> str:
    """The ref to find the merge base with: the policy's, or the PR's base branch."""
    if configured != "merge-base":
        return configured
    base = os.environ.get("GITHUB_BASE_REF")
    if base:
        return f"origin/{base}"
    return "origin/HEAD"


def merge_base(workdir: Path, ref: str) -> str:
    head = git(workdir, "rev-parse", "HEAD")
    try:
        return git(workdir, "merge-base", "HEAD", ref)
    except MeasureError as exc:
        raise MeasureError(
            "baseline-no-merge-base",
            f"no merge base between HEAD ({head[:12]}) and {ref}: {exc.message}. In GitHub "
            "Actions, check out with `fetch-depth: 0` so the base branch's history is there.",
        ) from exc


def prepare_worktree(workdir: Path, commit: str, cache: Path) -> tuple[Path, bool]:
    """A worktree of `commit` under `cache`, reused when it was built before.

    Returns the worktree and whether its build can be skipped (a previous run
    built this very commit there and left the marker).
    """
    cache.mkdir(parents=True, exist_ok=True)
    tree = cache / f"base-{commit[:16]}"
    marker = tree / ".syscall-gate-built"
    if tree.is_dir() and marker.exists():
        return tree, True
    if tree.exists():
        subprocess.run(["git", "-C", str(workdir), "worktree", "remove", "--force", str(tree)],
                       capture_output=True, check=False)  # fmt: skip
    git(workdir, "worktree", "prune")
    git(workdir, "worktree", "add", "--detach", "--force", str(tree), commit)
    return tree, False


def mark_built(tree: Path) -> None:
    (tree / ".syscall-gate-built").write_text("built by syscall-gate\n")


def from_file(path: Path) -> Baseline:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MeasureError("baseline-missing", f"baseline file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise MeasureError("baseline-unreadable", f"cannot read baseline {path}: {exc}") from exc
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in metrics.items()
    ):
        raise MeasureError(
            "baseline-unreadable",
            f"{path} is not a syscall-gate results.json (no numeric `metrics` mapping)",
        )
    commit = None
    if isinstance(data.get("github"), dict):
        commit = data["github"].get("head_sha")
    if isinstance(data.get("revision"), str):
        commit = data["revision"]
    return Baseline(data, "file", commit if isinstance(commit, str) else None, None)


def scenario_mismatch(head: dict[str, Any], base: dict[str, Any]) -> str | None:
    """Why a saved baseline is of another scenario than this run, or None.

    Its id or fixture differing makes every count incomparable (the fixture sets how many
    files are copied); the command line is not compared: it holds each run's own
    temporary roots, and a changed command is what a PR may well be about.
    """
    for key in ("id", "fixture"):
        a, b = base.get(key), head.get(key)
        if a != b:
            return (
                f"the baseline is of another scenario: its {key} is {json.dumps(a)}, "
                f"this run's is {json.dumps(b)}"
            )
    return None


def environment_differences(head: dict[str, Any], base: dict[str, Any]) -> list[str]:
    out = []
    for key in ENV_KEYS:
        a, b = base.get(key), head.get(key)
        if a != b and (a is not None or b is not None):
            out.append(f"{key}: {a} (base) vs {b} (head)")
    return out


def change(base: float, head: float) -> tuple[float, float | None]:
    """(absolute change, percent change or None when the base is 0)."""
    delta = head - base
    if base == 0:
        return delta, None if delta == 0 else math.copysign(math.inf, delta)
    return delta, delta / abs(base) * 100.0


def metric_deltas(
    base: dict[str, float],
    head: dict[str, float],
    base_value: Callable[[str], float | None],
    head_value: Callable[[str], float | None],
) -> list[dict[str, Any]]:
    """Every metric on either side, as base -> head with its change.

    A metric one side lacks is looked up as the rules look it up: a syscall never
    called is 0 there, an unmeasured one None.
    """
    rows = []
    for name in sorted(set(base) | set(head)):
        b = base[name] if name in base else base_value(name)
        h = head[name] if name in head else head_value(name)
        row: dict[str, Any] = {"metric": name, "base": b, "head": h, "delta": None, "pct": None}
        if b is not None and h is not None:
            delta, pct = change(float(b), float(h))
            row["delta"] = delta
            row["pct"] = None if pct is None or math.isinf(pct) else pct
            row["moved"] = delta != 0
        else:
            row["moved"] = True
        rows.append(row)
    return rows
