"""Test-side oracles, written independently of the code under test."""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIER = REPO / "examples" / "uring-copy" / "uring-copy"


@contextlib.contextmanager
def speedups(on: bool) -> Iterator[None]:
    """The parser with its C line filter (ci_gate/trace/_scan.c), or its pure-Python path."""
    from ci_gate.trace import parser

    saved = parser.SPEEDUPS
    if on:
        assert parser._speedups is not None, "ci_gate.trace._scan is not built (make the venv)"
    parser.SPEEDUPS = parser._speedups if on else None
    try:
        yield
    finally:
        parser.SPEEDUPS = saved


_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")


def strace_summary(trace: Path) -> dict[str, tuple[int, int]]:
    """strace's own -C/-c table at the end of a trace file: name -> (calls, errors)."""
    rows: dict[str, tuple[int, int]] = {}
    in_table = False
    for line in trace.read_text(errors="replace").splitlines():
        if re.match(r"^\s*% time\s+seconds", line):
            in_table = True
            continue
        if not in_table:
            continue
        m = _ROW.match(line)
        if m and m.group(3) != "total":
            rows[m.group(3)] = (int(m.group(1)), int(m.group(2) or 0))
    assert rows, f"no summary table in {trace}"
    return rows


def gate(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "ci_gate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass(frozen=True)
class Tree:
    """The default fixture's shape: F files (files + one per nested dir), D dirs, L links."""

    files: int
    file_size: int
    dirs: int
    symlinks: bool

    @property
    def F(self) -> int:
        return self.files + self.dirs

    @property
    def D(self) -> int:
        return self.dirs

    @property
    def L(self) -> int:
        if not self.symlinks:
            return 0
        return (self.files > 0) + (self.dirs > 0) + (self.files > 0 and self.dirs > 0)


def copier_expectations(tree: Tree, *, chunk: int = 131072, batch: int = 8) -> dict[str, float]:
    """Scenario metrics of uring-copy in good mode, from examples/uring-copy/README.md."""
    n = math.ceil(tree.file_size / chunk)
    groups = tree.F * math.ceil(n / batch)
    sqes = 2 * tree.F * n
    full, rest = divmod(n, batch)
    hist_batch = 2 * tree.F * full
    exp: dict[str, float] = {
        "io_uring.setup.calls": 1,
        "io_uring.rings": 1,
        "io_uring.enter.calls": 2 * groups,
        "io_uring.enter.submitting": 2 * groups,
        "io_uring.enter.wait_only": 0,
        "io_uring.sqes_submitted": sqes,
        "io_uring.batch.avg": sqes / (2 * groups),
        "io_uring.batch.max": batch if full else rest,
        "io_uring.batch.single": (hist_batch if batch == 1 else 0)
        + (2 * tree.F if rest == 1 else 0),
        "scenario.statx.fd_based": 1,
        "scenario.statx.dirfd_relative": tree.F + tree.D + tree.L,
        "scenario.statx.path_based": 0,
        "scenario.openat.path_based": 2,
        "scenario.openat.dirfd_relative": 2 * tree.F + 2 * tree.D,
        "scenario.mkdirat.path_based": 1,
        "scenario.mkdirat.dirfd_relative": tree.D,
        "scenario.syscall.getdents64.calls": 2 * (tree.D + 1),
        "scenario.traversal.getdents": 2 * (tree.D + 1),
        "scenario.preserve.times.file": tree.F,
        "scenario.preserve.times.dir": tree.D + 1,
        "scenario.preserve.times.symlink": tree.L,
        "scenario.preserve.mode.file": tree.F,
        "scenario.preserve.mode.dir": tree.D + 1,
        "scenario.preserve.owner.file": tree.F,
        "scenario.preserve.owner.dir": tree.D + 1,
        "scenario.preserve.owner.symlink": tree.L,
        "scenario.utimensat.fd_based": tree.F + tree.D + 1,
        "scenario.utimensat.dirfd_relative": tree.L,
        "scenario.utimensat.path_based": 0,
        "scenario.symlinks.created": tree.L,
        "scenario.symlinks.read": tree.L,
        "scenario.opens.user_files": 2 * tree.F,
        "scenario.opens.directories": 2 * tree.D + 2,
        "scenario.direct_io": 0,
        "scenario.legacy.calls": 0,
        "scenario.files": tree.F,
    }
    return exp
