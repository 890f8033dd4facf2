"""The rendered Markdown of one fixed trace, byte for byte.

The trace (tests/golden/uring-copy.trace, made by tests/golden/make-trace.sh) is
an input that never changes. When the renderer changes on purpose, regenerate the
expectation with UPDATE_GOLDEN=1 and review the diff like any other change.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import REPO, gate

GOLDEN = REPO / "tests" / "golden"


def test_report_matches_golden(tmp_path: Path) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1767225600")
    # Relative paths (from the repository root) keep the report free of the clone's location.
    proc = gate(
        "analyze",
        "tests/golden/uring-copy.trace",
        "--out",
        str(tmp_path),
        "--scenario",
        "tests/golden/fixture.json",
        "--policy",
        "policies/io-uring-copier.yml",
        cwd=REPO,
        env=env,
    )
    # The copier ran with --extra-statx 1: path-based statx fails the preset.
    assert proc.returncode == 1, proc.stderr
    report = (tmp_path / "report.md").read_text()
    expected = GOLDEN / "uring-copy.report.md"
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(report)
    assert report == expected.read_text()
