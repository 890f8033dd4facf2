#!/usr/bin/env python3
"""Generate ``ci_gate/metrics/syscall_table.py`` from the kernel UAPI headers.

The generated module maps Linux syscall numbers to names for x86_64 and aarch64 and every
name to a report category. It is committed; ``tests/test_syscall_table.py`` re-runs this
script and fails when the committed module is stale.

Usage::

    python tools/gen_syscall_table.py                 # rewrite the committed module
    python tools/gen_syscall_table.py --output FILE   # write elsewhere (the test does this)
    python tools/gen_syscall_table.py --check         # exit 1 if the committed module is stale

Sources
-------
* x86_64: ``/usr/include/x86_64-linux-gnu/asm/unistd_64.h`` (flat ``#define __NR_x N`` list).
* aarch64: ``/usr/include/asm-generic/unistd.h``, the generic table arm64 uses. It is full of
  ``#if``/``#ifdef`` blocks, so a tiny preprocessor below evaluates them with the macros an
  LP64 arm64 build sees (``__BITS_PER_LONG == 64``, no ``__SYSCALL_COMPAT``, the arch's
  ``__ARCH_WANT_*`` set). The ``__NR3264_*`` numbers get the names the header's own 64-bit
  alias block gives them (``#define __NR_newfstatat __NR3264_fstatat``), which are also the
  names strace prints on aarch64; they are cross-checked against ``NR3264_NAMES_64``.
* Syscalls added after the headers on this machine (Linux 6.1) up to Linux 6.18 are listed
  in ``POST_6_1_SYSCALLS`` with where their numbers were checked.

Names strace prints
-------------------
strace 6.1's native x86_64 table (``src/linux/x86_64/syscallent.h``) and its generic 64-bit
table used by aarch64 (``src/linux/64/syscallent.h`` + ``generic/syscallent-common.h``) use
exactly the UAPI names, including ``_sysctl``, ``uselib``, ``umount2``, ``pread64``,
``newfstatat``, ``rt_sigreturn``, ``nfsservctl`` (42 on aarch64) and the never-implemented
x86_64 slots (``afs_syscall``, ``tuxcall``, ``security``, ``vserver``, ``getpmsg``,
``putpmsg``, ``epoll_ctl_old``, ``epoll_wait_old``). So no extra aliases are needed.
Numbers strace does not know it prints as ``syscall_0x1c4``; those are not in the tables
and categorise as "unknown syscall".
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "ci_gate" / "metrics" / "syscall_table.py"

X86_64_HEADER = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
GENERIC_HEADER = Path("/usr/include/asm-generic/unistd.h")
AARCH64_ASM_HEADER = Path("/usr/include/aarch64-linux-gnu/asm/unistd.h")
VERSION_HEADER = Path("/usr/include/linux/version.h")

UNKNOWN = "unknown syscall"

# --------------------------------------------------------------------------------------
# aarch64 preprocessor environment
# --------------------------------------------------------------------------------------

# The __ARCH_WANT_* macros arm64 defines before including asm-generic/unistd.h, used when
# /usr/include/aarch64-linux-gnu/asm/unistd.h is not installed (it is not on an x86_64
# build machine). From arch/arm64/include/uapi/asm/unistd.h (Linux 5.x-6.10); since 6.11
# the same set is spelled `syscall_abis_64 += renameat newstat rlimit memfd_secret` in
# arch/arm64/kernel/Makefile.syscalls.
#   RENAMEAT        -> renameat (38)
#   NEW_STAT        -> newfstatat (79), fstat (80)
#   SET_GET_RLIMIT  -> getrlimit (163), setrlimit (164)
#   TIME32_SYSCALLS -> set for the compat (arm32) side; irrelevant here because every such
#                      block is `defined(__ARCH_WANT_TIME32_SYSCALLS) || __BITS_PER_LONG != 32`
#   SYS_CLONE3      -> clone3 (435)
#   MEMFD_SECRET    -> memfd_secret (447)
# Not defined on arm64: __ARCH_WANT_STAT64, __ARCH_WANT_SYNC_FILE_RANGE2 (so 84 is
# sync_file_range), __ARCH_NOMMU, __SYSCALL_COMPAT (so the 32-bit-only *_time64 calls
# 403-423 are absent).
AARCH64_ARCH_WANTS: tuple[str, ...] = (
    "__ARCH_WANT_RENAMEAT",
    "__ARCH_WANT_NEW_STAT",
    "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_TIME32_SYSCALLS",
    "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_MEMFD_SECRET",
)

# What each __NR3264_* slot is called on a 64-bit generic-table arch. This is what the
# header's own `#if __BITS_PER_LONG == 64` alias block says, and what strace prints on
# aarch64 (src/linux/64/syscallent.h); the generator fails if the header disagrees.
NR3264_NAMES_64: dict[str, str] = {
    "fcntl": "fcntl",
    "statfs": "statfs",
    "fstatfs": "fstatfs",
    "truncate": "truncate",
    "ftruncate": "ftruncate",
    "lseek": "lseek",
    "sendfile": "sendfile",
    "fstatat": "newfstatat",
    "fstat": "fstat",
    "mmap": "mmap",
    "fadvise64": "fadvise64",
}

# `#define __NR_x N` lines that are not syscalls.
NOT_SYSCALLS = frozenset({"syscalls", "arch_specific_syscall"})

# --------------------------------------------------------------------------------------
# Syscalls newer than the machine's headers (Linux 6.1), up to Linux 6.18
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    number: int
    name: str
    arches: tuple[str, ...]
    since: str


BOTH = ("x86_64", "aarch64")

# Newest kernel release whose additions POST_6_1_SYSCALLS covers.
NEWEST_KERNEL = "6.18"

# Numbers checked against the kernel sources (torvalds/linux):
#   * 451-462: arch/x86/entry/syscalls/syscall_64.tbl and scripts/syscall.tbl (the generic
#     table arm64 is built from since 6.11), both list them as `common`.
#   * 463-466 (*xattrat, 6.13): the patch adding them to syscall_64.tbl, its tools/perf
#     copy, and the linux-next merge resolutions that moved uretprobe off 463 (uretprobe
#     finally landed as x86_64 335).
#   * 467 open_tree_attr (6.15), 468-469 file_getattr/file_setattr (6.17): the patches
#     adding them to every arch table, arch/arm64/tools/syscall_32.tbl and
#     arch/x86/entry/syscalls/syscall_64.tbl alike, with the same numbers.
#   * x86_64-only 335 uretprobe (6.11) and 336 uprobe (6.18, commit 56101b69c919
#     "uprobes/x86: Add uprobe syscall to speed up uprobe", synced into tools/perf's
#     syscall_64.tbl during 6.18-rc): syscall_64.tbl `335 common uretprobe`,
#     `336 common uprobe`. arm64 has neither.
#   * map_shadow_stack (453) is `common` in scripts/syscall.tbl too, and arm64 uses it for
#     GCS shadow stacks since 6.13, so it is listed for both arches. strace's generic
#     syscallent-common.h also lists 451-464 for every arch.
POST_6_1_SYSCALLS: tuple[Added, ...] = (
    Added(335, "uretprobe", ("x86_64",), "6.11"),
    Added(336, "uprobe", ("x86_64",), "6.18"),
    Added(451, "cachestat", BOTH, "6.5"),
    Added(452, "fchmodat2", BOTH, "6.6"),
    Added(453, "map_shadow_stack", BOTH, "6.6"),
    Added(454, "futex_wake", BOTH, "6.7"),
    Added(455, "futex_wait", BOTH, "6.7"),
    Added(456, "futex_requeue", BOTH, "6.7"),
    Added(457, "statmount", BOTH, "6.8"),
    Added(458, "listmount", BOTH, "6.8"),
    Added(459, "lsm_get_self_attr", BOTH, "6.8"),
    Added(460, "lsm_set_self_attr", BOTH, "6.8"),
    Added(461, "lsm_list_modules", BOTH, "6.8"),
    Added(462, "mseal", BOTH, "6.10"),
    Added(463, "setxattrat", BOTH, "6.13"),
    Added(464, "getxattrat", BOTH, "6.13"),
    Added(465, "listxattrat", BOTH, "6.13"),
    Added(466, "removexattrat", BOTH, "6.13"),
    Added(467, "open_tree_attr", BOTH, "6.15"),
    Added(468, "file_getattr", BOTH, "6.17"),
    Added(469, "file_setattr", BOTH, "6.17"),
)

# --------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------

# Display order of the report's full inventory.
CATEGORIES: tuple[str, ...] = (
    "io_uring",
    "file I/O",
    "file metadata",
    "directory",
    "path & namespace",
    "memory",
    "process",
    "credentials",
    "scheduling",
    "threading & sync",
    "signal",
    "time",
    "network",
    "IPC",
    "event & polling",
    "security",
    "system & info",
    "ptrace & debug",
    "module & kernel",
    "other",
)

# Explicit assignments. A name listed here wins over the rules below.
_EXPLICIT_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    # Reading/writing file contents and file descriptors, incl. legacy Linux AIO.
    "file I/O": (
        "open",
        "openat",
        "openat2",
        "creat",
        "close",
        "close_range",
        "read",
        "write",
        "pread64",
        "pwrite64",
        "readv",
        "writev",
        "preadv",
        "pwritev",
        "preadv2",
        "pwritev2",
        "lseek",
        "dup",
        "dup2",
        "dup3",
        "fcntl",
        "ioctl",
        "flock",
        "fsync",
        "fdatasync",
        "sync",
        "syncfs",
        "sync_file_range",
        "sendfile",
        "splice",
        "tee",
        "vmsplice",
        "copy_file_range",
        "fallocate",
        "fadvise64",
        "readahead",
        "truncate",
        "ftruncate",
        "cachestat",
        "name_to_handle_at",
        "open_by_handle_at",
        "io_setup",
        "io_destroy",
        "io_submit",
        "io_cancel",
        "io_getevents",
        "io_pgetevents",
    ),
    # Inode attributes: stat family, permissions, ownership, timestamps, fs stats.
    # (*xattr* comes from a rule below.)
    "file metadata": (
        "stat",
        "fstat",
        "lstat",
        "newfstatat",
        "statx",
        "statfs",
        "fstatfs",
        "ustat",
        "access",
        "faccessat",
        "faccessat2",
        "chmod",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "fchown",
        "lchown",
        "fchownat",
        "utime",
        "utimes",
        "utimensat",
        "futimesat",
        "umask",
        "file_getattr",
        "file_setattr",
    ),
    # Directory entries: create/remove/rename/link names, list and walk directories.
    "directory": (
        "mkdir",
        "mkdirat",
        "rmdir",
        "getdents",
        "getdents64",
        "link",
        "linkat",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "renameat2",
        "symlink",
        "symlinkat",
        "readlink",
        "readlinkat",
        "mknod",
        "mknodat",
        "getcwd",
        "chdir",
        "fchdir",
    ),
    # The view of the file tree: mounts, root, namespaces.
    "path & namespace": (
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "open_tree",
        "open_tree_attr",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "statmount",
        "listmount",
        "unshare",
        "setns",
    ),
    # Address space and memory policy. (pkey_* and *mempolicy come from rules.)
    "memory": (
        "mmap",
        "munmap",
        "mremap",
        "mprotect",
        "brk",
        "msync",
        "mincore",
        "madvise",
        "process_madvise",
        "process_mrelease",
        "mlock",
        "mlock2",
        "munlock",
        "mlockall",
        "munlockall",
        "remap_file_pages",
        "mbind",
        "migrate_pages",
        "move_pages",
        "memfd_create",
        "memfd_secret",
        "userfaultfd",
        "map_shadow_stack",
        "mseal",
    ),
    # Process lifecycle, identity, resource limits, process-wide attributes.
    "process": (
        "fork",
        "vfork",
        "clone",
        "clone3",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "wait4",
        "waitid",
        "getpid",
        "getppid",
        "gettid",
        "getpgid",
        "setpgid",
        "getpgrp",
        "getsid",
        "setsid",
        "pidfd_open",
        "pidfd_getfd",
        "prctl",
        "arch_prctl",
        "modify_ldt",
        "personality",
        "getrlimit",
        "setrlimit",
        "prlimit64",
        "getrusage",
        "times",
        "kcmp",
        "uselib",
        "vhangup",
    ),
    # User/group ids and capabilities.
    "credentials": (
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "setuid",
        "setgid",
        "setreuid",
        "setregid",
        "setresuid",
        "getresuid",
        "setresgid",
        "getresgid",
        "setfsuid",
        "setfsgid",
        "getgroups",
        "setgroups",
        "capget",
        "capset",
    ),
    # CPU and I/O scheduling. (sched_* comes from a rule.)
    "scheduling": (
        "getpriority",
        "setpriority",
        "ioprio_get",
        "ioprio_set",
        "getcpu",
    ),
    # Thread setup, TLS, futexes, memory barriers. (futex* comes from a rule.)
    "threading & sync": (
        "set_tid_address",
        "set_robust_list",
        "get_robust_list",
        "rseq",
        "membarrier",
        "set_thread_area",
        "get_thread_area",
    ),
    # Signal delivery and handling. (rt_sig* comes from a rule.)
    "signal": (
        "kill",
        "tkill",
        "tgkill",
        "pidfd_send_signal",
        "sigaltstack",
        "pause",
        "signalfd",
        "signalfd4",
        "restart_syscall",
    ),
    # Clocks, sleeps, timers. (clock_*, timer_*, timerfd_* come from rules.)
    "time": (
        "time",
        "gettimeofday",
        "settimeofday",
        "adjtimex",
        "nanosleep",
        "alarm",
        "getitimer",
        "setitimer",
    ),
    # Sockets.
    "network": (
        "socket",
        "socketpair",
        "bind",
        "listen",
        "accept",
        "accept4",
        "connect",
        "getsockname",
        "getpeername",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "sendmmsg",
        "recvmmsg",
        "setsockopt",
        "getsockopt",
        "shutdown",
    ),
    # Pipes and System V / POSIX IPC. (mq_*, msg*, sem*, shm* come from rules.)
    "IPC": (
        "pipe",
        "pipe2",
    ),
    # Readiness notification and fd-based events. (epoll_*, inotify_*, fanotify_* are rules.)
    "event & polling": (
        "select",
        "pselect6",
        "poll",
        "ppoll",
        "eventfd",
        "eventfd2",
    ),
    # Sandboxing, LSMs, the kernel keyring. (landlock_*, lsm_* come from rules.)
    "security": (
        "seccomp",
        "add_key",
        "request_key",
        "keyctl",
    ),
    # Host-wide information and administration.
    "system & info": (
        "uname",
        "sysinfo",
        "syslog",
        "_sysctl",
        "sysfs",
        "sethostname",
        "setdomainname",
        "reboot",
        "acct",
        "getrandom",
        "swapon",
        "swapoff",
        "quotactl",
        "quotactl_fd",
        "iopl",
        "ioperm",
    ),
    # Tracing other processes, profiling, uprobes.
    "ptrace & debug": (
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "perf_event_open",
        "lookup_dcookie",
        "uretprobe",
        "uprobe",
    ),
    # Loading code into or replacing the kernel. (kexec_* comes from a rule.)
    "module & kernel": (
        "init_module",
        "finit_module",
        "delete_module",
        "create_module",
        "get_kernel_syms",
        "query_module",
        "bpf",
    ),
    # Slots that exist in the tables but were never implemented or are long gone
    # (always -ENOSYS on current kernels): AFS/TUX/LSM/vserver hooks, STREAMS, nfsd control.
    "other": (
        "afs_syscall",
        "tuxcall",
        "security",
        "vserver",
        "getpmsg",
        "putpmsg",
        "nfsservctl",
    ),
}

# Obsolete x86_64-only epoll entry points (never wired up) still read as epoll.
_EXPLICIT_EXTRA: dict[str, str] = {
    "epoll_ctl_old": "event & polling",
    "epoll_wait_old": "event & polling",
}

# Prefix rules: (prefix, category). Applied only to names not listed explicitly; the first
# match wins. Each covers a whole family whose members share the prefix by design.
PREFIX_RULES: tuple[tuple[str, str], ...] = (
    ("io_uring_", "io_uring"),  # io_uring_setup/enter/register
    ("rt_sig", "signal"),  # rt_sigaction, rt_sigprocmask, rt_sigreturn, ...
    ("rt_tgsig", "signal"),  # rt_tgsigqueueinfo
    ("sched_", "scheduling"),  # sched_yield, sched_setaffinity, sched_setattr, ...
    ("futex", "threading & sync"),  # futex, futex_waitv, futex_wake/wait/requeue
    ("clock_", "time"),  # clock_gettime, clock_nanosleep, clock_adjtime, ...
    ("timer_", "time"),  # POSIX timers
    ("timerfd_", "time"),  # timerfd_create/settime/gettime
    ("epoll_", "event & polling"),  # epoll_create1, epoll_ctl, epoll_pwait2, ...
    ("inotify_", "event & polling"),  # inotify_init1, inotify_add_watch, ...
    ("fanotify_", "event & polling"),  # fanotify_init, fanotify_mark
    ("mq_", "IPC"),  # POSIX message queues
    ("msg", "IPC"),  # System V message queues: msgget/msgsnd/msgrcv/msgctl
    ("sem", "IPC"),  # System V semaphores: semget/semop/semtimedop/semctl
    ("shm", "IPC"),  # System V shared memory: shmget/shmat/shmdt/shmctl
    ("pkey_", "memory"),  # memory protection keys
    ("landlock_", "security"),  # Landlock sandboxing
    ("lsm_", "security"),  # LSM self-attribute syscalls
    ("kexec_", "module & kernel"),  # kexec_load, kexec_file_load
)

# Suffix rules, same semantics: extended attributes in every flavour
# (set/get/list/remove, plain/l/f and the *at variants of 6.13) are file metadata.
SUFFIX_RULES: tuple[tuple[str, str], ...] = (
    ("xattr", "file metadata"),
    ("xattrat", "file metadata"),
    ("_mempolicy", "memory"),  # get_mempolicy, set_mempolicy
    ("_mempolicy_home_node", "memory"),  # set_mempolicy_home_node
)


def explicit_categories() -> dict[str, str]:
    out: dict[str, str] = {}
    for cat, names in _EXPLICIT_BY_CATEGORY.items():
        if cat not in CATEGORIES:
            raise SystemExit(f"explicit category {cat!r} is not in CATEGORIES")
        for name in names:
            if name in out:
                raise SystemExit(f"{name!r} is listed twice ({out[name]!r} and {cat!r})")
            out[name] = cat
    for name, cat in _EXPLICIT_EXTRA.items():
        if name in out:
            raise SystemExit(f"{name!r} is listed twice")
        out[name] = cat
    return out


def categorize(names: Iterable[str]) -> dict[str, str]:
    explicit = explicit_categories()
    out: dict[str, str] = {}
    missing: list[str] = []
    for name in sorted(set(names)):
        cat = explicit.get(name)
        if cat is None:
            cat = next((c for p, c in PREFIX_RULES if name.startswith(p)), None)
        if cat is None:
            cat = next((c for s, c in SUFFIX_RULES if name.endswith(s)), None)
        if cat is None:
            missing.append(name)
            continue
        out[name] = cat
    if missing:
        raise SystemExit(f"no category for: {', '.join(missing)} (add them to the generator)")
    stale = sorted(set(explicit) - set(out))
    if stale:
        raise SystemExit(f"explicitly categorised names in neither table: {', '.join(stale)}")
    unused = [c for c in CATEGORIES if c not in out.values()]
    if unused:
        raise SystemExit(f"categories with no syscall: {', '.join(unused)}")
    return out


# --------------------------------------------------------------------------------------
# Header parsing
# --------------------------------------------------------------------------------------

_DEFINE_NUM = re.compile(r"#\s*define\s+__NR_(\w+)\s+(\d+)\s*$")
_DEFINE_3264 = re.compile(r"#\s*define\s+__NR3264_(\w+)\s+(\d+)\s*$")
_DEFINE_ALIAS = re.compile(r"#\s*define\s+__NR_(\w+)\s+__NR3264_(\w+)\s*$")


def _logical_lines(text: str) -> list[str]:
    """Strip C comments and join backslash continuations."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = text.replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()]


