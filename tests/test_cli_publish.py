"""The real command line (a child process) publishing to the loopback fake GitHub.

Each test runs ``syscall-gate`` in "Actions mode": the standard environment variables and an
event payload from ``@octokit/webhooks-examples`` (tests/github_api/payloads). Results come
from real traces: the reference copier under ``run``, or ``cp -a`` traced by the real
strace and judged by ``analyze``. Every request the fake receives is validated against
GitHub's OpenAPI description. The token is a sentinel that must never be printed or written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_gate.publish import comment_marker
from github_api.fake_server import ACTIONS_BOT, FakeGitHub
from github_api.helpers import MERGE_SHA, RUN_ID, actions_env, closed_port, load_payload
from helpers import COPIER, REPO, gate

TOKEN = "ghs_SENTINELcliToken0that0must0never0leakQ7"
SAME = load_payload("pull_request.same_repo.json")
FORK = load_payload("pull_request.fork.json")
SAME_HEAD = SAME["pull_request"]["head"]["sha"]
FORK_HEAD = FORK["pull_request"]["head"]["sha"]
PR = SAME["pull_request"]["number"]
assert FORK["pull_request"]["number"] == PR
CHECK_SUMMARY_MAX_BYTES = 65535
COMMENT_MAX_CHARS = 65536


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as server:
        yield server
        server.assert_valid()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def env_for(
    tmp_path: Path,
    workspace: Path,
    *,
    api_url: str,
    server_url: str,
    event_name: str = "pull_request",
    payload: dict[str, Any] | None = SAME,
    repository: str = "Codertocat/Hello-World",
    api_env: bool = True,
) -> dict[str, str]:
    env = actions_env(
        tmp_path,
        api_url=api_url,
        server_url=server_url,
        event_name=event_name,
        payload=payload,
        token=TOKEN,
        repository=repository,
    )
    if not api_env:
        del env["GITHUB_API_URL"]
    env.update(
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(workspace),
        PATH=os.environ["PATH"],
        PYTHONPATH=str(REPO),
        SYSCALL_GATE_API_MAX_WAIT="0",  # an unreachable API is given up on at once
    )
    return env


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = gate(*args, env=env, cwd=cwd, timeout=300)
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    return proc


def no_token_in(*dirs: Path) -> None:
    for d in dirs:
        for path in d.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def warnings_of(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """Our ::warning lines, unescaped (the runner's decoding)."""
    out = []
    for line in proc.stdout.splitlines():
        m = re.match(r"^::warning(?: [^:]*)?::(.*)$", line)
        if m:
            out.append(m.group(1).replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%"))
    return out


def no_foreign_commands(proc: subprocess.CompletedProcess[str]) -> None:
    """Only our own ::warning lines, and the stop-commands pair around the verdict
    summary, may look like workflow commands."""
    tokens = set(re.findall(r"^::stop-commands::([0-9a-f]{32})$", proc.stdout, re.M))
    for line in (proc.stdout + proc.stderr).splitlines():
        if not line.lstrip().startswith("::"):
            continue
        if any(line in (f"::stop-commands::{t}", f"::{t}::") for t in tokens):
            continue
        assert re.match(r"^::warning title=syscall-gate::[^\r\n]*$", line), line


def step_summary(tmp_path: Path) -> str:
    return (tmp_path / "step_summary.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- inputs


def copier_policy(path: Path, *, scenario_id: str, copier_args: str = "") -> int:
    """A policy whose `batching` rule is defined in this file; returns that rule's line."""
    text = textwrap.dedent(f"""\
        version: 1
        extends: [builtin:io-uring-copier]
        scenario:
          id: {scenario_id}
          command: {COPIER} {copier_args} {{src}} {{dst}}
          fixture: {{files: 3, file_size: 1MiB, dirs: 1, symlinks: true}}
          timeout: 60s
        rules:
          batching:
            metric: io_uring.batch.avg
            fail: {{min: 2}}
        """)  # fmt: skip
    path.write_text(text)
    return text.splitlines().index("  batching:") + 1


# File names with two-byte characters, so a body's size in bytes exceeds its length.
LONG_NAME = "fichier-é" * 12


@pytest.fixture(scope="session")
def big_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """`cp -a` of 80 files with long non-ASCII names, traced by the real strace."""
    base = tmp_path_factory.mktemp("bigtrace")
    src, dst = base / "src", base / "dst"
    src.mkdir()
    for i in range(80):
        (src / f"{LONG_NAME}-{i:03d}").write_bytes(b"x" * 100)
    trace = base / "trace.txt"
    strace = shutil.which("strace")
    assert strace, "strace is required"
    subprocess.run(
        [strace, "-f", "-y", "-s", "4096", "-C", "-o", str(trace), "cp", "-a", str(src), str(dst)],
        check=True,
    )
    return trace, src, dst


def many_rules_policy(path: Path, n: int) -> list[str]:
    """n failing rules with long non-ASCII hints; returns their ids."""
    ids = [f"openat-budget-{i:03d}" for i in range(n)]
    lines = ["version: 1", "rules:"]
    for rid in ids:
        lines += [
            f"  {rid}:",
            "    metric: syscall.openat.calls",
            "    fail: {max: 0}",
            f"    hint: {'Réduire les ouvertures de fichiers — ' * 4}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return ids


def small_policy(path: Path, *, fail: bool) -> None:
    bound = "{max: 0}" if fail else "{min: 1}"
    path.write_text(f"version: 1\nrules:\n  opens:\n    metric: syscall.openat.calls\n"
                    f"    fail: {bound}\n")  # fmt: skip


def analyze(
    trace: tuple[Path, Path, Path], policy: Path, out: Path, env: dict[str, str], cwd: Path,
    *extra: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    t, src, dst = trace
    return cli("analyze", str(t), "--policy", str(policy), "--root", str(src), "--root",
               str(dst), "--out", str(out), *extra, env=env, cwd=cwd)  # fmt: skip


# ----------------------------------------------------------------------------- run: create, update


def test_run_creates_the_comment_then_updates_it(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, copier: Path
) -> None:
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url)
    policy = workspace / "gate.yml"
    copier_policy(policy, scenario_id="copy")
    out = tmp_path / "out"

    first = cli("run", "--policy", "gate.yml", "--out", str(out), env=env, cwd=workspace)
    assert first.returncode == 0, first.stdout + first.stderr
    assert warnings_of(first) == []
    (comment,) = gh.issue_comments(PR)
    assert comment["body"].startswith(comment_marker("copy") + "\n")
    assert comment["user"]["login"] == ACTIONS_BOT
    assert "## syscall-gate: PASS" in comment["body"] and "### Summary" in comment["body"]
    (run1,) = gh.check_runs.values()
    assert run1["head_sha"] == SAME_HEAD != MERGE_SHA  # the PR head, not the merge commit
    assert run1["conclusion"] == "success" and run1["name"] == "syscall-gate (copy)"
    assert run1["details_url"] == f"{gh.server_url}/Codertocat/Hello-World/actions/runs/{RUN_ID}"
    res = json.loads((out / "results.json").read_text())
    assert res["github"] == {
        "repository": "Codertocat/Hello-World",
        "event_name": "pull_request",
        "run_id": RUN_ID,
        "head_sha": SAME_HEAD,
        "pr_number": PR,
    }
    assert "## syscall-gate: PASS" in step_summary(tmp_path)

    # A new push: the copier now submits one SQE per io_uring_enter.
    line = copier_policy(policy, scenario_id="copy", copier_args="--batch 1")
    second = cli("run", "--policy", "gate.yml", "--out", str(out), env=env, cwd=workspace)
    assert second.returncode == 1, second.stdout + second.stderr
    (updated,) = gh.issue_comments(PR)
    assert updated["id"] == comment["id"]
    assert "## syscall-gate: **FAIL**" in updated["body"]
    writes = [r.operation_id for r in gh.iter_writes()]
    assert writes.count("issues/create-comment") == 1
    assert writes.count("issues/update-comment") == 1
    run2 = gh.check_runs[max(gh.check_runs)]
    assert run2["conclusion"] == "failure"
    # The failing rule defined in gate.yml is annotated there; the preset's are not
    # (builtin:io-uring-copier is no file of the repository).
    annotations = gh.check_run_annotations[run2["id"]]
    assert [(a["path"], a["start_line"], a["annotation_level"]) for a in annotations] == [
        ("gate.yml", line, "failure")
    ]
    assert "batching" in annotations[0]["message"]
    no_foreign_commands(second)
    no_token_in(out, tmp_path)


# ----------------------------------------------------------------------------- sizes


def test_a_report_too_large_is_cut_by_section_within_each_limit(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, big_trace: tuple[Path, Path, Path]
) -> None:
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url)
    policy = workspace / "many.yml"
    ids = many_rules_policy(policy, 220)
    out = tmp_path / "out"
    proc = analyze(big_trace, policy, out, env, workspace)
    assert proc.returncode == 1, proc.stdout + proc.stderr

    report = (out / "report.md").read_text(encoding="utf-8")
    assert len(report) > COMMENT_MAX_CHARS  # the local report is whole
    run_url = f"{gh.server_url}/Codertocat/Hello-World/actions/runs/{RUN_ID}"
    (comment,) = gh.issue_comments(PR)
    body = comment["body"]
    (check,) = gh.check_runs.values()
    summary = check["output"]["summary"]
    assert len(body) <= COMMENT_MAX_CHARS
    assert len(summary.encode("utf-8")) <= CHECK_SUMMARY_MAX_BYTES
    for text in (body, summary):
        assert "### Summary" in text
        assert all(f"`{rid}`" in text for rid in ids)  # the whole summary table is kept
        assert f"[the full report]({run_url})" in text
        assert "left out to fit GitHub's size limit" in text
    # 220 failing rules, 50 annotations per request: the check got them in batches.
    assert len(gh.check_run_annotations[check["id"]]) == 220
    assert len(gh.check_run_requests[check["id"]]) == 5
    step = step_summary(tmp_path)
    assert len(step.encode("utf-8")) <= 1024 * 1024
    assert "left out" not in step and LONG_NAME in step  # 1 MiB holds the whole report
    no_token_in(out, tmp_path)


# ----------------------------------------------------------------------------- refusals


def test_fork_pr_403_warns_with_the_permission_and_the_two_stage_pattern(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, big_trace: tuple[Path, Path, Path]
) -> None:
    for op in ("issues/create-comment", "checks/create", "repos/create-commit-status"):
        gh.fail(op, 403, message="Resource not accessible by integration\n::error::injected")
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url,
                  payload=FORK)  # fmt: skip
    policy = workspace / "p.yml"
    small_policy(policy, fail=True)
    out = tmp_path / "out"
    proc = analyze(big_trace, policy, out, env, workspace)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the gate's own verdict
    (warning,) = [w for w in warnings_of(proc) if "403" in w]
    assert "`pull-requests: write`" in warning and "`checks: write`" in warning
    assert "two-stage" in warning and "workflow_run" in warning
    assert len(warnings_of(proc)) == len(set(warnings_of(proc)))  # each once
    no_foreign_commands(proc)  # the API's "::error::" stayed inside our escaped line
    assert gh.issue_comments(PR) == [] and gh.check_runs == {} and gh.statuses == []
    assert "## syscall-gate: **FAIL**" in step_summary(tmp_path)
    assert json.loads((out / "results.json").read_text())["github"]["head_sha"] == FORK_HEAD
    no_token_in(out, tmp_path)


def test_unreachable_github_leaves_the_verdict_and_the_reports(
    tmp_path: Path, workspace: Path, big_trace: tuple[Path, Path, Path]
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    env = env_for(tmp_path, workspace, api_url=dead, server_url=dead)
    policy = workspace / "p.yml"
    small_policy(policy, fail=True)
    out = tmp_path / "out"
    proc = analyze(big_trace, policy, out, env, workspace)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "status: FAIL" in proc.stdout
    assert any("unreachable" in w for w in warnings_of(proc))
    assert json.loads((out / "results.json").read_text())["status"] == "FAIL"
    assert "## syscall-gate: **FAIL**" in (out / "report.md").read_text()
    assert "## syscall-gate: **FAIL**" in step_summary(tmp_path)
    no_token_in(out, tmp_path)


def test_publish_never_writes_only_the_step_summary(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, big_trace: tuple[Path, Path, Path]
) -> None:
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url)
    policy = workspace / "p.yml"
    small_policy(policy, fail=False)
    out = tmp_path / "out"
    proc = analyze(big_trace, policy, out, env, workspace, "--publish", "never")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert gh.requests == []
    assert "## syscall-gate: PASS" in step_summary(tmp_path)
    # Outside Actions, auto does not publish either (and nothing is printed about it).
    local = {k: v for k, v in env.items() if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    proc = analyze(big_trace, policy, tmp_path / "local", local, workspace)
    assert proc.returncode == 0 and gh.requests == [] and warnings_of(proc) == []
    assert "github" not in json.loads((tmp_path / "local" / "results.json").read_text())


# ----------------------------------------------------------------------------- publish command


def test_publish_command_modes_and_conclusion_map(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, big_trace: tuple[Path, Path, Path]
) -> None:
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url)
    local = {k: v for k, v in env.items() if k != "GITHUB_ACTIONS"}
    policy = workspace / "p.yml"
    small_policy(policy, fail=False)
    out = tmp_path / "out"
    assert analyze(big_trace, policy, out, local, workspace).returncode == 0
    results = str(out / "results.json")

    proc = cli("publish", "--results", results, "--comment", "on-failure",
               "--conclusion-map", "PASS=neutral", env=env, cwd=workspace)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert gh.issue_comments(PR) == []  # passing, and no earlier comment
    (check,) = gh.check_runs.values()
    assert check["conclusion"] == "neutral" and check["name"] == "syscall-gate"

    small_policy(policy, fail=True)
    assert analyze(big_trace, policy, out, local, workspace).returncode == 1
    proc = cli("publish", "--results", str(out), "--comment", "on-failure", env=env,
               cwd=workspace)  # fmt: skip
    assert proc.returncode == 0
    (comment,) = gh.issue_comments(PR)
    small_policy(policy, fail=False)
    assert analyze(big_trace, policy, out, local, workspace).returncode == 0
    proc = cli("publish", "--results", results, "--comment", "on-failure", "--delete-on-pass",
               env=env, cwd=workspace)  # fmt: skip
    assert proc.returncode == 0
    assert gh.issue_comments(PR) == []
    (deleted,) = gh.requests_for("issues/delete-comment")
    assert deleted.path.endswith(f"/issues/comments/{comment['id']}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--results", "missing.json"), "no such file"),
        (("--results", "x.json", "--conclusion-map", "WARN=green"), "conclusion must be one"),
        (("--results", "x.json", "--conclusion-map", "MAYBE=success"), "STATUS one of"),
        (("--results", "x.json", "--comment-author", "not a login"), "not a GitHub login"),
        (("--results", "x.json", "--comment", "sometimes"), "invalid choice"),
        (("--from-artifact", "."), "workflow_run"),
    ],
)
def test_publish_usage_errors_exit_2(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, args: tuple[str, ...], message: str
) -> None:
    (workspace / "x.json").write_text("{}")
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url)
    proc = cli("publish", *args, env=env, cwd=workspace)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert gh.requests == []


