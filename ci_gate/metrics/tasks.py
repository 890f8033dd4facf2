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
        # pid -> its working directory, in a cell tasks that share it (CLONE_FS) share;
        # [None] (or no entry): not known from the trace, the run's own cwd applies.
        self.cwds: dict[int, list[str | None]] = {}

    def cwd(self, pid: int) -> str | None:
        cell = self.cwds.get(pid)
        return None if cell is None else cell[0]

    def set_cwd(self, pid: int, path: str) -> None:
        cell = self.cwds.get(pid)
        if cell is None:
            self.cwds[pid] = [path]
        else:
            cell[0] = path

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

    def cloned(self, parent: int, child: int, shares_files: bool, shares_fs: bool = False) -> None:
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
        pcell = self.cwds.get(parent)
        early_cwd = self.cwds.get(child)
        if shares_fs:
            if pcell is None:
                pcell = self.cwds[parent] = [None]
            if early_cwd is not None and early_cwd is not pcell and early_cwd[0] is not None:
                pcell[0] = early_cwd[0]  # the child's chdir, printed before the clone returned
            self.cwds[child] = pcell
        elif early_cwd is None and pcell is not None:
            self.cwds[child] = [pcell[0]]
