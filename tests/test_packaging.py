"""The package list in pyproject.toml is written by hand (presets live in policies/):
every package under ci_gate/ must be on it, or a non-editable install misses modules."""

from __future__ import annotations

import tomllib

from helpers import REPO


def test_every_subpackage_is_installed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ci_gate").rglob("__init__.py")
    }
    assert on_disk <= listed, sorted(on_disk - listed)
    assert "ci_gate.presets" in listed
    assert config["tool"]["setuptools"]["package-dir"]["ci_gate.presets"] == "policies"
