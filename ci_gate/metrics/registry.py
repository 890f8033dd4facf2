"""The metric catalogue: every metric name, its unit, scope and definition, in one place.

Metric names are a public contract (policies name them). docs/metrics.md is
generated from this module (`python -m ci_gate docs`), and a test fails when
the committed file is stale. To add a metric: add a MetricSpec here, compute
it in the collector, and regenerate the docs.

Names with a <placeholder> are families: `syscall.<name>.calls` exists for
every syscall name, `<call>.path_based` for every path-taking call.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from ci_gate.metrics import syscall_table
from ci_gate.metrics.pathcalls import PATH_CALLS

# Scopes: where the number comes from.
TRACE = "trace"  # every call of the traced process tree
SCENARIO = "scenario"  # calls whose path or fd lies under a scenario root
FIXTURE = "fixture"  # the scenario's fixture itself
KERNEL = "kernel"  # io_uring tracepoints (tracefs, root only)
POLICY = "policy"  # computed from rule verdicts

# io_uring opcodes by number (enum io_uring_op), named as the kernel's tracepoints
# print them (op_str, from io_uring/opdef.c): EPOLL is IORING_OP_EPOLL_CTL.
# Checked on Linux 6.18 by tests/test_uring_ops_opcodes.py, which submits every
# opcode number and reads the names back. INVALID is what the kernel prints for
# an opcode number it does not know (the SQE is rejected).
IO_URING_OPCODES = (  # noqa: SIM905 - rows of names read better than 63 lines
    "NOP READV WRITEV FSYNC READ_FIXED WRITE_FIXED POLL_ADD POLL_REMOVE SYNC_FILE_RANGE "
    "SENDMSG RECVMSG TIMEOUT TIMEOUT_REMOVE ACCEPT ASYNC_CANCEL LINK_TIMEOUT CONNECT "
    "FALLOCATE OPENAT CLOSE FILES_UPDATE STATX READ WRITE FADVISE MADVISE SEND RECV "
    "OPENAT2 EPOLL SPLICE PROVIDE_BUFFERS REMOVE_BUFFERS TEE SHUTDOWN RENAMEAT UNLINKAT "
    "MKDIRAT SYMLINKAT LINKAT MSG_RING FSETXATTR SETXATTR FGETXATTR GETXATTR SOCKET "
    "URING_CMD SEND_ZC SENDMSG_ZC READ_MULTISHOT WAITID FUTEX_WAIT FUTEX_WAKE FUTEX_WAITV "
    "FIXED_FD_INSTALL FTRUNCATE BIND LISTEN RECV_ZC EPOLL_WAIT READV_FIXED WRITEV_FIXED PIPE"
).split()
IO_URING_INVALID_OPCODE = "INVALID"

# The system call an opcode does asynchronously, where it matches one call (READ
# may be read or pread64, so data opcodes keep their own names): the report
# counts an io_uring STATX with the statx calls, flagged as async.
IO_URING_OP_SYSCALL = {
    "FSYNC": "fsync", "SYNC_FILE_RANGE": "sync_file_range", "SENDMSG": "sendmsg",
    "RECVMSG": "recvmsg", "ACCEPT": "accept4", "CONNECT": "connect", "FALLOCATE": "fallocate",
    "OPENAT": "openat", "CLOSE": "close", "STATX": "statx", "FADVISE": "fadvise64",
    "MADVISE": "madvise", "OPENAT2": "openat2", "EPOLL": "epoll_ctl", "SPLICE": "splice",
    "TEE": "tee", "SHUTDOWN": "shutdown", "RENAMEAT": "renameat2", "UNLINKAT": "unlinkat",
    "MKDIRAT": "mkdirat", "SYMLINKAT": "symlinkat", "LINKAT": "linkat",
    "FSETXATTR": "fsetxattr", "SETXATTR": "setxattr", "FGETXATTR": "fgetxattr",
    "GETXATTR": "getxattr", "SOCKET": "socket", "WAITID": "waitid", "FTRUNCATE": "ftruncate",
    "BIND": "bind", "LISTEN": "listen", "EPOLL_WAIT": "epoll_wait", "PIPE": "pipe2",
}  # fmt: skip

BATCH_BUCKETS = (
    ("size_1", 1, 1),
    ("size_2_3", 2, 3),
    ("size_4_7", 4, 7),
    ("size_8_15", 8, 15),
    ("size_16_31", 16, 31),
    ("size_32_63", 32, 63),
    ("size_64_plus", 64, None),
)

PRESERVE_OPS = {
    "mode": ("fchmod", "fchmodat", "fchmodat2", "chmod"),
    "owner": ("fchown", "fchownat", "chown", "lchown"),
    "times": ("utimensat", "futimesat", "utimes", "utime"),
    "xattr": ("fsetxattr", "setxattr", "lsetxattr", "setxattrat"),
}
PRESERVE_KINDS = ("file", "dir", "symlink")


# Units of metrics that count things: their values are whole numbers.
WHOLE_UNITS = frozenset(
    {"calls", "SQEs", "dirs", "files", "lines", "rings", "symlinks", "syscalls"}
)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    unit: str
    scope: str
    definition: str
    per_file: bool = False  # a rule may divide it by the fixture's regular-file count
    noisy: bool = False  # depends on thread scheduling: expect run-to-run spread
    zero_when_absent: bool = False  # a complete trace without the event means 0
    section: str = "general"
    # The values the metric can take: every metric is a count, an average of counts or a
    # score, so none is negative. Policy bounds outside this range are refused or flagged.
    minimum: float = 0.0
    maximum: float = math.inf

    @property
    def whole(self) -> bool:
        """Whether its values are whole numbers (a count, not an average or a score)."""
        return self.unit in WHOLE_UNITS

    def value_range(self, per_file: bool = False) -> tuple[float, float]:
        """The lowest and highest value a rule can see (per file: divided by files >= 1)."""
        if per_file:
            return min(self.minimum, 0.0), max(self.maximum, 0.0)
        return self.minimum, self.maximum


def _specs() -> list[MetricSpec]:
    s: list[MetricSpec] = []
    add = s.append

    # -- every syscall -----------------------------------------------------------
    sec = "syscalls"
    add(
        MetricSpec(
            "syscalls.total",
            "calls",
            TRACE,
            "System calls entered by the traced process tree, each counted once however strace "
            "split it over lines (calls that never returned included).",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "syscalls.errors",
            "calls",
            TRACE,
            "Calls that returned an error (-1 with an errno, or an ERESTART* code).",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "syscalls.unreturned",
            "calls",
            TRACE,
            "Calls that never returned: exit_group, execve that replaced the image, a task killed "
            "or detached mid-call, a trace that ended mid-call. strace's own -c/-C summary counts "
            "returned calls only, so summary calls = syscall.<name>.calls - unreturned.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "syscall.<name>.calls",
            "calls",
            TRACE,
            "Calls of the syscall named exactly <name> (fchown is not fchownat).",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "syscall.<name>.errors",
            "calls",
            TRACE,
            "Calls of <name> that returned an error.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "syscall.futex.calls",
            "calls",
            TRACE,
            "futex calls: depends on thread scheduling.",
            noisy=True,
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "syscall.sched_yield.calls",
            "calls",
            TRACE,
            "sched_yield calls: depends on thread scheduling.",
            noisy=True,
            zero_when_absent=True,
            section=sec,
        )
    )

    # -- io_uring ------------------------------------------------------------------
    sec = "io_uring"
    add(
        MetricSpec(
            "io_uring.setup.calls",
            "calls",
            TRACE,
            "io_uring_setup calls.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.setup.failed",
            "calls",
            TRACE,
            "io_uring_setup calls that failed. EPERM or ENOSYS means io_uring is blocked here "
            "(a seccomp profile, kernel.io_uring_disabled) and makes the run inconclusive.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.rings",
            "rings",
            TRACE,
            "Rings created (successful io_uring_setup).",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.rings.sqpoll",
            "rings",
            TRACE,
            "Rings created with IORING_SETUP_SQPOLL: a kernel thread submits, so their "
            "submissions need no syscall and batching cannot be measured from the trace.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.enter.calls",
            "calls",
            TRACE,
            "io_uring_enter calls.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.enter.submitting",
            "calls",
            TRACE,
            "io_uring_enter calls on a non-SQPOLL ring that returned > 0: the kernel consumed "
            "SQEs.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.enter.wait_only",
            "calls",
            TRACE,
            "io_uring_enter calls with to_submit 0 and IORING_ENTER_GETEVENTS: waiting only.",
            noisy=True,
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.sqes_submitted",
            "SQEs",
            TRACE,
            "Sum of the return values of submitting io_uring_enter calls: the SQEs the kernel "
            "actually consumed (not the to_submit argument; the kernel may take fewer).",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.batch.avg",
            "SQEs/call",
            TRACE,
            "io_uring.sqes_submitted / io_uring.enter.submitting. Unmeasured when no call "
            "submitted, and when SQPOLL or registered rings hide submissions.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.batch.max",
            "SQEs",
            TRACE,
            "Largest number of SQEs one submitting io_uring_enter call consumed.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.batch.single",
            "calls",
            TRACE,
            "Submitting io_uring_enter calls that consumed exactly 1 SQE.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.batch.multi",
            "calls",
            TRACE,
            "Submitting io_uring_enter calls that consumed 2 or more SQEs.",
            zero_when_absent=True,
            section=sec,
        )
    )
    for bucket, low, high in BATCH_BUCKETS:
        span = f"{low}" if low == high else (f"{low}-{high}" if high else f"{low} or more")
        sqes = "SQE" if span == "1" else "SQEs"
        add(
            MetricSpec(
                f"io_uring.batch.{bucket}",
                "calls",
                TRACE,
                f"Submitting io_uring_enter calls that consumed {span} {sqes}.",
                zero_when_absent=True,
                section=sec,
            )
        )
    add(
        MetricSpec(
            "io_uring.ops.<OPCODE>",
            "SQEs",
            KERNEL,
            "SQEs with opcode <OPCODE> that the kernel took from rings the traced process tree "
            "created (a ring belongs to the tree when one of its processes called io_uring_setup), "
            "whoever submitted them: the program, its SQPOLL thread. From the io_uring_submit_req "
            "tracepoint, plus io_uring_req_failed for SQEs rejected at submission. Needs root, "
            "tracefs and the host's pid namespace; unmeasured otherwise, and when the kernel lost "
            "trace events.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.ops.total",
            "SQEs",
            KERNEL,
            "All SQEs the kernel took from the traced tree's rings (the sum of "
            "io_uring.ops.<OPCODE>). On rings without SQPOLL it equals io_uring.sqes_submitted.",
            zero_when_absent=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "io_uring.ops.failed",
            "SQEs",
            KERNEL,
            "SQEs of the traced tree's rings whose result was an error: rejected at submission "
            "(io_uring_req_failed) or completed with a negative result (io_uring_complete), each "
            "counted once.",
            zero_when_absent=True,
            section=sec,
        )
    )

    # -- path resolution -----------------------------------------------------------
    sec = "paths"
    for cls, text in (
        (
            "path_based",
            "resolved from the cwd or an absolute path (AT_FDCWD + path, an "
            "absolute path, or a legacy path syscall)",
        ),
        (
            "fd_based",
            "acting on an open fd (empty path + AT_EMPTY_PATH, utimensat(fd, NULL), f*xattr)",
        ),
        ("dirfd_relative", "resolved from a real directory fd plus a relative name"),
    ):
        add(
            MetricSpec(
                f"<call>.{cls}",
                "calls",
                TRACE,
                f"Calls of the path-taking syscall <call> {text}.",
                zero_when_absent=True,
                section=sec,
            )
        )
        add(
            MetricSpec(
                f"pathcalls.{cls}",
                "calls",
                TRACE,
                f"All path-taking calls {text}.",
                zero_when_absent=True,
                section=sec,
            )
        )
        add(
            MetricSpec(
                f"scenario.<call>.{cls}",
                "calls",
                SCENARIO,
                f"Calls of <call> {text}, whose path lies under a scenario root.",
                per_file=True,
                section=sec,
            )
        )
        add(
            MetricSpec(
                f"scenario.pathcalls.{cls}",
                "calls",
                SCENARIO,
                f"All path-taking calls {text}, whose path lies under a scenario root.",
                per_file=True,
                section=sec,
            )
        )

    # -- scenario --------------------------------------------------------------------
    sec = "scenario"
    add(
        MetricSpec(
            "scenario.files",
            "files",
            FIXTURE,
            "Regular files in the scenario's source tree (the divisor of per-file rules).",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.dirs",
            "dirs",
            FIXTURE,
            "Directories in the scenario's source tree, its root excluded.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.symlinks",
            "symlinks",
            FIXTURE,
            "Symlinks in the scenario's source tree.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.calls",
            "calls",
            SCENARIO,
            "Calls whose path argument, or an fd they act on, lies under a scenario root.",
            per_file=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.syscall.<name>.calls",
            "calls",
            SCENARIO,
            "Calls of <name> that reached a path under a scenario root, by name or by fd.",
            per_file=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.opens.user_files",
            "calls",
            SCENARIO,
            "open/openat/openat2/creat of scenario paths that are not directories.",
            per_file=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.opens.directories",
            "calls",
            SCENARIO,
            "open/openat/openat2 of scenario directories (O_DIRECTORY or a known directory).",
            per_file=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.traversal.getdents",
            "calls",
            SCENARIO,
            "getdents64/getdents on directories of the source tree.",
            per_file=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.dirs_created",
            "calls",
            SCENARIO,
            "mkdir/mkdirat calls under a scenario root.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.symlinks.created",
            "calls",
            SCENARIO,
            "symlink/symlinkat calls creating a link under a scenario root.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.symlinks.read",
            "calls",
            SCENARIO,
            "readlink/readlinkat calls on scenario paths.",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "scenario.direct_io",
            "calls",
            SCENARIO,
            "read/write/pread64/pwrite64/readv/writev/preadv(2)/pwritev(2) on scenario files: "
            "data moved by syscalls rather than through io_uring.",
            per_file=True,
            section=sec,
        )
    )
    for op, calls in PRESERVE_OPS.items():
        for kind in PRESERVE_KINDS:
            add(
                MetricSpec(
                    f"scenario.preserve.{op}.{kind}",
                    "calls",
                    SCENARIO,
                    f"{'/'.join(calls)} calls on a {kind} of the destination tree.",
                    per_file=(kind == "file"),
                    section=sec,
                )
            )
    add(
        MetricSpec(
            "scenario.legacy.calls",
            "calls",
            SCENARIO,
            "Legacy path syscalls (stat, lstat, open, creat, access, chmod, chown, lchown, utime, "
            "utimes, mkdir, rmdir, rename, unlink, link, symlink, readlink, ...) on scenario "
            "paths.",
            per_file=True,
            section=sec,
        )
    )
    add(
        MetricSpec(
            "unexpected.calls",
            "calls",
            TRACE,
            "Calls the policy lists as unexpected (its `unexpected:` section, or the defaults), "
            "counted in the scope the list gives; unmeasured without scenario roots when the "
            "list has calls that count on scenario paths (the defaults do).",
            section=sec,
        )
    )

    # -- trace health ----------------------------------------------------------------
    sec = "trace"
    add(
        MetricSpec(
            "trace.damaged_lines",
            "lines",
            TRACE,
            "Lines of the trace that could not be parsed (reported with samples).",
            section=sec,
        )
    )
    add(
        MetricSpec(
            "trace.summary_mismatches",
            "syscalls",
            TRACE,
            "Syscalls whose returned-call count differs from strace's own -c/-C summary, when the "
            "trace carries one.",
            section=sec,
        )
    )

    # -- policy ------------------------------------------------------------------------
    add(
        MetricSpec(
            "security.score",
            "points",
            POLICY,
            "100 minus the `deduct` points of every failing rule that has one.",
            section="policy",
            maximum=100.0,
        )
    )
    return s


SPECS: tuple[MetricSpec, ...] = tuple(_specs())
_EXACT = {s.name: s for s in SPECS if "<" not in s.name}
_FAMILIES = [s for s in SPECS if "<" in s.name]

_PLACEHOLDER_VALUES: dict[str, frozenset[str]] = {
    "<call>": frozenset(PATH_CALLS),
    "<OPCODE>": frozenset([*IO_URING_OPCODES, IO_URING_INVALID_OPCODE]),
}


def _family_regex(template: str) -> re.Pattern[str]:
    out = re.escape(template)
    out = out.replace(re.escape("<name>"), r"(?P<name>[a-z_][a-z0-9_]*|syscall_0x[0-9a-f]+)")
    out = out.replace(re.escape("<call>"), r"(?P<call>[a-z_][a-z0-9_]*)")
    out = out.replace(re.escape("<OPCODE>"), r"(?P<OPCODE>[A-Z0-9_]+)")
    return re.compile(out + r"\Z")


_FAMILY_RE = [(_family_regex(s.name), s) for s in _FAMILIES]


def lookup(name: str) -> MetricSpec | None:
    """The spec of a concrete metric name, or None when no such metric exists."""
    spec = _EXACT.get(name)
    if spec is not None:
        return spec
    for rx, fam in _FAMILY_RE:
        m = rx.match(name)
        if m is None:
            continue
        groups = m.groupdict()
        if "name" in groups and not syscall_table.is_known(groups["name"]):
            continue
        if "call" in groups and groups["call"] not in _PLACEHOLDER_VALUES["<call>"]:
            continue
        if "OPCODE" in groups and groups["OPCODE"] not in _PLACEHOLDER_VALUES["<OPCODE>"]:
            continue
        return fam
    return None


def _candidates() -> list[str]:
    names = list(_EXACT)
    for fam in _FAMILIES:
        if "<name>" in fam.name:
            continue  # expanded lazily below: there are hundreds
        for ph, values in _PLACEHOLDER_VALUES.items():
            if ph in fam.name:
                names.extend(fam.name.replace(ph, v) for v in values)
    return names


def _same_but_for_case(name: str) -> str | None:
    """The metric `name` means when only its case or a stray dot is off (`io_uring.ops.read`,
    `syscall.STATX.calls`, `IO_URING.RINGS`): opcodes are upper case, the rest lower."""
    parts = [p for p in name.strip().strip(".").split(".") if p]
    tries = [".".join(p.lower() for p in parts)]
    if len(parts) == 3 and parts[0].lower() == "io_uring" and parts[1].lower() == "ops":
        tries.insert(0, f"io_uring.ops.{parts[2].upper()}")
    for t in tries:
        if t != name and lookup(t) is not None:
            return t
    return None


def suggest(name: str, limit: int = 3) -> list[str]:
    """Close metric names, for "did you mean" in policy errors.

    `<name>` families hold every syscall, too many to list, so they are matched part by
    part: the part where the family has `<name>` is compared with the syscall table, and the
    concrete names that gives join the other candidates, all ranked by closeness to `name`.
    """
    exact = _same_but_for_case(name)
    if exact is not None:
        return [exact]
    cutoff = 0.6
    found = set(difflib.get_close_matches(name, _candidates(), n=limit, cutoff=cutoff))
    parts = name.split(".")
    for fam in _FAMILIES:
        template = fam.name.split(".")
        if "<name>" not in template or len(template) != len(parts):
            continue
        i = template.index("<name>")
        word = parts[i]
        close = (
            [word]
            if syscall_table.is_known(word)
            else difflib.get_close_matches(word, list(syscall_table.CATEGORY), n=limit)
        )
        found.update(fam.name.replace("<name>", c) for c in close)

    def closeness(candidate: str) -> float:
        return difflib.SequenceMatcher(None, name, candidate).ratio()

    ranked = sorted(found, key=lambda c: (-closeness(c), c))
    return [c for c in ranked if closeness(c) >= cutoff][:limit]


def concrete_examples() -> dict[str, list[str]]:
    """Allowed values of each placeholder, for the generated docs."""
    return {ph: sorted(v) for ph, v in _PLACEHOLDER_VALUES.items()}
