"""Events in, named numbers out: the metrics stage.

The collector sees each call once, in trace order. Whole-trace counts need only
the call's name and return value; arguments are split only for the calls whose
metrics depend on them (path-taking calls, io_uring, clone, fd bookkeeping).
"""

from __future__ import annotations

import platform
import posixpath
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ci_gate.metrics import registry, syscall_table
from ci_gate.metrics.pathcalls import (
    CLASSES,
    DIRFD_RELATIVE,
    FD_BASED,
    LEGACY_PATH_CALLS,
    OPEN_CALLS,
    OTHER_PATH_CALLS,
    PATH_BASED,
    PATH_CALLS,
    classify_pair,
    worst,
)
from ci_gate.metrics.registry import BATCH_BUCKETS, PRESERVE_KINDS, PRESERVE_OPS
from ci_gate.metrics.scope import DIR, Scope
from ci_gate.metrics.tasks import Ring, Tasks
from ci_gate.trace.args import (
    decoration,
    fd_number,
    flag_value,
    has_flag,
    is_absolute,
    is_at_fdcwd,
    string_value,
    unescape_path,
)
from ci_gate.trace.events import Call, ParseStats, ProcessExit, SignalDelivery
from ci_gate.trace.parser import Quiet, Selection

# Decorated fd arguments naming a filesystem path: 3</tmp/x>, or under -xx
# (and -x for a path with a byte that is not printable ASCII) 3<\x2f\x74\x6d...>.
# Paths in decorations have '<' and '>' escaped (\74 \76, or \x3c \x3e), so
# the class below cannot overrun. A quoted string is matched whole first, so that
# data a program wrote or read ("log: 3</src/f> done") is never taken for a decoration.
_PATH_DECORATION = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(?:\d|AT_FDCWD)<((?:/|\\x2f)[^<>]*)>')
_SETUP_FLAGS = re.compile(r"flags=([^,}]*)")
_DELETED = " (deleted)"

DIRECT_IO = frozenset(
    {
        "read",
        "write",
        "pread64",
        "pwrite64",
        "readv",
        "writev",
        "preadv",
        "pwritev",
        "preadv2",
        "pwritev2",
    }
)
GETDENTS = frozenset({"getdents64", "getdents"})
MKDIRS = frozenset({"mkdir", "mkdirat"})
SYMLINK_CREATE = frozenset({"symlink", "symlinkat"})
SYMLINK_READ = frozenset({"readlink", "readlinkat"})
_PRESERVE_OP_OF = {call: op for op, calls in PRESERVE_OPS.items() for call in calls}
CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
_FD_BOOKKEEPING = CLONES | {"close", "dup", "dup2", "dup3", "fcntl"}
# How many leading arguments each path call's metrics read (the dirfd/path
# pairs, and the flags of the open calls): splitting stops there.
_ARGS_NEEDED = {
    name: max(max(d or 0, p) for d, p in spec.pairs) + 1 + (name in OPEN_CALLS)
    for name, spec in PATH_CALLS.items()
}
_OTHER_ARGS_NEEDED = {
    name: max(max(d or 0, p) for d, p in pairs) + 1 for name, pairs in OTHER_PATH_CALLS.items()
}

# IORING_SETUP_* bits, for traces printed with -X raw.
_SETUP_BITS = {
    "IORING_SETUP_IOPOLL": 1 << 0,
    "IORING_SETUP_SQPOLL": 1 << 1,
    "IORING_SETUP_SQ_AFF": 1 << 2,
    "IORING_SETUP_CQSIZE": 1 << 3,
    "IORING_SETUP_CLAMP": 1 << 4,
    "IORING_SETUP_ATTACH_WQ": 1 << 5,
    "IORING_SETUP_R_DISABLED": 1 << 6,
    "IORING_SETUP_SUBMIT_ALL": 1 << 7,
    "IORING_SETUP_COOP_TASKRUN": 1 << 8,
    "IORING_SETUP_TASKRUN_FLAG": 1 << 9,
    "IORING_SETUP_SQE128": 1 << 10,
    "IORING_SETUP_CQE32": 1 << 11,
    "IORING_SETUP_SINGLE_ISSUER": 1 << 12,
    "IORING_SETUP_DEFER_TASKRUN": 1 << 13,
    "IORING_SETUP_NO_MMAP": 1 << 14,
    "IORING_SETUP_REGISTERED_FD_ONLY": 1 << 15,
    "IORING_SETUP_NO_SQARRAY": 1 << 16,
}
IORING_ENTER_GETEVENTS = 1 << 0
IORING_ENTER_REGISTERED_RING = 1 << 4
IORING_REGISTER_RING_FDS = 20
CLONE_FILES = 0x400
CLONE_FS = 0x200
_CLONE_FS_NAME = re.compile(r"\bCLONE_FS\b")
O_DIRECTORY = 0o200000  # x86_64; aarch64 uses 0o40000 (only matters for -X raw traces)

BLOCKED_ERRNOS = ("EPERM", "ENOSYS", "EACCES")


@dataclass(frozen=True)
class Unexpected:
    """Which calls the report lists as unexpected, and where they count.

    scenario: flagged when they reach a scenario path; anywhere: flagged
    wherever they happen; direct_io_with_uring: direct read/write-family calls
    on scenario files by a program that also set up an io_uring ring.
    """

    scenario: frozenset[str] = LEGACY_PATH_CALLS | frozenset({"faccessat", "faccessat2"})
    anywhere: frozenset[str] = frozenset()
    direct_io_with_uring: bool = True


@dataclass(frozen=True)
class Problem:
    """A condition that makes the measurement untrustworthy (error) or worth a look (warning)."""

    code: str
    message: str
    severity: str = "error"


@dataclass
class Measurement:
    values: dict[str, float]
    unmeasured: dict[str, str]
    scope_missing: dict[str, str]  # scope -> why metrics of that scope are unmeasured
    details: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Every repeat's value of each metric, when the scenario ran more than once.
    samples: dict[str, list[float]] = field(default_factory=dict)
    # Tasks the trace's clones and forks returned (not in results.json: can be many).
    created: frozenset[int] = frozenset()


def _cls_counter() -> dict[str, int]:
    return dict.fromkeys(CLASSES, 0)


