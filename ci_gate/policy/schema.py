"""The policy v1 JSON Schema: the packaged copy, the published copy, and its metric list.

The schema's structure is written by hand in policy-v1.schema.json. Its list of
metric names (`$defs.metric.enum`, for editor completion and for editors to flag
a misspelt metric) is generated from the metric registry, the source of truth,
and the same file is published at schema/policy-v1.schema.json for editors:

    python -m ci_gate.policy.schema            # regenerate both files
    python -m ci_gate.policy.schema --check    # exit 1 when either is stale

The gate itself validates with the list removed: its semantic pass checks
metric names against the registry and says "did you mean".
"""

from __future__ import annotations

import argparse
import copy
import importlib.resources
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from ci_gate.metrics import registry, syscall_table

FILE_NAME = "policy-v1.schema.json"
PACKAGED = Path(__file__).resolve().with_name(FILE_NAME)
# Where editors find it in a checkout; the packaged file's `$id` points there too.
PUBLISHED = Path(__file__).resolve().parents[2] / "schema" / FILE_NAME


def metric_names() -> list[str]:
    """Every concrete metric name the registry accepts, families expanded."""
    values = {ph: list(v) for ph, v in registry.concrete_examples().items()}
    values["<name>"] = list(syscall_table.CATEGORY)
    names: set[str] = set()
    for spec in registry.SPECS:
        holders = [ph for ph in values if ph in spec.name]
        if not holders:
            if "<" in spec.name:
                raise ValueError(f"{spec.name}: a placeholder this generator does not know")
            names.add(spec.name)
            continue
        (ph,) = holders  # every family has one placeholder
        names.update(spec.name.replace(ph, v) for v in values[ph])
    return sorted(names)


def render(template: dict[str, Any]) -> str:
    """The schema text: `template` with the generated metric list, in a fixed layout."""
    out = copy.deepcopy(template)
    out["$defs"]["metric"]["enum"] = metric_names()
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


@cache
def published() -> dict[str, Any]:
    """The schema as shipped (with the metric list)."""
    text = importlib.resources.files("ci_gate.policy").joinpath(FILE_NAME).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def for_validation() -> dict[str, Any]:
    """The schema the loader validates with: metric names are left to the semantic pass."""
    out = copy.deepcopy(published())
    out["$defs"]["metric"].pop("enum", None)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ci_gate.policy.schema",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--check", action="store_true", help="exit 1 if a copy is stale")
    args = ap.parse_args(argv)
    text = render(json.loads(PACKAGED.read_text(encoding="utf-8")))
    stale = 0
    for target in (PACKAGED, PUBLISHED):
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current == text:
            continue
        if args.check:
            print(f"{target} is stale: run `python -m ci_gate.policy.schema`", file=sys.stderr)
            stale = 1
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
