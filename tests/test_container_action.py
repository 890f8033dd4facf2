"""The container action, really built and run with podman the way the runner runs it.

* The image is built from the repository's Dockerfile on a Debian base made with
  debootstrap (no registry is reachable), ``--build-arg BASE_IMAGE=localhost/...``.
* It runs as GitHub runs container actions: the workspace at /github/workspace (the working
  directory), home, workflow and file-command directories mounted, INPUT_ variables with
  their hyphens, GITHUB_ variables, writable GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files;
  the workspace belongs to a non-root user, as on a runner.
* Its seccomp profile is Docker's default (the vendored moby profile, which answers
  io_uring_setup with EPERM): tracing the reference copier is then ERROR, naming the cause.
  With podman's Docker-compatible socket mounted at /var/run/docker.sock, the traced step is
  relaunched in a sibling container and the io_uring metrics are measured: PASS on the demo
  policy, with the values the copier's construction gives.

Slow parts are cached, keyed by content, and rebuilt when missing: the debootstrap tarball
(SYSCALL_GATE_TEST_CACHE, default /var/cache/syscall-gate-tests) and the base image; the
image build reuses podman's layer cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from test_action_entrypoint import parse_outputs

from helpers import REPO, Tree, copier_expectations, strace_summary

MiB = 1 << 20
PODMAN = ["podman", "--runtime", "runc"]  # crun fails on this machine's cgroup setup
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
IMAGE = "localhost/syscall-gate-action:test"
OWNER = (1234, 1234)  # the runner user's uid/gid stand-in
LABEL = "io.github.syscall-gate.sibling-of"


def podman(
    *args: str, timeout: float = 600, check: bool = True, stdin: IO[bytes] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, stdin=stdin
    )
    if check:
        assert proc.returncode == 0, f"podman {' '.join(args[:3])}: {proc.stderr[-3000:]}"
    return proc


def _debootstrap_version() -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "debootstrap"], capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="session")
def base_image() -> str:
    """localhost/syscall-gate-base:KEY from `debootstrap --variant=minbase`, cached by KEY."""
    recipe = f"debootstrap --variant=minbase {SUITE} {MIRROR} ({_debootstrap_version()})"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    tag = f"localhost/syscall-gate-base:{key}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    cache = Path(os.environ.get("SYSCALL_GATE_TEST_CACHE", "/var/cache/syscall-gate-tests"))
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"debootstrap-{SUITE}-minbase-{key}.tar"
    if not tarball.is_file():
        rootfs = cache / f"rootfs-{key}.tmp"
        shutil.rmtree(rootfs, ignore_errors=True)
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
    with open(tarball, "rb") as f:
        podman("import", "-", tag, stdin=f)
    return tag


@pytest.fixture(scope="session")
def image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The action's image, built from the Dockerfile (podman's layer cache makes rebuilds cheap)."""
    extra: list[str] = []
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        # This machine reaches PyPI through a TLS proxy whose CA only the host trusts: lend
        # the build the host's bundle (only empty mount points stay in this test image).
        conf = tmp_path_factory.mktemp("build") / "pip.conf"
        # (Not over the image's own bundle path: a package's postinst may write there.)
        conf.write_text("[global]\ncert = /run/host-ca-bundle.crt\n")
        extra += ["-v", f"{bundle}:/run/host-ca-bundle.crt:ro", "-v", f"{conf}:/etc/pip.conf:ro"]
    before = podman("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False).stdout.strip()
    podman(
        "build",
        "--isolation=chroot",
        "--network=host",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        *extra,
        "-t",
        IMAGE,
        str(REPO),
        timeout=1800,
    )
    after = podman("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    if before and before != after:
        # Our previous build, now untagged: drop it so repeated runs do not fill the disk.
        podman("rmi", before, check=False)
    return IMAGE


@pytest.fixture(scope="session")
def docker_default_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Docker's default seccomp profile (io_uring -> EPERM), for podman's --security-opt."""
    from ci_gate.scenario.seccomp_profile import DEFAULT_PROFILE_JSON

    path = tmp_path_factory.mktemp("seccomp") / "docker-default.json"
    path.write_text(DEFAULT_PROFILE_JSON)
    return path


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[Path]:
    """podman's Docker-compatible API on a unix socket; stopped by its pid afterwards."""
    sock = tmp_path / "podman.sock"
    log = open(tmp_path / "podman-service.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*PODMAN, "system", "service", "--time=0", f"unix://{sock}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(200):
            if sock.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(str(sock))
                    break
                except OSError:
                    pass
            assert proc.poll() is None, (tmp_path / "podman-service.log").read_text()
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def workspace(tmp_path: Path) -> Path:
    """A checkout with the reference copier's sources and the demo policy, owned by OWNER."""
    ws = tmp_path / "workspace"
    shutil.copytree(
        REPO / "examples" / "uring-copy",
        ws / "examples" / "uring-copy",
        ignore=shutil.ignore_patterns("uring-copy"),
    )
    (ws / ".github").mkdir()
    shutil.copy(REPO / "policies" / "uring-copy-demo.yml", ws / ".github" / "syscall-gate.yml")
    for p in [ws, *ws.rglob("*")]:
        os.lchown(p, *OWNER)
    return ws


def run_action(
    image: str,
    tmp_path: Path,
    inputs: dict[str, str],
    *,
    seccomp: Path,
    sock: Path | None = None,
    mount_home: bool = True,
) -> tuple[int, dict[str, str], str]:
    """`docker run` as the runner does it for a container action, with podman."""
    ws = workspace(tmp_path)
    home, flow, files = tmp_path / "home", tmp_path / "workflow", tmp_path / "file_commands"
    for d in (home, flow, files):
        d.mkdir()
        os.chown(d, *OWNER)
    (flow / "event.json").write_text("{}")
    (files / "set_output").write_text("")
    (files / "step_summary").write_text("")
    env = {
        "HOME": "/github/home",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": "/github/workspace",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": "/github/workflow/event.json",
        "GITHUB_OUTPUT": "/github/file_commands/set_output",
        "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
        "GITHUB_REPOSITORY": "octo-org/copier",
        "GITHUB_SHA": "0" * 40,
        "GITHUB_RUN_ID": "1",
        "GITHUB_SERVER_URL": "http://127.0.0.1:9",
        "GITHUB_API_URL": "http://127.0.0.1:9",
        "RUNNER_TEMP": "/home/runner/work/_temp",  # a host path: absent in the container
        **{"INPUT_" + k.upper(): v for k, v in inputs.items()},
    }
    args = [
        "run",
        "--rm",
        *ULIMITS,
        "--security-opt",
        f"seccomp={seccomp}",
        "--workdir",
        "/github/workspace",
        "-v",
        f"{ws}:/github/workspace",
        "-v",
        f"{flow}:/github/workflow",
        "-v",
        f"{files}:/github/file_commands",
    ]
    if mount_home:
        args += ["-v", f"{home}:/github/home"]
    if sock is not None:
        args += ["-v", f"{sock}:/var/run/docker.sock"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    proc = podman(*args, image, timeout=900, check=False)
    return proc.returncode, parse_outputs(files / "set_output"), proc.stdout + proc.stderr


def assert_workspace_owned(ws: Path) -> None:
    owners = {p: (p.lstat().st_uid, p.lstat().st_gid) for p in [ws, *ws.rglob("*")]}
    wrong = {str(p.relative_to(ws)): o for p, o in owners.items() if o != OWNER}
    assert not wrong, f"left with another owner than {OWNER}: {wrong}"


def test_the_image_has_the_parsers_c_filter(image: str) -> None:
    """The image builds ci_gate/trace/_scan.c (python3-dev): analysis runs at full speed."""
    probe = "from ci_gate.trace import parser; print(parser.SPEEDUPS.__name__)"
    proc = podman("run", "--rm", *ULIMITS, "--entrypoint", "/opt/syscall-gate/bin/python",
                  image, "-c", probe)  # fmt: skip
    assert proc.stdout.strip() == "ci_gate.trace._scan"


def test_blocked_io_uring_is_error_naming_the_cause(
    image: str, tmp_path: Path, docker_default_profile: Path
) -> None:
    rc, out, log = run_action(
        image, tmp_path, {"policy": ".github/syscall-gate.yml"}, seccomp=docker_default_profile
    )
    ws = tmp_path / "workspace"
    assert rc == 3, log
    assert out["status"] == "ERROR" and out["exit-code"] == "3"
    assert out["results-path"] == "syscall-gate-out/results.json"
    res = json.loads((ws / out["results-path"]).read_text())
    assert res["status"] == "ERROR"  # never FAIL: a blocked ring is not a regression
    blocked = [p for p in res["problems"] if p["code"] == "io_uring-blocked"]
    assert len(blocked) == 1 and "EPERM" in blocked[0]["message"]
    assert "host mode" in blocked[0]["message"]
    placement = res["environment"]["trace_placement"]
    assert placement["where"] == "here" and placement["io_uring_probe"] == "EPERM"
    assert "no container engine socket at /var/run/docker.sock" in placement["relaunch"]
    assert res["environment"]["container"] == "podman"
    # The copier really was refused: its own error message, from the trace's stderr.
    assert (
        "io_uring_setup: Operation not permitted"
        in (ws / "syscall-gate-out" / "target.stderr").read_text()
    )
    assert_workspace_owned(ws)


def test_sibling_relaunch_measures_io_uring(
    image: str, tmp_path: Path, docker_default_profile: Path, engine_socket: Path
) -> None:
    rc, out, log = run_action(
        image,
        tmp_path,
        {"policy": ".github/syscall-gate.yml"},
        seccomp=docker_default_profile,
        sock=engine_socket,
    )
    ws = tmp_path / "workspace"
    assert rc == 0, log
    assert out == {
        "status": "PASS",
        "exit-code": "0",
        "out-dir": "syscall-gate-out",
        "report-path": "syscall-gate-out/report.md",
        "results-path": "syscall-gate-out/results.json",
    }
    res = json.loads((ws / out["results-path"]).read_text())
    # The demo policy's scenario: 3 files of 5 MiB, 2 nested dirs, symlinks.
    expected = copier_expectations(Tree(3, 5 * MiB, 2, True))
    assert {k: res["metrics"].get(k) for k in expected} == expected
    summary = strace_summary(ws / "syscall-gate-out" / "trace.txt")
    assert summary["io_uring_enter"][0] == res["metrics"]["io_uring.enter.calls"]
    assert summary["io_uring_setup"] == (1, 0)
    placement = res["environment"]["trace_placement"]
    assert placement["where"] == "sibling"
    assert placement["io_uring_probe"] == "ok"
    assert placement["io_uring_probe_action_container"] == "EPERM"
    assert placement["engine"].startswith("Podman")
    assert any(n.startswith("Traced in a sibling container") for n in res["notes"])
    # Opcode counts need the host's tracefs and pids (host mode): said, not shown as zeros.
    report = (ws / out["report-path"]).read_text()
    assert "Opcode counts: not measured" in report
    assert not any(k.startswith("io_uring.ops.") for k in res["metrics"])
    # The sibling is gone, and so are the files that drove it.
    left = podman("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.ID}}").stdout
    assert left.strip() == ""
    assert sorted(p.name for p in (ws / "syscall-gate-out").iterdir()) == [
        "build.log",
        "report.md",
        "results.json",
        "target.stderr",
        "target.stdout",
        "trace.txt",
    ]
    summary_md = (tmp_path / "file_commands" / "step_summary").read_text()
    assert "syscall-gate" in summary_md and "PASS" in summary_md
    assert_workspace_owned(ws)


def test_no_relaunch_when_the_fixture_is_not_on_a_shared_volume(
    image: str, tmp_path: Path, docker_default_profile: Path, engine_socket: Path
) -> None:
    # Without /github/home mounted the fixture goes to the container's own /tmp, which a
    # sibling would not see: no relaunch, the blocked ring is reported, with the reason.
    rc, out, log = run_action(
        image,
        tmp_path,
        {"policy": ".github/syscall-gate.yml"},
        seccomp=docker_default_profile,
        sock=engine_socket,
        mount_home=False,
    )
    ws = tmp_path / "workspace"
    assert (rc, out["status"]) == (3, "ERROR"), log
    res = json.loads((ws / out["results-path"]).read_text())
    assert "io_uring-blocked" in [p["code"] for p in res["problems"]]
    placement = res["environment"]["trace_placement"]
    assert placement["where"] == "here"
    assert placement["relaunch"].startswith("not attempted: /tmp/syscall-gate-")
    assert "is not on a volume a sibling container shares" in placement["relaunch"]
    left = podman("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.ID}}").stdout
    assert left.strip() == ""
    assert_workspace_owned(ws)
