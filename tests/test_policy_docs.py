"""docs/policy.md and README stay true: example policies validate, preset tables match presets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ci_gate.metrics import registry
from ci_gate.policy.load import load_policy
from ci_gate.policy.model import fmt_number
from helpers import REPO

DOC = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
README = (REPO / "README.md").read_text(encoding="utf-8")


def _policies(markdown: str) -> list[str]:
    """YAML blocks that are policies: their first line that is not a comment is `version: 1`."""
    out = []
    for block in re.findall(r"```yaml\n(.*?)```", markdown, flags=re.S):
        lines = [x for x in block.splitlines() if x.strip() and not x.startswith("#")]
        if lines and lines[0] == "version: 1":
            out.append(block)
    return out


EXAMPLES = _policies(DOC) + _policies(README)


def test_the_doc_has_examples() -> None:
    assert len(_policies(DOC)) >= 3
    assert len(_policies(README)) >= 1


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_example_policy_is_valid(tmp_path: Path, text: str) -> None:
    path = tmp_path / "example.yml"
    path.write_text(text, encoding="utf-8")
    load_policy(path)


def _bounds(raw: dict[str, object]) -> str:
    parts = []
    for kind in ("warn", "fail"):
        bound = raw.get(kind)
        if isinstance(bound, dict):
            parts += [f"{kind} {k} {fmt_number(v)}" for k, v in bound.items()]
    text = ", ".join(parts)
    return text + " (advisory)" if raw.get("mode") == "advisory" else text


@pytest.mark.parametrize("name", ["io-uring-copier", "file-tool", "minimal"])
def test_preset_tables_match_the_presets(name: str) -> None:
    section = DOC.split(f"### builtin:{name}\n", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(
        r"^\| `([^`]+)` \| `([^`]+)`( per file)? \| ([^|]*) \|(?: ([^|]*) \|)?", section, re.M
    )
    has_deduct = "| Deduct |" in section
    rules = yaml.safe_load((REPO / "policies" / f"{name}.yml").read_text())["rules"]
    assert [r[0] for r in rows] == list(rules)
    for rid, metric, per, bounds, deduct in rows:
        raw = rules[rid]
        assert metric == raw["metric"], rid
        assert bool(per) == (raw.get("per") == "file"), rid
        assert bounds.strip() == _bounds(raw), rid
        if has_deduct:
            assert deduct.strip() == (fmt_number(raw["deduct"]) if "deduct" in raw else ""), rid


def test_the_unknown_metric_example_shows_what_the_gate_suggests() -> None:
    examples = re.findall(r"unknown metric '([^']+)'; did you mean ([^?]+)\?", DOC)
    assert examples
    for metric, said in examples:
        assert said == ", ".join(repr(c) for c in registry.suggest(metric)), metric
