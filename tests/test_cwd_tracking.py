"""Relative paths of calls without a dirfd resolve against the calling task's cwd.

A traced program that chdir()s (or fchdir()s) into the scenario tree and then names files
relatively must have those calls attributed to the scenario's files, whatever directory
the gate itself ran in. A forked child's chdir does not move its parent; a thread's does
(CLONE_FS). Expected counts come from the program below, by construction.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ci_gate.metrics.collector import Unexpected, tracing_set
from ci_gate.scenario.tracer import filter_flags
from helpers import REPO

PROGRAM = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Raw syscalls: the legacy, dirfd-less forms, whatever libc would use. */
static void st(const char *p) { struct stat s; syscall(SYS_stat, p, &s); }

static void *thread_main(void *arg) {
    (void)arg;
    syscall(SYS_chdir, "sub");          /* shared with the main thread (CLONE_FS) */
    return NULL;
}

int main(int argc, char **argv) {
    char buf[64];
    if (argc != 2) return 2;
    if (syscall(SYS_chdir, argv[1]) != 0) return 3;   /* SRC */
    st("f1");                                          /* SRC/f1 */
    syscall(SYS_readlink, "link", buf, sizeof buf);    /* SRC/link */
    pid_t child = fork();
    if (child == 0) {
        syscall(SYS_chdir, "sub");
        st("f2");                                      /* SRC/sub/f2 */
        _exit(0);
    }
    waitpid(child, NULL, 0);
    st("f1");                            /* SRC/f1 again: the child's chdir is its own */
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    st("f2");                            /* SRC/sub/f2: the thread moved us */
    syscall(SYS_chdir, "..");
    st("f1");                            /* SRC/f1 */
    int fd = open("sub", O_RDONLY | O_DIRECTORY);
    syscall(SYS_chdir, "/");
    if (fchdir(fd) != 0) return 4;
    st("f2");                            /* SRC/sub/f2 through fchdir */
    return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cwdprog")
    (d / "prog.c").write_text(PROGRAM)
    subprocess.run(
        ["gcc", "-O1", "-Wall", "-Werror", "-pthread", "-o", str(d / "prog"), str(d / "prog.c")],
        check=True,
    )
    return d / "prog"


# What `scenario.tracing: policy` traces for a rule on scenario.legacy.calls.
POLICY_TRACING = ["-f", "-y", *filter_flags(tracing_set(["scenario.legacy.calls"], Unexpected()))]


@pytest.mark.parametrize(
    "flags", [["-f", "-y"], ["-f"], POLICY_TRACING], ids=["-y", "no -y", "tracing: policy"]
)
def test_relative_paths_follow_each_tasks_cwd(
    tmp_path: Path, program: Path, flags: list[str]
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f1").write_bytes(b"1")
    (src / "sub" / "f2").write_bytes(b"2")
    (src / "link").symlink_to("f1")
    dst = tmp_path / "dst"
    dst.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    trace = tmp_path / "trace.txt"
    subprocess.run(
        ["strace", *flags, "-o", str(trace), str(program), str(src)], cwd=elsewhere, check=True
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate", "analyze", str(trace), "--root", str(src),
         "--root", str(dst), "--cwd", str(elsewhere), "--out", str(out), "--publish", "never"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    res = json.loads((out / "results.json").read_text())
    per_path = res["details"]["scenario"]["per_path"]
    calls = {
        e["path"]: {name: n for name, n in e["calls"].items() if name in ("stat", "readlink")}
        for e in per_path
        if e["root"] == "src"
    }
    # stat(f1) x3 on SRC/f1, readlink(link) on SRC/link, stat(f2) x3 on SRC/sub/f2
    assert {p: c for p, c in calls.items() if c} == {
        "f1": {"stat": 3},
        "link": {"readlink": 1},
        "sub/f2": {"stat": 3},
    }, per_path
    assert res["metrics"]["scenario.legacy.calls"] == 7
