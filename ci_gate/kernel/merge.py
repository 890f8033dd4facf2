"""Fold the tracepoints' opcode counts into the strace measurement.

The kernel's rings are paired with the rings strace saw io_uring_setup create
(per task, in creation order), which cross-checks the attribution: a ring
strace saw but the kernel did not attribute to the tree means the counts are
incomplete, and they are then reported as unmeasured rather than low.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from ci_gate.kernel import perfile
from ci_gate.kernel.uring_tracepoints import KernelRing, OpcodeData, OpcodeTrace
from ci_gate.metrics import registry
from ci_gate.metrics.collector import _SETUP_BITS, Measurement, Problem
from ci_gate.metrics.scope import Scope
from ci_gate.trace.source import TracePart

# Opcodes whose success puts a new fd in the task's table, unseen by strace.
FD_CREATING_OPS = frozenset({"OPENAT", "OPENAT2", "ACCEPT", "SOCKET", "PIPE", "FIXED_FD_INSTALL"})
KNOWN_OPS = frozenset([*registry.IO_URING_OPCODES, registry.IO_URING_INVALID_OPCODE])


def setup_flag_names(flags: int) -> list[str]:
    names = [n for n, bit in _SETUP_BITS.items() if flags & bit]
    rest = flags & ~sum(_SETUP_BITS.values())
    if rest:
        names.append(hex(rest))
    return names


def pair_rings(
    strace_rings: list[dict[str, Any]], kernel_rings: list[KernelRing]
) -> tuple[list[tuple[dict[str, Any], KernelRing]], list[dict[str, Any]], list[KernelRing]]:
    """(pairs, strace rings without a kernel ring, kernel rings without a strace ring)."""
    by_pid_s: dict[int, list[dict[str, Any]]] = defaultdict(list)
    by_pid_k: dict[int, list[KernelRing]] = defaultdict(list)
    for s in strace_rings:
        by_pid_s[int(s["pid"])].append(s)
    for k in kernel_rings:
        by_pid_k[k.pid].append(k)
    pairs, only_s, only_k = [], [], []
    for pid in sorted(set(by_pid_s) | set(by_pid_k)):
        ss, ks = by_pid_s.get(pid, []), by_pid_k.get(pid, [])
        pairs += list(zip(ss, ks, strict=False))
        only_s += ss[len(ks) :]
        only_k += ks[len(ss) :]
    return pairs, only_s, only_k


def merge(
    m: Measurement,
    trace: OpcodeTrace | None,
    *,
    parts: list[TracePart] | None = None,
    scope: Scope | None = None,
) -> None:
    """Add io_uring.ops.* and details["io_uring_ops"], or say why they are unmeasured."""
    if trace is None:
        return
    data = trace.result()
    for w in data.warnings:
        m.problems.append(Problem("tracefs", w, severity="warning"))
    if data.reason is not None:
        m.scope_missing["kernel"] = data.reason
        return
    blocked = m.unmeasured.get("io_uring.rings")
    if blocked is not None:
        # The ring could not even be created: no opcode count means anything.
        m.scope_missing["kernel"] = blocked
        return

    strace_rings = m.details.get("io_uring", {}).get("rings", [])
    pairs, only_s, only_k = pair_rings(strace_rings, data.rings)
    strace_of = {id(k): s for s, k in pairs}
    notes: list[str] = []
    incomplete: list[str] = []
    if data.lost:
        detail = ", ".join(f"{k} {v}" for k, v in data.lost_detail.items())
        incomplete.append(
            f"the kernel lost {data.lost} trace event(s) ({detail}): the trace buffer "
            "overflowed, so the opcode counts would be incomplete"
        )
    if only_s:
        listed = ", ".join(f"ring {s['id']} (pid {s['pid']})" for s in only_s[:5])
        incomplete.append(
            f"strace saw {len(only_s)} ring(s) created that the kernel's trace does not show "
            f"the traced tree creating ({listed}); their SQEs could not be counted"
        )
    if only_k:
        notes.append(
            f"The kernel saw {len(only_k)} ring(s) created by the traced tree that strace did "
            "not see returned from io_uring_setup (a task killed mid-call?); they are counted."
        )

    ops, failed, errors = data.ops(), data.failed(), data.errors()
    unknown = sorted(op for op in ops if op not in KNOWN_OPS)
    if unknown:
        notes.append(
            f"Opcode(s) unknown to this version of the gate: {', '.join(unknown)}; counted in "
            "io_uring.ops.total only."
        )
    disagree = []
    rings_json = []
    for k in data.rings:
        s = strace_of.get(id(k))
        strace_sqes = s["sqes"] if s is not None and not k.sqpoll else None
        if strace_sqes is not None and strace_sqes != k.sqes:
            disagree.append(f"ring {k.ordinal}: strace {strace_sqes}, kernel {k.sqes}")
        rings_json.append(
            {
                "ring": k.ordinal,
                "strace_ring": s["id"] if s is not None else None,
                "pid": k.pid,
                "fd": k.fd,
                "sq_entries": k.sq_entries,
                "flags": setup_flag_names(k.flags),
                "sqpoll": k.sqpoll,
                "sqes": k.sqes,
                "sq_thread_sqes": k.sq_thread,
                "submitting_tasks": len(k.submitters),
                "strace_sqes": strace_sqes,
                "ops": dict(sorted(k.ops.items(), key=lambda kv: (-kv[1], kv[0]))),
                "failed": dict(sorted(k.failed.items())),
            }
        )
    if disagree:
        m.problems.append(
            Problem(
                "opcodes-disagree",
                "strace and the kernel count different SQEs on ring(s) without SQPOLL ("
                + "; ".join(disagree[:5])
                + "): a task killed mid-io_uring_enter, or SQEs submitted "
                "on the ring by a process outside the traced tree",
                severity="warning",
            )
        )
    sqpoll = [k for k in data.rings if k.sqpoll]
    if sqpoll:
        notes.append(
            f"{len(sqpoll)} SQPOLL ring(s): a kernel thread took their SQEs without a system "
            "call, so batching per io_uring_enter means nothing there. The kernel's count of "
            "the SQEs each ring received is shown per ring instead."
        )
    if data.foreign_sqes or data.foreign_rings:
        notes.append(
            f"Ignored: {data.foreign_sqes} SQE(s) on {data.foreign_rings} ring(s) created by "
            "processes outside the traced tree while it ran."
        )
    if data.unknown_ring_sqes:
        notes.append(
            f"Ignored: {data.unknown_ring_sqes} SQE(s) on rings created before recording "
            "began (not the scenario's)."
        )

    opcodes = []
    for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        opcodes.append(
            {
                "opcode": op,
                "sqes": n,
                "failed": failed.get(op, 0),
                "errors": dict(errors.get(op, Counter()).most_common()),
            }
        )
    details: dict[str, Any] = {
        "source": f"tracefs instance {data.instance} (io_uring and sched tracepoints)",
        "complete": not incomplete,
        "incomplete_reason": "; ".join(incomplete) or None,
        "opcodes": opcodes,
        "total": sum(ops.values()),
        "failed": sum(failed.values()) if data.completions_traced else None,
        "rings": rings_json,
        "sqpoll_rings": len(sqpoll),
        "ignored": {
            "foreign_rings": data.foreign_rings,
            "foreign_sqes": data.foreign_sqes,
            "unknown_ring_sqes": data.unknown_ring_sqes,
        },
        "lost_events": data.lost,
        "lost_detail": data.lost_detail,
        "events": data.events,
        "tasks_followed": data.tasks_followed,
        "notes": notes,
    }
    try:
        details["per_file"] = _per_file(data, pairs, parts, scope)
    except Exception as exc:  # the opcode counts stand without it; say what broke
        details["per_file"] = {
            "files": None,
            "attributed": 0,
            "sqes_with_fd": 0,
            "not_attributed": {},
            "why_none": f"per-file pass failed: {exc}",
        }
        m.problems.append(
            Problem(
                "opcodes-per-file",
                f"tying io_uring SQEs to files failed: {type(exc).__name__}: {exc}",
                severity="warning",
            )
        )
    m.details["io_uring_ops"] = details

    if incomplete:
        reason = "; ".join(incomplete)
        m.scope_missing["kernel"] = reason
        m.problems.append(
            Problem("opcodes-incomplete", f"io_uring opcode counts: {reason}", severity="warning")
        )
        return
    m.scope_missing.pop("kernel", None)
    for op, n in ops.items():
        if op in KNOWN_OPS:
            m.values[f"io_uring.ops.{op}"] = n
    m.values["io_uring.ops.total"] = sum(ops.values())
    if data.completions_traced:
        m.values["io_uring.ops.failed"] = sum(failed.values())
    else:
        m.unmeasured["io_uring.ops.failed"] = "this kernel has no io_uring_complete tracepoint"


def _per_file(
    data: OpcodeData,
    pairs: list[tuple[dict[str, Any], KernelRing]],
    parts: list[TracePart] | None,
    scope: Scope | None,
) -> dict[str, Any]:
    with_fd = {id(k): perfile.with_fd(k) for k in data.rings}
    out: dict[str, Any] = {
        "files": None,
        "attributed": 0,
        "sqes_with_fd": sum(with_fd.values()),
        "not_attributed": {},
        "why_none": None,
    }
    if not data.fds_traced:
        out["why_none"] = "this kernel has no io_uring_file_get tracepoint"
        return out
    if scope is None or parts is None:
        out["why_none"] = "no scenario roots"
        return out
    made_fds = sorted(
        op for k in data.rings for op in k.ops if op in FD_CREATING_OPS and k.ops[op] > k.failed[op]
    )
    why: Counter[str] = Counter()
    if made_fds:
        out["why_none"] = (
            f"io_uring itself opened fds ({', '.join(sorted(set(made_fds)))}): the trace cannot "
            "tell which file such an fd number refers to, nor when the number was reused"
        )
        why[out["why_none"]] = out["sqes_with_fd"]
        out["not_attributed"] = dict(why)
        return out
    eligible: dict[int, KernelRing] = {}
    for s, k in pairs:
        if k.sqpoll:
            why["SQPOLL ring: the kernel thread takes SQEs at moments the trace cannot place"] += (
                with_fd[id(k)]
            )
        elif len(k.submitters) > 1:
            why["several tasks submitted on the ring"] += with_fd[id(k)]
        elif s["sqes"] != k.sqes:
            why["strace and the kernel count different SQEs on the ring"] += with_fd[id(k)]
        else:
            eligible[int(s["id"])] = k
    paired = {id(k) for _s, k in pairs}
    for k in data.rings:
        if id(k) not in paired:
            why["ring not seen by strace"] += with_fd[id(k)]
    if any(with_fd[id(k)] for k in eligible.values()):
        per_path, why_pass, attributed = perfile.attribute(parts, scope, eligible, data.op_names)
        why.update(why_pass)
        out["attributed"] = attributed
        out["files"] = [
            {"root": label, "path": rel, "kind": scope.kind(rel), "ops": dict(sorted(c.items()))}
            for (label, rel), c in sorted(per_path.items())
        ]
    else:
        out["files"] = []
    out["not_attributed"] = {k: v for k, v in why.most_common() if v}
    return out