class Collector:
    # Resolve every opened path into the fd tables even without scenario roots
    # (the io_uring per-file pass replays a trace to know what each fd was).
    follow_paths = False

    def __init__(
        self,
        scope: Scope | None = None,
        *,
        unexpected: Unexpected | None = None,
        cwd: str | None = None,
    ) -> None:
        self.scope = scope
        self.unexpected = unexpected or Unexpected()
        self.cwd = cwd
        self.calls: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.tasks = Tasks()
        self.rings: list[Ring] = []
        self.setup_errnos: Counter[str] = Counter()
        self.enter_calls = 0
        self.enter_unknown_ring_submitting = 0
        self.enter_registered = 0
        self.submitting = 0
        self.wait_only = 0
        self.sqes = 0
        self.hist: Counter[int] = Counter()
        self.classes: dict[str, dict[str, int]] = {}
        # Path calls whose path strace printed as a pointer (-e raw=...), by syscall.
        self.paths_unshown: Counter[str] = Counter()
        # Those of them that name a directory fd: absolute, relative or "" (AT_EMPTY_PATH)
        # decides their class, and the pointer does not say which.
        self.class_unknown: Counter[str] = Counter()
        self.exits: list[ProcessExit] = []
        self.created: set[int] = set()  # tasks the trace's clones and forks returned
        self.signals: Counter[str] = Counter()
        self.anywhere_hits: Counter[str] = Counter()
        # scenario
        self.scen_calls: Counter[str] = Counter()
        self.scen_total = 0
        self.scen_classes: dict[str, dict[str, int]] = {}
        self.per_path: dict[tuple[str, str], Counter[str]] = {}
        self.opens_user = 0
        self.opens_dirs = 0
        self.traversal: Counter[str] = Counter()
        self.dirs_created = 0
        self.symlinks_created = 0
        self.symlinks_read = 0
        self.direct_io: Counter[str] = Counter()
        self.preserve: Counter[tuple[str, str]] = Counter()
        self.preserve_other = 0
        self.legacy: Counter[str] = Counter()
        self.unexpected_scen: Counter[str] = Counter()
        self.decorated: bool | None = None
        self._needles = scope.needles if scope is not None and scope.verbatim else None
        self._src_label = "src" if scope is not None and "src" in scope.roots else None
        self._dst_label = self._pick_dst(scope)
        self._selection: Selection | None = None
        self._quiet_specs: dict[str, tuple[int, tuple[tuple[int, int], ...], bool, bool]] = {}
        self._anywhere = self.unexpected.anywhere
        self._handlers = {name: self._path_call for name in PATH_CALLS}
        self._handlers.update(
            io_uring_setup=self._uring_setup,
            io_uring_enter=self._uring_enter,
            io_uring_register=self._uring_register,
            close=self._close,
            dup=self._dup,
            dup2=self._dup,
            dup3=self._dup,
            fcntl=self._fcntl,
            clone=self._clone,
            clone3=self._clone,
            fork=self._clone,
            vfork=self._clone,
        )
        if scope is not None:
            self._handlers.update((name, self._other_path_call) for name in OTHER_PATH_CALLS)
        if scope is not None or self.follow_paths:
            # Relative paths of calls without a dirfd resolve against the task's cwd.
            self._handlers.update(chdir=self._chdir, fchdir=self._fchdir)

    def selection(self) -> Selection:
        """The calls this collector must see one by one; the parser only counts the others.

        With scenario roots, a call is also needed when its line names a root
        (a -y decoration), and every call is needed when the roots cannot be
        found by substring or the trace has no decorations (fds are then
        followed through open/dup/close).
        """
        wanted = set(self._handlers) | set(self.unexpected.anywhere)
        if self.scope is None and not self.rings:
            # Without roots, fds matter only once an io_uring ring exists. Clones stay
            # (they are few): the tasks they create say whether a -ff file is missing.
            wanted -= _FD_BOOKKEEPING - CLONES - self.unexpected.anywhere
        names: set[str] | None = wanted
        needles: tuple[str, ...] = ()
        if self.scope is not None:
            if self._needles is None or self.decorated is False:
                names = None
            else:
                needles = tuple(self._needles)
        self._selection = Selection(names, needles, self._quiet())
        return self._selection

    def _quiet(self) -> Quiet | None:
        """What an accelerated parser may do itself instead of handing over an event.

        Without scenario roots a path call's only effects here are its class
        count and, for an open that returned an fd, forgetting what that fd
        number meant in the task's table (a ring); a close() only forgets an
        fd. The parser's C filter does exactly that for the calls whose fd no
        table holds (Quiet in trace/parser.py). Opens are left out until the
        first one has told whether the trace has -y decorations.
        """
        if self.scope is not None or self.follow_paths:
            return None
        anywhere = self.unexpected.anywhere
        self._quiet_specs = {
            name: (
                _ARGS_NEEDED[name],
                tuple((-1 if d is None else d, p) for d, p in spec.pairs),
                spec.fd_only,
                name in OPEN_CALLS,
            )
            for name, spec in PATH_CALLS.items()
            if name not in anywhere
        }
        classify = {
            name: spec
            for name, spec in self._quiet_specs.items()
            if name not in OPEN_CALLS or self.decorated is not None
        }
        return Quiet(
            classify,
            self.classes,
            _cls_counter(),
            (PATH_BASED, FD_BASED, DIRFD_RELATIVE),
            frozenset({"close"}) - anywhere,
            self.tasks.tables,
        )

    @staticmethod
    def _pick_dst(scope: Scope | None) -> str | None:
        if scope is None:
            return None
        if "dst" in scope.roots:
            return "dst"
        labels = list(scope.roots)
        return labels[-1] if len(labels) > 1 else None

    # -- feeding ----------------------------------------------------------------------

    def consume(self, events: Iterable[Call | ProcessExit | SignalDelivery]) -> None:
        feed = self.feed_call
        for ev in events:
            if type(ev) is Call:
                feed(ev)
            elif isinstance(ev, ProcessExit):
                self.exits.append(ev)
            elif isinstance(ev, SignalDelivery):
                self.signals[ev.signal] += 1

    def feed_call(self, c: Call) -> None:
        # Whole-trace counts come from the parser's tally (result()), which
        # also counts the calls it did not hand over as events.
        name = c.name
        if name in self._anywhere:
            self.anywhere_hits[name] += 1
        if self.scope is not None and name not in PATH_CALLS and name not in OTHER_PATH_CALLS:
            # Before the handler: close() forgets the fd it names.
            self._scenario_by_fd(c)
        handler = self._handlers.get(name)
        if handler is not None:
            handler(c)

    # -- path-taking calls ----------------------------------------------------------

    def _path_call(self, c: Call) -> None:
        spec = PATH_CALLS[c.name]
        args = c.split_args(_ARGS_NEEDED[c.name])
        nargs = len(args)
        classes: list[str] = []
        resolved: list[str | None] = []
        # Paths matter only for scenario attribution (or a subclass following fds).
        need_paths = self.scope is not None or self.follow_paths
        for dirfd_i, path_i in spec.pairs:
            dirfd = args[dirfd_i] if dirfd_i is not None and dirfd_i < nargs else None
            if spec.fd_only:
                classes.append(FD_BASED)
                if need_paths:
                    resolved.append(self._fd_path(c.pid, dirfd) if dirfd is not None else None)
                continue
            path = args[path_i] if path_i < nargs else None
            if path is not None and path.startswith("0x"):
                self.paths_unshown[c.name] += 1
                if dirfd is not None and not is_at_fdcwd(dirfd):
                    self.class_unknown[c.name] += 1
            cls = classify_pair(dirfd, path)
            classes.append(cls)
            if need_paths:
                resolved.append(self._resolve(c.pid, dirfd, path, cls))
        cls = classes[0] if len(classes) == 1 else worst(classes) if classes else FD_BASED
        counter = self.classes.get(c.name)
        if counter is None:
            counter = self.classes[c.name] = _cls_counter()
        counter[cls] += 1
        if c.name in OPEN_CALLS and c.retval is not None and c.retval >= 0:
            self._opened(c, resolved[0] if resolved else None)
        if self.scope is not None:
            touched = []
            for p in resolved:
                if p is not None:
                    loc = self.scope.locate(p)
                    if loc is not None and loc not in touched:
                        touched.append(loc)
            if touched:
                self._record(c, touched, cls, args)

    def _resolve(self, pid: int, dirfd: str | None, path: str | None, cls: str) -> str | None:
        if cls == FD_BASED:
            return self._fd_path(pid, dirfd) if dirfd is not None else None
        if path is None:
            return None
        value = string_value(path)
        if value is None:
            return None
        if value.startswith("/"):
            return value
        if dirfd is None or is_at_fdcwd(dirfd):
            base = None
            if dirfd is not None:
                # strace -y prints AT_FDCWD</its/cwd>: the task's cwd at that call.
                dec = decoration(dirfd)
                base = unescape_path(dec[1]) if dec is not None else None
                if base is not None and base.startswith("/"):
                    self.tasks.set_cwd(pid, base)
            base = base or self.tasks.cwd(pid) or self.cwd
            return f"{base}/{value}" if base else None
        base = self._fd_path(pid, dirfd)
        return f"{base}/{value}" if base else None

    def _fd_path(self, pid: int, arg: str) -> str | None:
        dec = decoration(arg)
        if dec is not None:
            path = unescape_path(dec[1])
            if path.endswith(_DELETED):
                path = path[: -len(_DELETED)]
            return path if path.startswith("/") else None
        fd = fd_number(arg)
        if fd is None:
            return None
        target = self.tasks.get(pid, fd)
        return target if isinstance(target, str) else None

    def _opened(self, c: Call, path: str | None) -> None:
        assert c.retval is not None
        if self.decorated is None:
            self.decorated = c.ret is not None and "<" in c.ret
            if not self.decorated and self.scope is not None and self._selection is not None:
                self._selection.names = None
            quiet = self._selection.quiet if self._selection is not None else None
            if quiet is not None:
                quiet.classify.update(
                    (n, v) for n, v in self._quiet_specs.items() if n in OPEN_CALLS
                )
        if self.scope is None and not self.follow_paths:
            # Without roots, fds matter only as io_uring rings: this one is not.
            self.tasks.close(c.pid, c.retval)
            return
        dec = c.ret_decoration
        if dec is not None and is_absolute(dec):
            path = unescape_path(dec)
        if path is not None:
            self.tasks.set(c.pid, c.retval, path)

    # -- scenario attribution -----------------------------------------------------------

    def _scenario_by_fd(self, c: Call) -> None:
        args = c.args
        needles = self._needles
        if needles is not None and self.decorated:
            for n in needles:
                if n in args:
                    break
            else:
                return
        assert self.scope is not None
        touched: list[tuple[str, str]] = []
        if self.decorated is not False:
            # Only decorations name an fd's file here; before the first open the trace
            # has not said whether it has them, and no fd of the table is a scenario file.
            self._decorated_locs(args, touched)
        else:
            fd = fd_number(args.split(",", 1)[0])
            if fd is not None:
                target = self.tasks.get(c.pid, fd)
                if isinstance(target, str):
                    loc = self.scope.locate(target)
                    if loc is not None:
                        touched.append(loc)
        if touched:
            self._record(c, touched, None, None)

    def _decorated_locs(self, args: str, touched: list[tuple[str, str]]) -> None:
        """Add the scenario files named by -y decorations in args (not in its strings)."""
        assert self.scope is not None
        if "<" not in args:
            return
        for m in _PATH_DECORATION.finditer(args):
            dec = m.group(1)
            if dec is None:
                continue  # a quoted string
            path = unescape_path(dec)
            if path.endswith(_DELETED):
                path = path[: -len(_DELETED)]
            loc = self.scope.locate(path)
            if loc is not None and loc not in touched:
                touched.append(loc)

    def _other_path_call(self, c: Call) -> None:
        """chdir, truncate, execve, ...: a scenario call when a path it names is under a root."""
        assert self.scope is not None
        args = c.split_args(_OTHER_ARGS_NEEDED[c.name])
        nargs = len(args)
        touched: list[tuple[str, str]] = []
        for dirfd_i, path_i in OTHER_PATH_CALLS[c.name]:
            dirfd = args[dirfd_i] if dirfd_i is not None and dirfd_i < nargs else None
            path = args[path_i] if path_i < nargs else None
            if path is not None and path.startswith("0x"):
                self.paths_unshown[c.name] += 1
                continue
            resolved = self._resolve(c.pid, dirfd, path, classify_pair(dirfd, path))
            loc = self.scope.locate(resolved) if resolved is not None else None
            if loc is not None and loc not in touched:
                touched.append(loc)
        if self.decorated:
            self._decorated_locs(c.args, touched)
        if touched:
            self._record(c, touched, None, None)

    def _record(
        self, c: Call, touched: list[tuple[str, str]], cls: str | None, args: list[str] | None
    ) -> None:
        assert self.scope is not None
        name = c.name
        self.scen_calls[name] += 1
        self.scen_total += 1
        if cls is not None:
            counter = self.scen_classes.get(name)
            if counter is None:
                counter = self.scen_classes[name] = _cls_counter()
            counter[cls] += 1
        for loc in touched:
            per = self.per_path.get(loc)
            if per is None:
                per = self.per_path[loc] = Counter()
            per[name] += 1
        label, rel = touched[0]
        if name in OPEN_CALLS:
            flags = args[2] if args is not None and name != "open" and len(args) > 2 else None
            if name in ("open", "creat") and args is not None and len(args) > 1:
                flags = args[1]
            is_dir = self.scope.kind(rel) == DIR or (
                flags is not None and has_flag(flags, "O_DIRECTORY", O_DIRECTORY)
            )
            if is_dir:
                self.opens_dirs += 1
            else:
                self.opens_user += 1
        elif name in GETDENTS:
            if self._src_label is None or label == self._src_label:
                self.traversal[name] += 1
        elif name in MKDIRS:
            self.dirs_created += 1
        elif name in SYMLINK_CREATE:
            self.symlinks_created += 1
        elif name in SYMLINK_READ:
            self.symlinks_read += 1
        elif name in DIRECT_IO:
            self.direct_io[name] += 1
        op = _PRESERVE_OP_OF.get(name)
        if op is not None and self._dst_label is not None:
            for lab, r in touched:
                if lab == self._dst_label:
                    kind = self.scope.kind(r)
                    if kind in PRESERVE_KINDS:
                        self.preserve[(op, kind)] += 1
                    else:
                        self.preserve_other += 1
                    break
        if name in LEGACY_PATH_CALLS:
            self.legacy[name] += 1
        if name in self.unexpected.scenario:
            self.unexpected_scen[name] += 1

    # -- io_uring ---------------------------------------------------------------------------

    def _uring_setup(self, c: Call) -> None:
        if c.errno is not None:
            self.setup_errnos[c.errno] += 1
            return
        if c.retval is None or c.retval < 0:
            return
        flags: set[str] = set()
        m = _SETUP_FLAGS.search(c.args)
        if m is not None:
            # Symbolic (IORING_SETUP_SQPOLL|...), raw (0x2), or mixed when strace
            # 6.1 does not know a bit: 0x3000 /* IORING_SETUP_??? */.
            for token in m.group(1).split("/*", 1)[0].split("|"):
                token = token.strip()
                if token.startswith("0x") or token.isdigit():
                    value = flag_value(token)  # None for what int() refuses ("0644")
                    if value is not None:
                        flags |= {n for n, bit in _SETUP_BITS.items() if value & bit}
                elif token.startswith("IORING_SETUP_"):
                    flags.add(token)
        entries_arg = c.arg(0)
        entries = int(entries_arg) if entries_arg is not None and entries_arg.isdecimal() else None
        ring = Ring(len(self.rings) + 1, c.pid, c.lineno, entries, frozenset(flags))
        self.rings.append(ring)
        self.tasks.set(c.pid, c.retval, ring)
        sel = self._selection
        if sel is not None and sel.names is not None and not sel.names >= _FD_BOOKKEEPING:
            sel.names = sel.names | _FD_BOOKKEEPING  # from now on the ring's fd is followed

    def _uring_enter(self, c: Call) -> None:
        self.enter_calls += 1
        args = c.split_args(4)
        if len(args) < 4:
            return
        flags = args[3]
        getevents = has_flag(flags, "IORING_ENTER_GETEVENTS", IORING_ENTER_GETEVENTS)
        ring: Ring | None
        if has_flag(flags, "IORING_ENTER_REGISTERED_RING", IORING_ENTER_REGISTERED_RING):
            self.enter_registered += 1
            ring = self.tasks.registered.get(c.pid)
        else:
            fd = fd_number(args[0])
            target = self.tasks.get(c.pid, fd) if fd is not None else None
            ring = target if isinstance(target, Ring) else None
        try:
            to_submit = int(args[1], 0)
        except ValueError:
            to_submit = -1
        if to_submit == 0 and getevents:
            self.wait_only += 1
        if ring is not None:
            ring.enter_calls += 1
        ret = c.retval
        if ret is None or ret <= 0:
            return
        if ring is not None and ring.sqpoll:
            return
        if ring is None:
            self.enter_unknown_ring_submitting += 1
        else:
            ring.submitting += 1
            ring.sqes += ret
        self.submitting += 1
        self.sqes += ret
        self.hist[ret] += 1

    def _uring_register(self, c: Call) -> None:
        args = c.split_args(2)
        if len(args) < 2 or c.errno is not None:
            return
        opcode = args[1]
        if opcode == "IORING_REGISTER_RING_FDS" or opcode == str(IORING_REGISTER_RING_FDS):
            fd = fd_number(args[0])
            target = self.tasks.get(c.pid, fd) if fd is not None else None
            if isinstance(target, Ring):
                self.tasks.registered[c.pid] = target

    # -- fd bookkeeping ------------------------------------------------------------------

    def _close(self, c: Call) -> None:
        fd = fd_number(c.args)
        if fd is not None:
            self.tasks.close(c.pid, fd)

    def _dup(self, c: Call) -> None:
        if c.retval is None or c.retval < 0:
            return
        old = fd_number(c.arg(0) or "")
        if old is not None:
            self.tasks.dup(c.pid, old, c.retval)

    def _fcntl(self, c: Call) -> None:
        if c.retval is None or c.retval < 0 or "F_DUPFD" not in c.args:
            return
        old = fd_number(c.arg(0) or "")
        if old is not None:
            self.tasks.dup(c.pid, old, c.retval)

    def _clone(self, c: Call) -> None:
        if c.retval is None or c.retval <= 0:
            return
        self.created.add(c.retval)
        shares = "CLONE_FILES" in c.args
        shares_fs = _CLONE_FS_NAME.search(c.args) is not None
        if not (shares and shares_fs) and c.name in ("clone", "clone3"):
            m = re.search(r"flags=(0x[0-9a-f]+|\d+)", c.args)
            value = flag_value(m.group(1)) if m is not None else None
            if value is not None:
                shares = shares or bool(value & CLONE_FILES)
                shares_fs = shares_fs or bool(value & CLONE_FS)
        self.tasks.cloned(c.pid, c.retval, shares, shares_fs)

    def _chdir(self, c: Call) -> None:
        if self.scope is not None:
            self._other_path_call(c)  # against the cwd it leaves
        if c.retval != 0:
            return
        value = string_value(c.arg(0) or "")
        if value is None:
            return
        if not value.startswith("/"):
            base = self.tasks.cwd(c.pid) or self.cwd
            if not base:
                return
            value = f"{base}/{value}"
        self.tasks.set_cwd(c.pid, posixpath.normpath(value))

    def _fchdir(self, c: Call) -> None:
        if c.retval != 0:
            return
        path = self._fd_path(c.pid, c.arg(0) or "")
        if path is not None:
            self.tasks.set_cwd(c.pid, path)

    # -- results ------------------------------------------------------------------------------

    def _paths_unshown(
        self, v: dict[str, float], unmeasured: dict[str, str], scope_missing: dict[str, str]
    ) -> None:
        """Paths printed as pointers tie no call to a file, nor say how it named one."""

        def why(calls: Counter[str], consequence: str) -> str:
            names = ", ".join(f"{n} ({k})" for n, k in sorted(calls.items()))
            return (
                f"strace printed pointers instead of paths for {names} (traced with -e raw=...): "
                f"{consequence}; trace without -e raw"
            )

        if self.scope is not None and self.paths_unshown:
            scope_missing[registry.SCENARIO] = why(
                self.paths_unshown, "calls cannot be tied to the scenario's files"
            )
            for key in list(v):
                spec = registry.lookup(key)
                if spec is not None and spec.scope == registry.SCENARIO:
                    del v[key]
        if self.class_unknown:
            because = why(
                self.class_unknown,
                "with a directory fd, whether such a call is path-based, dirfd-relative or "
                "fd-based depends on the path it does not show",
            )
            for name in self.class_unknown:
                for cls in CLASSES:
                    v.pop(f"{name}.{cls}", None)
                    unmeasured[f"{name}.{cls}"] = because
            for cls in CLASSES:
                v.pop(f"pathcalls.{cls}", None)
                unmeasured[f"pathcalls.{cls}"] = because

    def result(self, stats: ParseStats) -> Measurement:
        v: dict[str, float] = {}
        unmeasured: dict[str, str] = {}
        problems: list[Problem] = []
        notes: list[str] = []
        # The parser counted every call, also those it did not hand over.
        self.calls, self.errors = stats.entered(), stats.errors()
        calls, errors = self.calls, self.errors

        v["syscalls.total"] = sum(calls.values())
        v["syscalls.errors"] = sum(errors.values())
        v["syscalls.unreturned"] = stats.unreturned
        for name, n in calls.items():
            v[f"syscall.{name}.calls"] = n
            v[f"syscall.{name}.errors"] = errors.get(name, 0)

        self._uring_result(v, unmeasured, problems, notes)

        totals = _cls_counter()
        for name, counter in self.classes.items():
            for cls, n in counter.items():
                v[f"{name}.{cls}"] = n
                totals[cls] += n
        for cls, n in totals.items():
            v[f"pathcalls.{cls}"] = n

        scope_missing: dict[str, str] = {
            "kernel": "io_uring tracepoint data was not collected (needs root and tracefs)",
        }
        if self.scope is None:
            scope_missing["scenario"] = (
                "no scenario roots: `run` knows them; give `analyze` --root SRC [--root DST]"
            )
            scope_missing["fixture"] = scope_missing["scenario"]
        else:
            self._scenario_result(v, scope_missing)
        self._paths_unshown(v, unmeasured, scope_missing)

        unexpected_rows = self._unexpected_rows()
        v["unexpected.calls"] = sum(r["calls"] for r in unexpected_rows)
        if self.scope is None and (
            self.unexpected.scenario or (self.unexpected.direct_io_with_uring and self.rings)
        ):
            # Its scenario part cannot be counted: what is found elsewhere is not the total.
            del v["unexpected.calls"]
            unmeasured["unexpected.calls"] = (
                "calls listed as unexpected on scenario paths need the scenario's roots "
                "(`run` knows them; give `analyze` --root SRC [--root DST])"
            )

        v["trace.damaged_lines"] = stats.damaged
        summary_rows = self._summary_check(stats)
        if summary_rows is not None:
            mismatches = [r for r in summary_rows if not r["match"]]
            v["trace.summary_mismatches"] = len(mismatches)
            if mismatches:
                listed = ", ".join(
                    f"{r['syscall']} (trace {r['returned']}, strace {r['strace_calls']})"
                    for r in mismatches[:5]
                )
                problems.append(
                    Problem(
                        "summary-mismatch",
                        "counts differ from strace's own summary for "
                        f"{len(mismatches)} syscall(s): "
                        f"{listed}",
                    )
                )
        else:
            unmeasured["trace.summary_mismatches"] = "the trace carries no -c/-C summary table"

        self._health(stats, problems, notes)
        if stats.calls == 0:
            # No call at all: every figure would be a zero that measured nothing.
            why = problems[0].message if problems else "the trace holds no system calls"
            v.clear()
            unmeasured.clear()
            for scope_name in ("trace", "scenario", "fixture", "kernel"):
                scope_missing[scope_name] = why

        details: dict[str, Any] = {
            "inventory": self._inventory(stats),
            "io_uring": self._uring_details(),
            "paths": {n: dict(c) for n, c in sorted(self.classes.items())},
            "exits": [
                {"pid": e.pid, "code": e.code, "signal": e.signal, "core_dumped": e.core_dumped}
                for e in self.exits
            ],
            "signals": dict(self.signals),
            "unexpected": unexpected_rows,
            "summary_check": summary_rows,
            "parse": {
                "lines": stats.lines,
                "calls": stats.calls,
                "split_calls": stats.split_calls,
                "unreturned": stats.unreturned,
                "unreturned_by_name": dict(stats.unreturned_by_name),
                "never_resumed": stats.never_resumed,
                "orphan_resumed": stats.orphan_resumed,
                "damaged": stats.damaged,
                "damaged_samples": [
                    {"line": d.lineno, "text": d.text, "why": d.why} for d in stats.damaged_samples
                ],
                "program_output_lines": stats.program_output_lines,
                "truncated_last_line": stats.truncated_last_line,
                "decorated": self.decorated,
            },
        }
        if self.scope is not None:
            details["scenario"] = self._scenario_details()
        return Measurement(
            v, unmeasured, scope_missing, details, problems, notes, created=frozenset(self.created)
        )

    def _uring_result(
        self,
        v: dict[str, float],
        unmeasured: dict[str, str],
        problems: list[Problem],
        notes: list[str],
    ) -> None:
        v["io_uring.setup.calls"] = self.calls.get("io_uring_setup", 0)
        v["io_uring.setup.failed"] = self.errors.get("io_uring_setup", 0)
        v["io_uring.rings"] = len(self.rings)
        sqpoll = [r for r in self.rings if r.sqpoll]
        v["io_uring.rings.sqpoll"] = len(sqpoll)
        v["io_uring.enter.calls"] = self.enter_calls
        v["io_uring.enter.submitting"] = self.submitting
        v["io_uring.enter.wait_only"] = self.wait_only
        v["io_uring.sqes_submitted"] = self.sqes
        v["io_uring.batch.single"] = self.hist.get(1, 0)
        v["io_uring.batch.multi"] = sum(n for k, n in self.hist.items() if k >= 2)
        for bucket, low, high in BATCH_BUCKETS:
            v[f"io_uring.batch.{bucket}"] = sum(
                n for k, n in self.hist.items() if k >= low and (high is None or k <= high)
            )
        blocked = [e for e in BLOCKED_ERRNOS if self.setup_errnos.get(e)]
        if blocked and not self.rings:
            # Every io_uring figure is inconclusive, not zero: a rule on one is ERROR,
            # never a FAIL ("no ring") or a PASS ("no single-SQE submissions").
            why = f"io_uring is blocked here (io_uring_setup failed with {blocked[0]})"
            for name in [k for k in v if k.startswith("io_uring.") and ".setup." not in k]:
                v.pop(name)
                unmeasured[name] = why
            for name in ("io_uring.batch.avg", "io_uring.batch.max"):
                unmeasured[name] = why
            problems.append(
                Problem(
                    "io_uring-blocked",
                    f"io_uring is unavailable here: io_uring_setup failed with {blocked[0]} "
                    f"({self.setup_errnos[blocked[0]]} time(s)). A seccomp profile (Docker 25+ "
                    "blocks io_uring by default; podman answers ENOSYS) or "
                    "kernel.io_uring_disabled is refusing it. The io_uring figures are "
                    "inconclusive, not a regression. Fix: run the gate on the host (host mode) "
                    "or allow io_uring_setup/io_uring_enter/io_uring_register in the seccomp "
                    "profile.",
                )
            )
            return
        why_not = None
        if sqpoll:
            why_not = (
                f"{len(sqpoll)} SQPOLL ring(s): a kernel thread takes SQEs without a syscall, "
                "so batching cannot be measured from the trace"
            )
        elif self.enter_registered and self.enter_unknown_ring_submitting:
            notes.append(
                "io_uring_enter used a registered ring fd (IORING_ENTER_REGISTERED_RING); "
                "strace's -y decoration of that fd argument is wrong (it is a ring index)."
            )
        if why_not is not None:
            for name in ("avg", "max", "single", "multi", *(b[0] for b in BATCH_BUCKETS)):
                unmeasured[f"io_uring.batch.{name}"] = why_not
                v.pop(f"io_uring.batch.{name}", None)
            unmeasured["io_uring.enter.submitting"] = why_not
            unmeasured["io_uring.sqes_submitted"] = why_not
            v.pop("io_uring.enter.submitting", None)
            v.pop("io_uring.sqes_submitted", None)
            notes.append(why_not + ".")
        elif self.submitting:
            v["io_uring.batch.avg"] = self.sqes / self.submitting
            v["io_uring.batch.max"] = max(self.hist)
        else:
            reason = "no io_uring_enter call submitted SQEs"
            unmeasured["io_uring.batch.avg"] = reason
            unmeasured["io_uring.batch.max"] = reason
        if any("IORING_SETUP_DEFER_TASKRUN" in r.flags for r in self.rings):
            notes.append(
                "A ring uses IORING_SETUP_DEFER_TASKRUN: completions run only inside "
                "io_uring_enter(GETEVENTS), so wait-only calls are part of the design."
            )

    def _scenario_result(self, v: dict[str, float], scope_missing: dict[str, str]) -> None:
        assert self.scope is not None
        fixture = self.scope.fixture
        if fixture is None:
            scope_missing["fixture"] = (
                "the fixture is unknown: the source root does not exist on this machine; "
                "per-file rules need it"
            )
        else:
            v["scenario.files"] = fixture.files
            v["scenario.dirs"] = fixture.dirs
            v["scenario.symlinks"] = fixture.symlinks
        v["scenario.calls"] = self.scen_total
        for name, n in self.scen_calls.items():
            v[f"scenario.syscall.{name}.calls"] = n
        totals = _cls_counter()
        for name, counter in self.scen_classes.items():
            for cls, n in counter.items():
                v[f"scenario.{name}.{cls}"] = n
                totals[cls] += n
        for cls, n in totals.items():
            v[f"scenario.pathcalls.{cls}"] = n
        v["scenario.opens.user_files"] = self.opens_user
        v["scenario.opens.directories"] = self.opens_dirs
        v["scenario.traversal.getdents"] = sum(self.traversal.values())
        v["scenario.dirs_created"] = self.dirs_created
        v["scenario.symlinks.created"] = self.symlinks_created
        v["scenario.symlinks.read"] = self.symlinks_read
        v["scenario.direct_io"] = sum(self.direct_io.values())
        for op in PRESERVE_OPS:
            for kind in PRESERVE_KINDS:
                v[f"scenario.preserve.{op}.{kind}"] = self.preserve.get((op, kind), 0)
        v["scenario.legacy.calls"] = sum(self.legacy.values())

    def _unexpected_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for name, n in sorted(self.unexpected_scen.items()):
            why = (
                "legacy path syscall: resolves the name again on every call (TOCTOU)"
                if name in LEGACY_PATH_CALLS
                else "listed as unexpected on scenario paths"
            )
            if name in ("access", "faccessat", "faccessat2"):
                why = "check-then-use on a path (TOCTOU)"
            rows.append({"syscall": name, "calls": n, "scope": "scenario", "why": why})
        for name, n in sorted(self.anywhere_hits.items()):
            rows.append(
                {
                    "syscall": name,
                    "calls": n,
                    "scope": "anywhere",
                    "why": "listed as unexpected by the policy",
                }
            )
        if self.unexpected.direct_io_with_uring and self.rings:
            for name, n in sorted(self.direct_io.items()):
                rows.append(
                    {
                        "syscall": name,
                        "calls": n,
                        "scope": "scenario",
                        "why": "direct I/O on scenario files by a program that uses io_uring",
                    }
                )
        return rows

    def _summary_check(self, stats: ParseStats) -> list[dict[str, Any]] | None:
        if stats.summary is None:
            return None
        rows: list[dict[str, Any]] = []
        theirs = {r.syscall: r for r in stats.summary}
        unreturned = stats.unreturned_by_name
        for name in sorted(set(theirs) | set(self.calls)):
            if name.startswith("syscall_"):
                continue  # numbers strace has no name for are never in its table
            ours_returned = self.calls.get(name, 0) - unreturned.get(name, 0)
            ours_errors = self.errors.get(name, 0)
            row = theirs.get(name)
            if row is None:
                if ours_returned == 0:
                    continue
                rows.append(
                    {
                        "syscall": name,
                        "returned": ours_returned,
                        "errors": ours_errors,
                        "strace_calls": 0,
                        "strace_errors": 0,
                        "match": False,
                    }
                )
                continue
            match = row.calls == ours_returned and row.errors == ours_errors
            rows.append(
                {
                    "syscall": name,
                    "returned": ours_returned,
                    "errors": ours_errors,
                    "strace_calls": row.calls,
                    "strace_errors": row.errors,
                    "match": match,
                }
            )
        return rows

    def _health(self, stats: ParseStats, problems: list[Problem], notes: list[str]) -> None:
        if stats.calls == 0:
            if stats.damaged:
                first = ", ".join(f"line {d.lineno}" for d in stats.damaged_samples[:3])
                problems.append(
                    Problem(
                        "not-strace",
                        f"the input is not strace output: none of its {stats.damaged} non-empty "
                        f"line(s) parsed as a system call (first unreadable: {first})",
                    )
                )
            else:
                problems.append(Problem("trace-empty", "the trace holds no system calls"))
            return
        if stats.truncated_last_line:
            problems.append(
                Problem(
                    "trace-truncated",
                    "the trace ends in the middle of a line: it was cut short (disk full, a killed "
                    "tracer, a partial copy); counts near the end are missing",
                )
            )
        if stats.damaged:
            sample = stats.damaged_samples[0]
            problems.append(
                Problem(
                    "damaged-lines",
                    f"{stats.damaged} line(s) could not be parsed and were not counted "
                    f"(first: line {sample.lineno}: {sample.why})",
                    severity="warning",
                )
            )
        if stats.orphan_resumed:
            notes.append(
                f"{stats.orphan_resumed} call(s) resumed without their first half in the trace "
                "(tracing began mid-call); each is counted once."
            )
        if self.decorated is False and self.scope is not None:
            notes.append(
                "The trace has no -y fd decorations: scenario attribution follows fds through "
                "open, dup and close, and cannot see fds inherited from before the trace."
            )

    def _inventory(self, stats: ParseStats) -> list[dict[str, Any]]:
        rows = []
        for name, n in sorted(self.calls.items(), key=lambda kv: (-kv[1], kv[0])):
            row: dict[str, Any] = {
                "syscall": name,
                "calls": n,
                "errors": self.errors.get(name, 0),
                "unreturned": stats.unreturned_by_name.get(name, 0),
                "category": syscall_table.category(name),
            }
            known = _number_name(name)
            if known is not None:
                # strace prints numbers newer than itself as syscall_0x1c4.
                row["category"] = syscall_table.category(known)
                row["probably"] = known
            rows.append(row)
        return rows

    def _uring_details(self) -> dict[str, Any]:
        return {
            "rings": [
                {
                    "id": r.ident,
                    "pid": r.pid,
                    "line": r.lineno,
                    "entries": r.entries,
                    "flags": sorted(r.flags),
                    "sqpoll": r.sqpoll,
                    "enter_calls": r.enter_calls,
                    "submitting": r.submitting,
                    "sqes": r.sqes,
                }
                for r in self.rings
            ],
            "histogram": {str(k): n for k, n in sorted(self.hist.items())},
            "setup_errors": dict(self.setup_errnos),
            "registered_ring_enters": self.enter_registered,
            "unknown_ring_submitting": self.enter_unknown_ring_submitting,
        }

    def _scenario_details(self) -> dict[str, Any]:
        assert self.scope is not None
        scope = self.scope
        per_file = []
        for (label, rel), counter in sorted(self.per_path.items()):
            per_file.append(
                {
                    "root": label,
                    "path": rel,
                    "kind": scope.kind(rel),
                    "calls": dict(sorted(counter.items())),
                }
            )
        return {
            "roots": dict(scope.roots),
            "fixture": scope.fixture.to_json() if scope.fixture is not None else None,
            "per_path": per_file,
            "classes": {n: dict(c) for n, c in sorted(self.scen_classes.items())},
            "traversal": dict(self.traversal),
            "direct_io": dict(self.direct_io),
            "preserve": {f"{op}.{kind}": n for (op, kind), n in sorted(self.preserve.items())},
            "preserve_other": self.preserve_other,
            "legacy": dict(self.legacy),
            "calls": dict(self.scen_calls.most_common()),
        }


