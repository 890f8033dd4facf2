"""ci_gate.action, the action's entry point, run the way the runner runs it.

Inputs arrive as INPUT_<NAME> environment variables with their hyphens kept; outputs leave
through the GITHUB_OUTPUT file. Each test runs ``python -m ci_gate.action`` in a child
process on a real workspace, tracing the reference copier with the real strace. Expected
statuses come from the copier's construction (helpers.copier_expectations) and the
preset's thresholds, expected exit codes from action.yml's documentation of `fail-on`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import COPIER, REPO, Tree, copier_expectations

MiB = 1 << 20
TOKEN = "ghs_test-token-0123456789abcdef"  # recognisable, so a leak anywhere is found


def parse_outputs(path: Path) -> dict[str, str]:
    """The runner's reading of a GITHUB_OUTPUT file: `name=value` or heredoc blocks."""
    out: dict[str, str] = {}
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        m = re.fullmatch(r"([^=<]+)<<(.+)", line)
        if m:
            name, delim = m.groups()
            end = lines.index(delim, i)
            out[name] = "\n".join(lines[i:end])
            i = end + 1
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def cli_help(command: str) -> str:
    """The installed CLI's own --help: the oracle for which options exist."""
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate", command, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return proc.stdout


def runner_env(ws: Path, files: Path, inputs: dict[str, str]) -> dict[str, str]:
    """The environment a step gets: GITHUB_ variables, file commands, INPUT_ variables."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))
    }
    files.mkdir(parents=True, exist_ok=True)
    (files / "event.json").write_text("{}")
    (files / "output").write_text("")
    (files / "summary").write_text("")
    (files / "runner_temp").mkdir(exist_ok=True)
    env.update(
        {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(ws),
            "GITHUB_OUTPUT": str(files / "output"),
            "GITHUB_STEP_SUMMARY": str(files / "summary"),
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(files / "event.json"),
            "GITHUB_REPOSITORY": "octo-org/copier",
            "GITHUB_SHA": "0" * 40,
            "GITHUB_RUN_ID": "1",
            "GITHUB_SERVER_URL": "http://127.0.0.1:9",
            "GITHUB_API_URL": "http://127.0.0.1:9",  # nothing listens: publishing cannot leave
            "RUNNER_TEMP": str(files / "runner_temp"),
        }
    )
    for name, value in inputs.items():
        env["INPUT_" + name.upper()] = value  # hyphens kept, as GitHub does
    return env


def write_policy(path: Path, command: str, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        extends: [builtin:io-uring-copier]
        scenario:
          id: copier
          command: {command}
          fixture: {{files: 3, file_size: 1MiB, dirs: 2, symlinks: true}}
          timeout: 60s
        """)
        + extra
    )
    return path


def action(
    ws: Path, tmp: Path, inputs: dict[str, str], cwd: Path | None = None
) -> tuple[int, dict[str, str], str, Path]:
    files = tmp / "files"
    env = runner_env(ws, files, inputs)
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate.action"],
        cwd=cwd or ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, parse_outputs(files / "output"), proc.stdout + proc.stderr, files


@pytest.fixture
def ws(tmp_path: Path, copier: Path) -> Path:
    w = tmp_path / "workspace"
    w.mkdir()
    return w


