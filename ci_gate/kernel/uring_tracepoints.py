"""Per-opcode io_uring counts from the kernel's tracepoints, for the traced process tree.

strace sees io_uring_enter, not the SQEs inside the ring. The kernel's
io_uring tracepoints do: io_uring_create (a ring and the task that made it),
io_uring_submit_req (each SQE the kernel takes, with its opcode),
io_uring_req_failed (SQEs rejected at submission), io_uring_complete (here
only the failed completions, filtered in the kernel) and io_uring_file_get
(the fd an SQE names).

Attribution: a submission belongs to the scenario when its ring was created by
a task of the traced tree. The tree is followed in the kernel itself:
sched_process_fork from the gate's own threads (which start strace, which
starts the target) and sched_process_exit, so a pid reused by an unrelated
process later does not count. Submissions are matched to rings by the ring's
address, not by pid, because SQPOLL threads and io-wq workers submit and
complete on a ring's behalf from kernel threads; set_event_pid would lose
them. Rings of other processes (another io_uring program running at the same
time) are counted only as "ignored".

Everything runs in a private tracefs instance (never the global buffer),
removed on the way out: on success, on errors, and on SIGINT/SIGTERM, which
are held back while the instance is set up and torn down so that the
pipeline's Interrupted exception cannot cut either short.
"""

from __future__ import annotations

import errno
import heapq
import os
import signal
import struct
import tempfile
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ci_gate.kernel import ringbuf, tracefs
from ci_gate.kernel.ringbuf import FieldReader, FormatError, PageLayout, PageStats
from ci_gate.kernel.tracefs import Instance, Unavailable
from ci_gate.metrics.registry import IO_URING_INVALID_OPCODE, IO_URING_OPCODES

MODES = ("auto", "off")

# (system, event, fields read) by role. op_str is read too where the kernel has it.
REQUIRED_EVENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "create": ("io_uring", "io_uring_create", ("common_pid", "ctx", "fd", "sq_entries", "flags")),
    "submit": (
        "io_uring",
        "io_uring_submit_req",
        ("common_pid", "ctx", "req", "opcode", "sq_thread"),
    ),
    "failed": ("io_uring", "io_uring_req_failed", ("common_pid", "ctx", "req", "opcode", "error")),
    "fork": ("sched", "sched_process_fork", ("parent_pid", "child_pid")),
    "exit": ("sched", "sched_process_exit", ("common_pid",)),
}
OPTIONAL_EVENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "complete": ("io_uring", "io_uring_complete", ("ctx", "req", "res", "cflags")),
    "file_get": ("io_uring", "io_uring_file_get", ("ctx", "req", "fd")),
}
OP_STR_EVENTS = ("submit", "failed")

IORING_SETUP_SQPOLL = 1 << 1
IORING_CQE_F_MORE = 1 << 1
NO_FD = -(1 << 31)  # an SQE for which io_uring_file_get did not fire
_RECORD = struct.Struct("=I")
_TYPE = struct.Struct("=H")
# Per CPU, so that a burst between two reads of the buffer fits; capped in total.
BUFFER_KB_PER_CPU = 8192
BUFFER_KB_MIN = 1024
BUFFER_KB_TOTAL = 256 * 1024
READ_INTERVAL = 0.02


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back (they stay pending) while the instance is set up or removed."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# -- results -------------------------------------------------------------------------------


@dataclass
class KernelRing:
    """A ring created by a task of the traced tree, as the tracepoints saw it."""

    ordinal: int
    pid: int  # the creating task, in the kernel's (= the gate's) pid namespace
    fd: int
    flags: int
    sq_entries: int
    sqes: int = 0
    sq_thread: int = 0  # SQEs taken by the ring's SQPOLL thread
    ops: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: dict[str, Counter[str]] = field(default_factory=dict)
    submitters: set[int] = field(default_factory=set)
    # One entry per SQE, in submission order: opcode index, fd, failed.
    seq_ops: array[int] = field(default_factory=lambda: array("H"))
    seq_fds: array[int] = field(default_factory=lambda: array("i"))
    seq_failed: array[int] = field(default_factory=lambda: array("b"))

    @property
    def sqpoll(self) -> bool:
        return bool(self.flags & IORING_SETUP_SQPOLL)


