"""Construction tests for the reference target ``examples/uring-copy``.

The copier's scenario syscalls are known by construction; the formulas are in
``examples/uring-copy/README.md``.  These tests compute the expected values from
the shape of the test tree alone, run the copier under the real ``strace -f -y
-C``, and compare with

* strace's own summary table (the ``-C`` table at the end of the trace file)
  for counts the formulas give for the whole process, and
* individual trace lines, matched with small regexes, where a formula needs
  per-call detail (batch sizes, how a path resolves) or must leave out the
  dynamic loader's own openat/read/close calls.

Deliberately self-contained: nothing here imports syscall-gate.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "uring-copy"
BINARY = EXAMPLE / "uring-copy"
MiB = 1 << 20

# --------------------------------------------------------------------------
# the tree

# relative path -> (size, mode, (uid, gid) or None)
FILES: dict[str, tuple[int, int, tuple[int, int] | None]] = {
    "big1.bin": (5 * MiB, 0o644, None),
    "big2.bin": (5 * MiB, 0o640, (1001, 1002)),
    "big3.bin": (5 * MiB, 0o600, None),
    "empty.txt": (0, 0o644, None),
    "odd.bin": (300_001, 0o4755, None),  # not a multiple of any chunk; set-uid survives
    "dirA/a.txt": (1000, 0o600, (1234, 5678)),
    "dirA/deeper/b.bin": (MiB + 12345, 0o444, None),
    "dirB/c.txt": (77, 0o664, None),
}
DIRS: dict[str, tuple[int, tuple[int, int] | None]] = {
    "dirA": (0o750, (1234, 5678)),
    "dirA/deeper": (0o755, None),
    "dirB": (0o2775, None),
}
# relative path -> target ("@abs:" prefix = absolute path into the tree)
LINKS: dict[str, str] = {
    "link_file": "big1.bin",
    "link_dir": "dirA",
    "dirB/rel_link": "../big1.bin",
    "abs_link": "@abs:odd.bin",
    "dirA/dangling": "no/such/target",
}
LINK_OWNERS = {"link_dir": (4321, 8765)}
FIFOS = ["dirB/fifo"]  # the X term: skipped with a message


@dataclass
class Tree:
    base: Path  # resolved; holds src/ and every destination
    src: Path
    sizes: list[int]
    n_dirs: int
    n_links: int
    n_other: int


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    base = tmp_path_factory.mktemp("uring-copy").resolve()
    src = base / "src"
    src.mkdir()
    for d in sorted(DIRS):
        (src / d).mkdir()
    for rel, (size, _, _) in FILES.items():
        (src / rel).write_bytes(os.urandom(size))
    for rel, target in LINKS.items():
        if target.startswith("@abs:"):
            target = str(src / target[5:])
        os.symlink(target, src / rel)
    for rel in FIFOS:
        os.mkfifo(src / rel)
    # ownership before mode (chown clears set-id bits)
    for rel, (_, mode, owner) in FILES.items():
        if owner:
            os.chown(src / rel, *owner)
        os.chmod(src / rel, mode)
    for rel, (mode, owner) in DIRS.items():
        if owner:
            os.chown(src / rel, *owner)
        os.chmod(src / rel, mode)
    for rel, owner in LINK_OWNERS.items():
        os.lchown(src / rel, *owner)
    os.chmod(src, 0o755)
    # distinct nanosecond times, children before parents, root last
    rels = [*FILES, *LINKS, *FIFOS, *DIRS]
    rels.sort(key=lambda r: -r.count("/"))
    for i, rel in enumerate([*rels, ""]):
        atime = 1_500_000_000_123_456_789 + i * 1_000_000_007
        mtime = 1_400_000_000_987_654_321 + i * 999_999_937
        os.utime(src / rel if rel else src, ns=(atime, mtime), follow_symlinks=False)
    return Tree(
        base=base,
        src=src,
        sizes=[size for size, _, _ in FILES.values()],
        n_dirs=len(DIRS),
        n_links=len(LINKS),
        n_other=len(FIFOS),
    )


@pytest.fixture(scope="session")
def binary() -> Path:
    assert shutil.which("strace"), "strace is required"
    proc = subprocess.run(["make", "-C", str(EXAMPLE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.access(BINARY, os.X_OK)
    return BINARY


# --------------------------------------------------------------------------
# modes and the formulas of README.md


@dataclass(frozen=True)
class Mode:
    chunk: int = 131072
    batch: int = 8
    threads: int = 1
    extra_statx: int = 0
    path_based: bool = False
    wait_separately: bool = False
    legacy_io: bool = False
    sqpoll: bool = False
    register_ring: bool = False
    defer_taskrun: bool = False
    direct_fallocate: bool = False
    uring_fallocate: bool = False
    corrupt: bool = False
    exit_code: int = 0

    def argv(self) -> list[str]:
        args: list[str] = []
        if self.chunk != 131072:
            args += ["--chunk", str(self.chunk)]
        if self.batch != 8:
            args += ["--batch", str(self.batch)]
        if self.threads != 1:
            args += ["--threads", str(self.threads)]
        if self.extra_statx:
            args += ["--extra-statx", str(self.extra_statx)]
        for flag, name in [
            (self.path_based, "--path-based"),
            (self.wait_separately, "--wait-separately"),
            (self.legacy_io, "--legacy-io"),
            (self.sqpoll, "--sqpoll"),
            (self.register_ring, "--register-ring"),
            (self.defer_taskrun, "--defer-taskrun"),
            (self.direct_fallocate, "--direct-fallocate"),
            (self.uring_fallocate, "--uring-fallocate"),
            (self.corrupt, "--corrupt"),
        ]:
            if flag:
                args.append(name)
        if self.exit_code:
            args += ["--exit-code", str(self.exit_code)]
        return args


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Expected:
    whole: dict[str, int]  # whole-process counts, from strace's table
    split: dict[str, Counter[str]]  # scenario calls by resolution kind
    scenario_fd: dict[str, int]  # scenario calls on fds under the tree
    groups: int  # 2G + U: groups of SQEs (= submitting calls, = wait-only calls)
    sqes: int  # 2N + U
    hist: Counter[int]  # group size -> number of groups
    rings: int


def expected(tree: Tree, m: Mode) -> Expected:
    """The README.md formulas, computed from the tree description only."""
    C, B, E = m.chunk, m.batch, m.extra_statx
    F, D, L, X = len(tree.sizes), tree.n_dirs, tree.n_links, tree.n_other
    Fp = sum(1 for s in tree.sizes if s > 0)
    n = [ceil_div(s, C) for s in tree.sizes]
    N = sum(n)
    G = sum(ceil_div(ni, B) for ni in n)
    R = 0 if m.legacy_io else m.threads
    U = Fp if m.uring_fallocate else 0
    M = F + D + 1
    pb = m.path_based

    hist: Counter[int] = Counter()
    if not m.legacy_io:
        for ni in n:
            full, rest = divmod(ni, B)
            hist[B] += 2 * full
            if rest:
                hist[rest] += 2
        hist[1] += U
    hist = +hist  # drop zero entries

    whole = {
        "io_uring_setup": R,
        "io_uring_register": R if m.register_ring else 0,
        "getdents64": 2 * (D + 1),
        "mkdirat": D + 1,
        "symlinkat": L,
        "readlinkat": L,
        "fchown": 0 if pb else M,
        "fchmod": 0 if pb else M,
        "fchownat": L + (M if pb else 0),
        "fchmodat": M if pb else 0,
        "utimensat": M + L,
        "fallocate": Fp if m.direct_fallocate else 0,
        "pwrite64": 1 if (m.corrupt and Fp) else 0,
    }
    if pb:
        split = {
            "statx": Counter(path=1 + F + D + L + X + E * F),
            "openat": Counter(path=2 + 2 * F + 2 * D),
            "mkdirat": Counter(path=1 + D),
            "utimensat": Counter(path=M + L),
            "fchownat": Counter(path=M + L),
            "fchmodat": Counter(path=M),
            "readlinkat": Counter(path=L),
            "symlinkat": Counter(path=L),
        }
    else:
        split = {
            "statx": Counter(fd=1, dirfd=F + D + L + X, path=E * F),
            "openat": Counter(path=2, dirfd=2 * F + 2 * D),
            "mkdirat": Counter(path=1, dirfd=D),
            "utimensat": Counter(fd=M, dirfd=L),
            "fchownat": Counter(dirfd=L),
            "fchmodat": Counter(),
            "readlinkat": Counter(dirfd=L),
            "symlinkat": Counter(dirfd=L),
        }
    split = {k: +v for k, v in split.items()}
    scenario_fd = {
        "close": 2 * F + 2 * D + 2,
        "read": F + N if m.legacy_io else 0,
        "write": N if m.legacy_io else 0,
        "getdents64": 2 * (D + 1),
        "fchown": whole["fchown"],
        "fchmod": whole["fchmod"],
        "fallocate": whole["fallocate"],
        "pwrite64": whole["pwrite64"],
    }
    groups = 0 if m.legacy_io else 2 * G + U
    sqes = 0 if m.legacy_io else 2 * N + U
    return Expected(whole, split, scenario_fd, groups, sqes, hist, R)


def test_worked_example_in_readme(tree: Tree) -> None:
    """The README's worked example is this tree with the defaults."""
    e = expected(tree, Mode())
    assert e.groups == 40 and e.sqes == 268
    assert e.hist == Counter({8: 32, 3: 2, 1: 6})
    assert e.split["statx"] == Counter(fd=1, dirfd=17)
    assert e.split["openat"] == Counter(path=2, dirfd=22)
    assert e.whole["getdents64"] == 8 and e.whole["fchown"] == 12
    assert e.split["utimensat"] == Counter(fd=12, dirfd=5)
    text = (EXAMPLE / "README.md").read_text()
    assert "histogram {8: 32, 3: 2, 1: 6}" in text
    assert "40 `io_uring_enter` taking 268 SQEs" in text


