"""The GitHub Action's entry point: action inputs in, `syscall-gate` command line out.

Run as ``python -m ci_gate.action``, by the container action (Dockerfile ENTRYPOINT) and by
host mode (host/action.yml), so both map inputs the same way. GitHub hands each input over
as the environment variable ``INPUT_<NAME>``, the name upper-cased with spaces turned into
underscores and hyphens KEPT (``github-token`` -> ``INPUT_GITHUB-TOKEN``). action.yml
documents each input and output.

What this module adds to the CLI:

* paths: ``policy``, ``out-dir`` and ``merge`` are relative to ``working-directory``, which
  is relative to the workspace (GITHUB_WORKSPACE; /github/workspace in the container); the
  outputs ``report-path``, ``results-path`` and ``out-dir`` are relative to the workspace, so
  later steps (which see the workspace at another path on the host) can use them;
* ``fail-on``: which statuses fail the step (the CLI's exit code is FAIL/ERROR -> non-zero);
* the token goes to GITHUB_TOKEN for the publisher, never to the log or the target;
* ownership: a container action runs as root; whatever the gate wrote into the workspace is
  given back to the workspace's owner at the end, on success and on error alike;
* ``merge``: ``syscall-gate merge`` then ``syscall-gate publish`` of the merged results
  (``merge`` itself publishes nothing), so a matrix ends in one comment and one check.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci_gate.errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, EXIT_USAGE
from ci_gate.report.escape import log_safe, printable

STATUSES = ("PASS", "WARN", "FAIL", "ERROR")
FAIL_ON: dict[str, frozenset[str]] = {
    "warn": frozenset({"WARN", "FAIL", "ERROR"}),
    "fail": frozenset({"FAIL", "ERROR"}),
    "error": frozenset({"ERROR"}),
    "never": frozenset(),
}
DEFAULTS = {
    "policy": "",
    "github-token": "",
    "working-directory": ".",
    "out-dir": "syscall-gate-out",
    "scenario": "",
    "fail-on": "fail",
    "build": "true",
    "opcodes": "auto",
    "publish": "auto",
    "comment": "always",
    "delete-on-pass": "false",
    "conclusion-map": "",
    "comment-author": "",
    "report-url": "",
    "merge": "",
}
CHOICES = {
    "fail-on": tuple(FAIL_ON),
    "opcodes": ("auto", "off"),
    "publish": ("auto", "always", "never"),
    "comment": ("always", "on-failure", "never"),
}
BOOLEANS = ("build", "delete-on-pass")
# What @actions/core's getBooleanInput accepts (YAML 1.2 core schema booleans).
_TRUE, _FALSE = ("true", "True", "TRUE"), ("false", "False", "FALSE")
_SCENARIO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# When no file can be made to read the ctime clock: how far it may trail time.time().
CTIME_SLACK = 2.0


class InputError(Exception):
    """An input is invalid: the step fails with exit 2 (bad usage)."""


def _log(msg: str) -> None:
    print(f"syscall-gate: {log_safe(printable(msg, 2000))}", file=sys.stderr, flush=True)


def _command_data(text: str) -> str:
    """Escape a workflow command's message (the runner's own escaping rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def input_env_name(name: str) -> str:
    return "INPUT_" + name.replace(" ", "_").upper()


def read_inputs(env: Mapping[str, str]) -> dict[str, str]:
    """Every input, from the environment the runner set, or its default when absent."""
    out = {}
    for name, default in DEFAULTS.items():
        raw = env.get(input_env_name(name))
        out[name] = raw.strip() if raw is not None and raw.strip() else default
    return out


