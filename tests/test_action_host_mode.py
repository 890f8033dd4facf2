"""Host mode (host/action.yml) end to end: its composite steps, run as the runner runs them.

Each step's `run:` script is written to a file and run with the runner's bash template
(``bash --noprofile --norc -e -o pipefail FILE``) in the workspace, with the step's `env:`
evaluated (``inputs.*`` from the given inputs or action.yml's defaults, ``steps.*.outputs.*``
from the GITHUB_OUTPUT files of earlier steps) and GITHUB_ACTION_PATH pointing at host/. The
install step really creates a virtual environment and pip-installs this repository; the gate
step traces the reference copier on the demo policy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_action_entrypoint import parse_outputs

from helpers import REPO, Tree, copier_expectations

MiB = 1 << 20
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(text: str, ctx: dict[str, Any]) -> str:
    """The few expression forms host/action.yml may use; anything else fails the test."""

    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr == "github.token":
            return ctx["github.token"]
        if expr.startswith("inputs."):
            return ctx["inputs"][expr[len("inputs.") :]]
        sm = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
        if sm:
            return ctx["steps"].get(sm.group(1), {}).get(sm.group(2), "")
        raise AssertionError(f"expression the test cannot evaluate: {expr!r}")

    return _EXPR.sub(one, text)


Steps = list[subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUNNER_TEMP, shared by the tests here as by the steps of one job (the venv is kept)."""
    return tmp_path_factory.mktemp("runner_temp")


def run_composite(
    action_dir: Path, ws: Path, tmp: Path, runner_temp: Path, given: dict[str, str]
) -> tuple[dict[str, str], Steps]:
    meta = yaml.safe_load((action_dir / "action.yml").read_text())
    assert meta["runs"]["using"] == "composite"
    ctx: dict[str, Any] = {"github.token": "", "steps": {}}
    ctx["inputs"] = {
        name: evaluate(str(spec.get("default", "")), ctx) for name, spec in meta["inputs"].items()
    }
    ctx["inputs"].update(given)
    tmp.mkdir(exist_ok=True)
    (tmp / "event.json").write_text("{}")
    summary = tmp / "step_summary"
    summary.write_text("")
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))
    }
    base.update(
        {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(ws),
            "GITHUB_ACTION_PATH": str(action_dir),
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(tmp / "event.json"),
            "GITHUB_REPOSITORY": "octo-org/copier",
            "GITHUB_SHA": "0" * 40,
            "GITHUB_RUN_ID": "1",
            "GITHUB_SERVER_URL": "http://127.0.0.1:9",
            "GITHUB_API_URL": "http://127.0.0.1:9",
        }
    )
    done = []
    for i, step in enumerate(meta["runs"]["steps"]):
        assert "run" in step and step["shell"] == "bash", step
        env = dict(base)
        env.update({k: evaluate(str(v), ctx) for k, v in (step.get("env") or {}).items()})
        output = tmp / f"output-{i}"
        output.write_text("")
        env["GITHUB_OUTPUT"] = str(output)
        script = tmp / f"step-{i}.sh"
        script.write_text(step["run"])
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", str(script)],
            cwd=ws,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        done.append(proc)
        if "id" in step:
            ctx["steps"][step["id"]] = parse_outputs(output)
        if proc.returncode != 0:
            break
    outputs = {name: evaluate(spec["value"], ctx) for name, spec in meta["outputs"].items()}
    return outputs, done


def test_host_mode_steps_run_end_to_end(tmp_path: Path, runner_temp: Path) -> None:
    ws = tmp_path / "workspace"
    shutil.copytree(
        REPO / "examples" / "uring-copy",
        ws / "examples" / "uring-copy",
        ignore=shutil.ignore_patterns("uring-copy"),
    )
    (ws / ".github").mkdir()
    shutil.copy(REPO / "policies" / "uring-copy-demo.yml", ws / ".github" / "syscall-gate.yml")
    outputs, steps = run_composite(
        REPO / "host", ws, tmp_path, runner_temp, {"policy": ".github/syscall-gate.yml"}
    )
    log = "\n".join(p.stdout + p.stderr for p in steps)
    assert [p.returncode for p in steps] == [0, 0, 0], log
    venv_python = runner_temp / "syscall-gate-venv" / "bin" / "python"
    assert venv_python.is_file()
    assert "running: syscall-gate run --policy .github/syscall-gate.yml" in log
    assert outputs == {
        "status": "PASS",
        "exit-code": "0",
        "out-dir": "syscall-gate-out",
        "report-path": "syscall-gate-out/report.md",
        "results-path": "syscall-gate-out/results.json",
    }
    res = json.loads((ws / outputs["results-path"]).read_text())
    expected = copier_expectations(Tree(3, 5 * MiB, 2, True))
    assert {k: res["metrics"].get(k) for k in expected} == expected
    assert res["environment"]["trace_placement"] == {"where": "here", "io_uring_probe": "ok"}
    # As root on the host, the kernel's tracepoints give the opcodes: one READ and one WRITE
    # SQE per chunk (examples/uring-copy/README.md), the SQEs strace saw submitted.
    sqes = expected["io_uring.sqes_submitted"]
    ops = {k: v for k, v in res["metrics"].items() if k.startswith("io_uring.ops.")}
    assert ops["io_uring.ops.READ"] == ops["io_uring.ops.WRITE"] == sqes / 2
    assert ops["io_uring.ops.total"] == sqes
    # The gate that ran is the one the install step put in the venv, not the test's.
    assert (
        res["environment"]["gate"]
        == subprocess.run(
            [str(venv_python), "-c", "import ci_gate; print(ci_gate.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert (ws / "syscall-gate-out" / "report.md").is_file()


def test_host_mode_fail_on_and_exit_code(tmp_path: Path, runner_temp: Path) -> None:
    # A policy the copier cannot pass: the step fails with the gate's exit code 1,
    # unless fail-on says otherwise.
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "gate.yml").write_text(
        "version: 1\n"
        "scenario:\n"
        "  command: cp -a {src} {dst}\n"
        "  fixture: {files: 2, file_size: 4KiB, dirs: 1}\n"
        "rules:\n"
        "  needs-uring: {metric: io_uring.rings, fail: {min: 1}}\n"
    )
    outputs, steps = run_composite(
        REPO / "host", ws, tmp_path, runner_temp, {"policy": "gate.yml", "out-dir": "o"}
    )
    assert steps[-1].returncode == 1, steps[-1].stdout + steps[-1].stderr
    assert outputs["status"] == "FAIL" and outputs["exit-code"] == "1"
    assert outputs["results-path"] == "o/results.json"
    (ws / "o" / "results.json").unlink()
    outputs, steps = run_composite(
        REPO / "host",
        ws,
        tmp_path / "again",
        runner_temp,
        {"policy": "gate.yml", "out-dir": "o", "fail-on": "never"},
    )
    assert steps[-1].returncode == 0, steps[-1].stdout + steps[-1].stderr
    assert outputs["status"] == "FAIL" and outputs["exit-code"] == "1"
