"""Which scenario file each io_uring SQE reached, where that can be known exactly.

io_uring_file_get gives the fd number an SQE names, not a path, and an fd
number means different files over a run (a copier closes one file and opens
the next under the same number). The trace says what each number meant at
each moment, and on a ring without SQPOLL every SQE enters the kernel inside
an io_uring_enter call that strace saw: the ring's k-th SQE in the kernel's
order is the k-th SQE taken by that ring's io_uring_enter calls, counted by
their return values. So a second pass over the trace follows each task's fd
table and, at each submitting io_uring_enter, looks up the fds of the SQEs it
took. That holds only when:

- the ring has no SQPOLL thread (which takes SQEs without a syscall, at a
  moment the trace cannot place);
- one task submitted on the ring (several would interleave in an order the
  trace need not preserve);
- strace and the kernel count the same SQEs for the ring;
- io_uring itself opened no fd during the run (OPENAT, ACCEPT, SOCKET, ...):
  the trace cannot know what such an fd refers to, nor that its number was
  reused;
- the SQE did not fail (a failed SQE may name an fd that no longer exists).

Everything else is counted under "not tied to a file", with the reason.
"""

from __future__ import annotations

from collections import Counter

from ci_gate.kernel.uring_tracepoints import NO_FD, KernelRing
from ci_gate.metrics.collector import IORING_ENTER_REGISTERED_RING, Collector
from ci_gate.metrics.pathcalls import OPEN_CALLS
from ci_gate.metrics.scope import Scope
from ci_gate.metrics.tasks import Ring
from ci_gate.trace import source
from ci_gate.trace.args import fd_number, has_flag, split_args
from ci_gate.trace.events import Call
from ci_gate.trace.parser import TraceParser

NOT_A_PATH = ""  # an fd the trace saw created that is no file path (socket, pipe, eventfd)
_DUPS = frozenset({"dup", "dup2", "dup3", "fcntl"})
_FD_PAIRS = {"pipe": 0, "pipe2": 0, "socketpair": 3}  # the argument holding [fd, fd]

WHY_FAILED = "the SQE failed"
WHY_UNKNOWN_FD = "the trace does not show what the fd referred to"
WHY_OUTSIDE = "the fd referred to something outside the scenario"
WHY_NOT_LINED_UP = "the SQE could not be lined up with an io_uring_enter call of the trace"


class _FdFollower(Collector):
    """The collector's fd tables, plus the SQE-to-file lookup at each io_uring_enter."""

    follow_paths = True

    def __init__(self, files: Scope, cursors: dict[int, KernelRing], op_names: list[str]) -> None:
        super().__init__(None)
        self.files = files
        self.cursors = {ident: [ring, 0] for ident, ring in cursors.items()}
        self.op_names = op_names
        self.per_path: dict[tuple[str, str], Counter[str]] = {}
        self.why: Counter[str] = Counter()
        self.attributed = 0

    def feed_call(self, c: Call) -> None:
        ret = c.retval
        fresh = (
            ret is not None
            and ret >= 0
            and c.name not in _DUPS
            and (c.name in OPEN_CALLS or c.ret_decoration is not None)
        )
        if fresh:
            assert ret is not None
            # Whatever the number meant before, it names a new object now.
            self.tasks.close(c.pid, ret)
        super().feed_call(c)
        if ret is None or ret < 0:
            return
        if fresh and self.tasks.get(c.pid, ret) is None:
            self.tasks.set(c.pid, ret, NOT_A_PATH)
        elif c.name in _FD_PAIRS:
            arr = c.arg(_FD_PAIRS[c.name]) or ""
            if arr.startswith("[") and arr.endswith("]"):
                for elem in split_args(arr[1:-1]):
                    fd = fd_number(elem)
                    if fd is not None:
                        self.tasks.set(c.pid, fd, NOT_A_PATH)
        elif c.name in ("execve", "execveat") and ret == 0:
            # close-on-exec is not tracked: forget every fd rather than trust a stale one.
            self.tasks.tables[c.pid] = {}

    def _uring_enter(self, c: Call) -> None:
        ret = c.retval
        args = c.split_args()
        if ret is None or ret <= 0 or len(args) < 4:
            return
        ring: Ring | None
        if has_flag(args[3], "IORING_ENTER_REGISTERED_RING", IORING_ENTER_REGISTERED_RING):
            ring = self.tasks.registered.get(c.pid)
        else:
            fd = fd_number(args[0])
            target = self.tasks.get(c.pid, fd) if fd is not None else None
            ring = target if isinstance(target, Ring) else None
        cursor = self.cursors.get(ring.ident) if ring is not None else None
        if cursor is None:
            return
        kring, start = cursor
        assert isinstance(kring, KernelRing) and isinstance(start, int)
        end = min(start + ret, len(kring.seq_ops))
        for i in range(start, end):
            fd = kring.seq_fds[i]
            if fd == NO_FD:
                continue
            if kring.seq_failed[i]:
                self.why[WHY_FAILED] += 1
                continue
            target = self.tasks.get(c.pid, fd)
            if target is None:
                self.why[WHY_UNKNOWN_FD] += 1
                continue
            loc = self.files.locate(target) if isinstance(target, str) else None
            if loc is None:
                self.why[WHY_OUTSIDE] += 1
                continue
            per = self.per_path.get(loc)
            if per is None:
                per = self.per_path[loc] = Counter()
            per[self.op_names[kring.seq_ops[i]]] += 1
            self.attributed += 1
        cursor[1] = start + ret


def with_fd(ring: KernelRing) -> int:
    return sum(1 for fd in ring.seq_fds if fd != NO_FD)


def attribute(
    parts: list[source.TracePart],
    files: Scope,
    rings: dict[int, KernelRing],
    op_names: list[str],
) -> tuple[dict[tuple[str, str], Counter[str]], Counter[str], int]:
    """Replay the trace; `rings` maps the collector's ring ids to the kernel's rings."""
    follower = _FdFollower(files, rings, op_names)
    follower.consume(source.events(parts, TraceParser()))
    for kring, pos in follower.cursors.values():
        assert isinstance(kring, KernelRing) and isinstance(pos, int)
        left = sum(1 for fd in kring.seq_fds[pos:] if fd != NO_FD)
        if left:
            follower.why[WHY_NOT_LINED_UP] += left
    return follower.per_path, follower.why, follower.attributed
