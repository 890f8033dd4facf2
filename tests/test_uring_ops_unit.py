"""Pieces of the opcode tracing that can be checked without a kernel: the ring-buffer
page decoder (layouts from the kernel's events/header_page and header_event), the
attribution rules, and the report when opcode data is missing."""

from __future__ import annotations

import struct

from ci_gate.kernel.merge import pair_rings
from ci_gate.kernel.ringbuf import EventFormat, PageLayout, PageStats, events
from ci_gate.kernel.uring_tracepoints import NO_FD, Attributor, KernelRing
from ci_gate.metrics.values import value_of
from ci_gate.report import markdown

HEADER_PAGE = """\
\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
"""


def _head(type_len: int, delta: int) -> bytes:
    return struct.pack("=I", (delta << 5) | type_len)


def _page(ts: int, body: bytes, flags: int = 0) -> bytes:
    data = struct.pack("=Qq", ts, len(body) | flags) + body
    return data + b"\0" * (4096 - len(data))


def test_page_decoding_follows_deltas_extends_and_long_events() -> None:
    layout = PageLayout.parse(HEADER_PAGE)
    assert layout == PageLayout(0, 8, 8, 16)
    small = b"ABCDEFGH"  # 8 bytes: type_len 2
    long_ = bytes(range(120))  # > 28 words: type_len 0, length word first
    body = (
        _head(2, 10)
        + small
        + _head(30, 5)
        + struct.pack("=I", 1)  # time extend: + (1 << 27) + 5
        + _head(2, 3)
        + small
        + _head(0, 7)
        + struct.pack("=I", len(long_) + 4)
        + long_
        + _head(29, 4)
        + struct.pack("=I", 12)
        + b"\0" * 8  # discarded; the length counts itself
        + _head(2, 1)
        + small
    )
    stats = PageStats()
    got = list(events(_page(1000, body), layout, stats))
    assert [ts for ts, _ in got] == [
        1010,
        1010 + (1 << 27) + 5 + 3,
        1010 + (1 << 27) + 5 + 3 + 7,
        1010 + (1 << 27) + 5 + 3 + 7 + 4 + 1,
    ]
    assert [p for _, p in got] == [small, small, long_, small]
    assert stats.events == 4 and stats.missed_pages == 0


def test_page_flagged_after_lost_events_is_counted() -> None:
    stats = PageStats()
    body = _head(2, 1) + b"12345678"
    lost = struct.pack("=Q", 42)
    page = _page(5, body, flags=(1 << 31) | (1 << 30))
    page = page[: 16 + len(body)] + lost + page[16 + len(body) + 8 :]
    assert len(list(events(page, PageLayout(), stats))) == 1
    assert stats.missed_pages == 1 and stats.missed_events == 42


def test_format_file_fields_and_strings() -> None:
    text = (
        "name: io_uring_submit_req\nID: 2140\nformat:\n"
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
        "\tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;\n"
        "\tfield:u8 opcode;\toffset:16;\tsize:1;\tsigned:0;\n"
        "\tfield:__data_loc char[] op_str;\toffset:20;\tsize:4;\tsigned:0;\n"
    )
    fmt = EventFormat.parse("io_uring", "io_uring_submit_req", text)
    assert fmt.id == 2140
    payload = bytearray(32)
    struct.pack_into("=HxxiQB", payload, 0, 2140, -7, 0xFFFF888812345678, 22)
    struct.pack_into("=I", payload, 20, (5 << 16) | 24)
    payload[24:29] = b"READ\0"
    assert fmt.reader("common_pid", "ctx", "opcode", "op_str").read(bytes(payload)) == [
        -7,
        0xFFFF888812345678,
        22,
        "READ",
    ]


def test_tree_follows_forks_and_forgets_exited_pids() -> None:
    att = Attributor({100})
    att.fork(100, 200)  # strace
    att.fork(200, 300)  # the target
    att.create(300, 0xA, 3, 8, 0)
    att.fork(999, 301)  # an unrelated process forks
    att.create(301, 0xB, 3, 8, 0)
    att.exit(300)
    att.create(300, 0xC, 4, 8, 0)  # pid 300 reused by someone else
    for ctx in (0xA, 0xB, 0xC, 0xD):
        att.submit(300, ctx, 1, "NOP", False)
    [ours] = att.ours
    assert (ours.pid, ours.fd, ours.sqes, dict(ours.ops)) == (300, 3, 1, {"NOP": 1})
    assert att.foreign_rings == 2 and att.foreign_sqes == 2 and att.unknown_ring_sqes == 1