def test_publish_outside_actions_and_invalid_results_are_usage_errors(
    tmp_path: Path, workspace: Path
) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    (workspace / "x.json").write_text("{}")
    proc = cli("publish", "--results", "x.json", env=env, cwd=workspace)
    assert proc.returncode == 2 and "GITHUB_REPOSITORY" in proc.stderr
    env["GITHUB_REPOSITORY"] = "Codertocat/Hello-World"
    proc = cli("publish", "--results", "x.json", env=env, cwd=workspace)
    assert proc.returncode == 2 and "not a valid syscall-gate results file" in proc.stderr


# ----------------------------------------------------------------------------- GHES


def test_ghes_urls_come_from_the_environment(
    tmp_path: Path, workspace: Path, big_trace: tuple[Path, Path, Path]
) -> None:
    with FakeGitHub(token=TOKEN, base_path="/api/v3") as ghes:
        # Only GITHUB_SERVER_URL: the API is derived as {server}/api/v3.
        env = env_for(tmp_path, workspace, api_url="", server_url=ghes.server_url,
                      api_env=False)  # fmt: skip
        policy = workspace / "p.yml"
        small_policy(policy, fail=True)
        proc = analyze(big_trace, policy, tmp_path / "out", env, workspace)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert warnings_of(proc) == []
        # The fake records paths without its base; a request outside /api/v3 would have no
        # operation and be a validation error (assert_valid below).
        assert ghes.requests and all(r.operation_id for r in ghes.requests)
        (comment,) = ghes.issue_comments(PR)
        assert comment["html_url"].startswith(ghes.server_url + "/Codertocat/Hello-World/")
        (check,) = ghes.check_runs.values()
        assert (
            check["details_url"]
            == f"{ghes.server_url}/Codertocat/Hello-World/actions/runs/{RUN_ID}"
        )
        ghes.assert_valid()