def _number_name(name: str) -> str | None:
    """'fchmodat2' for 'syscall_0x1c4' on x86_64: the table of the machine's architecture."""
    m = re.fullmatch(r"syscall_(0x[0-9a-f]+|\d+)", name)
    if m is None:
        return None
    number = flag_value(m.group(1))  # None for what int() refuses ("syscall_0123")
    if number is None:
        return None
    table = syscall_table.AARCH64 if platform.machine() == "aarch64" else syscall_table.X86_64
    return table.get(number)


# -- tracing only what the policy needs (scenario.tracing: policy) ------------------------

IO_URING_CALLS = frozenset({"io_uring_setup", "io_uring_enter", "io_uring_register"})
# Rings are followed through the fd table: what creates, copies and closes fds.
_RING_CALLS = IO_URING_CALLS | _FD_BOOKKEEPING
_SCENARIO_SETS: dict[str, frozenset[str]] = {
    "scenario.opens.user_files": OPEN_CALLS,
    "scenario.opens.directories": OPEN_CALLS,
    "scenario.traversal.getdents": GETDENTS,
    "scenario.dirs_created": MKDIRS,
    "scenario.symlinks.created": SYMLINK_CREATE,
    "scenario.symlinks.read": SYMLINK_READ,
    "scenario.direct_io": DIRECT_IO,
    "scenario.legacy.calls": LEGACY_PATH_CALLS,
}
_NOTHING: frozenset[str] = frozenset()
_CALL_COUNTS_OF = {
    "io_uring.setup.calls": frozenset({"io_uring_setup"}),
    "io_uring.setup.failed": frozenset({"io_uring_setup"}),
    "io_uring.enter.calls": frozenset({"io_uring_setup", "io_uring_enter"}),
    "io_uring.enter.wait_only": frozenset({"io_uring_setup", "io_uring_enter"}),
}


