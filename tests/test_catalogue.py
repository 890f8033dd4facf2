"""The metric catalogue is the one place metrics are defined; the docs come from it."""

from __future__ import annotations

import json
from pathlib import Path

from ci_gate.metrics import registry
from ci_gate.report import catalogue
from helpers import REPO, gate


def test_docs_metrics_md_is_generated_from_the_registry() -> None:
    committed = (REPO / "docs" / "metrics.md").read_text()
    assert committed == catalogue.render(), "docs/metrics.md is stale: run `syscall-gate docs`"


def test_every_spec_is_documented() -> None:
    for spec in registry.SPECS:
        assert spec.definition.strip().endswith("."), spec.name
        assert spec.unit and spec.scope in catalogue._SCOPES, spec.name


def test_every_metric_a_run_produces_is_registered(tmp_path: Path, copier: Path) -> None:
    pol = tmp_path / "p.yml"
    pol.write_text(
        "version: 1\nscenario:\n"
        f"  command: {copier} --threads 2 --wait-separately {{src}} {{dst}}\n"
        "  fixture: {files: 2, file_size: 256KiB, dirs: 1}\n"
    )
    proc = gate("run", "--policy", str(pol), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    names = set(res["metrics"]) | set(res["unmeasured"])
    unregistered = sorted(n for n in names if registry.lookup(n) is None)
    assert not unregistered


def test_lookup_rejects_what_does_not_exist() -> None:
    assert registry.lookup("syscall.statx.calls") is not None
    assert registry.lookup("syscall.not_a_syscall.calls") is None
    assert registry.lookup("statx.path_based") is not None
    assert registry.lookup("read.path_based") is None  # read takes no path
    assert registry.lookup("io_uring.ops.READ") is not None
    assert registry.lookup("io_uring.ops.SPLICEY") is None
    assert registry.suggest("syscall.statxx.calls")[0] == "syscall.statx.calls"
