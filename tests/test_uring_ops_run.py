"""io_uring opcode counts from the kernel's tracepoints, end to end through `syscall-gate run`.

Needs root and tracefs (CI has both). Every expected count comes from how the traced
program is built: examples/uring-copy/README.md for the copier, the header comment of
tests/programs/uring_mix.c for the mix.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_gate import pipeline
from ci_gate.kernel import uring_tracepoints
from ci_gate.kernel.tracefs import TRACEFS_MOUNTS, Instance
from ci_gate.kernel.uring_tracepoints import OpcodeTrace
from helpers import COPIER, REPO, gate

MiB = 1 << 20
INSTANCES = TRACEFS_MOUNTS[0] / "instances"
# The default fixture with files: 3, dirs: 2: three top-level files and one per directory.
FIXTURE_FILES = ["file1.bin", "file2.bin", "file3.bin", "dir1/nested1.bin", "dir1/dir2/nested2.bin"]
CHUNK = 131072  # the copier's default --chunk


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("programs")
    subprocess.run(["make", "-s", "-C", str(REPO / "tests" / "programs"), f"OUT={out}"], check=True)
    return out


def write_policy(
    tmp_path: Path,
    command: str,
    *,
    rules: str = "",
    file_size: str = "1MiB",
    verify: str = "tree-equal",
) -> Path:
    p = tmp_path / "policy.yml"
    p.write_text(
        textwrap.dedent(f"""\
        version: 1
        scenario:
          id: ops
          command: {command}
          fixture: {{files: 3, file_size: {file_size}, dirs: 2, symlinks: true}}
          verify: {verify}
          timeout: 120s
        rules:
          any-sqe: {{metric: io_uring.ops.total, fail: {{min: 0}}}}
        """)
        + textwrap.indent(rules, "  ")
    )
    return p


def run_gate(tmp_path: Path, pol: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "out"
    proc = gate("run", "--policy", str(pol), "--out", str(out), *args)
    res = json.loads((out / "results.json").read_text())
    return proc.returncode, res, proc.stdout + proc.stderr


def ops_of(res: dict[str, Any]) -> dict[str, int]:
    """io_uring.ops.<OPCODE> metrics, without total/failed."""
    return {
        k.removeprefix("io_uring.ops."): v
        for k, v in res["metrics"].items()
        if k.startswith("io_uring.ops.") and k not in ("io_uring.ops.total", "io_uring.ops.failed")
    }


def per_file(res: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    files = res["details"]["io_uring_ops"]["per_file"]["files"]
    return {(f["root"], f["path"]): f["ops"] for f in files}


def instance_gone(res: dict[str, Any]) -> bool:
    name = res["details"]["io_uring_ops"]["source"].split()[2]
    assert name.startswith("syscall-gate.")
    return not (INSTANCES / name).exists()


def ours(pid: int) -> list[str]:
    return [n for n in os.listdir(INSTANCES) if n.startswith(f"syscall-gate.{pid}.")]


# -- the reference copier ------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        "",
        "--uring-fallocate",
        "--sqpoll",
        "--threads 3",
        "--register-ring --defer-taskrun",
        "--batch 3 --wait-separately --uring-fallocate",
    ],
)
def test_copier_opcode_counts_match_construction(tmp_path: Path, copier: Path, flags: str) -> None:
    pol = write_policy(tmp_path, f"{COPIER} {flags} {{src}} {{dst}}")
    rc, res, out = run_gate(tmp_path, pol)
    assert rc == 0, out
    n = math.ceil(MiB / CHUNK)  # chunks per file: every file is 1 MiB
    F = len(FIXTURE_FILES)  # the README's notation
    U = F if "--uring-fallocate" in flags else 0
    expected = {"READ": F * n, "WRITE": F * n} | ({"FALLOCATE": U} if U else {})
    assert ops_of(res) == expected
    m = res["metrics"]
    assert m["io_uring.ops.total"] == 2 * F * n + U
    assert m["io_uring.ops.failed"] == 0
    kernel = res["details"]["io_uring_ops"]
    rings = kernel["rings"]
    threads = int(flags.split("--threads ")[1].split()[0]) if "--threads" in flags else 1
    assert len(rings) == threads == m["io_uring.rings"]
    assert all(r["strace_ring"] is not None for r in rings)
    # Worker i mod T copies file i: with same-sized files, the rings' shares are known.
    shares = sorted(sum(1 for i in range(F) if i % threads == w) for w in range(threads))
    assert sorted(r["sqes"] for r in rings) == [2 * n * s + (s if U else 0) for s in shares]
    if "--sqpoll" in flags:
        [ring] = rings
        assert ring["sqpoll"] and ring["sq_thread_sqes"] == 2 * F * n + U
        # Batching is unmeasurable from syscalls; the kernel's per-ring count stands in.
        assert "io_uring.batch.avg" in res["unmeasured"]
        assert per_file(res) == {}
        assert list(kernel["per_file"]["not_attributed"].values()) == [2 * F * n + U]
        report = (tmp_path / "out" / "report.md").read_text()
        assert "Submissions per ring (SQPOLL rings take SQEs without a system call" in report
    else:
        # Without SQPOLL the kernel's count equals strace's sum of io_uring_enter results.
        assert m["io_uring.ops.total"] == m["io_uring.sqes_submitted"]
        assert all(r["strace_sqes"] == r["sqes"] for r in rings)
        want = {}
        for rel in FIXTURE_FILES:
            want[("src", rel)] = {"READ": n}
            want[("dst", rel)] = {"WRITE": n} | ({"FALLOCATE": 1} if U else {})
        assert per_file(res) == want
        assert kernel["per_file"]["not_attributed"] == {}
    assert kernel["lost_events"] == 0 and kernel["complete"]
    assert instance_gone(res)


# -- a known mix: SQPOLL, failures, children, threads ------------------------------------


MIX = {"nops": 5, "reads": 20, "statx": 3, "sqpoll": 4, "children": 3, "threads": 2}


def mix_args(mix: dict[str, int], fail: bool) -> str:
    return " ".join(f"--{k} {v}" for k, v in mix.items()) + (" --fail" if fail else "")


def mix_expected(mix: dict[str, int], fail: bool) -> tuple[dict[str, int], int, int]:
    """(SQEs by opcode, failed SQEs, rings), from uring_mix.c's header comment."""
    c, t, k = mix["children"], mix["threads"], mix["sqpoll"]
    ops: Counter[str] = Counter()
    ops["NOP"] += mix["nops"] + k + sum(i + 1 for i in range(1, t + 1))
    ops["READ"] += mix["reads"] + fail
    ops["STATX"] += mix["statx"]
    ops["WRITE"] += k
    ops["MKDIRAT"] += c * (c + 1) // 2
    ops["UNLINKAT"] += c * (c + 1) // 2
    ops["FSYNC"] += c
    ops["OPENAT"] += fail
    ops["INVALID"] += fail
    rings = 1 + (k > 0) + c + t
    return {op: n for op, n in ops.items() if n}, 3 * fail, rings