# A scenario metric ties a relative path to a root through the calling task's cwd:
# chdir/fchdir move it, and the clones say which tasks share it (CLONE_FS) or copy it.
_CWD_CALLS = CLONES | {"chdir", "fchdir"}


def syscalls_needed(metric: str, unexpected: Unexpected | None = None) -> frozenset[str] | None:
    """The syscalls a metric is computed from; None when it needs every call of the trace.

    A metric is exact on a trace of only some syscalls (strace -e trace=SET) when
    SET holds these: the collector reads nothing else to compute it.
    """
    needs = _syscalls_needed(metric, unexpected)
    if needs and metric.startswith(("scenario.", "unexpected.")):
        return needs | _CWD_CALLS
    return needs


def _syscalls_needed(metric: str, unexpected: Unexpected | None) -> frozenset[str] | None:
    parts = metric.split(".")
    head = parts[0]
    if head == "syscalls" or metric == "scenario.calls":
        return None
    if head in ("trace", "security") or metric in ("scenario.files", "scenario.dirs",
                                                   "scenario.symlinks"):  # fmt: skip
        return _NOTHING
    if head == "io_uring":
        # Counts of every call need no ring bookkeeping; io_uring_setup says whether
        # io_uring was blocked, which makes every io_uring figure unmeasured.
        return _CALL_COUNTS_OF.get(metric, _RING_CALLS)
    if metric == "unexpected.calls":
        u = unexpected or Unexpected()
        return u.scenario | u.anywhere | DIRECT_IO | IO_URING_CALLS
    if head == "syscall" and len(parts) == 3:
        return frozenset({parts[1]})
    fixed = _SCENARIO_SETS.get(metric)
    if fixed is not None:
        return fixed
    rest = parts[1:] if head == "scenario" else parts
    if head == "scenario" and len(rest) == 3 and rest[0] == "syscall":
        return frozenset({rest[1]})
    if head == "scenario" and len(rest) == 3 and rest[0] == "preserve":
        calls = PRESERVE_OPS.get(rest[1])
        return frozenset(calls) if calls is not None else None
    if len(rest) == 2 and rest[1] in CLASSES:
        if rest[0] == "pathcalls":
            return frozenset(PATH_CALLS)
        if rest[0] in PATH_CALLS:
            return frozenset({rest[0]})
    return None


