"""Run commands with a deadline that kills the whole process tree.

A target may fork, double-fork and setsid() its way out of our process group.
The gate makes itself a child subreaper, so every orphaned descendant is
re-parented to it and can still be found (by walking /proc) and killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
# How long strace may take to write its last lines once its tracees are killed.
TRACER_GRACE = 5.0
_subreaper_set = False


def become_subreaper() -> bool:
    global _subreaper_set
    if _subreaper_set:
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper_set = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper_set = False
    return _subreaper_set


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # The comm field may contain spaces and ')' : split after the last ')'.
        rest = data[data.rfind(b")") + 2 :].split()
        if len(rest) < 2:
            continue
        kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def _direct_children(pid: int) -> list[int]:
    """Children of a single-threaded process: one small read, not a /proc scan."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        # Kernels without CONFIG_PROC_CHILDREN: fall back to the full scan.
        return _children_map().get(pid, [])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def kill_tree(pgid: int | None, spare: frozenset[int]) -> int:
    """SIGKILL the process group and every descendant of ours not in `spare`.

    `spare` holds our children from before the run (a test's HTTP server, a
    podman service): only what the run started, or what it orphaned onto us
    as subreaper, is killed. Returns how many processes were signalled.
    """
    hit = 0
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
            hit += 1
        except ProcessLookupError:
            pass
    hit += _kill_descendants(spare)
    reap_orphans(spare)
    return hit


def _kill_descendants(spare: frozenset[int], keep: int | None = None) -> int:
    """SIGKILL our descendants outside `spare`, sparing `keep` itself (not its children)."""
    hit = 0
    me = os.getpid()
    # Repeat until none is left: a process may fork while its parent dies.
    for _ in range(50):
        kids = _children_map()
        stack = [p for p in kids.get(me, []) if p not in spare]
        alive = []
        while stack:
            p = stack.pop()
            stack.extend(kids.get(p, []))
            if p != keep and _alive(p):
                alive.append(p)
        if not alive:
            break
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
                hit += 1
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return hit


def reap_orphans(spare: frozenset[int]) -> None:
    """Collect zombies re-parented to us; our own Popen children are waited elsewhere."""
    for p in _children_map().get(os.getpid(), []):
        if p in spare or _alive(p):
            continue
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            continue


def children() -> frozenset[int]:
    return frozenset(_children_map().get(os.getpid(), []))


@dataclass
class Finished:
    returncode: int | None  # None when killed for the deadline
    timed_out: bool
    elapsed: float
    killed: int  # processes killed after the deadline or left behind
    oversize: bool = False  # killed because the watched file grew past its cap


def run(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    timeout: float,
    tracer: bool = False,
    grace: float = 2.0,
    watch: tuple[Path, int] | None = None,
    stop: threading.Event | None = None,
) -> Finished:
    """Run argv to completion or deadline; kill whatever it left behind either way.

    With tracer=True, argv is a tracer (strace) whose one child is the target:
    strace -f waits for every traced process, so a daemon the target left
    running would hold the run until the deadline. Once the target itself has
    exited, what is still alive after `grace` seconds is killed, strace then
    finishes its trace, and the count of killed processes is reported.

    With watch=(file, limit), a file that grows past `limit` bytes (a runaway
    trace filling the disk) ends the run like the deadline does.

    `stop` (set from another thread, e.g. one analysing the trace while it is
    written) ends the run at once: the whole tree is killed, rc None.
    """
    become_subreaper()
    spare = children()
    start = time.monotonic()
    deadline = start + timeout
    leftovers = 0
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        timed_out = False
        oversize = False
        seen_target = False
        target_gone: float | None = None
        rc: int | None = None
        try:
            while True:
                try:
                    rc = proc.wait(timeout=0.1 if tracer or stop else max(0.0, deadline - start))
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if watch is not None and _size(watch[0]) > watch[1]:
                    oversize = True
                if stop is not None and stop.is_set():
                    kill_tree(proc.pid, spare)
                    proc.wait()
                    rc = None
                    break
                if now >= deadline or oversize:
                    timed_out = not oversize
                    if tracer:
                        # The tracees first: strace then writes how their calls ended
                        # ("= ?", "+++ killed by SIGKILL +++") and exits, so the trace
                        # does not end in the middle of a line.
                        _kill_descendants(spare, keep=proc.pid)
                        with suppress(subprocess.TimeoutExpired):
                            proc.wait(timeout=TRACER_GRACE)
                    kill_tree(proc.pid, spare)
                    proc.wait()
                    rc = None
                    break
                if not tracer or target_gone == float("inf"):
                    continue
                # The target is the tracer's only child (other tracees keep their
                # real parents). A fast target may be gone before we first look,
                # hence the second condition.
                if any(_alive(k) for k in _direct_children(proc.pid)):
                    seen_target = True
                    target_gone = None
                elif seen_target or now - start > grace:
                    if target_gone is None:
                        target_gone = now
                    elif now - target_gone >= grace:
                        leftovers += _kill_descendants(spare, keep=proc.pid)
                        target_gone = float("inf")
        except BaseException:
            kill_tree(proc.pid, spare)
            proc.wait()
            raise
    elapsed = time.monotonic() - start
    # Daemons the target double-forked outlive it; they are part of the run.
    leftovers += kill_tree(None, spare)
    # The size is looked at every 0.1 s: a short run can pass the cap between two looks.
    if watch is not None and _size(watch[0]) > watch[1]:
        oversize = True
    return Finished(rc, timed_out, elapsed, leftovers, oversize)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
