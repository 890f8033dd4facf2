"""Hex-escaped strings and -y decorations (strace -x, -xx) measure like plain -y.

With -xx strace prints every byte of a string and of a -y path decoration as
\\xHH (3<\\x2f\\x74\\x6d\\x70...>, AT_FDCWD<\\x2f...>, = 3<\\x2f...>); with -x it does
so for a whole string or decoration as soon as one byte is not printable ASCII;
with --strings-in-hex=non-ascii-chars only those bytes are (\\xc3\\xbc), and '<'
'>' become \\x3c \\x3e. Plain -y escapes them in octal (\\303\\274, \\74 \\76). The
scenario metrics must not depend on which of these the trace was recorded with.

The program below is traced for real under each of these flag sets, on files
with awkward names under roots with and without awkward characters; the
expected counts follow from the program, by construction (see EXPECTED).
Each test runs with the parser's C line filter and without it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ci_gate.cli import main

pytestmark = pytest.mark.usefixtures("parser_path")

PROGRAM = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/stat.h>

/* prog SRC DST NAME...: run with SRC as the cwd; raw syscalls, whatever libc would use. */
int main(int argc, char **argv) {
    const char *src = argv[1], *dst = argv[2];
    char p[4096], buf[1];
    struct statx sx;
    int dfd = syscall(SYS_openat, AT_FDCWD, src, O_RDONLY | O_DIRECTORY); /* the root itself */
    if (dfd < 0) return 3;
    for (int i = 3; i < argc; i++) {
        snprintf(p, sizeof p, "%s/%s", src, argv[i]);
        int fd = syscall(SYS_openat, AT_FDCWD, p, O_RDONLY);           /* path_based */
        if (fd < 0) return 4;
        for (int k = 0; k < 3; k++) syscall(SYS_read, fd, buf, 1);      /* 3 direct reads */
        syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx); /* fd_based */
        syscall(SYS_close, fd);
        fd = syscall(SYS_openat, dfd, argv[i], O_RDONLY);               /* dirfd_relative */
        if (fd < 0) return 5;
        syscall(SYS_pread64, fd, buf, 1, 0);                            /* 1 direct read */
        syscall(SYS_close, fd);
        fd = syscall(SYS_openat, dfd, p, O_RDONLY);     /* absolute despite a dirfd: path_based */
        if (fd < 0) return 6;
        syscall(SYS_close, fd);
        fd = syscall(SYS_openat, AT_FDCWD, argv[i], O_RDONLY); /* relative to cwd: path_based */
        if (fd < 0) return 7;
        syscall(SYS_close, fd);
    }
    syscall(SYS_close, dfd);
    syscall(SYS_mkdirat, AT_FDCWD, dst, 0755);                          /* the destination */
    return 0;
}
"""

# File names under the source root: printable, blank, UTF-8, a byte that is
# not UTF-8, '<' '>' (escaped inside decorations), '"' and '\', a tab and a newline.
NAMES = [
    b"plain.bin",
    b"sp ace.bin",
    "\u00fc.bin".encode(),
    b"\xff.bin",
    b"a<b>c.bin",
    b'q"u\\o.bin',
    b"t\tab.bin",
    b"n\nl.bin",
]

# Roots: one strace prints verbatim under -y (found by substring), the rest not.
ROOTS = {
    "ascii": b"plain-root",
    "space": b"sp ace",
    "utf8": "r\u00fc".encode(),
    "latin1": b"r\xff",
}

FLAGS = [
    ["-y"],
    ["-x", "-y"],
    ["-xx", "-y"],
    ["--strings-in-hex=non-ascii-chars", "-y"],
    ["-yy"],
    ["-x", "-yy"],
    ["-xx", "-yy"],
]


CLASS_SUFFIXES = (".path_based", ".fd_based", ".dirfd_relative")


def expected(n: int) -> dict[str, int]:
    """The scenario metrics the program makes with n files (read off PROGRAM)."""
    return {
        # per file: 4 opens (3 path_based, 1 dirfd_relative); the root's own open
        "scenario.syscall.openat.calls": 4 * n + 1,
        "scenario.openat.path_based": 3 * n + 1,
        "scenario.openat.dirfd_relative": n,
        "scenario.openat.fd_based": 0,
        "scenario.opens.user_files": 4 * n,
        "scenario.opens.directories": 1,
        "scenario.syscall.read.calls": 3 * n,
        "scenario.syscall.pread64.calls": n,
        "scenario.direct_io": 4 * n,
        "scenario.syscall.statx.calls": n,
        "scenario.statx.fd_based": n,
        "scenario.syscall.close.calls": 4 * n + 1,
        "scenario.syscall.mkdirat.calls": 1,
        "scenario.dirs_created": 1,
        # opens + reads + preads + statx + closes + mkdirat
        "scenario.calls": (4 * n + 1) + 3 * n + n + n + (4 * n + 1) + 1,
        "scenario.files": n,
    }


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hexprog")
    (d / "prog.c").write_text(PROGRAM)
    subprocess.run(
        ["gcc", "-O1", "-Wall", "-Werror", "-o", str(d / "prog"), str(d / "prog.c")], check=True
    )
    return d / "prog"


def _analyze(trace: Path, roots: list[bytes], out: Path) -> dict[str, float]:
    args = ["analyze", str(trace), "--out", str(out), "--publish", "never"]
    for r in roots:
        args += ["--root", os.fsdecode(r)]
    code = main(args)
    assert code == 0, (out / "report.md").read_text(errors="replace")
    res = json.loads((out / "results.json").read_text())
    metrics: dict[str, float] = res["metrics"]
    return metrics


@pytest.mark.parametrize("root", list(ROOTS), ids=list(ROOTS))
def test_hex_escaped_traces_measure_like_plain_y(tmp_path: Path, program: Path, root: str) -> None:
    base = os.fsencode(tmp_path) + b"/" + ROOTS[root]
    src, dst = base + b"/src", base + b"/dst"
    os.makedirs(src)
    for i, name in enumerate(NAMES):
        with open(src + b"/" + name, "wb") as f:
            f.write(bytes(range(i, i + 8)))
    want = expected(len(NAMES))
    seen: dict[str, dict[str, float]] = {}
    for flags in FLAGS:
        label = " ".join(flags)
        trace = tmp_path / f"trace{len(seen)}.txt"
        subprocess.run(
            [b"strace", b"-f", *(f.encode() for f in flags), b"-o", os.fsencode(trace),
             os.fsencode(program), src, dst, *NAMES],
            cwd=src, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        if "-xx" in flags:
            # What this test is about: the decorations really are hex-escaped.
            text = trace.read_bytes()
            assert b"read(3<\\x2f" in text and b"AT_FDCWD<\\x2f" in text, text[-2000:]
            assert b") = 3<\\x2f" in text
        metrics = _analyze(trace, [src, dst], tmp_path / f"out{len(seen)}")
        os.rmdir(dst)
        got = {k: metrics.get(k) for k in want}
        assert got == want, label
        # Without roots the C filter classifies path calls itself (parser.Quiet):
        # an absolute path is "\x2f..." under -xx, whatever the dirfd.
        unrooted = _analyze(trace, [], tmp_path / f"unrooted{len(seen)}")
        assert unrooted["openat.dirfd_relative"] == len(NAMES), label
        seen[label] = {
            k: v
            for k, v in [*metrics.items(), *(("unrooted " + k, v) for k, v in unrooted.items())]
            if k.startswith("scenario.") or k.endswith(CLASS_SUFFIXES)
        }
    first = seen["-y"]
    for label, scen in seen.items():
        assert scen == first, label
