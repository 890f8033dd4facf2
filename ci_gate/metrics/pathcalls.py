"""Which calls take a path, where their (dirfd, path) arguments are, and how they resolve.

A call resolves its path in one of three ways (the classes are a public metric
contract, see docs/metrics.md):

- path_based: from the cwd or an absolute path: AT_FDCWD + path, any absolute
  path, and every legacy path syscall (stat, open, access, chmod, utimes, ...);
- fd_based: on an open fd, with no name lookup: an empty path with
  AT_EMPTY_PATH, utimensat(fd, NULL, ...), and the f* forms of xattr calls;
- dirfd_relative: a real directory fd plus a relative name (TOCTOU-safe walks).

A call with two names (renameat2, linkat) takes the least safe class of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from ci_gate.trace.args import ABSOLUTE_STARTS, is_at_fdcwd

PATH_BASED = "path_based"
FD_BASED = "fd_based"
DIRFD_RELATIVE = "dirfd_relative"
CLASSES = (PATH_BASED, FD_BASED, DIRFD_RELATIVE)
_RANK = {FD_BASED: 0, DIRFD_RELATIVE: 1, PATH_BASED: 2}
# A quoted absolute path: "/..." or, hex-escaped (-x/-xx), "\x2f...".
_ABSOLUTE_STRINGS = tuple('"' + s for s in ABSOLUTE_STARTS)


@dataclass(frozen=True, slots=True)
class PathCall:
    """Argument positions of one path-taking syscall.

    pairs: (dirfd index or None for cwd-relative legacy calls, path index).
    flags: index of the AT_* flags argument, if any.
    fd_only: the f* xattr forms, which name no path at all.
    """

    pairs: tuple[tuple[int | None, int], ...]
    flags: int | None = None
    fd_only: bool = False


_AT = PathCall(((0, 1),))
PATH_CALLS: dict[str, PathCall] = {
    # *at forms
    "statx": PathCall(((0, 1),), flags=2),
    "newfstatat": PathCall(((0, 1),), flags=3),
    "fstatat64": PathCall(((0, 1),), flags=3),
    "openat": _AT,
    "openat2": _AT,
    "utimensat": PathCall(((0, 1),), flags=3),
    "futimesat": _AT,
    "fchmodat": _AT,
    "fchmodat2": PathCall(((0, 1),), flags=3),
    "fchownat": PathCall(((0, 1),), flags=4),
    "mkdirat": _AT,
    "mknodat": _AT,
    "unlinkat": _AT,
    "renameat": PathCall(((0, 1), (2, 3))),
    "renameat2": PathCall(((0, 1), (2, 3))),
    "linkat": PathCall(((0, 1), (2, 3)), flags=4),
    "symlinkat": PathCall(((1, 2),)),
    "readlinkat": _AT,
    "faccessat": _AT,
    "faccessat2": PathCall(((0, 1),), flags=3),
    "getxattrat": PathCall(((0, 1),), flags=2),
    "setxattrat": PathCall(((0, 1),), flags=2),
    "listxattrat": PathCall(((0, 1),), flags=2),
    "removexattrat": PathCall(((0, 1),), flags=2),
    # path-only xattr forms
    "getxattr": PathCall(((None, 0),)),
    "setxattr": PathCall(((None, 0),)),
    "listxattr": PathCall(((None, 0),)),
    "removexattr": PathCall(((None, 0),)),
    "lgetxattr": PathCall(((None, 0),)),
    "lsetxattr": PathCall(((None, 0),)),
    "llistxattr": PathCall(((None, 0),)),
    "lremovexattr": PathCall(((None, 0),)),
    # fd-only xattr forms
    "fgetxattr": PathCall(((0, -1),), fd_only=True),
    "fsetxattr": PathCall(((0, -1),), fd_only=True),
    "flistxattr": PathCall(((0, -1),), fd_only=True),
    "fremovexattr": PathCall(((0, -1),), fd_only=True),
    # legacy path forms: always resolved from the cwd or an absolute path
    "stat": PathCall(((None, 0),)),
    "lstat": PathCall(((None, 0),)),
    "open": PathCall(((None, 0),)),
    "creat": PathCall(((None, 0),)),
    "access": PathCall(((None, 0),)),
    "chmod": PathCall(((None, 0),)),
    "chown": PathCall(((None, 0),)),
    "lchown": PathCall(((None, 0),)),
    "utime": PathCall(((None, 0),)),
    "utimes": PathCall(((None, 0),)),
    "mkdir": PathCall(((None, 0),)),
    "mknod": PathCall(((None, 0),)),
    "rmdir": PathCall(((None, 0),)),
    "rename": PathCall(((None, 0), (None, 1))),
    "unlink": PathCall(((None, 0),)),
    "link": PathCall(((None, 0), (None, 1))),
    "symlink": PathCall(((None, 1),)),
    "readlink": PathCall(((None, 0),)),
}

# Calls that name a path but have no path-class metrics: they count in the scenario figures
# (scenario.calls, scenario.syscall.NAME.calls, the per-file table) when a path they name lies
# under a root. (dirfd index or None, path index) pairs, as in PathCall.
OTHER_PATH_CALLS: dict[str, tuple[tuple[int | None, int], ...]] = {
    "chdir": ((None, 0),),
    "chroot": ((None, 0),),
    "truncate": ((None, 0),),
    "truncate64": ((None, 0),),
    "statfs": ((None, 0),),
    "statfs64": ((None, 0),),
    "execve": ((None, 0),),
    "execveat": ((0, 1),),
    "inotify_add_watch": ((None, 1),),
    "fanotify_mark": ((3, 4),),
    "name_to_handle_at": ((0, 1),),
    "uselib": ((None, 0),),
    "acct": ((None, 0),),
    "swapon": ((None, 0),),
    "swapoff": ((None, 0),),
    "quotactl": ((None, 1),),
    "mount": ((None, 0), (None, 1)),
    "umount": ((None, 0),),
    "umount2": ((None, 0),),
    "pivot_root": ((None, 0), (None, 1)),
    "open_tree": ((0, 1),),
    "move_mount": ((0, 1), (2, 3)),
    "fspick": ((0, 1),),
    "mount_setattr": ((0, 1),),
}

LEGACY_PATH_CALLS = frozenset(
    name
    for name, spec in PATH_CALLS.items()
    if all(d is None for d, _ in spec.pairs) and not name.endswith("xattr")
)

OPEN_CALLS = frozenset({"open", "openat", "openat2", "creat"})


def classify_pair(dirfd: str | None, path: str | None) -> str:
    """Class of one (dirfd, path) pair given their printed argument text.

    An empty name with a dirfd acts on that fd (AT_EMPTY_PATH; readlinkat
    accepts "" without it); NULL (utimensat) does too.
    """
    if dirfd is not None and (path is None or path in ("NULL", '""')):
        return FD_BASED
    if path is not None and path.startswith(_ABSOLUTE_STRINGS):
        return PATH_BASED
    if dirfd is None or is_at_fdcwd(dirfd):
        return PATH_BASED
    return DIRFD_RELATIVE


def worst(classes: list[str]) -> str:
    return max(classes, key=_RANK.__getitem__)