def parse_flat_header(text: str) -> dict[int, str]:
    """Parse a flat `#define __NR_name N` header such as asm/unistd_64.h."""
    table: dict[int, str] = {}
    for line in _logical_lines(text):
        m = _DEFINE_NUM.match(line)
        if m is None or m.group(1) in NOT_SYSCALLS:
            continue
        nr, name = int(m.group(2)), m.group(1)
        if nr in table:
            raise SystemExit(f"duplicate number {nr}: {table[nr]} and {name}")
        table[nr] = name
    return table


_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Constant,
)


def eval_condition(expr: str, macros: Mapping[str, int]) -> bool:
    """Evaluate a preprocessor `#if` expression of the kind asm-generic/unistd.h uses."""

    def _defined(m: re.Match[str]) -> str:
        return " 1 " if m.group(1) in macros else " 0 "

    py = re.sub(r"defined\s*\(\s*(\w+)\s*\)", _defined, expr)
    py = re.sub(r"defined\s+(\w+)", _defined, py)
    py = re.sub(r"\b([A-Za-z_]\w*)\b", lambda m: f" {macros.get(m.group(1), 0)} ", py)
    py = py.replace("||", " or ").replace("&&", " and ")
    py = re.sub(r"!(?!=)", " not ", py)
    tree = ast.parse(py.strip(), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise SystemExit(f"unsupported #if expression: {expr!r}")
    return bool(eval(compile(tree, "<#if>", "eval"), {"__builtins__": {}}, {}))


def parse_generic_header(text: str, macros: Mapping[str, int]) -> dict[int, str]:
    """Parse asm-generic/unistd.h for a 64-bit arch with the given predefined macros."""
    macros = dict(macros)
    # Each frame: (this branch active, some branch of this #if already taken, parent active)
    stack: list[tuple[bool, bool, bool]] = []
    active = True
    numbers: dict[str, int] = {}
    numbers3264: dict[str, int] = {}
    aliases: dict[str, str] = {}  # __NR3264_x -> __NR_y name
    for line in _logical_lines(text):
        if not line.startswith("#"):
            continue
        directive = line[1:].strip()
        word, _, rest = directive.partition(" ")
        rest = rest.strip()
        if word in ("if", "ifdef", "ifndef"):
            if word == "ifdef":
                cond = rest in macros
            elif word == "ifndef":
                cond = rest not in macros
            else:
                cond = eval_condition(rest, macros)
            taken = active and cond
            stack.append((taken, taken, active))
            active = taken
        elif word == "elif":
            _, done, parent = stack.pop()
            taken = parent and not done and eval_condition(rest, macros)
            stack.append((taken, done or taken, parent))
            active = taken
        elif word == "else":
            _, done, parent = stack.pop()
            taken = parent and not done
            stack.append((taken, True, parent))
            active = taken
        elif word == "endif":
            stack.pop()
            active = stack[-1][0] if stack else True
        elif not active:
            continue
        elif word == "define":
            if m := _DEFINE_NUM.match(line):
                if m.group(1) not in NOT_SYSCALLS:
                    numbers[m.group(1)] = int(m.group(2))
            elif m := _DEFINE_3264.match(line):
                numbers3264[m.group(1)] = int(m.group(2))
            elif m := _DEFINE_ALIAS.match(line):
                aliases[m.group(2)] = m.group(1)
            else:
                name = rest.split()[0].split("(")[0] if rest else ""
                if name and not name.startswith("__NR"):
                    macros.setdefault(name, 1)
        elif word == "undef":
            if rest.startswith("__NR_"):
                numbers.pop(rest[len("__NR_") :], None)
            else:
                macros.pop(rest, None)
    if stack:
        raise SystemExit("unbalanced #if/#endif in generic header")

    table: dict[int, str] = {}

    def put(nr: int, name: str) -> None:
        if nr in table and table[nr] != name:
            raise SystemExit(f"aarch64: number {nr} is both {table[nr]} and {name}")
        table[nr] = name

    for name, nr in numbers.items():
        put(nr, name)
    for base, nr in numbers3264.items():
        expected = NR3264_NAMES_64.get(base)
        alias = aliases.get(base)
        if alias is not None and expected is not None and alias != expected:
            raise SystemExit(f"aarch64: header names __NR3264_{base} {alias}, expected {expected}")
        name64 = alias or expected
        if name64 is None:
            raise SystemExit(f"aarch64: no 64-bit name for __NR3264_{base}")
        put(nr, name64)
    return table


def aarch64_macros() -> tuple[dict[str, int], str]:
    wants: tuple[str, ...] = AARCH64_ARCH_WANTS
    source = "encoded arm64 __ARCH_WANT_* set"
    if AARCH64_ASM_HEADER.exists():
        text = AARCH64_ASM_HEADER.read_text()
        found = tuple(sorted(set(re.findall(r"#\s*define\s+(__ARCH_WANT_\w+)", text))))
        if found:
            wants, source = found, str(AARCH64_ASM_HEADER)
    macros = {name: 1 for name in wants}
    macros["__BITS_PER_LONG"] = 64
    return macros, source


def apply_additions(table: dict[int, str], arch: str) -> None:
    by_name = {name: nr for nr, name in table.items()}
    for add in POST_6_1_SYSCALLS:
        if arch not in add.arches:
            continue
        if add.name in by_name:
            if by_name[add.name] != add.number:
                raise SystemExit(
                    f"{arch}: header has {add.name} = {by_name[add.name]}, list says {add.number}"
                )
            continue
        if add.number in table:
            raise SystemExit(f"{arch}: {add.number} is {table[add.number]} in the header")
        table[add.number] = add.name


def headers_version() -> str:
    text = VERSION_HEADER.read_text() if VERSION_HEADER.exists() else ""
    major = re.search(r"#define LINUX_VERSION_MAJOR (\d+)", text)
    minor = re.search(r"#define LINUX_VERSION_PATCHLEVEL (\d+)", text)
    if major and minor:
        return f"{major.group(1)}.{minor.group(1)}"
    return "unknown"


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def render(x86_64: Mapping[int, str], aarch64: Mapping[int, str], cats: Mapping[str, str]) -> str:
    version = headers_version()
    lines: list[str] = [
        "# generated by tools/gen_syscall_table.py, do not edit",
        '"""Linux syscall numbers and names for x86_64 and aarch64, and a category for each name.',
        "",
        f"Built from this machine's Linux {version} UAPI headers (asm/unistd_64.h for x86_64,",
        "asm-generic/unistd.h for aarch64) plus the syscalls added since then, up to Linux",
        f"{NEWEST_KERNEL}. Names are the ones strace prints. Regenerate with",
        "``python tools/gen_syscall_table.py``.",
        '"""',
        "",
        "from typing import Final",
        "",
        "__all__ = [",
        '    "AARCH64",',
        '    "CATEGORIES",',
        '    "CATEGORY",',
        '    "UNKNOWN",',
        '    "X86_64",',
        '    "category",',
        '    "is_known",',
        "]",
        "",
        f'UNKNOWN: Final = "{UNKNOWN}"',
        "",
        "# Category labels in display order.",
        "CATEGORIES: Final[tuple[str, ...]] = (",
        *[f'    "{c}",' for c in CATEGORIES],
        ")",
        "",
        "X86_64: Final[dict[int, str]] = {",
        *[f'    {nr}: "{x86_64[nr]}",' for nr in sorted(x86_64)],
        "}",
        "",
        "AARCH64: Final[dict[int, str]] = {",
        *[f'    {nr}: "{aarch64[nr]}",' for nr in sorted(aarch64)],
        "}",
        "",
        "CATEGORY: Final[dict[str, str]] = {",
        *[f'    "{name}": "{cats[name]}",' for name in sorted(cats)],
        "}",
        "",
        "",
        "def category(name: str) -> str:",
        '    """Category of a syscall name as strace prints it; UNKNOWN for anything else."""',
        "    return CATEGORY.get(name, UNKNOWN)",
        "",
        "",
        "def is_known(name: str) -> bool:",
        '    """Whether name is a syscall of either table (``syscall_0x1c4`` is not)."""',
        "    return name in CATEGORY",
        "",
    ]
    return "\n".join(lines)


def generate() -> str:
    x86_64 = parse_flat_header(X86_64_HEADER.read_text())
    apply_additions(x86_64, "x86_64")
    macros, _source = aarch64_macros()
    aarch64 = parse_generic_header(GENERIC_HEADER.read_text(), macros)
    apply_additions(aarch64, "aarch64")
    cats = categorize([*x86_64.values(), *aarch64.values()])
    return render(x86_64, aarch64, cats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="file to write")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the output file differs; write nothing"
    )
    args = parser.parse_args(argv)
    text = generate()
    out: Path = args.output
    if args.check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print(f"{out} is stale: run python tools/gen_syscall_table.py", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
