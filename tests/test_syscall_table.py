"""Tests for the generated syscall table (ci_gate/metrics/syscall_table.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ci_gate.metrics import syscall_table as st

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = REPO_ROOT / "tools" / "gen_syscall_table.py"
MODULE = REPO_ROOT / "ci_gate" / "metrics" / "syscall_table.py"
HEADERS = (
    Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    Path("/usr/include/asm-generic/unistd.h"),
)

ALL_NAMES = sorted(set(st.X86_64.values()) | set(st.AARCH64.values()))

# The only names allowed in "other": table slots that were never implemented or are gone.
OTHER = {"afs_syscall", "getpmsg", "nfsservctl", "putpmsg", "security", "tuxcall", "vserver"}


def test_every_table_name_has_a_real_category() -> None:
    for name in ALL_NAMES:
        cat = st.category(name)
        assert cat != st.UNKNOWN, name
        assert cat in st.CATEGORIES, (name, cat)
        assert st.is_known(name)


def test_category_map_covers_exactly_the_tables() -> None:
    assert set(st.CATEGORY) == set(ALL_NAMES)


def test_other_is_only_a_handful() -> None:
    assert {n for n, c in st.CATEGORY.items() if c == "other"} == OTHER


def test_categories_are_unique_plain_labels_all_used() -> None:
    assert len(set(st.CATEGORIES)) == len(st.CATEGORIES)
    assert st.UNKNOWN not in st.CATEGORIES
    for label in st.CATEGORIES:
        assert label.isascii() and label.isprintable() and label == label.strip(), label
    assert set(st.CATEGORY.values()) == set(st.CATEGORIES)


def test_names_are_unique_per_arch() -> None:
    for table in (st.X86_64, st.AARCH64):
        assert len(set(table.values())) == len(table)


@pytest.mark.parametrize(
    ("nr", "name"),
    [
        (0, "read"),
        (1, "write"),
        (9, "mmap"),
        (59, "execve"),
        (156, "_sysctl"),
        (166, "umount2"),
        (257, "openat"),
        (262, "newfstatat"),
        (332, "statx"),
        (334, "rseq"),
        (335, "uretprobe"),
        (336, "uprobe"),
        (425, "io_uring_setup"),
        (426, "io_uring_enter"),
        (427, "io_uring_register"),
        (435, "clone3"),
        (450, "set_mempolicy_home_node"),
        (451, "cachestat"),
        (452, "fchmodat2"),
        (453, "map_shadow_stack"),
        (462, "mseal"),
        (469, "file_setattr"),
    ],
)
def test_x86_64_numbers(nr: int, name: str) -> None:
    assert st.X86_64[nr] == name


@pytest.mark.parametrize(
    ("nr", "name"),
    [
        (0, "io_setup"),
        (25, "fcntl"),
        (38, "renameat"),
        (42, "nfsservctl"),
        (45, "truncate"),
        (56, "openat"),
        (62, "lseek"),
        (63, "read"),
        (71, "sendfile"),
        (79, "newfstatat"),
        (80, "fstat"),
        (84, "sync_file_range"),
        (163, "getrlimit"),
        (222, "mmap"),
        (223, "fadvise64"),
        (291, "statx"),
        (425, "io_uring_setup"),
        (426, "io_uring_enter"),
        (435, "clone3"),
        (447, "memfd_secret"),
        (451, "cachestat"),
        (463, "setxattrat"),
        (469, "file_setattr"),
    ],
)
def test_aarch64_numbers(nr: int, name: str) -> None:
    assert st.AARCH64[nr] == name


def test_aarch64_has_no_legacy_or_32bit_only_calls() -> None:
    names = set(st.AARCH64.values())
    for legacy in ("open", "stat", "fork", "pipe", "dup2", "epoll_wait", "getdents", "uretprobe"):
        assert legacy not in names, legacy
    for time32 in ("clock_gettime64", "futex_time64", "fstatat64", "fcntl64", "llseek", "mmap2"):
        assert time32 not in names, time32
    # 244-259 are arch-specific (arm64 has none); 295-423 are reserved on 64-bit.
    assert not any(244 <= nr <= 259 or 295 <= nr <= 423 for nr in st.AARCH64)


def test_post_6_1_numbers_shared_by_both_arches() -> None:
    for nr in range(451, 470):
        assert st.X86_64[nr] == st.AARCH64[nr], nr


@pytest.mark.parametrize(
    ("name", "cat"),
    [
        ("fchown", "file metadata"),
        ("utimensat", "file metadata"),
        ("statx", "file metadata"),
        ("newfstatat", "file metadata"),
        ("setxattr", "file metadata"),
        ("lgetxattr", "file metadata"),
        ("fremovexattr", "file metadata"),
        ("getxattrat", "file metadata"),
        ("getdents64", "directory"),
        ("mkdirat", "directory"),
        ("rmdir", "directory"),
        ("renameat2", "directory"),
        ("mount", "path & namespace"),
        ("chroot", "path & namespace"),
        ("pivot_root", "path & namespace"),
        ("futex", "threading & sync"),
        ("set_robust_list", "threading & sync"),
        ("rseq", "threading & sync"),
        ("rt_sigprocmask", "signal"),
        ("sigaltstack", "signal"),
        ("io_uring_setup", "io_uring"),
        ("io_uring_enter", "io_uring"),
        ("io_uring_register", "io_uring"),
        ("read", "file I/O"),
        ("openat", "file I/O"),
        ("mmap", "memory"),
        ("execve", "process"),
        ("setuid", "credentials"),
        ("sched_getaffinity", "scheduling"),
        ("clock_gettime", "time"),
        ("connect", "network"),
        ("shmget", "IPC"),
        ("epoll_wait", "event & polling"),
        ("seccomp", "security"),
        ("uname", "system & info"),
        ("ptrace", "ptrace & debug"),
        ("init_module", "module & kernel"),
    ],
)
def test_categories(name: str, cat: str) -> None:
    assert st.category(name) == cat


@pytest.mark.parametrize(
    "name", ["_sysctl", "uselib", "umount2", "pread64", "newfstatat", "rt_sigreturn"]
)
def test_names_strace_prints_resolve(name: str) -> None:
    assert st.is_known(name)


@pytest.mark.parametrize("name", ["syscall_0x1c4", "syscall_0x1", "", "not_a_syscall", "READ"])
def test_unknown_names(name: str) -> None:
    assert st.category(name) == "unknown syscall"
    assert not st.is_known(name)


@pytest.mark.skipif(
    not all(h.exists() for h in HEADERS), reason="kernel UAPI headers (linux-libc-dev) missing"
)
def test_committed_module_matches_generator(tmp_path: Path) -> None:
    out = tmp_path / "syscall_table.py"
    subprocess.run([sys.executable, str(GENERATOR), "--output", str(out)], check=True)
    assert out.read_text() == MODULE.read_text(), (
        "ci_gate/metrics/syscall_table.py is stale: run python tools/gen_syscall_table.py"
    )
