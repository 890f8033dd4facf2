"""verify: tree-equal: the destination must be a faithful copy of the source."""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_REPORTED = 10


def _entries(root: Path) -> dict[str, os.stat_result]:
    """Every entry under root by its path relative to root (lstat: links are not followed)."""
    out: dict[str, os.stat_result] = {}
    todo = [("", os.fspath(root))]
    while todo:
        rel_dir, full_dir = todo.pop()
        with os.scandir(full_dir) as it:
            for entry in it:
                rel = rel_dir + entry.name
                st = entry.stat(follow_symlinks=False)
                out[rel] = st
                if stat.S_ISDIR(st.st_mode):
                    todo.append((rel + "/", entry.path))
    return out


_CHUNK = 1 << 20


def _same_contents(a: str, b: str, size_a: int, size_b: int) -> bool:
    if size_a != size_b:
        return False
    # Raw fds: the io module's layers cost more than the reads for small files.
    fa = os.open(a, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fb = os.open(b, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while True:
                ca, cb = os.read(fa, _CHUNK), os.read(fb, _CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "special file"


def tree_differences(src: Path, dst: Path) -> list[str]:
    """What differs between the trees: contents, types, modes, symlink targets.

    Returns readable lines, at most MAX_REPORTED plus a count of the rest;
    an empty list means the copy is right.
    """
    return compare_trees(src, dst)[0]


def compare_trees(src: Path, dst: Path) -> tuple[list[str], int]:
    """tree_differences, and how many differences there are in all."""
    if not dst.is_dir():
        return [f"the destination {dst} was not created"], 1
    problems: list[str] = []
    a, b = _entries(src), _entries(dst)
    for rel in sorted(a.keys() - b.keys()):
        problems.append(f"missing in the copy: {rel!r}")
    for rel in sorted(b.keys() - a.keys()):
        problems.append(f"not in the source: {rel!r}")
    root_a, root_b = os.lstat(src), os.lstat(dst)
    if stat.S_IMODE(root_a.st_mode) != stat.S_IMODE(root_b.st_mode):
        problems.append(
            f"mode of the root differs: {stat.S_IMODE(root_a.st_mode):o} in the source, "
            f"{stat.S_IMODE(root_b.st_mode):o} in the copy"
        )
    top_a, top_b = os.path.join(src, ""), os.path.join(dst, "")
    for rel in sorted(a.keys() & b.keys()):
        sa, sb = a[rel], b[rel]
        ka, kb = _kind(sa.st_mode), _kind(sb.st_mode)
        if ka != kb:
            problems.append(f"{rel!r} is a {ka} in the source but a {kb} in the copy")
            continue
        if ka == "symlink":
            ta, tb = os.readlink(top_a + rel), os.readlink(top_b + rel)
            if ta != tb:
                problems.append(f"symlink {rel!r} points to {tb!r} instead of {ta!r}")
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            problems.append(
                f"mode of {rel!r} differs: {stat.S_IMODE(sa.st_mode):o} in the source, "
                f"{stat.S_IMODE(sb.st_mode):o} in the copy"
            )
        if ka == "file" and not _same_contents(top_a + rel, top_b + rel, sa.st_size, sb.st_size):
            problems.append(
                f"contents of {rel!r} differ ({sa.st_size} bytes in the source, "
                f"{sb.st_size} in the copy)"
            )
    total = len(problems)
    if total > MAX_REPORTED:
        rest = total - MAX_REPORTED
        problems = [*problems[:MAX_REPORTED], f"... and {rest} more difference(s)"]
    return problems, total
