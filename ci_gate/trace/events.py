"""What the parser emits: one Call per system call, plus process lifecycle events."""

from __future__ import annotations

from dataclasses import dataclass, field

from ci_gate.trace.args import split_args


class Call:
    """One system call as the kernel saw it, however strace split it over lines.

    `args` is the raw argument text (both halves joined for a split call);
    `split_args()` parses it on demand. `returned` is False for a call that
    never came back (exit_group, a task killed mid-call, a trace that ended);
    see ci_gate/trace/parser.py for the rule. `retval` is None when strace
    printed no value ('?'), `errno` None when the call did not fail.
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
        returned: bool | None = None,
    ) -> None:
        self.pid = pid
        self.name = name
        self.args = args
        self.ret = ret
        self.retval = retval
        self.errno = errno
        self.returned = (retval is not None or errno is not None) if returned is None else returned
        self.lineno = lineno
        self.split = split
        self.ts = ts
        self.duration = duration
        self._args: list[str] | None = None

    def split_args(self, limit: int = 0) -> list[str]:
        """The top-level arguments; with `limit`, only the first `limit` are needed."""
        if self._args is None:
            if limit:
                return split_args(self.args, limit)
            self._args = split_args(self.args)
        return self._args

    def arg(self, index: int) -> str | None:
        parts = self.split_args(index + 1)
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
    source: str | None = None  # the file, when the trace has several (-ff)


@dataclass(slots=True)
class SummaryRow:
    syscall: str
    calls: int
    errors: int


@dataclass(slots=True)
class ParseStats:
    """What the parser saw. Its size depends on the syscall names, never on the trace's length.

    `tally` holds, per syscall name, [entered, returned, errors] for every
    call, including those no consumer asked to see as events.
    """

    lines: int = 0
    files: int = 0
    split_calls: int = 0
    unreturned: int = 0
    unreturned_by_name: dict[str, int] = field(default_factory=dict)
    orphan_resumed: int = 0
    never_resumed: int = 0
    damaged: int = 0
    damaged_samples: list[DamagedLine] = field(default_factory=list)
    program_output_lines: int = 0
    strace_messages: int = 0
    summary: list[SummaryRow] | None = None
    truncated_last_line: bool = False
    tally: dict[str, list[int]] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """Calls entered, split ones once."""
        return sum(t[0] for t in self.tally.values())

    def entered(self) -> dict[str, int]:
        return {name: t[0] for name, t in self.tally.items()}

    def returned(self) -> dict[str, int]:
        return {name: t[1] for name, t in self.tally.items()}

    def errors(self) -> dict[str, int]:
        return {name: t[2] for name, t in self.tally.items() if t[2]}