# --------------------------------------------------------------------------
# a tiny, independent strace reader

SUMMARY_HEADER = re.compile(r"^% time\s+seconds\s+usecs/call\s+calls\s+errors\s+syscall\s*$")
CALL_LINE = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>\S+)(?P<tail>.*)$", re.S)
RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<rest>.*)$", re.S)
FD_ARG = re.compile(r"^(?P<fd>AT_FDCWD|-?\d+)(?:<(?P<deco>.*)>)?$", re.S)
STR_ARG = re.compile(r'^"(?P<s>(?:[^"\\]|\\.)*)"(?:\.\.\.)?$', re.S)
UNFINISHED = "<unfinished ...>"


def read_summary(text: str) -> dict[str, tuple[int, int]]:
    """strace -C table -> {syscall: (calls, errors)}; checks the total line."""
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if SUMMARY_HEADER.match(line)]
    assert heads, "no strace -C summary table in the trace"
    i = heads[-1] + 1
    assert lines[i].startswith("------")
    rows: dict[str, tuple[int, int]] = {}
    i += 1
    while not lines[i].startswith("------"):
        parts = lines[i].split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        assert len(parts) in (5, 6), lines[i]
        rows[parts[-1]] = (int(parts[3]), int(parts[4]) if len(parts) == 6 else 0)
        i += 1
    total = lines[i + 1].split()
    assert total[-1] == "total"
    assert int(total[3]) == sum(c for c, _ in rows.values())
    return rows


