"""Per-task fd tables, shared the way the kernel shares them (CLONE_FILES).

Two things need them: knowing which io_uring ring an io_uring_enter fd refers
to (SQPOLL rings submit without syscalls), and resolving fds to paths in a
trace recorded without -y. With -y, paths come from the decorations instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ring:
    ident: int
    pid: int
    lineno: int
    entries: int | None
    flags: frozenset[str]
    enter_calls: int = 0
    submitting: int = 0
    sqes: int = 0

    @property
    def sqpoll(self) -> bool:
        return "IORING_SETUP_SQPOLL" in self.flags


FdTarget = Ring | str  # a ring, or the path an fd was opened on
# One task's fds; tasks that share their fd table (CLONE_FILES) share the dict.
FdTable = dict[int, FdTarget]


class Tasks:
    def __init__(self) -> None:
        # pid -> its fd table. The parser's C line filter reads it (Quiet.fd_tables)
        # to know which close() and open calls change nothing here.
        self.tables: dict[int, FdTable] = {}
        # A task's registered ring fds (IORING_REGISTER_RING_FDS) are per task.
        self.registered: dict[int, Ring] = {}

    def table(self, pid: int) -> FdTable:
        t = self.tables.get(pid)
        if t is None:
            t = self.tables[pid] = {}
        return t

    def get(self, pid: int, fd: int) -> FdTarget | None:
        t = self.tables.get(pid)
        return None if t is None else t.get(fd)

    def set(self, pid: int, fd: int, target: FdTarget) -> None:
        self.table(pid)[fd] = target

    def close(self, pid: int, fd: int) -> None:
        t = self.tables.get(pid)
        if t is not None:
            t.pop(fd, None)

    def dup(self, pid: int, old: int, new: int) -> None:
        t = self.table(pid)
        target = t.get(old)
        if target is None:
            t.pop(new, None)
        else:
            t[new] = target

    def cloned(self, parent: int, child: int, shares_files: bool) -> None:
        """The parent's clone/fork returned `child`.

        The child may already have run (strace prints its calls before the
        parent's clone resumes), so fds it opened meanwhile are kept.
        """
        ptable = self.table(parent)
        early = self.tables.get(child)
        if shares_files:
            if early is not None and early is not ptable:
                ptable.update(early)
            self.tables[child] = ptable
        else:
            fresh = dict(ptable)
            if early is not None:
                fresh.update(early)
            self.tables[child] = fresh
