"""What the parser emits: one Call per system call, plus process lifecycle events."""

from __future__ import annotations

from dataclasses import dataclass, field

from ci_gate.trace.args import split_args


class Call:
    """One system call as the kernel saw it, however strace split it over lines.

    `args` is the raw argument text (both halves joined for a split call);
    `split_args()` parses it on demand. `returned` is False for a call that
    never came back (exit_group, a task killed mid-call, a trace that ended).
    """

    __slots__ = (
        "_args",
        "args",
        "duration",
        "errno",
        "lineno",
        "name",
        "pid",
        "ret",
        "returned",
        "retval",
        "split",
        "ts",
    )

    def __init__(
        self,
        pid: int,
        name: str,
        args: str,
        ret: str | None,
        retval: int | None,
        errno: str | None,
        lineno: int,
        *,
        split: bool = False,
        ts: str | None = None,
        duration: float | None = None,
    ) -> None:
        self.pid = pid
        self.name = name
        self.args = args
        self.ret = ret
        self.retval = retval
        self.errno = errno
        self.returned = retval is not None or errno is not None
        self.lineno = lineno
        self.split = split
        self.ts = ts
        self.duration = duration
        self._args: list[str] | None = None

    def split_args(self) -> list[str]:
        if self._args is None:
            self._args = split_args(self.args)
        return self._args

    def arg(self, index: int) -> str | None:
        parts = self.split_args()
        return parts[index] if index < len(parts) else None

    @property
    def ret_decoration(self) -> str | None:
        """The -y decoration on the return value (the opened path), still escaped."""
        ret = self.ret
        if ret is None or "<" not in ret:
            return None
        start = ret.index("<")
        end = ret.rfind(">")
        return ret[start + 1 : end] if end > start else None

    def __repr__(self) -> str:
        return (
            f"Call(pid={self.pid}, name={self.name!r}, args={self.args!r}, ret={self.ret!r}, "
            f"line={self.lineno})"
        )


@dataclass(frozen=True, slots=True)
class ProcessExit:
    """`+++ exited with N +++` or `+++ killed by SIG +++` for one task."""

    pid: int
    code: int | None
    signal: str | None
    core_dumped: bool
    lineno: int


@dataclass(frozen=True, slots=True)
class SignalDelivery:
    """`--- SIGCHLD {...} ---`."""

    pid: int
    signal: str
    lineno: int


@dataclass(slots=True)
class DamagedLine:
    lineno: int
    text: str
    why: str


@dataclass(slots=True)
class SummaryRow:
    syscall: str
    calls: int
    errors: int


@dataclass(slots=True)
class ParseStats:
    lines: int = 0
    calls: int = 0
    split_calls: int = 0
    unreturned: int = 0
    unreturned_by_name: dict[str, int] = field(default_factory=dict)
    orphan_resumed: int = 0
    never_resumed: int = 0
    damaged: int = 0
    damaged_samples: list[DamagedLine] = field(default_factory=list)
    program_output_lines: int = 0
    pids: set[int] = field(default_factory=set)
    summary: list[SummaryRow] | None = None
    truncated_last_line: bool = False