def split_args(s: str) -> list[str]:
    """Split a strace argument list at top-level commas."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    in_str = esc = False
    for ch in s:
        if in_str:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    last = "".join(cur).strip()
    if last or out:
        out.append(last)
    return out


@dataclass
class Call:
    pid: str
    name: str
    args: list[str]
    ret: str

    @property
    def retval(self) -> int | None:
        m = re.match(r"^-?\d+", self.ret)
        return int(m.group(0)) if m else None

    @property
    def ret_deco(self) -> str | None:
        m = FD_ARG.match(self.ret)
        return m.group("deco") if m else None


def iter_calls(text: str) -> Iterator[Call]:
    """Complete calls, with <unfinished ...>/<... NAME resumed> halves joined per pid."""
    pending: dict[str, str] = {}
    exit_group_seen = False
    for raw in text.splitlines():
        if SUMMARY_HEADER.match(raw):
            break
        m = re.match(r"^(\d+)\s+(.*)$", raw, re.S)
        pid, rest = (m.group(1), m.group(2)) if m else ("0", raw)
        if rest.startswith(("+++", "---")):
            continue
        if rest.endswith(UNFINISHED):
            pending[pid] = rest[: -len(UNFINISHED)]
            continue
        r = RESUMED.match(rest)
        if r:
            head = pending.pop(pid)
            assert head.startswith(r.group("name") + "("), (head, rest)
            rest = head + r.group("rest")
        c = CALL_LINE.match(rest)
        if c:
            exit_group_seen |= c.group("name") == "exit_group"
            yield Call(pid, c.group("name"), split_args(c.group("args")), c.group("ret"))
    # exit_group ends every other thread wherever it is, mid-call included.
    assert (
        not pending
        or exit_group_seen
        or all(p.startswith(("exit", "futex")) for p in pending.values())
    ), f"unjoined halves: {pending}"


def fd_arg(arg: str) -> tuple[str, str | None]:
    m = FD_ARG.match(arg)
    assert m, arg
    return m.group("fd"), m.group("deco")


def str_arg(arg: str) -> str | None:
    if arg == "NULL":
        return None
    m = STR_ARG.match(arg)
    assert m, arg
    return m.group("s")


# (dirfd index, path index, flags index) of the *at calls the formulas split
AT_CALLS: dict[str, tuple[int, int, int | None]] = {
    "openat": (0, 1, 2),
    "statx": (0, 1, 2),
    "mkdirat": (0, 1, None),
    "utimensat": (0, 1, 3),
    "fchmodat": (0, 1, None),
    "fchownat": (0, 1, 4),
    "readlinkat": (0, 1, None),
    "symlinkat": (1, 2, None),
}
FD_CALLS = {"close", "read", "write", "getdents64", "fchown", "fchmod", "fallocate", "pwrite64"}


def where(c: Call, cwd: Path) -> str | None:
    """The file a call is about: path argument, resolved against its dirfd."""
    if c.name in AT_CALLS:
        di, pi, _ = AT_CALLS[c.name]
        fd, deco = fd_arg(c.args[di])
        path = str_arg(c.args[pi])
        if not path:  # NULL or "" -> the fd itself
            return deco
        if path.startswith("/"):
            return path
        if fd == "AT_FDCWD":
            return str(cwd / path) if deco is None else f"{deco}/{path}"
        return None if deco is None else f"{deco}/{path}"
    if c.name in FD_CALLS:
        return fd_arg(c.args[0])[1]
    return None


def resolution(c: Call) -> str:
    """path-based / fd-based / dirfd-relative, as defined in README.md."""
    di, pi, fi = AT_CALLS[c.name]
    fd, _ = fd_arg(c.args[di])
    path = str_arg(c.args[pi])
    flags = c.args[fi] if fi is not None else ""
    if path is None or (path == "" and "AT_EMPTY_PATH" in flags):
        return "fd"
    if fd == "AT_FDCWD" or path.startswith("/"):
        return "path"
    return "dirfd"


@dataclass
class Enter:
    pid: str
    fd: str
    deco: str | None
    to_submit: int
    min_complete: int
    flags: frozenset[str]
    ret: int | None


@dataclass
class Run:
    rc: int
    stderr: str
    table: dict[str, tuple[int, int]]
    calls: list[Call]
    base: Path
    cwd: Path
    main_pid: str = field(init=False)

    def __post_init__(self) -> None:
        self.main_pid = self.calls[0].pid

    def table_calls(self, name: str) -> int:
        return self.table.get(name, (0, 0))[0]

    def named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def under_tree(self, c: Call) -> bool:
        w = where(c, self.cwd)
        b = str(self.base)
        return w is not None and (w == b or w.startswith(b + "/"))

    def scenario(self, name: str) -> list[Call]:
        return [c for c in self.named(name) if self.under_tree(c)]

    def enters(self) -> list[Enter]:
        out = []
        for c in self.named("io_uring_enter"):
            fd, deco = fd_arg(c.args[0])
            flags = frozenset(c.args[3].split("|")) - {"0"}
            out.append(Enter(c.pid, fd, deco, int(c.args[1]), int(c.args[2]), flags, c.retval))
        return out


def run_traced(
    binary: Path,
    tree: Tree,
    m: Mode,
    dst: Path,
    *,
    trace_filter: str | None = None,
    src_arg: str | None = None,
    dst_arg: str | None = None,
) -> Run:
    trace = dst.parent / f"{dst.name}.strace"
    cmd = ["strace", "-f", "-y", "-C", "-o", str(trace)]
    if trace_filter:
        cmd += ["-e", f"trace={trace_filter}"]
    cmd += ["--", str(binary), *m.argv(), src_arg or str(tree.src), dst_arg or str(dst)]
    proc = subprocess.run(
        cmd, cwd=tree.base, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
    )
    text = trace.read_text()
    return Run(
        proc.returncode,
        proc.stderr,
        read_summary(text),
        list(iter_calls(text)),
        tree.base,
        tree.base,
    )


# --------------------------------------------------------------------------
# the copy itself


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int
    size: int


def snapshot(root: Path) -> tuple[dict[str, Entry], dict[str, str]]:
    """lstat of every entry, taken after all listing/readlink (which may move atimes)."""
    rels = [""]
    targets: dict[str, str] = {}

    def walk(rel: str) -> None:
        with os.scandir(root / rel if rel else root) as it:
            entries = list(it)
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            rels.append(r)
            if e.is_symlink():
                targets[r] = os.readlink(e.path)
            elif e.is_dir(follow_symlinks=False):
                walk(r)

    walk("")
    snap = {}
    for r in rels:
        st = os.lstat(root / r if r else root)
        kind = (
            "dir"
            if stat.S_ISDIR(st.st_mode)
            else "file"
            if stat.S_ISREG(st.st_mode)
            else "link"
            if stat.S_ISLNK(st.st_mode)
            else "other"
        )
        snap[r] = Entry(
            kind,
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_atime_ns,
            st.st_mtime_ns,
            st.st_size if kind == "file" else 0,
        )
    return snap, targets


def verify_copy(before: tuple[dict[str, Entry], dict[str, str]], src: Path, dst: Path) -> list[str]:
    """Check DST against the pre-run snapshot of SRC; return files whose bytes differ."""
    snap, targets = before
    wanted = {r: e for r, e in snap.items() if e.kind != "other"}
    # 1. metadata first: lstat does not touch atimes, listing and reading would
    for r, e in wanted.items():
        st = os.lstat(dst / r if r else dst)
        got = Entry(
            e.kind,
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_atime_ns,
            st.st_mtime_ns,
            st.st_size if e.kind == "file" else 0,
        )
        assert got == e, f"metadata of {r or '.'}: {got} != {e}"
    for r, e in snap.items():
        if e.kind == "other":
            assert not os.path.lexists(dst / r), r
    # 2. the same names, nothing more
    dsnap, dtargets = snapshot(dst)
    assert set(dsnap) == set(wanted)
    assert dtargets == targets
    # 3. contents
    return [
        r
        for r, e in wanted.items()
        if e.kind == "file" and (src / r).read_bytes() != (dst / r).read_bytes()
    ]


# --------------------------------------------------------------------------
# the checks


def check_counts(run: Run, tree: Tree, m: Mode) -> None:
    e = expected(tree, m)

    # whole-process counts straight from strace's table, and our reader agrees
    for name, want in e.whole.items():
        assert run.table_calls(name) == want, f"{name}: table {run.table_calls(name)} != {want}"
        assert len(run.named(name)) == want, name
    # ... and for these calls every occurrence is a scenario call
    for name in [
        "getdents64",
        "mkdirat",
        "symlinkat",
        "readlinkat",
        "fchown",
        "fchmod",
        "fchownat",
        "fchmodat",
        "utimensat",
        "fallocate",
        "pwrite64",
    ]:
        assert len(run.scenario(name)) == e.whole[name], name

    # resolution split of scenario calls
    for name, kinds in e.split.items():
        got = +Counter(resolution(c) for c in run.scenario(name))
        assert got == kinds, f"{name}: {dict(got)} != {dict(kinds)}"
    for name, count in e.scenario_fd.items():
        assert len(run.scenario(name)) == count, name
    # openat/statx: the table also counts the loader's calls, never fewer
    assert run.table_calls("openat") >= sum(e.split["openat"].values())
    assert run.table_calls("statx") >= sum(e.split["statx"].values())

    # stderr: one write per skipped special file
    stderr_writes = [c for c in run.named("write") if fd_arg(c.args[0])[0] == "2"]
    assert len(stderr_writes) == tree.n_other

    # with threads the main thread does every walk call, the workers the rings
    if m.threads > 1:
        for name in ["statx", "openat", "getdents64", "mkdirat", "symlinkat", "readlinkat"]:
            walk = [
                c
                for c in run.scenario(name)
                if name != "statx" or "AT_SYMLINK_NOFOLLOW" in c.args[2]
            ]
            assert {c.pid for c in walk} == {run.main_pid}, name
        # --extra-statx calls (flags 0) are made by the worker that copied the file
        extra = [c for c in run.scenario("statx") if "AT_SYMLINK_NOFOLLOW" not in c.args[2]]
        assert len(extra) == m.extra_statx * len(tree.sizes)
        assert run.main_pid not in {c.pid for c in extra}
        setups = run.named("io_uring_setup")
        if not m.legacy_io:
            assert len({c.pid for c in setups}) == m.threads
            assert run.main_pid not in {c.pid for c in setups}
        assert run.table_calls("clone3") + run.table_calls("clone") == m.threads

    check_ring(run, m, e)


# strace 6.1 prints flags it does not know as hex ("0x3000 /* IORING_SETUP_??? */")
SETUP_FLAGS = {
    "IORING_SETUP_SQPOLL": 1 << 1,
    "IORING_SETUP_SINGLE_ISSUER": 1 << 12,
    "IORING_SETUP_DEFER_TASKRUN": 1 << 13,
}


def setup_flags_value(text: str) -> int:
    text = re.sub(r"/\*.*?\*/", "", text)
    value = 0
    for tok in text.split("|"):
        tok = tok.strip()
        value |= SETUP_FLAGS[tok] if tok in SETUP_FLAGS else int(tok, 0)
    return value


def check_ring(run: Run, m: Mode, e: Expected) -> None:
    entries = 8
    while entries < m.batch:
        entries *= 2
    setups = run.named("io_uring_setup")
    assert len(setups) == e.rings
    for s in setups:
        assert int(s.args[0]) == entries
        params = s.args[1]
        want = 0
        if m.sqpoll:
            want |= SETUP_FLAGS["IORING_SETUP_SQPOLL"]
            assert "sq_thread_idle=2000" in params
        if m.defer_taskrun:
            want |= SETUP_FLAGS["IORING_SETUP_SINGLE_ISSUER"]
            want |= SETUP_FLAGS["IORING_SETUP_DEFER_TASKRUN"]
        setup_flags = re.search(r"\{flags=([^,]*),", params)
        assert setup_flags, params
        assert setup_flags_value(setup_flags.group(1)) == want, params
    for r in run.named("io_uring_register"):
        assert r.args[1] == "IORING_REGISTER_RING_FDS" and r.retval == 1

    enters = run.enters()
    assert len(enters) == run.table_calls("io_uring_enter")
    if m.legacy_io:
        assert enters == []
        return
    for x in enters:
        if m.register_ring:
            assert "IORING_ENTER_REGISTERED_RING" in x.flags
            assert x.deco is None or "io_uring" not in x.deco  # an index, not the ring fd
        else:
            assert "IORING_ENTER_REGISTERED_RING" not in x.flags
            assert x.deco is not None and "io_uring" in x.deco
    flags = {f for x in enters for f in x.flags} - {"IORING_ENTER_REGISTERED_RING"}
    submitting = [x for x in enters if x.to_submit > 0]
    waiting = [x for x in enters if x.to_submit == 0]

    if m.sqpoll:
        # batching is invisible here; only the waits are exact
        assert len(waiting) == e.groups
        assert all(
            x.flags - {"IORING_ENTER_REGISTERED_RING"} == {"IORING_ENTER_GETEVENTS"}
            for x in waiting
        )
        assert Counter(x.min_complete for x in waiting) == e.hist
        assert 0 <= len(submitting) <= e.groups
        assert all(
            x.flags - {"IORING_ENTER_REGISTERED_RING"} == {"IORING_ENTER_SQ_WAKEUP"}
            and x.min_complete == 0
            and x.ret == x.to_submit
            for x in submitting
        )
        return

    assert len(submitting) == e.groups
    assert sum(x.to_submit for x in submitting) == e.sqes
    assert Counter(x.to_submit for x in submitting) == e.hist
    assert all(x.ret == x.to_submit for x in submitting), "kernel took fewer SQEs"
    if m.wait_separately:
        assert len(enters) == 2 * e.groups
        assert all(
            x.min_complete == 0 and not (x.flags - {"IORING_ENTER_REGISTERED_RING"})
            for x in submitting
        )
        assert len(waiting) == e.groups
        assert all(
            x.flags - {"IORING_ENTER_REGISTERED_RING"} == {"IORING_ENTER_GETEVENTS"} and x.ret == 0
            for x in waiting
        )
        assert Counter(x.min_complete for x in waiting) == e.hist
    else:
        assert len(enters) == e.groups and waiting == []
        assert all(x.min_complete == x.to_submit for x in submitting)
        assert flags <= {"IORING_ENTER_GETEVENTS"}
        assert all("IORING_ENTER_GETEVENTS" in x.flags for x in submitting)


MODES: dict[str, Mode] = {
    "default": Mode(),
    "path-based": Mode(path_based=True),
    "wait-separately": Mode(wait_separately=True),
    "batch3-chunk64k": Mode(batch=3, chunk=65536),
    "batch1-chunk1m": Mode(batch=1, chunk=MiB),
    "batch256-chunk16k-wait-separately": Mode(batch=256, chunk=16384, wait_separately=True),
    "extra-statx": Mode(extra_statx=2),
    "path-based-extra-statx": Mode(path_based=True, extra_statx=1),
    "legacy-io": Mode(legacy_io=True),
    "legacy-io-threads2": Mode(legacy_io=True, threads=2, chunk=65536),
    "sqpoll": Mode(sqpoll=True),
    "register-ring": Mode(register_ring=True),
    "register-ring-wait-separately": Mode(register_ring=True, wait_separately=True),
    "defer-taskrun": Mode(defer_taskrun=True),
    "defer-taskrun-wait-separately": Mode(defer_taskrun=True, wait_separately=True),
    "direct-fallocate": Mode(direct_fallocate=True),
    "uring-fallocate": Mode(uring_fallocate=True),
    "uring-fallocate-wait-separately-batch4": Mode(
        uring_fallocate=True, wait_separately=True, batch=4
    ),
    "threads3": Mode(threads=3),
    "threads3-mixed": Mode(
        threads=3,
        path_based=True,
        register_ring=True,
        uring_fallocate=True,
        extra_statx=1,
        batch=5,
    ),
    "threads2-sqpoll-register-ring": Mode(threads=2, sqpoll=True, register_ring=True),
    "threads3-defer-taskrun-direct-fallocate": Mode(
        threads=3, defer_taskrun=True, direct_fallocate=True, wait_separately=True
    ),
    "exit-code": Mode(exit_code=3),
}


@pytest.mark.parametrize("name", list(MODES))
def test_mode_counts_and_copy(binary: Path, tree: Tree, name: str) -> None:
    m = MODES[name]
    dst = tree.base / f"dst-{name}"
    before = snapshot(tree.src)
    run = run_traced(binary, tree, m, dst)
    assert run.rc == m.exit_code, run.stderr
    assert run.stderr == "".join(
        f"uring-copy: {tree.src}/{r}: skipping special file\n" for r in FIFOS
    )
    check_counts(run, tree, m)
    assert verify_copy(before, tree.src, dst) == []


def test_threads3_same_ring_totals_as_one_thread(binary: Path, tree: Tree) -> None:
    """--threads 3: three rings, one per worker, and the same enter/SQE totals."""
    runs = {}
    for t in (1, 3):
        dst = tree.base / f"dst-ringonly-t{t}"
        before = snapshot(tree.src)
        run = run_traced(
            binary,
            tree,
            Mode(threads=t),
            dst,
            trace_filter="io_uring_setup,io_uring_enter,io_uring_register",
        )
        assert run.rc == 0, run.stderr
        assert set(run.table) <= {"io_uring_setup", "io_uring_enter"}
        assert verify_copy(before, tree.src, dst) == []
        runs[t] = run
    assert runs[1].table_calls("io_uring_setup") == 1
    assert runs[3].table_calls("io_uring_setup") == 3
    assert len({c.pid for c in runs[3].named("io_uring_setup")}) == 3
    e = expected(tree, Mode())
    for run in runs.values():
        enters = run.enters()
        assert run.table_calls("io_uring_enter") == len(enters) == e.groups
        assert sum(x.to_submit for x in enters) == e.sqes
        assert Counter(x.to_submit for x in enters) == e.hist
        assert all(x.ret == x.to_submit for x in enters)
    # every file's groups stay on one worker: each worker enters only its own ring
    by_pid = Counter(x.pid for x in runs[3].enters())
    assert set(by_pid) <= {c.pid for c in runs[3].named("io_uring_setup")}


@pytest.mark.parametrize("path_based", [False, True], ids=["good", "path-based"])
def test_relative_arguments(binary: Path, tree: Tree, path_based: bool) -> None:
    """Relative SRC/DST: good mode opens them as given; --path-based makes them absolute."""
    m = Mode(path_based=path_based)
    name = f"dst-relative-{'pb' if path_based else 'good'}"
    dst = tree.base / name
    before = snapshot(tree.src)
    run = run_traced(binary, tree, m, dst, src_arg="src", dst_arg=name)
    assert run.rc == 0, run.stderr
    check_counts(run, tree, m)
    assert verify_copy(before, tree.src, dst) == []
    assert run.table_calls("getcwd") == (2 if path_based else 0)
    for c in run.scenario("openat"):
        path = str_arg(c.args[1])
        assert path is not None
        if path_based:
            assert path.startswith(str(tree.base) + "/")
    roots = [
        str_arg(c.args[1]) for c in run.scenario("openat") if fd_arg(c.args[0])[0] == "AT_FDCWD"
    ]
    if path_based:
        assert len(roots) == len(run.scenario("openat"))
    else:
        assert roots == ["src", name]


def test_corrupt_changes_one_byte_of_first_file(binary: Path, tree: Tree) -> None:
    m = Mode(corrupt=True)
    dst = tree.base / "dst-corrupt"
    before = snapshot(tree.src)
    run = run_traced(binary, tree, m, dst)
    assert run.rc == 0, run.stderr
    check_counts(run, tree, m)
    differing = verify_copy(before, tree.src, dst)  # metadata still identical
    assert len(differing) == 1
    rel = differing[0]
    a, b = (tree.src / rel).read_bytes(), (dst / rel).read_bytes()
    assert len(a) == len(b) and a[1:] == b[1:] and b[0] == a[0] ^ 0xFF
    # ... and it is the first non-empty regular file in walk order
    created = [c.ret_deco for c in run.scenario("openat") if "O_CREAT" in c.args[2]]
    first = next(
        p for p in created if p and (tree.src / Path(p).relative_to(dst)).stat().st_size > 0
    )
    assert Path(first).relative_to(dst) == Path(rel)
    [pw] = run.named("pwrite64")
    assert fd_arg(pw.args[0])[1] == first and pw.args[2:] == ["1", "0"]


@pytest.mark.parametrize("threads", [1, 2])
def test_setup_failure_exits_2(binary: Path, tree: Tree, threads: int) -> None:
    """--sqpoll --defer-taskrun is rejected by the kernel: io_uring_setup fails."""
    dst = tree.base / f"dst-setup-failure-t{threads}"
    run = run_traced(binary, tree, Mode(sqpoll=True, defer_taskrun=True, threads=threads), dst)
    assert run.rc == 2
    assert run.stderr == "uring-copy: io_uring_setup: Invalid argument\n"
    calls, errors = run.table["io_uring_setup"]
    # Every attempt that returned failed; the first failure exits the process, and a second
    # thread's attempt may be cut short by that exit (strace counts it, with no error).
    assert 1 <= errors <= calls <= threads
    rets = [c.ret for c in run.named("io_uring_setup")]  # "?": cut short by the exit
    assert rets and all(r in ("-1", "?") for r in rets), rets
    assert rets.count("-1") == errors
    assert run.table_calls("io_uring_enter") == 0


def test_existing_destination(binary: Path, tree: Tree) -> None:
    """mkdirat(DST) failing with EEXIST is tolerated and shows as one error."""
    dst = tree.base / "dst-existing"
    dst.mkdir()
    before = snapshot(tree.src)
    run = run_traced(binary, tree, Mode(), dst)
    assert run.rc == 0, run.stderr
    check_counts(run, tree, Mode())
    assert run.table["mkdirat"] == (tree.n_dirs + 1, 1)
    assert verify_copy(before, tree.src, dst) == []


def test_errors_exit_1(binary: Path, tree: Tree) -> None:
    missing = tree.base / "no-such-src"
    p = subprocess.run(
        [str(binary), str(missing), str(tree.base / "dst-x")], capture_output=True, text=True
    )
    assert p.returncode == 1
    assert p.stderr == f"uring-copy: {missing}: No such file or directory\n"
    for bad in (
        ["--batch", "0"],
        ["--batch", "257"],
        ["--chunk", "5000"],
        ["--threads", "0"],
        ["--legacy-io", "--sqpoll"],
        ["--bogus"],
    ):
        p = subprocess.run(
            [str(binary), *bad, str(tree.src), str(tree.base / "dst-x")],
            capture_output=True,
            text=True,
        )
        assert p.returncode == 1, bad
        assert p.stderr.startswith("uring-copy: ") and ": Invalid argument\n" in p.stderr, bad
    assert not (tree.base / "dst-x").exists()
    p = subprocess.run([str(binary), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("usage: uring-copy [OPTIONS] SRC DST")


def test_make_clean(tmp_path: Path) -> None:
    work = tmp_path / "uring-copy"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("uring-copy"))
    assert subprocess.run(["make", "-C", str(work)], capture_output=True).returncode == 0
    assert (work / "uring-copy").exists()
    assert subprocess.run(["make", "-C", str(work), "clean"], capture_output=True).returncode == 0
    assert not (work / "uring-copy").exists()