def test_a_reused_ring_address_belongs_to_its_new_creator() -> None:
    att = Attributor({1})
    att.fork(1, 2)
    att.create(2, 0xA, 3, 8, 0)
    att.submit(2, 0xA, 7, "READ", False)
    att.create(55, 0xA, 9, 8, 0)  # ours was freed; another process got the address
    att.submit(55, 0xA, 7, "WRITE", False)
    assert att.ours[0].sqes == 1 and att.foreign_sqes == 1


def test_a_reused_ring_address_takes_none_of_the_old_rings_requests() -> None:
    # Recorded (ctx/req shortened): a thread's ring of ours took 3 NOPs; once freed, a
    # background program's ring got its address, and its FSYNC reused a NOP's req address.
    # Successful completions are filtered in the kernel, so the NOP stayed pending and the
    # FSYNC's io_uring_file_get set the NOP's fd ('the trace does not show what the fd
    # referred to'). The same with a foreign READ on fd -1 put an EBADF on our READ.
    att = Attributor({1})
    att.create(1, 0xC0, 3, 16, 0)
    att.submit(1, 0xC0, 0x10, "NOP", False)
    att.submit(1, 0xC0, 0x20, "READ", False)
    att.file_get(0xC0, 0x20, 4)
    att.submit(1, 0xC0, 0x30, "STATX", False)
    att.create(55, 0xC0, 3, 16, 0)  # ours is gone: another process's ring at its address
    att.submit(55, 0xC0, 0x10, "FSYNC", False)
    att.file_get(0xC0, 0x10, 4)
    att.submit(55, 0xC0, 0x20, "READ", False)
    att.file_get(0xC0, 0x20, -1)
    att.complete(0xC0, 0x20, -9, 0)
    att.submit(55, 0xC0, 0x30, "OPENAT", False)
    att.complete(0xC0, 0x30, -2, 0)
    [ring] = att.ours
    assert dict(ring.ops) == {"NOP": 1, "READ": 1, "STATX": 1}
    assert list(ring.seq_fds) == [NO_FD, 4, NO_FD]
    assert list(ring.seq_failed) == [0, 0, 0] and not ring.failed and not ring.errors
    assert att.foreign_rings == 1 and att.foreign_sqes == 3


def test_failures_count_once_per_sqe_and_sq_thread_submissions() -> None:
    att = Attributor({1})
    att.create(1, 0xA, 3, 8, 2)  # IORING_SETUP_SQPOLL
    att.reject(1, 0xA, 10, "INVALID", -22)  # rejected at submission, then its CQE
    att.complete(0xA, 10, -22, 0)
    att.submit(77, 0xA, 11, "READ", True)  # the SQ thread
    att.file_get(0xA, 11, 5)
    att.file_get(0xA, 11, 6)  # a retry looks the fd up again: the first counts
    att.complete(0xA, 11, -9, 0)
    att.submit(77, 0xA, 12, "RECV", True)  # multishot: two failed CQEs, one SQE
    att.complete(0xA, 12, -105, 2)
    att.complete(0xA, 12, -105, 0)
    ring = att.ours[0]
    assert ring.sqpoll and ring.sq_thread == 2 and ring.submitters == {1}
    assert dict(ring.failed) == {"INVALID": 1, "READ": 1, "RECV": 1}
    assert {op: dict(c) for op, c in ring.errors.items()} == {
        "INVALID": {"EINVAL": 1},
        "READ": {"EBADF": 1},
        "RECV": {"ENOBUFS": 1},
    }
    assert list(ring.seq_fds) == [NO_FD, 5, NO_FD]
    assert list(ring.seq_failed) == [1, 1, 1]


def test_rings_pair_per_task_in_creation_order() -> None:
    k = [KernelRing(1, 10, 3, 0, 8), KernelRing(2, 11, 3, 0, 8), KernelRing(3, 10, 4, 0, 8)]
    s = [{"id": 1, "pid": 10}, {"id": 2, "pid": 10}, {"id": 3, "pid": 12}]
    pairs, only_s, only_k = pair_rings(s, k)
    assert [(a["id"], b.ordinal) for a, b in pairs] == [(1, 1), (2, 3)]
    assert [a["id"] for a in only_s] == [3]
    assert [b.ordinal for b in only_k] == [2]


def test_without_opcode_data_the_report_says_why_and_rules_cannot_pass() -> None:
    why = "the gate is not running as root (uid 1000): ..."
    value, reason = value_of("io_uring.ops.READ", {}, {}, {"kernel": why})
    assert value is None and reason == why
    r = {"metrics": {"io_uring.rings": 1}, "scope_missing": {"kernel": why}, "details": {}}
    text = markdown._io_uring_ops(r)
    assert "Opcode counts: not measured (the gate is not running as root (uid 1000)" in text
    # Measured and absent is zero, not unmeasured.
    assert value_of("io_uring.ops.STATX", {"io_uring.ops.total": 3}, {}, {}) == (0.0, "")
