"""verify: tree-equal: the destination must be a faithful copy of the source."""

from __future__ import annotations

import filecmp
import os
import stat
from pathlib import Path

MAX_REPORTED = 10


def _entries(root: Path) -> dict[str, os.stat_result]:
    out: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = os.lstat(full)
    return out


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
    if not dst.is_dir():
        return [f"the destination {dst} was not created"]
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
    for rel in sorted(a.keys() & b.keys()):
        sa, sb = a[rel], b[rel]
        ka, kb = _kind(sa.st_mode), _kind(sb.st_mode)
        if ka != kb:
            problems.append(f"{rel!r} is a {ka} in the source but a {kb} in the copy")
            continue
        if ka == "symlink":
            ta, tb = os.readlink(src / rel), os.readlink(dst / rel)
            if ta != tb:
                problems.append(f"symlink {rel!r} points to {tb!r} instead of {ta!r}")
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            problems.append(
                f"mode of {rel!r} differs: {stat.S_IMODE(sa.st_mode):o} in the source, "
                f"{stat.S_IMODE(sb.st_mode):o} in the copy"
            )
        if ka == "file" and not filecmp.cmp(src / rel, dst / rel, shallow=False):
            problems.append(
                f"contents of {rel!r} differ ({sa.st_size} bytes in the source, "
                f"{sb.st_size} in the copy)"
            )
    if len(problems) > MAX_REPORTED:
        rest = len(problems) - MAX_REPORTED
        problems = [*problems[:MAX_REPORTED], f"... and {rest} more difference(s)"]
    return problems