def test_pass_outputs_and_workspace_relative_paths(ws: Path, tmp_path: Path) -> None:
    write_policy(ws / ".github" / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    rc, out, log, _ = action(ws, tmp_path, {"policy": ".github/gate.yml"})
    assert rc == 0, log
    assert out == {
        "status": "PASS",
        "exit-code": "0",
        "out-dir": "syscall-gate-out",
        "report-path": "syscall-gate-out/report.md",
        "results-path": "syscall-gate-out/results.json",
    }
    res = json.loads((ws / out["results-path"]).read_text())
    expected = copier_expectations(Tree(3, MiB, 2, True))
    assert {k: res["metrics"].get(k) for k in expected} == expected
    assert res["environment"]["trace_placement"]["where"] == "here"
    assert (ws / out["report-path"]).read_text().startswith("## syscall-gate")


def test_working_directory_resolves_policy_and_out_dir(ws: Path, tmp_path: Path) -> None:
    sub = ws / "sub" / "project"
    write_policy(sub / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    inputs = {"policy": "gate.yml", "working-directory": "sub/project", "out-dir": "o"}
    rc, out, log, _ = action(ws, tmp_path, inputs)
    assert rc == 0, log
    assert out["results-path"] == "sub/project/o/results.json"
    res = json.loads((ws / out["results-path"]).read_text())
    assert res["scenario"]["workdir"] == str(sub)


@pytest.mark.parametrize(
    ("batch", "status", "gate_rc"),
    # batch.avg is 8 with the default batch, 8/3 (< 4: WARN) with --batch 3, 1 (< 2: FAIL)
    # with --batch 1 (preset: warn below 4, fail below 2).
    [(8, "PASS", 0), (3, "WARN", 0), (1, "FAIL", 1)],
)
@pytest.mark.parametrize(
    ("fail_on", "failing"),
    [
        ("fail", {"FAIL", "ERROR"}),
        ("warn", {"WARN", "FAIL", "ERROR"}),
        ("error", {"ERROR"}),
        ("never", set()),
    ],
)
def test_fail_on(
    ws: Path, tmp_path: Path, batch: int, status: str, gate_rc: int, fail_on: str, failing: set[str]
) -> None:
    assert (
        copier_expectations(Tree(3, MiB, 2, True), batch=batch)["io_uring.batch.avg"]
        == {8: 8, 3: 8 / 3, 1: 1}[batch]
    )
    write_policy(ws / "gate.yml", f"{COPIER} --batch {batch} {{src}} {{dst}}")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml", "fail-on": fail_on})
    assert out["status"] == status, log
    assert out["exit-code"] == str(gate_rc)
    if status in failing:
        assert rc == (gate_rc or 1), log
        assert f"::error title=syscall-gate::status {status} fails the step" in log
    else:
        assert rc == 0, log
        assert "::error" not in log


def test_error_fails_unless_never(ws: Path, tmp_path: Path) -> None:
    write_policy(ws / "gate.yml", "./no-such-target {src} {dst}")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml"})
    assert (rc, out["status"], out["exit-code"]) == (3, "ERROR", "3"), log
    shutil.rmtree(ws / "syscall-gate-out")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml", "fail-on": "never"})
    assert (rc, out["status"], out["exit-code"]) == (0, "ERROR", "3"), log


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"fail-on": "sometimes"}, "input fail-on: 'sometimes' is not one of"),
        ({"build": "yes"}, "input build: 'yes' is not true or false"),
        ({"working-directory": "nowhere"}, "input working-directory: 'nowhere' is not"),
        ({"policy": "missing.yml"}, "input policy: 'missing.yml' is not a file"),
        ({"policy": ""}, "input policy is required"),
        ({"scenario": "two words"}, "input scenario: 'two words' is not a scenario id"),
    ],
)
def test_bad_inputs_fail_with_usage_error(
    ws: Path, tmp_path: Path, inputs: dict[str, str], message: str
) -> None:
    write_policy(ws / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml", **inputs})
    assert rc == 2, log
    assert f"::error title=syscall-gate::{message}" in log
    assert out["status"] == "ERROR" and out["exit-code"] == "2" and out["report-path"] == ""


def test_invalid_policy_fails_even_with_fail_on_never(ws: Path, tmp_path: Path) -> None:
    (ws / "gate.yml").write_text("version: 1\nrules:\n  x: {metric: no.such.metric}\n")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml", "fail-on": "never"})
    assert rc == 2, log
    assert "gate.yml:3:" in log
    assert out["status"] == "ERROR" and out["exit-code"] == "2"


def test_hyphenated_names_are_the_ones_read(ws: Path, tmp_path: Path) -> None:
    # GitHub keeps hyphens: INPUT_FAIL-ON is the input, INPUT_FAIL_ON is not.
    write_policy(ws / "gate.yml", f"{COPIER} --batch 1 {{src}} {{dst}}")
    files = tmp_path / "files"
    env = runner_env(ws, files, {"policy": "gate.yml"})
    env["INPUT_FAIL_ON"] = "never"
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate.action"], cwd=ws, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    env["INPUT_FAIL-ON"] = "never"
    shutil.rmtree(ws / "syscall-gate-out")
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate.action"], cwd=ws, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_token_reaches_neither_log_nor_target_nor_files(ws: Path, tmp_path: Path) -> None:
    # The "target" prints its environment; verify is off because it copies nothing.
    write_policy(ws / "gate.yml", "env", extra="")
    text = (
        (ws / "gate.yml")
        .read_text()
        .replace("  timeout: 60s\n", "  timeout: 60s\n  verify: none\n")
    )
    (ws / "gate.yml").write_text(text)
    inputs = {"policy": "gate.yml", "github-token": TOKEN, "publish": "never", "fail-on": "never"}
    rc, _, log, files = action(ws, tmp_path, inputs)
    assert rc == 0, log
    seen = (ws / "syscall-gate-out" / "target.stdout").read_text()
    assert "PATH=" in seen  # the target did print its environment
    assert "GITHUB_TOKEN" not in seen and "INPUT_GITHUB-TOKEN" not in seen
    assert TOKEN not in log
    for path in [*ws.rglob("*"), *files.rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_scenario_input_renames_the_scenario(ws: Path, tmp_path: Path) -> None:
    write_policy(ws / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml", "scenario": "gcc-14"})
    assert rc == 0, log
    res = json.loads((ws / out["results-path"]).read_text())
    assert res["scenario"]["id"] == "gcc-14"
    assert "gate.yml" in res["policy"]["sources"]
    assert "`gcc-14`" in (ws / out["report-path"]).read_text().splitlines()[0]


def test_build_input(ws: Path, tmp_path: Path) -> None:
    pol = write_policy(ws / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    pol.write_text(pol.read_text().replace("scenario:\n", "scenario:\n  build: touch built\n"))
    rc, _, log, _ = action(ws, tmp_path, {"policy": "gate.yml", "build": "false"})
    assert rc == 0, log
    assert not (ws / "built").exists()
    rc, _, log, _ = action(ws, tmp_path, {"policy": "gate.yml"})
    assert rc == 0, log
    assert (ws / "built").exists()


def test_publish_inputs_reach_the_cli(ws: Path, tmp_path: Path) -> None:
    write_policy(ws / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    inputs = {
        "policy": "gate.yml",
        "publish": "never",
        "comment": "on-failure",
        "delete-on-pass": "true",
        "conclusion-map": "WARN=success",
        "comment-author": "my-app[bot]",
        "report-url": "https://example.invalid/r",
    }
    rc, _, log, files = action(ws, tmp_path, inputs)
    assert rc == 0, log
    assert (
        "--publish never --comment on-failure --delete-on-pass --conclusion-map "
        "WARN=success --comment-author 'my-app[bot]' --report-url "
        "https://example.invalid/r"
    ) in log
    # --publish never still writes the step summary (and nothing else).
    summary = (files / "summary").read_text()
    assert summary.startswith("## syscall-gate: ") and "scenario `copier`" in summary


def test_bad_publish_option_values_are_usage_errors(ws: Path, tmp_path: Path) -> None:
    write_policy(ws / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml", "conclusion-map": "WARN=maybe"})
    assert rc == 2, log
    assert out["status"] == "ERROR" and out["report-path"] == ""


def test_merge_input(ws: Path, tmp_path: Path) -> None:
    # Two scenarios measured apart (as matrix jobs are), then merged into one verdict.
    write_policy(ws / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    for name, batch in (("a", 8), ("b", 1)):
        pol = write_policy(ws / f"{name}.yml", f"{COPIER} --batch {batch} {{src}} {{dst}}")
        rc, _, log, _ = action(
            ws,
            tmp_path,
            {
                "policy": pol.name,
                "scenario": name,
                "out-dir": f"reports/{name}",
                "publish": "never",
                "fail-on": "never",
            },
        )
        assert rc == 0, log
    inputs = {"merge": "reports/*/", "out-dir": "merged", "scenario": "all", "publish": "never"}
    rc, out, log, files = action(ws, tmp_path, inputs)
    # b used batches of 1: its FAIL is the merged verdict, and it fails the step.
    assert (rc, out["status"], out["exit-code"]) == (1, "FAIL", "1"), log
    assert out["results-path"] == "merged/results.json"
    assert "running: syscall-gate merge reports/a/ reports/b/ --out merged --id all" in log
    report = (ws / out["report-path"]).read_text()
    assert "`a`" in report and "`b`" in report
    assert (files / "summary").read_text().startswith("## syscall-gate")
    rc, out, log, _ = action(ws, tmp_path, {**inputs, "fail-on": "never"})
    assert (rc, out["status"]) == (0, "FAIL"), log
    rc, _, log, _ = action(ws, tmp_path, {"merge": "nothing-here/*/"})
    assert rc == 2 and "input merge: 'nothing-here/*/' matches nothing" in log


def test_stale_results_are_not_reported(ws: Path, tmp_path: Path) -> None:
    write_policy(ws / "gate.yml", f"{COPIER} {{src}} {{dst}}")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml"})
    assert (rc, out["status"]) == (0, "PASS"), log
    (ws / "gate.yml").write_text("version: 1\nrules: {x: {metric: nope}}\n")
    rc, out, log, _ = action(ws, tmp_path, {"policy": "gate.yml"})
    assert (rc, out["status"], out["results-path"]) == (2, "ERROR", ""), log


def test_files_written_as_root_go_to_the_workspace_owner(ws: Path, tmp_path: Path) -> None:
    # The build writes into the workspace, the gate writes its out dir: all as root.
    src = ws / "uring-copy"
    shutil.copytree(
        REPO / "examples" / "uring-copy", src, ignore=shutil.ignore_patterns("uring-copy")
    )
    pol = write_policy(ws / ".github" / "gate.yml", "uring-copy/uring-copy {src} {dst}")
    pol.write_text(
        pol.read_text().replace("scenario:\n", "scenario:\n  build: make -C uring-copy\n")
    )
    (ws / "root-owned-before").write_text("left alone")
    for p in [ws, *ws.rglob("*")]:
        if p.name != "root-owned-before":
            os.lchown(p, 1234, 1234)
    rc, _, log, _ = action(ws, tmp_path, {"policy": ".github/gate.yml"})
    assert rc == 0, log
    assert (ws / "uring-copy" / "uring-copy").is_file()
    owners = {str(p.relative_to(ws)): (p.lstat().st_uid, p.lstat().st_gid) for p in ws.rglob("*")}
    assert owners.pop("root-owned-before") == (0, 0)
    assert set(owners.values()) == {(1234, 1234)}, owners
    assert "syscall-gate-out/trace.txt" in owners