@dataclass
class OpcodeData:
    """What the tracepoints recorded, or why nothing was."""

    reason: str | None = None
    rings: list[KernelRing] = field(default_factory=list)
    op_names: list[str] = field(default_factory=list)
    foreign_rings: int = 0
    foreign_sqes: int = 0
    unknown_ring_sqes: int = 0
    tasks_followed: int = 0
    events: int = 0
    lost: int = 0
    lost_detail: dict[str, int] = field(default_factory=dict)
    completions_traced: bool = False
    fds_traced: bool = False
    instance: str | None = None
    warnings: list[str] = field(default_factory=list)

    def ops(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for r in self.rings:
            total.update(r.ops)
        return total

    def failed(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for r in self.rings:
            total.update(r.failed)
        return total

    def errors(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for r in self.rings:
            for op, c in r.errors.items():
                out.setdefault(op, Counter()).update(c)
        return out


def errno_name(value: int) -> str:
    return errno.errorcode.get(abs(value), str(value))


def opcode_name(number: int, op_str: str | None) -> str:
    if op_str:
        return op_str
    if 0 <= number < len(IO_URING_OPCODES):
        return IO_URING_OPCODES[number]
    return IO_URING_INVALID_OPCODE


class _Pending:
    __slots__ = ("counted", "index", "op", "ring")

    def __init__(self, ring: KernelRing, op: str, index: int, counted: bool) -> None:
        self.ring = ring
        self.op = op
        self.index = index
        self.counted = counted


class Attributor:
    """Replays the events in time order and keeps the traced tree's rings."""

    def __init__(self, seed: set[int]) -> None:
        self.tree = set(seed)
        self.followed = set(seed)
        self.rings: dict[int, KernelRing | None] = {}  # ring address -> ours, or None
        self.ours: list[KernelRing] = []
        # ring address -> request address -> its SQE. Successful completions are filtered
        # out in the kernel, so a request stays here until its address is reused in the ring.
        self.pending: dict[int, dict[int, _Pending]] = {}
        self.op_names: list[str] = []
        self._op_index: dict[str, int] = {}
        self.foreign_rings = 0
        self.foreign_sqes = 0
        self.unknown_ring_sqes = 0
        self.events = 0

    def _op(self, name: str) -> int:
        i = self._op_index.get(name)
        if i is None:
            i = self._op_index[name] = len(self.op_names)
            self.op_names.append(name)
        return i

    def fork(self, parent: int, child: int) -> None:
        if parent in self.tree:
            self.tree.add(child)
            self.followed.add(child)

    def exit(self, pid: int) -> None:
        self.tree.discard(pid)

    def create(self, pid: int, ctx: int, fd: int, sq_entries: int, flags: int) -> None:
        # A ring at this address again: the old one was freed and its requests with it. The
        # new ring reuses request addresses too (the kernel's request cache), and a foreign
        # ring's io_uring_file_get or failed completion must not land on a request of ours.
        self.pending.pop(ctx, None)
        if pid in self.tree:
            ring = KernelRing(len(self.ours) + 1, pid, fd, flags, sq_entries)
            self.ours.append(ring)
            self.rings[ctx] = ring
        else:
            # Also replaces a freed ring of ours whose address was reused.
            self.rings[ctx] = None
            self.foreign_rings += 1

    def _take(
        self, pid: int, ctx: int, req: int, op: str, sq_thread: bool, error: int | None
    ) -> None:
        if ctx not in self.rings:
            self.unknown_ring_sqes += 1
            return
        ring = self.rings[ctx]
        if ring is None:
            self.foreign_sqes += 1
            return
        ring.sqes += 1
        ring.ops[op] += 1
        if sq_thread:
            ring.sq_thread += 1
        else:
            ring.submitters.add(pid)
        index = len(ring.seq_ops)
        ring.seq_ops.append(self._op(op))
        ring.seq_fds.append(NO_FD)
        ring.seq_failed.append(0)
        self.pending.setdefault(ctx, {})[req] = _Pending(ring, op, index, error is not None)
        if error is not None:
            self._fail(ring, op, index, error)

    @staticmethod
    def _fail(ring: KernelRing, op: str, index: int, error: int) -> None:
        ring.failed[op] += 1
        ring.errors.setdefault(op, Counter())[errno_name(error)] += 1
        ring.seq_failed[index] = 1

    def submit(self, pid: int, ctx: int, req: int, op: str, sq_thread: bool) -> None:
        self._take(pid, ctx, req, op, sq_thread, None)

    def reject(self, pid: int, ctx: int, req: int, op: str, error: int) -> None:
        # Rejected at submission: the SQE was consumed but never issued.
        self._take(pid, ctx, req, op, False, error)

    def _pending(self, ctx: int, req: int) -> _Pending | None:
        reqs = self.pending.get(ctx)
        return reqs.get(req) if reqs is not None else None

    def complete(self, ctx: int, req: int, res: int, cflags: int) -> None:
        p = self._pending(ctx, req)
        if p is None:
            return
        if res < 0 and not p.counted:
            self._fail(p.ring, p.op, p.index, res)
            p.counted = True
        if not cflags & IORING_CQE_F_MORE:
            del self.pending[ctx][req]

    def file_get(self, ctx: int, req: int, fd: int) -> None:
        p = self._pending(ctx, req)
        if p is not None and p.ring.seq_fds[p.index] == NO_FD:
            p.ring.seq_fds[p.index] = fd


# -- recording -----------------------------------------------------------------------------


class OpcodeTrace:
    """`with OpcodeTrace(): <run the traced command>`, then `.result()`.

    When the tracepoints cannot be used here, entering records nothing and
    `.reason` says why; the run carries on with strace alone.
    """

    def __init__(
        self,
        mode: str = "auto",
        *,
        scratch: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"opcode mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.scratch = scratch
        self.log = log
        self.reason: str | None = None
        self.instance: Instance | None = None
        self.instance_name: str | None = None
        self.seed: set[int] = set()
        self.warnings: list[str] = []
        self._readers: dict[int, tuple[str, FieldReader, bool]] = {}
        self._optional: set[str] = set()
        self._fds: list[int] = []
        self._spools: list[IO[bytes]] = []
        self._layout = PageLayout()
        self._page_size = 4096
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: str | None = None
        self._stats: dict[int, dict[str, int]] = {}
        self._result: OpcodeData | None = None

    # -- context manager ---------------------------------------------------------

    def __enter__(self) -> OpcodeTrace:
        if self.mode == "off":
            self.reason = "opcode tracing was turned off (--opcodes off)"
            return self
        with _signals_held():
            try:
                root, mounted = tracefs.probe()
                if mounted and self.log is not None:
                    self.log(f"io_uring opcodes: tracefs was not mounted; mounted it at {root}")
                self._start(root)
            except Unavailable as exc:
                self.reason = exc.reason
                self._teardown()
            except (OSError, FormatError) as exc:
                self.reason = f"setting up the tracefs instance failed: {exc}"
                self._teardown()
            except BaseException:
                self._teardown()
                raise
        if self.log is not None:
            if self.reason is None:
                self.log(f"io_uring opcodes: recording in tracefs instance {self.instance_name}")
            else:
                self.log(f"io_uring opcodes: not recorded: {self.reason}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _signals_held():
            self._finish()

    @property
    def active(self) -> bool:
        return self.instance is not None

    # -- set-up and tear-down ------------------------------------------------------

    def _start(self, root: Path) -> None:
        for name in tracefs.remove_stale(root):
            self.warnings.append(f"removed the tracefs instance {name} left by a gate that died")
        inst = self.instance = Instance.create(root)
        self.instance_name = inst.name
        inst.write("tracing_on", "0")
        cpus = inst.cpus()
        per_cpu = min(BUFFER_KB_PER_CPU, max(BUFFER_KB_MIN, BUFFER_KB_TOTAL // max(1, len(cpus))))
        inst.write("buffer_size_kb", str(per_cpu))
        for clock in ("global", "mono"):
            # Events of different CPUs are merged by time: the clock must agree across CPUs.
            try:
                inst.write("trace_clock", clock)
                break
            except OSError:
                continue
        else:
            raise Unavailable("tracefs offers no clock that agrees across CPUs (global, mono)")
        inst.write("options/overwrite", "0")  # a full buffer drops (and counts) new events
        for role, (system, name, fields) in REQUIRED_EVENTS.items():
            try:
                fmt = inst.event_format(system, name)
            except OSError as exc:
                raise Unavailable(
                    f"this kernel has no {system}:{name} tracepoint ({exc.strerror})"
                ) from exc
            self._add_reader(role, fmt, fields)
        for role, (system, name, fields) in OPTIONAL_EVENTS.items():
            try:
                fmt = inst.event_format(system, name)
                self._add_reader(role, fmt, fields)
                self._optional.add(role)
            except (OSError, FormatError):
                continue
        for role, _r, _s in self._readers.values():
            system, name, _f = REQUIRED_EVENTS.get(role) or OPTIONAL_EVENTS[role]
            inst.enable(system, name)
        if "complete" in self._optional:
            with suppress(OSError):  # every completion then; only the negative ones count
                inst.set_filter("io_uring", "io_uring_complete", "res < 0")
        self._layout = inst.page_layout()
        self._page_size = inst.page_size()
        self.seed = {int(t) for t in os.listdir("/proc/self/task")}
        for cpu in cpus:
            path = inst.path / "per_cpu" / f"cpu{cpu}" / "trace_pipe_raw"
            self._fds.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            # Kept open until result() reads it back; unlinked already, so nothing is left behind.
            spool = tempfile.TemporaryFile(prefix="syscall-gate-tp-", dir=self.scratch)  # noqa: SIM115
            self._spools.append(spool)
        inst.write("tracing_on", "1")
        # Started while SIGINT/SIGTERM are held, so the reader inherits a mask that
        # leaves those signals to the main thread.
        self._thread = threading.Thread(target=self._read_loop, name="tracefs-reader", daemon=True)
        self._thread.start()

    def _add_reader(self, role: str, fmt: ringbuf.EventFormat, fields: tuple[str, ...]) -> None:
        names = list(fields)
        with_op_str = role in OP_STR_EVENTS and "op_str" in fmt.fields
        if with_op_str:
            names.append("op_str")
        self._readers[fmt.id] = (role, fmt.reader(*names), with_op_str)

    def _read_loop(self) -> None:
        try:
            while not self._stop.wait(READ_INTERVAL):
                self._drain()
        except BaseException as exc:  # reported in the result, never lost
            self._error = f"{type(exc).__name__}: {exc}"

    def _drain(self) -> None:
        layout = self._layout
        code = "=Q" if layout.commit_size == 8 else "=I"
        for fd, spool in zip(self._fds, self._spools, strict=True):
            while True:
                try:
                    page = os.read(fd, self._page_size)
                except BlockingIOError:
                    break
                if not page:
                    break
                commit = struct.unpack_from(code, page, layout.commit_offset)[0]
                keep = min(len(page), layout.data_offset + (commit & ((1 << 27) - 1)) + 8)
                spool.write(_RECORD.pack(keep))
                spool.write(page[:keep])

    def _finish(self) -> None:
        inst = self.instance
        if inst is None:
            return
        try:
            with suppress(OSError):
                inst.write("tracing_on", "0")
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=30)
                if self._thread.is_alive():
                    self._error = self._error or "the buffer reader did not stop within 30 s"
            if self._error is None:
                self._drain()  # what arrived since the reader's last pass
            self._stats = inst.stats()
        except OSError as exc:
            self._error = self._error or f"reading the trace buffers: {exc}"
        finally:
            self._teardown()

    def _teardown(self) -> None:
        for fd in self._fds:
            with suppress(OSError):
                os.close(fd)
        self._fds = []
        inst = self.instance
        self.instance = None
        if inst is not None:
            try:
                inst.remove()
            except OSError as exc:
                self.warnings.append(
                    f"the tracefs instance {inst.path} could not be removed ({exc}); remove it "
                    f"with: rmdir {inst.path}"
                )

    # -- decoding ----------------------------------------------------------------------

    def _events(self, spool: IO[bytes], stats: PageStats) -> Iterator[tuple[int, bytes]]:
        spool.seek(0)
        while True:
            head = spool.read(_RECORD.size)
            if len(head) < _RECORD.size:
                return
            (size,) = _RECORD.unpack(head)
            yield from ringbuf.events(spool.read(size), self._layout, stats)

    def result(self) -> OpcodeData:
        if self._result is not None:
            return self._result
        if self.reason is not None:
            self._result = OpcodeData(reason=self.reason, warnings=list(self.warnings))
            return self._result
        if self._error is not None:
            self._result = OpcodeData(
                reason=f"reading the kernel's trace buffers failed: {self._error}",
                warnings=list(self.warnings),
            )
            return self._result
        stats = PageStats()
        att = Attributor(self.seed)
        dispatch = self._dispatch(att)
        streams = [self._events(s, stats) for s in self._spools]
        try:
            for _ts, payload in heapq.merge(*streams, key=itemgetter(0)):
                handler = dispatch.get(_TYPE.unpack_from(payload, 0)[0])
                if handler is not None:
                    handler(payload)
        except (struct.error, IndexError, ValueError, OSError) as exc:
            self._result = OpcodeData(
                reason=f"decoding the kernel's trace buffers failed: {type(exc).__name__}: {exc}",
                warnings=list(self.warnings),
            )
            return self._result
        for s in self._spools:
            s.close()
        self._spools = []
        lost: dict[str, int] = {}
        for key in ("overrun", "dropped events", "commit overrun"):
            n = sum(v.get(key, 0) for v in self._stats.values())
            if n:
                lost[key] = n
        if stats.missed_events:
            lost["missed (page flags)"] = stats.missed_events
        elif stats.missed_pages:
            lost["pages after a loss"] = stats.missed_pages
        self._result = OpcodeData(
            rings=att.ours,
            op_names=att.op_names,
            foreign_rings=att.foreign_rings,
            foreign_sqes=att.foreign_sqes,
            unknown_ring_sqes=att.unknown_ring_sqes,
            tasks_followed=len(att.followed),
            events=stats.events,
            lost=sum(lost.values()),
            lost_detail=lost,
            completions_traced="complete" in self._optional,
            fds_traced="file_get" in self._optional,
            instance=self.instance_name,
            warnings=list(self.warnings),
        )
        return self._result

    def _dispatch(self, att: Attributor) -> dict[int, Callable[[bytes], None]]:
        out: dict[int, Callable[[bytes], None]] = {}
        for type_id, (role, reader, with_op_str) in self._readers.items():
            out[type_id] = _handler(role, reader, with_op_str, att)
        return out


def _handler(
    role: str, reader: FieldReader, with_op_str: bool, att: Attributor
) -> Callable[[bytes], None]:
    read = reader.read

    def op(values: list[Any], number_at: int) -> str:
        return opcode_name(int(values[number_at]), str(values[-1]) if with_op_str else None)

    if role == "create":
        return lambda p: att.create(*(int(v) for v in read(p)))
    if role == "submit":

        def submit(p: bytes) -> None:
            v = read(p)
            att.submit(int(v[0]), int(v[1]), int(v[2]), op(v, 3), bool(v[4]))

        return submit
    if role == "failed":

        def failed(p: bytes) -> None:
            v = read(p)
            att.reject(int(v[0]), int(v[1]), int(v[2]), op(v, 3), int(v[4]))

        return failed
    if role == "fork":
        return lambda p: att.fork(*(int(v) for v in read(p)))
    if role == "exit":
        return lambda p: att.exit(int(read(p)[0]))
    if role == "complete":
        return lambda p: att.complete(*(int(v) for v in read(p)))
    if role == "file_get":
        return lambda p: att.file_get(*(int(v) for v in read(p)))
    raise AssertionError(role)