def check_mix(res: dict[str, Any], mix: dict[str, int]) -> None:
    ops, failed, rings = mix_expected(mix, True)
    assert ops_of(res) == ops
    m = res["metrics"]
    assert m["io_uring.ops.total"] == sum(ops.values())
    assert m["io_uring.ops.failed"] == failed
    kernel = res["details"]["io_uring_ops"]
    errors = {o["opcode"]: o["errors"] for o in kernel["opcodes"] if o["errors"]}
    assert errors == {"READ": {"EBADF": 1}, "OPENAT": {"ENOENT": 1}, "INVALID": {"EINVAL": 1}}
    assert len(kernel["rings"]) == rings == m["io_uring.rings"]
    [sq] = [r for r in kernel["rings"] if r["sqpoll"]]
    assert sq["sqes"] == sq["sq_thread_sqes"] == 2 * mix["sqpoll"]
    assert sq["ops"] == {"NOP": mix["sqpoll"], "WRITE": mix["sqpoll"]}
    # Each child's ring: i MKDIRAT, i UNLINKAT, 1 FSYNC.
    child_rings = sorted(r["sqes"] for r in kernel["rings"] if "FSYNC" in r["ops"])
    assert child_rings == [2 * i + 1 for i in range(1, mix["children"] + 1)]
    # Without SQPOLL, strace's sum of io_uring_enter results agrees ring by ring.
    assert all(r["strace_sqes"] == r["sqes"] for r in kernel["rings"] if not r["sqpoll"])
    want = {("src", "file1.bin"): {"READ": mix["reads"]}}
    for i in range(1, mix["children"] + 1):
        want[("dst", f"c{i}.f")] = {"FSYNC": 1}
    assert per_file(res) == want
    why = kernel["per_file"]["not_attributed"]
    assert why == {
        "SQPOLL ring: the kernel thread takes SQEs at moments the trace cannot place": mix[
            "sqpoll"
        ],
        "the SQE failed": 1,
    }
    assert kernel["lost_events"] == 0 and kernel["complete"]