def tracing_set(metrics: Iterable[str], unexpected: Unexpected) -> frozenset[str] | None:
    """The syscalls to trace for these metrics, or None when one of them needs every call.

    The report's unexpected-calls list is always complete (its syscalls are
    traced), and execve always is: a trace of the target is never empty.
    """
    wanted: set[str] = {"execve"} | unexpected.scenario | unexpected.anywhere
    for metric in metrics:
        needs = syscalls_needed(metric, unexpected)
        if needs is None:
            return None
        wanted |= needs
    return frozenset(wanted)


def restrict(m: Measurement, traced: frozenset[str], asked: Iterable[str]) -> None:
    """Make a measurement of a filtered trace say what it could not see.

    Metrics computed from syscalls that were not traced are unmeasured, not
    zero: every whole-trace total, and any metric `asked` (the policy's rules)
    or already computed whose syscalls were left out. A syscall that was traced
    and never called stays a real zero.
    """
    why = (
        f"not traced: scenario.tracing is policy, and only {len(traced)} syscall(s) the "
        "policy needs were traced"
    )
    names = set(m.values) | set(asked) | set(m.unmeasured)
    for name in names:
        needs = syscalls_needed(name)
        if needs is None or not needs <= traced:
            # Also over another reason ("no io_uring_enter call submitted SQEs"): what
            # the trace lacked was the calls themselves.
            m.values.pop(name, None)
            m.unmeasured[name] = why
    m.details["traced_syscalls"] = sorted(traced)
    m.notes.append(
        f"scenario.tracing: policy: only the {len(traced)} syscall(s) the policy needs were "
        "traced (strace --seccomp-bpf -e trace=...); the inventory is partial and whole-trace "
        "totals are not measured."
    )
