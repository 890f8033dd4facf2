"""The scenario's input tree, made fresh for every run."""

from __future__ import annotations

import os
import random
from pathlib import Path

from ci_gate.metrics.scope import DIR, FILE, SYMLINK, Fixture
from ci_gate.policy.model import Fixture as FixtureSpec
from ci_gate.progress import Counter

# Varied permission bits, so a copier that drops modes produces a wrong copy.
_FILE_MODES = (0o644, 0o600, 0o640, 0o755)
_DIR_MODES = (0o755, 0o750, 0o700)
# Fixed timestamps (2024-01-01 and onwards): deterministic, and unlike "now".
_BASE_TIME_NS = 1_704_067_200 * 1_000_000_000


def _write_file(path: Path, size: int, rng: random.Random, mode: int, t_ns: int) -> None:
    """A file of `size` seeded random bytes with its mode and times, through one fd.

    Raw fd calls, not file objects: with thousands of small files the fixture's
    cost is per file, and it is paid on every run.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        remaining = size
        while remaining:
            data = memoryview(rng.randbytes(min(remaining, 1 << 20)))
            remaining -= len(data)
            while data:
                data = data[os.write(fd, data) :]
        os.fchmod(fd, mode)
        os.utime(fd, ns=(t_ns, t_ns))
    finally:
        os.close(fd)


def create(src: Path, spec: FixtureSpec, made: Counter | None = None) -> Fixture:
    """Populate `src` (which must not exist) and return what it holds.

    Layout: file1.bin..fileN.bin at the top; a chain of `dirs` nested
    directories dir1/dir2/... each holding nestedK.bin; with symlinks:
    link-to-file -> file1.bin, link-to-dir -> dir1, dir1/link-up -> ../file1.bin.
    Every regular file has `file_size` random bytes from `seed`. `made` counts
    the files written so far (for a progress line).
    """
    rng = random.Random(spec.seed)
    entries: dict[str, str] = {}
    src.mkdir(parents=True)
    stamp = 0

    def touch(path: Path, rel: str, kind: str, mode: int | None) -> None:
        nonlocal stamp
        entries[rel] = kind
        if mode is not None:
            os.chmod(path, mode)
        stamp += 1
        t = _BASE_TIME_NS + stamp * 1_000_000_123
        os.utime(path, ns=(t, t), follow_symlinks=False)

    def write(rel: str, mode: int) -> None:
        nonlocal stamp
        entries[rel] = FILE
        if made is not None:
            made.value += 1
        stamp += 1
        _write_file(src / rel, spec.file_size, rng, mode, _BASE_TIME_NS + stamp * 1_000_000_123)

    for i in range(1, spec.files + 1):
        write(f"file{i}.bin", _FILE_MODES[(i - 1) % len(_FILE_MODES)])
    parent = ""
    nested_dirs: list[str] = []
    for depth in range(1, spec.dirs + 1):
        rel_dir = f"{parent}dir{depth}"
        (src / rel_dir).mkdir()
        nested_dirs.append(rel_dir)
        entries[rel_dir] = DIR
        write(f"{rel_dir}/nested{depth}.bin", _FILE_MODES[depth % len(_FILE_MODES)])
        parent = rel_dir + "/"
    if spec.symlinks:
        links: list[tuple[str, str]] = []
        if spec.files:
            links.append(("link-to-file", "file1.bin"))
        if spec.dirs:
            links.append(("link-to-dir", "dir1"))
        if spec.files and spec.dirs:
            links.append(("dir1/link-up", "../file1.bin"))
        for rel, target in links:
            os.symlink(target, src / rel)
            touch(src / rel, rel, SYMLINK, None)
    # Directories last, deepest first: creating entries changed their mtimes.
    for depth, rel_dir in reversed(list(enumerate(nested_dirs, 1))):
        touch(src / rel_dir, rel_dir, DIR, _DIR_MODES[depth % len(_DIR_MODES)])
    return Fixture(entries)