@dataclass
class Config:
    workspace: Path
    workdir: Path
    out_dir: Path
    policy: Path | None
    fail_on: str
    values: dict[str, str]
    merge: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, inputs: dict[str, str], workspace: Path) -> Config:
        for name, allowed in CHOICES.items():
            if inputs[name] not in allowed:
                raise InputError(
                    f"input {name}: {inputs[name]!r} is not one of {', '.join(allowed)}"
                )
        for name in BOOLEANS:
            if inputs[name] not in _TRUE + _FALSE:
                raise InputError(f"input {name}: {inputs[name]!r} is not true or false")
        workdir = (workspace / inputs["working-directory"]).resolve()
        if not workdir.is_dir():
            raise InputError(
                f"input working-directory: {inputs['working-directory']!r} is not "
                f"a directory in the workspace"
            )
        if inputs["scenario"] and not _SCENARIO_ID.match(inputs["scenario"]):
            raise InputError(
                f"input scenario: {inputs['scenario']!r} is not a scenario id "
                "(letters, digits, '.', '_', '-'; at most 64)"
            )
        merge = [line.strip() for line in inputs["merge"].splitlines() if line.strip()]
        policy = None
        if inputs["policy"]:
            policy = workdir / inputs["policy"]
            if not policy.is_file():
                raise InputError(
                    f"input policy: {inputs['policy']!r} is not a file in "
                    f"{_rel(workdir, workspace)}"
                )
        elif not merge:
            raise InputError(
                "input policy is required (the policy file, relative to working-directory)"
            )
        return cls(
            workspace=workspace,
            workdir=workdir,
            out_dir=workdir / inputs["out-dir"],
            policy=policy,
            fail_on=inputs["fail-on"],
            values=inputs,
            merge=merge,
        )

    def flag(self, name: str) -> bool:
        return self.values[name] in _TRUE


# -- the command lines -----------------------------------------------------------------------


def publish_flags(cfg: Config) -> list[str]:
    """The options `run` and `publish` share (see `syscall-gate publish --help`)."""
    args = ["--comment", cfg.values["comment"]]
    if cfg.flag("delete-on-pass"):
        args.append("--delete-on-pass")
    for name in ("conclusion-map", "comment-author", "report-url"):
        if cfg.values[name]:
            args += [f"--{name}", cfg.values[name]]
    return args


def scenario_override(cfg: Config) -> Path:
    """A policy that extends the user's and only renames its scenario (input `scenario`)."""
    assert cfg.policy is not None
    target = cfg.out_dir / "policy-scenario-override.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        "# Written by the syscall-gate action: input `scenario` renames the policy's scenario.\n"
        "version: 1\n"
        f"extends: [{json.dumps(str(cfg.policy.resolve()))}]\n"
        f"scenario: {{id: {json.dumps(cfg.values['scenario'])}}}\n",
        encoding="utf-8",
    )
    return target


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base) if path.is_relative_to(base) else str(path)
    except ValueError:
        return str(path)


def run_argv(cfg: Config) -> list[str]:
    assert cfg.policy is not None
    policy = scenario_override(cfg) if cfg.values["scenario"] else cfg.policy
    argv = [
        "run",
        "--policy",
        _rel(policy, cfg.workdir),
        "--out",
        _rel(cfg.out_dir, cfg.workdir),
        "--workdir",
        ".",
    ]
    if not cfg.flag("build"):
        argv.append("--no-build")
    scratch = _scratch()
    if scratch is not None:
        argv += ["--scratch", str(scratch)]
    argv += ["--opcodes", cfg.values["opcodes"]]
    return [*argv, "--publish", cfg.values["publish"], *publish_flags(cfg)]


def merge_argv(cfg: Config) -> list[str]:
    found: list[str] = []
    for pattern in cfg.merge:
        hits = sorted(glob.glob(pattern, root_dir=cfg.workdir))
        if not hits:
            raise InputError(
                f"input merge: {pattern!r} matches nothing in {_rel(cfg.workdir, cfg.workspace)}"
            )
        found += [h for h in hits if h not in found]
    argv = ["merge", *found, "--out", _rel(cfg.out_dir, cfg.workdir)]
    if cfg.values["scenario"]:
        argv += ["--id", cfg.values["scenario"]]
    return argv


