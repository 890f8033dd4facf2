from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import COPIER, REPO, speedups


@pytest.fixture(params=["c", "python"])
def parser_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test twice: with the parser's C line filter, and with its pure-Python path."""
    with speedups(request.param == "c"):
        yield request.param


@pytest.fixture(scope="session")
def copier() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO / "examples" / "uring-copy")], check=True)
    assert COPIER.is_file()
    return COPIER


def _compile(name: str, tmp_path_factory: pytest.TempPathFactory, *flags: str) -> Path:
    out = tmp_path_factory.mktemp("programs") / name
    src = REPO / "tests" / "programs" / f"{name}.c"
    subprocess.run(["gcc", "-O2", "-Wall", *flags, "-o", str(out), str(src)], check=True)
    return out


@pytest.fixture(scope="session")
def deny_syscalls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deny-syscalls ERRNO NAMES PROGRAM...: run PROGRAM with syscalls refused by seccomp."""
    return _compile("deny-syscalls", tmp_path_factory)


@pytest.fixture(scope="session")
def crasher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """crasher: touches its arguments' first path, then dies of SIGSEGV."""
    return _compile("crasher", tmp_path_factory)


@pytest.fixture(scope="session")
def raw_paths(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """raw_paths fdcwd|dirfd DIR: a known set of path calls, linked statically (no loader)."""
    return _compile("raw_paths", tmp_path_factory, "-static")


@pytest.fixture(scope="session")
def scenario_edges(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scenario_edges SRC: 6 calls on SRC/a.txt and some that only look like it (see source)."""
    return _compile("scenario_edges", tmp_path_factory, "-static")
