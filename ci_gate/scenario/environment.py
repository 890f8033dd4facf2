"""What machine the run happened on: recorded so results can be compared fairly."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from pathlib import Path
from typing import Any

import ci_gate

NR_IO_URING_SETUP = {"x86_64": 425, "aarch64": 425}


def probe_io_uring() -> str:
    """'ok', or the errno name io_uring_setup fails with here (EPERM, ENOSYS, ...)."""
    nr = NR_IO_URING_SETUP.get(platform.machine())
    if nr is None:
        return "unknown-arch"
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    fd = libc.syscall(nr, 1, params)
    if fd >= 0:
        os.close(fd)
        return "ok"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def io_uring_disabled() -> str | None:
    """kernel.io_uring_disabled: 0 allowed, 1 only for io_uring_group or CAP_SYS_ADMIN, 2 off."""
    return _read("/proc/sys/kernel/io_uring_disabled")


def container() -> str | None:
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    cgroup = _read("/proc/1/cgroup") or ""
    if "docker" in cgroup or "containerd" in cgroup:
        return "docker"
    return None


def seccomp_mode() -> str | None:
    status = _read("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("Seccomp:"):
            return {"0": "disabled", "1": "strict", "2": "filter"}.get(line.split()[1])
    return None


def describe(strace_version: str | None) -> dict[str, Any]:
    return {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "strace": strace_version,
        "python": sys.version.split()[0],
        "gate": ci_gate.__version__,
        "container": container(),
        "seccomp": seccomp_mode(),
        "io_uring_disabled": io_uring_disabled(),
        "io_uring_probe": probe_io_uring(),
        "uid": os.geteuid(),
    }