def merge_and_publish(cfg: Config, env: Mapping[str, str]) -> int:
    rc = run_cli(merge_argv(cfg))
    results_path = cfg.out_dir / "results.json"
    if rc != EXIT_PASS or not results_path.is_file():
        return rc
    mode = cfg.values["publish"]
    if mode == "always" or (mode == "auto" and env.get("GITHUB_ACTIONS") == "true"):
        # Publishing never decides the step (as in `run`): its trouble is a warning.
        prc = run_cli(
            ["publish", "--results", _rel(results_path, cfg.workdir), *publish_flags(cfg)]
        )
        if prc != EXIT_PASS:
            _warn(f"publishing the merged results failed (syscall-gate publish: exit {prc})")
        return rc
    # Not publishing: the step summary still gets the merged report, as `run` does.
    from ci_gate.publish import gate
    from ci_gate.publish.workflow_commands import WarningLog

    res = json.loads(results_path.read_text(encoding="utf-8"))
    gate.write_step_summary(
        res, env.get("GITHUB_STEP_SUMMARY"), WarningLog(lambda line: print(line, flush=True))
    )
    return rc


def _warn(msg: str) -> None:
    print(f"::warning title=syscall-gate::{_command_data(msg)}", flush=True)


def _scratch() -> Path | None:
    """Where the fixture goes: a directory the runner cleans up and, in the container, one
    that is a volume (/github/home), so that a sibling container sees the same files."""
    candidates = [os.environ.get("RUNNER_TEMP", "")]
    if os.environ.get("GITHUB_ACTIONS") == "true":
        candidates.append(os.environ.get("HOME", ""))
    for c in candidates:
        if c and c != "/" and os.path.isdir(c) and os.access(c, os.W_OK):
            return Path(c)
    return None


# -- running, outputs, step summary ------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    from ci_gate import cli

    _log("running: syscall-gate " + shlex.join(argv))
    try:
        return int(cli.main(argv))
    except SystemExit as exc:  # argparse rejected the arguments
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def read_results(results_path: Path) -> tuple[str | None, int | None]:
    """The status and the gate's exit code recorded in results.json, if it is readable."""
    try:
        res = json.loads(results_path.read_text(encoding="utf-8"))
        status, code = res.get("status"), res.get("exit_code")
    except (OSError, ValueError, AttributeError):
        return None, None
    return (status if status in STATUSES else None), (code if isinstance(code, int) else None)


def decide(rc: int, status: str | None, fail_on: str) -> int:
    """The step's exit code: the CLI's verdict, filtered by fail-on.

    A usage error (2: bad input, invalid policy) and an interruption always fail the step;
    otherwise the step fails exactly when the status is in the fail-on set.
    """
    if rc == EXIT_USAGE or rc >= 128:
        return rc
    status = status or "ERROR"
    if status not in FAIL_ON[fail_on]:
        return EXIT_PASS
    if rc != EXIT_PASS:
        return rc
    return EXIT_ERROR if status == "ERROR" else EXIT_FAIL


def write_outputs(values: Mapping[str, str], env: Mapping[str, str]) -> None:
    path = env.get("GITHUB_OUTPUT")
    for name, value in values.items():
        _log(f"output {name}={value}")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for name, value in values.items():
            # The heredoc form: safe for any value; the delimiter cannot occur in it.
            delim = f"ghadelimiter_{uuid.uuid4()}"
            f.write(f"{name}<<{delim}\n{value}\n{delim}\n")


# -- ownership -----------------------------------------------------------------------------


def change_clock(directory: Path) -> int:
    """Now, in the clock inode change times are stamped with (ns): a file made and removed.

    The kernel stamps ctime from a coarse clock that can trail time.time(); reading it back
    from a fresh inode gives a bound that files changed from now on cannot be below.
    """
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".syscall-gate-clock-")
    except OSError:
        return time.time_ns() - int(CTIME_SLACK * 1e9)
    try:
        return os.fstat(fd).st_ctime_ns
    finally:
        os.close(fd)
        os.unlink(name)


