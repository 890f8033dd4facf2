"""The published JSON Schema: one file in two places, its metric list, editors' view of presets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ci_gate.metrics import registry, syscall_table
from ci_gate.metrics.pathcalls import PATH_CALLS
from ci_gate.policy import schema as policy_schema
from helpers import REPO

PACKAGED = REPO / "ci_gate" / "policy" / "policy-v1.schema.json"
PUBLISHED = REPO / "schema" / "policy-v1.schema.json"
SHIPPED = sorted((REPO / "policies").glob("*.yml"))
MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")


def published() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    return loaded


def test_published_schema_is_the_packaged_one() -> None:
    assert PUBLISHED.read_bytes() == PACKAGED.read_bytes()


def test_schema_is_not_stale() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate.policy.schema", "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert policy_schema.render(json.loads(PACKAGED.read_text())) == PACKAGED.read_text()


def test_the_loader_reads_the_packaged_schema() -> None:
    assert policy_schema.published() == published()
    assert "enum" not in policy_schema.for_validation()["$defs"]["metric"]


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(published())


def test_metric_list_is_what_the_registry_accepts() -> None:
    names = published()["$defs"]["metric"]["enum"]
    assert names == sorted(set(names))
    listed = set(names)
    for name in names:
        assert registry.lookup(name) is not None, name
    # Built here from the tables the registry itself draws on.
    expected = {s.name for s in registry.SPECS if "<" not in s.name}
    for syscall in syscall_table.CATEGORY:
        expected |= {f"syscall.{syscall}.calls", f"syscall.{syscall}.errors",
                     f"scenario.syscall.{syscall}.calls"}  # fmt: skip
    for call in PATH_CALLS:
        for cls in ("path_based", "fd_based", "dirfd_relative"):
            expected |= {f"{call}.{cls}", f"scenario.{call}.{cls}"}
    opcodes = [*registry.IO_URING_OPCODES, registry.IO_URING_INVALID_OPCODE]
    expected |= {f"io_uring.ops.{op}" for op in opcodes}
    assert listed == expected


def test_every_property_is_described_for_editors() -> None:
    doc = published()
    defs = doc["$defs"]
    undocumented = []

    def walk(node: dict[str, Any], where: str) -> None:
        for key, sub in node.get("properties", {}).items():
            target = defs[sub["$ref"].rsplit("/", 1)[-1]] if "$ref" in sub else sub
            if "description" not in sub and "description" not in target:
                undocumented.append(f"{where}.{key}")
            if "$ref" not in sub:
                walk(sub, f"{where}.{key}")

    walk(doc, "policy")
    for name, sub in defs.items():
        walk(sub, name)
    assert undocumented == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_names_the_schema_for_editors(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines(keepends=True)[0]
    m = MODELINE.fullmatch(first)
    assert m is not None, first
    assert (path.parent / m.group(1)).resolve() == PUBLISHED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_editors_accept_the_shipped_policies(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(published())
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(doc)] == []


def test_editors_flag_a_misspelt_metric_and_a_yaml11_mode() -> None:
    validator = jsonschema.Draft202012Validator(published())
    # What an editor's YAML 1.1 parser makes of `mode: off`: false.
    doc = yaml.safe_load("version: 1\nrules:\n  r: {metric: syscal.statx.calls, mode: off}\n")
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert [(list(e.absolute_path), e.validator) for e in errors] == [
        (["rules", "r", "metric"], "enum"),
        (["rules", "r", "mode"], "enum"),
    ]
