"""The registry's opcode names against the running kernel's, and tracefs decoding.

Needs root and tracefs (CI has both).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ci_gate.kernel import tracefs
from ci_gate.kernel.ringbuf import EventFormat
from ci_gate.kernel.uring_tracepoints import OpcodeTrace
from ci_gate.metrics.registry import IO_URING_INVALID_OPCODE, IO_URING_OPCODES, lookup
from helpers import REPO


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("programs")
    subprocess.run(["make", "-s", "-C", str(REPO / "tests" / "programs"), f"OUT={out}"], check=True)
    return out


def test_registry_names_every_opcode_this_kernel_knows(programs: Path) -> None:
    # Submit every opcode number in turn and read back the name the kernel prints.
    n = len(IO_URING_OPCODES) + 8
    with OpcodeTrace() as rec:
        subprocess.run([str(programs / "uring-opcodes"), str(n)], check=True, timeout=120)
    data = rec.result()
    assert data.reason is None, data.reason
    [ring] = data.rings
    names = [data.op_names[i] for i in ring.seq_ops]
    assert len(names) == n
    # Numbers the kernel does not know come back as INVALID, from the first unknown on.
    known = names.index(IO_URING_INVALID_OPCODE)
    assert all(x == IO_URING_INVALID_OPCODE for x in names[known:])
    assert names[:known] == IO_URING_OPCODES[:known]
    # The registry covers every opcode of this kernel (6.18 names exactly the list).
    assert known <= len(IO_URING_OPCODES)
    # Each is a metric a policy can name.
    for name in (*names[:known], IO_URING_INVALID_OPCODE):
        assert lookup(f"io_uring.ops.{name}") is not None, name
    assert lookup("io_uring.ops.EPOLL_CTL") is None  # the kernel says EPOLL


def test_format_files_of_the_events_used_parse() -> None:
    root, _mounted = tracefs.probe()
    fmt = EventFormat.load(root / "events", "io_uring", "io_uring_submit_req")
    assert fmt.fields["op_str"].data_loc
    assert fmt.fields["ctx"].size == 8
    fork = EventFormat.load(root / "events", "sched", "sched_process_fork")
    assert {"parent_pid", "child_pid"} <= set(fork.fields)
    assert fork.id == int((root / "events" / "sched" / "sched_process_fork" / "id").read_text())
