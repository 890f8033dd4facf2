"""action.yml, host/action.yml and the example workflows against GitHub's published schemas.

The schemas are the ones check-jsonschema vendors from SchemaStore (``vendor.github-actions``
and ``vendor.github-workflows``); the real check-jsonschema command validates. The example
directory is globbed, so workflows added later (the two-stage pair) are checked too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO

ACTIONS = [REPO / "action.yml", REPO / "host" / "action.yml"]
WORKFLOWS = sorted((REPO / "examples" / "workflows").glob("*.yml"))


def check(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe is not None, "check-jsonschema is a dev dependency (pip install -e '.[dev]')"
    return subprocess.run(
        [exe, "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True
    )


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_action_metadata_is_valid(path: Path) -> None:
    proc = check("vendor.github-actions", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_there_are_example_workflows() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"syscall-gate.yml", "matrix-merge.yml", "merge-queue.yml"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_example_workflow_is_valid(path: Path) -> None:
    proc = check("vendor.github-workflows", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schemas_do_reject(tmp_path: Path) -> None:
    # A control: the same files, broken, must fail, or the checks above prove nothing.
    action = yaml.safe_load((REPO / "action.yml").read_text())
    action["runs"]["using"] = "dockr"
    bad_action = tmp_path / "action.yml"
    bad_action.write_text(yaml.safe_dump(action))
    assert check("vendor.github-actions", bad_action).returncode == 1
    flow = yaml.safe_load((REPO / "examples" / "workflows" / "syscall-gate.yml").read_text())
    flow["jobs"]["syscall-gate"]["runs-on"] = {"no": "such"}
    bad_flow = tmp_path / "flow.yml"
    bad_flow.write_text(yaml.safe_dump(flow))
    assert check("vendor.github-workflows", bad_flow).returncode == 1


def _meta(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_container_action_runs_the_dockerfile() -> None:
    meta = _meta(REPO / "action.yml")
    assert meta["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert meta["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert set(meta["outputs"]) >= {"status", "report-path", "results-path"}
    assert all(o["description"] for o in meta["outputs"].values())
    assert all(i["description"] for i in meta["inputs"].values())


def test_host_mode_has_the_same_inputs_and_outputs() -> None:
    container, host = _meta(REPO / "action.yml"), _meta(REPO / "host" / "action.yml")
    extra = set(host["inputs"]) - set(container["inputs"])
    assert extra == {"root"}
    for name, spec in container["inputs"].items():
        assert host["inputs"][name]["default"] == spec["default"], name
    assert set(host["outputs"]) == set(container["outputs"])
    for name, spec in host["outputs"].items():
        assert spec["value"] == f"${{{{ steps.gate.outputs.{name} }}}}"
    # Every input reaches the gate under the name a container action would get.
    env = host["runs"]["steps"][-1]["env"]
    for name in container["inputs"]:
        assert env["INPUT_" + name.upper()] == f"${{{{ inputs.{name} }}}}", name


def test_entry_point_knows_every_input_and_its_default() -> None:
    from ci_gate import action

    inputs = _meta(REPO / "action.yml")["inputs"]
    assert set(action.DEFAULTS) == set(inputs)
    for name, spec in inputs.items():
        if name != "github-token":  # an expression the runner expands
            assert action.DEFAULTS[name] == spec["default"], name