def restore_ownership(roots: Iterable[Path], owner: tuple[int, int], since_ns: int) -> int:
    """Give what this run created or changed as root back to the workspace's owner.

    A container action runs as root and the runner's later steps run as the workspace's
    owner, who could not delete or overwrite root-owned files. Only entries owned by root
    whose inode changed during this run are touched; symlinks are not followed.
    """
    uid, gid = owner
    if os.geteuid() != 0 or uid == 0:
        return 0
    changed = 0
    seen: set[tuple[int, int]] = set()

    def fix(path: str) -> None:
        nonlocal changed
        try:
            st = os.lstat(path)
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        if st.st_uid == 0 and st.st_ctime_ns >= since_ns:
            with contextlib.suppress(OSError):
                os.lchown(path, uid, gid)
                changed += 1

    for root in roots:
        if not root.exists():
            continue
        fix(str(root))
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                fix(os.path.join(dirpath, name))
    return changed


def main(argv: list[str] | None = None) -> int:
    del argv  # inputs come from the environment, as GitHub passes them
    env = os.environ
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    try:
        st = os.stat(workspace)
        owner = (st.st_uid, st.st_gid)
    except OSError:
        owner = (os.geteuid(), os.getegid())
    started = change_clock(workspace) if os.geteuid() == 0 and owner[0] != 0 else 0
    inputs = read_inputs(env)
    # The token is the publisher's alone: out of the INPUT_ variable, into GITHUB_TOKEN.
    token = env.pop(input_env_name("github-token"), "").strip()
    if token:
        env["GITHUB_TOKEN"] = token
    cfg: Config | None = None
    outputs = {
        "status": "ERROR",
        "exit-code": str(EXIT_USAGE),
        "report-path": "",
        "results-path": "",
        "out-dir": "",
    }
    code = EXIT_USAGE
    try:
        cfg = Config.parse(inputs, workspace)
        argv_cli = None if cfg.merge else run_argv(cfg)
        os.chdir(cfg.workdir)
        report, results_path = cfg.out_dir / "report.md", cfg.out_dir / "results.json"
        for stale in (report, results_path):  # a failed start must not show an old verdict
            with contextlib.suppress(OSError):
                stale.unlink()
        rc = merge_and_publish(cfg, env) if argv_cli is None else run_cli(argv_cli)
        status, recorded = read_results(results_path)
        # merge exits 0 whatever it merged: its verdict is the one in results.json.
        gate_rc = recorded if recorded is not None and rc == EXIT_PASS else rc
        code = decide(gate_rc, status, cfg.fail_on)
        outputs.update(
            status=status or "ERROR",
            **{"exit-code": str(gate_rc), "out-dir": _rel(cfg.out_dir, workspace)},
        )
        if results_path.is_file():
            outputs["results-path"] = _rel(results_path, workspace)
        if report.is_file():
            outputs["report-path"] = _rel(report, workspace)
        if code != EXIT_PASS:
            where = f"; report: {outputs['report-path']}" if outputs["report-path"] else ""
            msg = f"status {outputs['status']} fails the step (fail-on: {cfg.fail_on}){where}"
            print(f"::error title=syscall-gate::{_command_data(msg)}", flush=True)
        elif status in FAIL_ON["warn"]:
            _log(f"status {status} does not fail the step (fail-on: {cfg.fail_on})")
    except InputError as exc:
        print(f"::error title=syscall-gate::{_command_data(str(exc))}", flush=True)
        code = EXIT_USAGE
    finally:
        roots = [workspace] + ([cfg.out_dir] if cfg is not None else [])
        fixed = restore_ownership(roots, owner, started)
        if fixed:
            _log(f"gave {fixed} file(s) the workspace owner's uid/gid {owner[0]}:{owner[1]}")
        outputs["exit-code"] = outputs["exit-code"] if cfg is not None else str(code)
        with contextlib.suppress(OSError):
            write_outputs(outputs, env)
    return code


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
