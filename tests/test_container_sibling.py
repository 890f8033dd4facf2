"""The pieces of the sibling-container relaunch: the seccomp profiles, finding this
container's id, the Docker Engine API client against podman's real compatible service.

The relaunch as a whole runs in test_container_action.py.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from test_container_action import engine_socket  # noqa: F401 - a fixture

from ci_gate.scenario import seccomp_profile, sibling

IO_URING = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
# sha256 of profiles/seccomp/default.json in Debian's golang-github-docker-docker-dev
# 26.1.5+dfsg1-9+deb13u1 (moby v26.1.5), computed when it was vendored.
UPSTREAM_SHA256 = "9c1025c88ccaa517b648da571961838744ea2137f176bfe6a48b21294cae9c76"


def test_vendored_profile_is_moby_default_unchanged() -> None:
    text = seccomp_profile.DEFAULT_PROFILE_JSON
    assert hashlib.sha256(text.encode()).hexdigest() == UPSTREAM_SHA256
    assert seccomp_profile.DEFAULT_PROFILE_SHA256 == UPSTREAM_SHA256
    assert "Apache License, Version 2.0" in (seccomp_profile.__doc__ or "")
    assert "v26.1.5" in seccomp_profile.DEFAULT_PROFILE_VERSION


def test_docker_default_refuses_io_uring_with_eperm() -> None:
    profile = seccomp_profile.default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1  # EPERM, what Docker 25+ answers
    named = {n for rule in profile["syscalls"] for n in rule["names"]}
    assert not named & IO_URING
    assert {"openat", "statx", "ptrace"} <= named


def test_sibling_profile_is_default_plus_io_uring_only() -> None:
    base = seccomp_profile.default_profile()
    aug = seccomp_profile.with_io_uring()
    assert aug["syscalls"][:-1] == base["syscalls"]
    assert {k: v for k, v in aug.items() if k != "syscalls"} == {
        k: v for k, v in base.items() if k != "syscalls"
    }
    extra = aug["syscalls"][-1]
    assert set(extra["names"]) == IO_URING and extra["action"] == "SCMP_ACT_ALLOW"
    assert "args" not in extra and "includes" not in extra
    assert seccomp_profile.default_profile() == base  # the vendored one is not modified


ID = "b32411607e8f0a26c9b2558359e5ce1fab006323a271b6fb6e8253c53abf07d0"
OTHER = "0" * 64


def test_own_container_id_from_mountinfo() -> None:
    podman = (
        f"82 54 0:41 / / rw,relatime - overlay overlay rw\n"
        f"89 82 254:0 /run/containers/storage/overlay-containers/{ID}/userdata/hosts "
        f"/etc/hosts rw,relatime - ext4 /dev/vda rw\n"
    )
    docker = (
        f"602 584 254:1 /var/lib/docker/containers/{ID}/resolv.conf /etc/resolv.conf "
        f"rw,relatime - ext4 /dev/root rw\n"
        f"603 584 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname "
        f"rw,relatime - ext4 /dev/root rw\n"
    )
    # On a host, other containers' mounts show up too, but never at /etc/hostname & co.
    host = f"700 30 0:50 / /var/lib/docker/containers/{OTHER}/mounts/shm rw - tmpfs shm rw\n"
    for text in (podman, docker):
        assert sibling.own_container_ids(text)[0] == ID
    assert OTHER not in sibling.own_container_ids(host)


def test_demux_log_stream() -> None:
    frames = b"".join(
        struct.pack(">BxxxI", s, len(p)) + p
        for s, p in ((1, b"out\n"), (2, b"err\n"), (1, b"more"))
    )
    assert sibling.demux(frames) == b"out\nerr\nmore"


def test_covering_mount_prefers_the_deepest() -> None:
    mounts = [
        {"Destination": "/github", "Source": "/a"},
        {"Destination": "/github/workspace", "Source": "/b"},
        {"Destination": "/", "Source": "/root-never"},
    ]
    pick = sibling._covering_mount
    assert pick(Path("/github/workspace/out"), mounts)["Source"] == "/b"
    assert pick(Path("/github/home"), mounts)["Source"] == "/a"
    assert pick(Path("/github-other"), mounts) is None
    assert pick(Path("/tmp/x"), mounts) is None


def test_ulimits_are_named_as_docker_names_them() -> None:
    raw = [
        {"Name": "RLIMIT_NOFILE", "Soft": 1024, "Hard": 1024},
        {"Name": "nproc", "Soft": 1, "Hard": 2},
    ]
    assert sibling._ulimits(raw) == [
        {"Name": "nofile", "Soft": 1024, "Hard": 1024},
        {"Name": "nproc", "Soft": 1, "Hard": 2},
    ]


def test_engine_client_against_podman(engine_socket: Path) -> None:  # noqa: F811
    engine = sibling.Engine(str(engine_socket))
    version = engine.version()
    assert sibling._engine_name(version).startswith("Podman ")
    with pytest.raises(sibling.EngineError, match=r"HTTP 404"):
        engine.inspect("no-such-container-" + OTHER[:8])
    assert sibling.socket_path({"DOCKER_HOST": f"unix://{engine_socket}"}) == str(engine_socket)
    assert sibling.socket_path({"DOCKER_HOST": "tcp://127.0.0.1:2375"}) is None
    assert sibling.socket_path({"DOCKER_HOST": f"unix://{engine_socket}.missing"}) is None


def test_engine_unreachable_is_an_engine_error(tmp_path: Path) -> None:
    with pytest.raises(sibling.EngineError):
        sibling.Engine(str(tmp_path / "nothing.sock")).version()


def test_trace_run_crosses_to_the_sibling_and_back(tmp_path: Path) -> None:
    from ci_gate.scenario.tracer import TraceRun

    run = TraceRun(
        ["strace", "-f", "x"],
        tmp_path / "trace.txt",
        tmp_path / "o",
        tmp_path / "e",
        None,
        True,
        1.5,
        2,
        ["strace: x"],
        True,
    )
    wire = json.loads(json.dumps(sibling._run_to_json(run)))
    assert sibling._run_from_json(wire) == run
