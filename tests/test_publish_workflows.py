"""The two-stage example workflows fit together and keep the fork's code out of stage 2."""

from __future__ import annotations

from typing import Any

import yaml

from helpers import REPO

WORKFLOWS = REPO / "examples" / "workflows"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def test_two_stage_workflows_fit_together() -> None:
    measure = load("two-stage-measure.yml")
    post = load("two-stage-publish.yml")
    assert list(measure["on"]) == ["pull_request"]
    assert measure["permissions"] == {"contents": "read"}
    assert post["on"]["workflow_run"]["workflows"] == [measure["name"]]

    (upload,) = [s for s in steps(measure) if str(s.get("uses", "")).startswith(
        "actions/upload-artifact")]  # fmt: skip
    (download,) = [s for s in steps(post) if str(s.get("uses", "")).startswith(
        "actions/download-artifact")]  # fmt: skip
    assert upload["with"]["name"] == download["with"]["name"]
    assert "results.json" in upload["with"]["path"]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"

    run_lines = " ".join(str(s.get("run", "")) for s in steps(measure))
    assert "syscall-gate run" in run_lines and "--publish never" in run_lines
    publish = [s for s in steps(post) if "syscall-gate publish" in str(s.get("run", ""))]
    assert len(publish) == 1 and "--from-artifact" in publish[0]["run"]
    assert publish[0]["env"]["GITHUB_TOKEN"] == "${{ github.token }}"


def test_stage_two_never_checks_out_the_pull_request() -> None:
    post = load("two-stage-publish.yml")
    text = (WORKFLOWS / "two-stage-publish.yml").read_text()
    assert not any("actions/checkout" in str(s.get("uses", "")) for s in steps(post))
    assert "head_sha }}" not in text and "head_branch" not in text
    assert post["permissions"] == {
        "actions": "read",
        "pull-requests": "write",
        "checks": "write",
        "statuses": "write",
    }