# ----------------------------------------------------------------------------- matrix merge


def test_matrix_merge_posts_one_comment_and_one_check(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, copier: Path
) -> None:
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url)
    dirs = []
    for sid, args in (("batched", ""), ("single-sqe", "--batch 1")):
        policy = workspace / f"{sid}.yml"
        copier_policy(policy, scenario_id=sid, copier_args=args)
        out = tmp_path / sid
        proc = cli("run", "--policy", policy.name, "--out", str(out), "--publish", "never",
                   env=env, cwd=workspace)  # fmt: skip
        assert proc.returncode == (0 if sid == "batched" else 1), proc.stdout + proc.stderr
        dirs.append(str(out))
    assert gh.requests == []  # matrix jobs left publishing to the merge job

    merged = tmp_path / "merged"
    proc = cli("merge", *dirs, "--out", str(merged), env=env, cwd=workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads((merged / "results.json").read_text())
    assert res["status"] == "FAIL" and res["scenario"]["id"] == "merged"
    assert [s["scenario"]["id"] for s in res["scenarios"]] == ["batched", "single-sqe"]
    singles = [json.loads((Path(d) / "results.json").read_text()) for d in dirs]
    assert len(res["rules"]) == sum(len(s["rules"]) for s in singles)
    assert res["github"] == singles[0]["github"]  # the same run measured both
    report = (merged / "report.md").read_text()
    assert "| Scenario | Rule | Metric | Value | Threshold | Status |" in report
    assert "| `single-sqe` | `batching` |" in report and "| `batched` | `batching` |" in report

    proc = cli("publish", "--results", str(merged / "results.json"), env=env, cwd=workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (comment,) = gh.issue_comments(PR)
    assert comment["body"].startswith(comment_marker("merged"))
    assert "2 scenarios" in comment["body"]
    (check,) = gh.check_runs.values()
    assert check["name"] == "syscall-gate" and check["conclusion"] == "failure"
    # Annotations name their scenario.
    (ann,) = gh.check_run_annotations[check["id"]]
    assert ann["path"] == "single-sqe.yml" and "single-sqe" in ann["message"]

    proc = cli("merge", dirs[0], dirs[0], "--out", str(tmp_path / "dup"), env=env, cwd=workspace)
    assert proc.returncode == 2 and "appears twice" in proc.stderr


# ----------------------------------------------------------------------------- two-stage


def workflow_run_payload(*, head_sha: str, run_id: int) -> dict[str, Any]:
    """The package's workflow_run example, pointed at the fork PR's measuring run."""
    payload = load_payload("workflow_run.json")
    run = payload["workflow_run"]
    fork_repo = FORK["pull_request"]["head"]["repo"]
    base_repo = FORK["repository"]
    run.update(event="pull_request", head_sha=head_sha, id=run_id, pull_requests=[],
               head_repository=fork_repo, repository=base_repo)  # fmt: skip
    payload["repository"] = base_repo
    return payload


@pytest.fixture
def measured(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, big_trace: tuple[Path, Path, Path]
) -> Path:
    """Stage one: a fork PR measured with a read-only token, publishing nothing."""
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url,
                  payload=FORK)  # fmt: skip
    policy = workspace / "p.yml"
    small_policy(policy, fail=True)
    artifact = tmp_path / "artifact"
    proc = analyze(big_trace, policy, artifact, env, workspace, "--publish", "never")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert gh.requests == []
    (tmp_path / "step_summary.md").unlink()
    return artifact


def stage_two(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, artifact: Path, *,
    head_sha: str = FORK_HEAD, run_id: int = int(RUN_ID),
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    payload = workflow_run_payload(head_sha=head_sha, run_id=run_id)
    env = env_for(tmp_path, workspace, api_url=gh.api_url, server_url=gh.server_url,
                  event_name="workflow_run", payload=payload)  # fmt: skip
    env["GITHUB_RUN_ID"] = "777"  # the publishing run is another run
    return cli("publish", "--from-artifact", str(artifact), env=env, cwd=workspace)


def test_two_stage_posts_the_fork_results_after_checking_the_pr_head(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, measured: Path
) -> None:
    gh.add_pull(FORK["pull_request"])
    # A pre-rendered report in the artifact is never posted: the body is rendered again.
    (measured / "report.md").write_text("<img src=x onerror=alert(1)> @everyone")
    proc = stage_two(gh, tmp_path, workspace, measured)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert warnings_of(proc) == []
    assert gh.requests[0].operation_id == "pulls/get"
    (comment,) = gh.issue_comments(PR)
    assert "## syscall-gate: **FAIL**" in comment["body"] and "<img" not in comment["body"]
    (check,) = gh.check_runs.values()
    assert check["head_sha"] == FORK_HEAD and check["conclusion"] == "failure"
    assert check["details_url"].endswith("/actions/runs/777")
    assert "## syscall-gate: **FAIL**" in step_summary(tmp_path)
    no_token_in(measured, tmp_path)


def test_two_stage_with_a_moved_head_posts_nothing(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, measured: Path
) -> None:
    gh.add_pull(FORK["pull_request"], head_sha="1" * 40)  # pushed again since
    proc = stage_two(gh, tmp_path, workspace, measured)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (warning,) = [w for w in warnings_of(proc) if "did not publish" in w]
    assert f"PR #{PR}" in warning and FORK_HEAD in warning and "nothing was posted" in warning
    assert list(gh.iter_writes()) == []
    assert "did not publish" in step_summary(tmp_path)


def forge(artifact: Path, change: Any) -> None:
    path = artifact / "results.json"
    res = json.loads(path.read_text())
    change(res)
    path.write_text(json.dumps(res))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["github"].update(repository="evil/repo"), "not Codertocat/Hello-World"),
        (lambda r: r["github"].update(head_sha="2" * 40), "but the workflow_run is for"),
        (lambda r: r["github"].update(event_name="push"), "triggered by pull_request"),
        (lambda r: r["github"].update(run_id="1"), "not from the workflow_run's run"),
        (lambda r: r.pop("github"), "no `github` block"),
    ],
)
def test_two_stage_refuses_a_forged_artifact(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, measured: Path, change: Any, reason: str
) -> None:
    gh.add_pull(FORK["pull_request"])
    forge(measured, change)
    proc = stage_two(gh, tmp_path, workspace, measured)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (warning,) = warnings_of(proc)
    assert "did not publish" in warning and reason in warning
    assert gh.requests == []


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(status="GREAT"),
        lambda r: r["rules"][0].update(value="12"),
        lambda r: r["summary"].update(PASS="1"),
        lambda r: r["github"].update(pr_number=True),
        lambda r: r["github"].update(pr_number=-3),
    ],
)
def test_two_stage_rejects_malformed_results(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, measured: Path, change: Any
) -> None:
    forge(measured, change)
    proc = stage_two(gh, tmp_path, workspace, measured)
    assert proc.returncode == 2
    assert "not a valid syscall-gate results file" in proc.stderr
    assert gh.requests == []


def test_two_stage_escapes_hostile_fields(
    gh: FakeGitHub, tmp_path: Path, workspace: Path, measured: Path
) -> None:
    gh.add_pull(FORK["pull_request"])

    def hostile(r: dict[str, Any]) -> None:
        rule = r["rules"][0]
        rule["threshold"] = "<img src=x onerror=alert(1)> | [x](http://evil)"
        rule["message"] = "ok\n::error::pwned"
        r["status"] = "PASS"  # claims to pass although its enforced rule fails

    forge(measured, hostile)
    proc = stage_two(gh, tmp_path, workspace, measured)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    no_foreign_commands(proc)
    (comment,) = gh.issue_comments(PR)
    body = comment["body"]
    assert "<img" not in body and "[x](http://evil)" not in body
    assert "&lt;img src=x onerror=alert(1)&gt; \\| \\[x\\](http://evil)" in body
    assert "## syscall-gate: **FAIL**" in body  # the rules' verdict, not the claim
    (check,) = gh.check_runs.values()
    assert check["conclusion"] == "failure"
