"""A private tracefs instance: created for one run, removed afterwards.

Instances (tracefs/instances/NAME) have their own ring buffer, event switches,
clock and filters, so the gate never touches the global buffer that other
tools (perf, trace-cmd, a developer's shell) may be using.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import time
from contextlib import suppress
from pathlib import Path
from typing import NoReturn

from ci_gate.kernel.ringbuf import EventFormat, PageLayout

TRACEFS_MOUNTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
# The initial pid namespace's inode number (PROC_PID_INIT_INO), fixed since Linux 3.8.
INIT_PID_NS_INO = 0xEFFFFFFC
INSTANCE_PREFIX = "syscall-gate."
_INSTANCE_NAME = re.compile(r"syscall-gate\.(\d+)\.[0-9a-f]+\Z")


class Unavailable(Exception):
    """Tracepoint data cannot be collected here; `reason` says why, for the report."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def pid_namespace_problem() -> str | None:
    try:
        ino = os.stat("/proc/self/ns/pid").st_ino
    except OSError as exc:
        return f"cannot tell which pid namespace the gate runs in (/proc/self/ns/pid: {exc})"
    if ino != INIT_PID_NS_INO:
        return (
            "the gate runs in a pid namespace of its own (a container without --pid=host): "
            f"its pid {os.getpid()} is not the kernel's, so the tracepoints' pids cannot be "
            "tied to the traced process tree"
        )
    return None


def lockdown_problem() -> str | None:
    try:
        text = Path("/sys/kernel/security/lockdown").read_text()
    except OSError:
        return None
    if "[confidentiality]" in text:
        return "kernel lockdown (confidentiality mode) forbids reading trace events"
    return None


def find() -> tuple[Path, bool]:
    """The tracefs mount point and whether the gate mounted it, or Unavailable with the reason.

    As root, an unmounted tracefs is mounted at its standard place, as trace-cmd's
    libtracefs does: a fresh VM or a privileged container often lacks the mount.
    """
    denied: list[Path] = []
    for root in TRACEFS_MOUNTS:
        try:
            os.stat(root / "instances")
            return root, False
        except PermissionError:
            denied.append(root)
        except OSError:
            continue
    if denied:
        _raise_denied(denied[0])
    looked = " and ".join(str(p) for p in TRACEFS_MOUNTS)
    if os.geteuid() != 0:
        raise Unavailable(
            f"the gate is not running as root (uid {os.geteuid()}), and tracefs is not mounted "
            f"(looked at {looked}); run the gate with sudo on the host (GitHub-hosted runners "
            "allow it), which mounts tracefs when it is missing"
        )
    root = TRACEFS_MOUNTS[0]
    why = _mount_tracefs(root)
    if why is not None:
        raise Unavailable(
            f"tracefs is not mounted (looked at {looked}) and mounting it failed: {why}"
        )
    return root, True


def _mount_tracefs(target: Path) -> str | None:
    """Mount tracefs at `target`; None on success, else why not."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(b"nodev", os.fsencode(target), b"tracefs", 0, None) == 0:
        return None
    err = ctypes.get_errno()
    hint = " (no CAP_SYS_ADMIN: a container without --privileged?)" if err == errno.EPERM else ""
    return f"mount -t tracefs nodev {target}: {os.strerror(err)}{hint}"


def _raise_denied(root: Path) -> NoReturn:
    uid = os.geteuid()
    if uid != 0:
        raise Unavailable(
            f"the gate is not running as root (uid {uid}): {root} is readable by root only; "
            "run the gate with sudo on the host (GitHub-hosted runners allow it)"
        )
    raise Unavailable(f"{root} is not accessible even to root (a security module?)")


def probe() -> tuple[Path, bool]:
    """Check every precondition; return the tracefs root (and whether the gate mounted it)
    or raise Unavailable."""
    why = pid_namespace_problem()
    if why is not None:
        raise Unavailable(why)
    root, mounted = find()
    why = lockdown_problem()
    if why is not None:
        raise Unavailable(why)
    if not (root / "events" / "io_uring" / "io_uring_submit_req").is_dir():
        raise Unavailable(
            f"this kernel ({os.uname().release}) has no io_uring tracepoints "
            "(events/io_uring/io_uring_submit_req is missing)"
        )
    return root, mounted


def remove_stale(root: Path) -> list[str]:
    """Remove instances left by gates that died without cleaning up (SIGKILL, OOM)."""
    removed: list[str] = []
    try:
        names = os.listdir(root / "instances")
    except OSError:
        return removed
    for name in names:
        m = _INSTANCE_NAME.match(name)
        if m is None or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        with suppress(OSError):
            os.rmdir(root / "instances" / name)
            removed.append(name)
    return removed


class Instance:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.path = root / "instances" / name
        self.events_dir = self.path / "events"

    @classmethod
    def create(cls, root: Path) -> Instance:
        name = f"{INSTANCE_PREFIX}{os.getpid()}.{secrets.token_hex(4)}"
        inst = cls(root, name)
        try:
            os.mkdir(inst.path)
        except PermissionError as exc:
            raise Unavailable(
                f"tracefs refused to create an instance ({exc.strerror}): kernel lockdown or "
                "a security module forbids it"
            ) from exc
        except OSError as exc:
            raise Unavailable(f"cannot create a tracefs instance: {exc.strerror or exc}") from exc
        return inst

    def write(self, rel: str, value: str) -> None:
        with open(self.path / rel, "w") as f:
            f.write(value)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def event_format(self, system: str, name: str) -> EventFormat:
        return EventFormat.load(self.events_dir, system, name)

    def enable(self, system: str, name: str) -> None:
        self.write(f"events/{system}/{name}/enable", "1")

    def set_filter(self, system: str, name: str, expr: str) -> None:
        self.write(f"events/{system}/{name}/filter", expr)

    def page_layout(self) -> PageLayout:
        return PageLayout.parse((self.root / "events" / "header_page").read_text())

    def page_size(self) -> int:
        try:
            return int(self.read("buffer_subbuf_size_kb").split()[0]) * 1024
        except (OSError, ValueError, IndexError):
            return os.sysconf("SC_PAGE_SIZE")

    def cpus(self) -> list[int]:
        out = []
        for entry in os.listdir(self.path / "per_cpu"):
            if entry.startswith("cpu") and entry[3:].isdigit():
                out.append(int(entry[3:]))
        return sorted(out)

    def stats(self) -> dict[int, dict[str, int]]:
        """per_cpu/cpuN/stats, the integer lines ('overrun', 'dropped events', ...)."""
        out: dict[int, dict[str, int]] = {}
        for cpu in self.cpus():
            values: dict[str, int] = {}
            try:
                text = self.read(f"per_cpu/cpu{cpu}/stats")
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(":")
                value = value.strip()
                if value.isdigit():
                    values[key.strip()] = int(value)
            out[cpu] = values
        return out

    def remove(self) -> None:
        """Stop recording and delete the instance (with its buffer and event switches)."""
        with suppress(OSError):
            self.write("tracing_on", "0")
        for attempt in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                # EBUSY while a reader still holds a file open; it is closing.
                if exc.errno != errno.EBUSY or attempt == 49:
                    raise
                time.sleep(0.02)