def test_mix_of_opcodes_rings_children_and_failures(tmp_path: Path, programs: Path) -> None:
    command = f"{programs / 'uring-mix'} {mix_args(MIX, True)} {{dst}} {{src}}/file1.bin"
    rule = "no-statx-sqes: {metric: io_uring.ops.STATX, fail: {max: 2}}\n"
    pol = write_policy(tmp_path, command, file_size="64KiB", verify="none", rules=rule)
    rc, res, out = run_gate(tmp_path, pol)
    assert rc == 1, out  # the STATX rule fails: 3 > 2
    check_mix(res, MIX)
    [rule] = [r for r in res["rules"] if r["id"] == "no-statx-sqes"]
    assert rule["status"] == "FAIL" and rule["value"] == MIX["statx"]
    assert instance_gone(res)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| `statx` | `STATX` | 3 | 0 |" in report
    assert "| `INVALID` | 1 | 1 | EINVAL 1 |" in report


@pytest.fixture
def unrelated_io_uring(programs: Path, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two io_uring programs running before, during and after the traced run."""
    bg = tmp_path / "background"
    bg.mkdir()
    data = bg / "data.bin"
    data.write_bytes(os.urandom(1 << 16))
    procs = [
        subprocess.Popen(
            [
                str(programs / "uring-mix"),
                "--forever",
                *mix_args(MIX, True).split(),
                str(bg / "mix"),
                str(data),
            ],
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                "fio",
                "--name=bg",
                "--ioengine=io_uring",
                "--rw=randread",
                "--bs=4k",
                "--size=4M",
                "--iodepth=8",
                f"--filename={bg / 'fio.dat'}",
                "--time_based",
                "--runtime=600",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        deadline = time.monotonic() + 30
        while not ((bg / "mix" / "sqpoll.out").exists() and (bg / "fio.dat").exists()):
            assert time.monotonic() < deadline, "the background programs did not start"
            time.sleep(0.05)
        time.sleep(0.5)
        yield procs
        assert [p.poll() for p in procs] == [None, None], "a background program stopped early"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_unrelated_io_uring_processes_are_not_counted(
    tmp_path: Path, programs: Path, unrelated_io_uring: list[subprocess.Popen[bytes]]
) -> None:
    command = f"{programs / 'uring-mix'} {mix_args(MIX, True)} {{dst}} {{src}}/file1.bin"
    pol = write_policy(tmp_path, command, file_size="64KiB", verify="none")
    rc, res, out = run_gate(tmp_path, pol)
    assert rc == 0, out
    check_mix(res, MIX)
    ignored = res["details"]["io_uring_ops"]["ignored"]
    # The background programs created rings and submitted while the run was recorded.
    assert ignored["foreign_rings"] > 0 and ignored["foreign_sqes"] > 0
    assert instance_gone(res)


# -- the instance never outlives the run -----------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_run_removes_the_instance(tmp_path: Path, sig: signal.Signals) -> None:
    pol = write_policy(tmp_path, "/bin/sleep 120", verify="none")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_gate", "run", "--policy", str(pol), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ours(proc.pid):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the gate never created its instance"
            time.sleep(0.05)
        time.sleep(0.3)  # into the traced command
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, stdout + stderr
    assert ours(proc.pid) == []
    res = json.loads((out / "results.json").read_text())
    assert "interrupted" in [p["code"] for p in res["problems"]]


def test_error_mid_run_removes_the_instance(tmp_path: Path) -> None:
    # strace cannot start the target: tracer.trace raises inside the recording.
    pol = write_policy(tmp_path, "./no-such-program {src} {dst}")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate", "run", "--policy", str(pol), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3
    said = "io_uring opcodes: recording in tracefs instance "
    assert said in proc.stderr
    name = proc.stderr.split(said, 1)[1].split()[0]
    assert name.startswith("syscall-gate.") and not (INSTANCES / name).exists()


def test_exception_inside_the_recording_removes_the_instance() -> None:
    with pytest.raises(RuntimeError, match="boom"), OpcodeTrace() as rec:
        assert rec.active and rec.instance is not None
        path = rec.instance.path
        assert path.is_dir()
        raise RuntimeError("boom")
    assert not path.exists()


def test_instances_left_by_a_dead_gate_are_removed() -> None:
    dead = next(p for p in range(4_000_000, 4_100_000) if not os.path.exists(f"/proc/{p}"))
    stale = Instance(TRACEFS_MOUNTS[0], f"syscall-gate.{dead}.0badc0de")
    os.mkdir(stale.path)
    try:
        with OpcodeTrace() as rec:
            pass
        assert not stale.path.exists()
        assert any(stale.name in w for w in rec.result().warnings)
    finally:
        if stale.path.exists():
            os.rmdir(stale.path)


# -- lost events, no opcode data --------------------------------------------------------------


def test_lost_events_make_opcode_rules_error(
    tmp_path: Path, programs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 16 KiB buffer per CPU that is read only at the end cannot hold 20,000 NOPs.
    monkeypatch.setattr(uring_tracepoints, "BUFFER_KB_PER_CPU", 16)
    monkeypatch.setattr(uring_tracepoints, "BUFFER_KB_MIN", 16)
    monkeypatch.setattr(uring_tracepoints, "READ_INTERVAL", 3600)
    command = f"{programs / 'uring-mix'} --nops 20000 {{dst}} {{src}}/file1.bin"
    pol = write_policy(
        tmp_path,
        command,
        file_size="64KiB",
        verify="none",
        rules="nops: {metric: io_uring.ops.NOP, fail: {max: 1000000}}\n",
    )
    outcome = pipeline.run(pol, tmp_path / "out", workdir=REPO)
    res = outcome.results
    kernel = res["details"]["io_uring_ops"]
    assert kernel["lost_events"] > 0 and not kernel["complete"]
    assert "lost" in res["scope_missing"]["kernel"]
    assert {r["id"]: r["status"] for r in res["rules"]} == {"any-sqe": "ERROR", "nops": "ERROR"}
    assert res["exit_code"] == 3
    assert "opcodes-incomplete" in [p["code"] for p in res["problems"]]
    assert "> **Incomplete:** the kernel lost" in (tmp_path / "out" / "report.md").read_text()


def test_opcodes_off_leaves_the_metrics_unmeasured(tmp_path: Path, copier: Path) -> None:
    pol = write_policy(tmp_path, f"{COPIER} {{src}} {{dst}}")
    rc, res, out = run_gate(tmp_path, pol, "--opcodes", "off")
    assert rc == 3, out
    assert res["scope_missing"]["kernel"] == "opcode tracing was turned off (--opcodes off)"
    assert "io_uring_ops" not in res["details"]
    assert [r["status"] for r in res["rules"]] == ["ERROR"]


NOBODY = 65534


def _nobody_python(tree: Path, scratch: Path) -> tuple[str, dict[str, str]]:
    """An interpreter the unprivileged user can run with the gate's dependencies."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "PYTHONPATH": str(tree),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    probe = "import yaml, jsonschema, requests, ci_gate.cli"
    for python in (sys.executable, "/usr/bin/python3"):
        if subprocess.run(as_nobody([python, "-c", probe]), env=env, cwd=tree).returncode == 0:
            return python, env
    # The test runner's site-packages may not be readable: give the user a copy.
    import site

    site_copy = scratch / "site-packages"
    for sp in site.getsitepackages():
        shutil.copytree(sp, site_copy, symlinks=True, dirs_exist_ok=True)
    env["PYTHONPATH"] = f"{tree}:{site_copy}"
    for python in (sys.executable, "/usr/bin/python3"):
        if subprocess.run(as_nobody([python, "-c", probe]), env=env, cwd=tree).returncode == 0:
            return python, env
    raise AssertionError("no Python interpreter usable by the unprivileged user")


def as_nobody(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]


def test_unprivileged_run_reports_why_and_rules_are_errors(copier: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="syscall-gate-nobody-", dir="/tmp"))
    try:
        scratch.chmod(0o755)
        tree = scratch / "tree"
        for part in ("ci_gate", "policies"):
            shutil.copytree(REPO / part, tree / part)
        (tree / "bin").mkdir()
        shutil.copy2(copier, tree / "bin" / "uring-copy")
        for dirpath, _dirnames, filenames in os.walk(scratch):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                p = os.path.join(dirpath, f)
                os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
        out = scratch / "out"
        out.mkdir()
        os.chown(out, NOBODY, NOBODY)
        pol = write_policy(
            scratch,
            f"{tree / 'bin' / 'uring-copy'} {{src}} {{dst}}",
            rules="reads: {metric: io_uring.ops.READ, fail: {min: 1}}\n",
        )
        pol.chmod(0o644)
        python, env = _nobody_python(tree, scratch)
        proc = subprocess.run(
            as_nobody([python, "-m", "ci_gate", "run", "--policy", str(pol), "--out", str(out)]),
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert (
            f"io_uring opcodes: not recorded: the gate is not running as root (uid {NOBODY})"
            in proc.stderr
        )
        res = json.loads((out / "results.json").read_text())
        why = res["scope_missing"]["kernel"]
        assert why.startswith(f"the gate is not running as root (uid {NOBODY})")
        assert {r["id"]: r["status"] for r in res["rules"]} == {
            "any-sqe": "ERROR",
            "reads": "ERROR",
        }
        # strace alone still measured the run.
        assert res["metrics"]["io_uring.rings"] == 1 and res["metrics"]["io_uring.enter.calls"]
        report = (out / "report.md").read_text()
        assert (
            f"Opcode counts: not measured (the gate is not running as root (uid {NOBODY})" in report
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# A private mount namespace without tracefs (nor debugfs) mounted, as on a fresh VM.
UNMOUNTED_TRACEFS = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     "umount /sys/kernel/tracing 2>/dev/null; "
                     "umount /sys/kernel/debug 2>/dev/null; "
                     "! grep -q tracefs /proc/self/mounts && exec \"$@\"", "sh"]  # fmt: skip


def test_root_mounts_tracefs_when_it_is_missing(tmp_path: Path, copier: Path) -> None:
    pol = write_policy(
        tmp_path,
        f"{COPIER} {{src}} {{dst}}",
        rules="reads: {metric: io_uring.ops.READ, fail: {min: 1}}\n",
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [*UNMOUNTED_TRACEFS, sys.executable, "-m", "ci_gate", "run", "--policy", str(pol),
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tracefs was not mounted; mounted it at /sys/kernel/tracing" in proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert "kernel" not in res.get("scope_missing", {})
    # One READ and one WRITE SQE per chunk (examples/uring-copy/README.md).
    ops = ops_of(res)
    assert ops["READ"] == ops["WRITE"] == res["metrics"]["io_uring.sqes_submitted"] / 2
    assert {r["id"]: r["status"] for r in res["rules"]}["reads"] == "PASS"


@pytest.mark.parametrize(
    ("wrap", "why"),
    [
        # A pid namespace of its own, as in a container without --pid=host.
        (["unshare", "--pid", "--fork", "--mount-proc"], "the gate runs in a pid namespace"),
        # tracefs unmounted in a private mount namespace, and root without CAP_SYS_ADMIN
        # (a container that is not --privileged) cannot mount it.
        ([*UNMOUNTED_TRACEFS, "setpriv", "--bounding-set", "-sys_admin", "--inh-caps",
          "-sys_admin"], "tracefs is not mounted (looked at /sys/kernel/tracing and "
         "/sys/kernel/debug/tracing) and mounting it failed: mount -t tracefs nodev "
         "/sys/kernel/tracing: Operation not permitted"),
    ],
)  # fmt: skip
def test_unusable_tracefs_is_reported_and_rules_are_errors(
    tmp_path: Path, copier: Path, wrap: list[str], why: str
) -> None:
    pol = write_policy(tmp_path, f"{COPIER} {{src}} {{dst}}")
    out = tmp_path / "out"
    proc = subprocess.run(
        [*wrap, sys.executable, "-m", "ci_gate", "run", "--policy", str(pol), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["scope_missing"]["kernel"].startswith(why)
    assert [r["status"] for r in res["rules"]] == ["ERROR"]
    assert res["metrics"]["io_uring.sqes_submitted"] > 0  # strace alone still measured
