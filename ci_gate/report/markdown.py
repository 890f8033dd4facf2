"""results.json in, the Markdown report out.

The report is rendered from the results alone, so `publish` and `merge` can
re-render it (smaller, for a PR comment) without the trace. Sections follow the
seed report's order; every string that came from the trace goes through
escape.md_code or escape.md_text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ci_gate.metrics.pathcalls import PATH_CALLS
from ci_gate.metrics.registry import (
    BATCH_BUCKETS,
    IO_URING_OP_SYSCALL,
    PRESERVE_KINDS,
    PRESERVE_OPS,
)
from ci_gate.metrics.values import value_of
from ci_gate.report.escape import md_code, md_fence, md_path, md_text, shell_join

Section = tuple[str, str]  # (key, markdown)
MAX_PER_FILE_ROWS = 60
MAX_INVENTORY_ROWS = 400

STATUS_WORDS = {
    "PASS": "PASS",
    "WARN": "**WARN**",
    "FAIL": "**FAIL**",
    "ERROR": "**ERROR**",
    "SKIPPED": "skipped",
}


def num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return md_text(str(value))


def _metric(r: dict[str, Any], name: str) -> str:
    value, _why = value_of(
        name, r.get("metrics", {}), r.get("unmeasured", {}), r.get("scope_missing", {})
    )
    return "not measured" if value is None else num(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _details(summary: str, body: str) -> str:
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"


# -- sections -----------------------------------------------------------------------------------


def _header(r: dict[str, Any]) -> str:
    scen = r.get("scenario") or {}
    pol = r.get("policy") or {}
    env = r.get("environment") or {}
    status = r.get("status", "ERROR")
    title = f"## syscall-gate: {STATUS_WORDS.get(status, status)}"
    if scen.get("id"):
        title += f" · scenario {md_code(scen['id'])}"
    rows = []
    if scen.get("command"):
        rows.append(["Target", md_code(scen["command"][0], 200)])
        rows.append(["Command", md_code(shell_join(scen["command"]), 300)])
    if scen.get("fixture_text"):
        rows.append(["Scenario", md_text(scen["fixture_text"])])
    if pol.get("path"):
        digest = str(pol.get("digest", ""))
        text = f"{md_code(pol['path'])} (resolved: {md_code(digest[:19])})"
        bases = list(pol.get("sources", []))[:-1]
        if bases:
            text += ", extends " + ", ".join(md_code(b) for b in bases)
        rows.append(["Policy", text])
    if r.get("trace", {}).get("source"):
        rows.append(["Trace", md_code(r["trace"]["source"], 200)])
    bits = []
    if env.get("strace"):
        bits.append(f"strace {md_text(str(env['strace']))}")
    if env.get("kernel"):
        bits.append(f"Linux {md_text(str(env['kernel']))} {md_text(str(env.get('arch', '')))}")
    if env.get("container"):
        bits.append(f"in a {md_text(str(env['container']))} container")
    if bits:
        rows.append(["Environment", ", ".join(bits)])
    if r.get("generated_at"):
        rows.append(["Date", md_text(r["generated_at"])])
    out = [title, "", _table(["", ""], rows)] if rows else [title]
    problems = r.get("problems", [])
    if problems:
        out.append("")
        for p in problems:
            label = "ERROR" if p.get("severity") == "error" else "Warning"
            out.append(f"> **{label}** ({md_code(p.get('code', ''))}): {md_text(p['message'])}")
            out.append(">")
        out.pop()
        detail = next((p.get("detail") for p in problems if p.get("detail")), None)
        if detail:
            out += ["", _details("Details", md_fence(detail))]
    damaged = ((r.get("details") or {}).get("parse") or {}).get("damaged_samples") or []
    if damaged:
        rows = [
            [
                str(d.get("line", "")),
                md_code(str(d.get("text", "")), 200),
                md_text(str(d.get("why"))),
            ]
            for d in damaged
        ]
        out += [
            "",
            _details("Lines that could not be parsed", _table(["Line", "Text", "Why"], rows)),
        ]
    counts = r.get("summary", {})
    if counts:
        parts = [f"{counts[s]} {s}" for s in ("PASS", "WARN", "FAIL", "ERROR") if counts.get(s)]
        out += ["", "Rules: " + (", ".join(parts) if parts else "none evaluated") + "."]
    if r.get("no_enforced_rule") or pol.get("enforced_rules") == 0:
        out += ["", "> This policy enforces no rule: the gate cannot fail on metrics."]
    return "\n".join(out)


def _io_uring(r: dict[str, Any]) -> str:
    m = functools.partial(_metric, r)
    uring = r.get("details", {}).get("io_uring", {})
    out = ["### io_uring usage and batching", ""]
    out.append(
        _table(
            ["Metric", "Value"],
            [
                [
                    "io_uring_setup calls (failed)",
                    f"{m('io_uring.setup.calls')} ({m('io_uring.setup.failed')})",
                ],
                ["Rings created (SQPOLL)", f"{m('io_uring.rings')} ({m('io_uring.rings.sqpoll')})"],
                ["io_uring_enter calls", m("io_uring.enter.calls")],
                ["Submitting calls", m("io_uring.enter.submitting")],
                ["Wait-only calls", m("io_uring.enter.wait_only")],
                ["SQEs submitted", m("io_uring.sqes_submitted")],
                ["Average batch (SQEs per submitting call)", m("io_uring.batch.avg")],
                ["Largest batch", m("io_uring.batch.max")],
                ["Single-SQE submissions", m("io_uring.batch.single")],
                ["Multi-SQE submissions", m("io_uring.batch.multi")],
            ],
        )
    )
    hist = uring.get("histogram", {})
    if hist:
        buckets = [
            [
                b[0].replace("size_", "").replace("_plus", "+").replace("_", "-"),
                _metric(r, f"io_uring.batch.{b[0]}"),
            ]
            for b in BATCH_BUCKETS
        ]
        exact = ", ".join(f"{k}: {v}" for k, v in hist.items())
        out += [
            "",
            "Batch sizes (SQEs per submitting call):",
            "",
            _table(["SQEs", "Calls"], buckets),
            "",
            f"Exact: {md_text(exact)}",
        ]
    rings = uring.get("rings", [])
    if rings:
        rows = [
            [
                str(x["id"]),
                str(x["pid"]),
                num(x.get("entries")),
                md_code("|".join(x["flags"]) or "none", 200),
                num(x["enter_calls"]),
                num(x["submitting"]),
                num(x["sqes"]),
            ]
            for x in rings[:50]
        ]
        body = _table(
            ["Ring", "pid", "Entries", "Setup flags", "enter calls", "Submitting", "SQEs"], rows
        )
        if len(rings) > 50:
            body += f"\n\n{len(rings) - 50} more ring(s) in results.json."
        out += ["", _details(f"Rings ({len(rings)})", body)]
    for key in ("io_uring.batch.avg", "io_uring.enter.submitting"):
        why = r.get("unmeasured", {}).get(key)
        if why:
            out += ["", f"Batching not measured: {md_text(why)}."]
            if (r.get("details", {}).get("io_uring_ops") or {}).get("sqpoll_rings"):
                out.append("The kernel's count of SQEs per ring is under io_uring operations.")
            break
    return "\n".join(out)


def _kernel_ops(r: dict[str, Any]) -> dict[str, Any] | None:
    """details.io_uring_ops: what the kernel's tracepoints counted (None when not recorded)."""
    kernel = r.get("details", {}).get("io_uring_ops")
    return kernel if isinstance(kernel, dict) else None


def _op_counts(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    kernel = _kernel_ops(r)
    return {o["opcode"]: o for o in kernel.get("opcodes", [])} if kernel else {}


def _errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in errors.items())


def _io_uring_ops(r: dict[str, Any]) -> str:
    out = ["### io_uring operations", ""]
    kernel = _kernel_ops(r)
    if kernel is None:
        why = r.get("scope_missing", {}).get("kernel", "no opcode data was collected")
        out.append(
            "strace sees the io_uring_enter calls that submit work, not the operations inside "
            "the ring: reads, writes, opens, statx and mkdirat submitted as SQEs are invisible "
            "to it, so the per-file and metadata figures below count only what was done by "
            "direct system calls."
        )
        out += ["", f"Opcode counts: not measured ({md_text(why)})."]
        out += [
            "",
            "They are counted from the kernel's io_uring tracepoints when the gate runs "
            "as root on the host (sudo), with tracefs mounted.",
        ]
        return "\n".join(out)
    out.append(
        "Counted by the kernel's io_uring tracepoints: every SQE the kernel took from a ring "
        "that the traced process tree created, whoever submitted it (the program or the ring's "
        "SQPOLL thread). Submissions on other processes' rings are not counted."
    )
    if not kernel.get("complete", True):
        out += [
            "",
            f"> **Incomplete:** {md_text(str(kernel.get('incomplete_reason')))}. The "
            "numbers below are what was recorded; rules on `io_uring.ops.*` are ERROR.",
        ]
    failed_known = kernel.get("failed") is not None
    opcodes = kernel.get("opcodes", [])
    if opcodes:
        rows = [
            [
                md_code(o["opcode"]),
                num(o["sqes"]),
                num(o["failed"]) if failed_known else "n/a",
                md_text(_errors_text(o.get("errors", {}))),
            ]
            for o in opcodes
        ]
        rows.append(
            [
                "**Total**",
                num(kernel.get("total")),
                num(kernel.get("failed")) if failed_known else "n/a",
                "",
            ]
        )
        out += ["", _table(["Opcode", "SQEs", "Failed", "Errors"], rows)]
    else:
        out += ["", "No SQE was submitted on a ring of the traced tree."]
    rings = kernel.get("rings", [])
    if rings:
        rows = []
        for x in rings[:50]:
            ops = ", ".join(f"{k} {v}" for k, v in x.get("ops", {}).items())
            strace_ring = x.get("strace_ring")
            rows.append(
                [
                    str(x["ring"]),
                    num(strace_ring) if strace_ring is not None else "none",
                    str(x["pid"]),
                    md_code("|".join(x["flags"]) or "none", 200),
                    num(x["sqes"]),
                    num(x.get("sq_thread_sqes")),
                    num(x.get("strace_sqes")) if x.get("strace_sqes") is not None else "n/a",
                    md_text(ops) or "none",
                ]
            )
        body = _table(
            [
                "Ring",
                "strace ring",
                "Created by pid",
                "Setup flags",
                "SQEs",
                "Taken by SQ thread",
                "SQEs by io_uring_enter (strace)",
                "Opcodes",
            ],
            rows,
        )
        if len(rings) > 50:
            body += f"\n\n{len(rings) - 50} more ring(s) in results.json."
        if kernel.get("sqpoll_rings"):
            out += [
                "",
                "Submissions per ring (SQPOLL rings take SQEs without a system call, so "
                "the batching figures above cannot describe them; these are the kernel's "
                "counts):",
                "",
                body,
            ]
        else:
            out += ["", _details(f"Rings ({len(rings)})", body)]
    for note in kernel.get("notes", []):
        out += ["", md_text(note)]
    lost = kernel.get("lost_events")
    out += [
        "",
        f"Trace events lost by the kernel: {num(lost)}." if lost else "No trace event was lost.",
    ]
    return "\n".join(out)


def _uring_path_rows(r: dict[str, Any]) -> list[list[str]]:
    """io_uring opcodes that do what a path-taking syscall does (STATX is a statx)."""
    failed_known = (_kernel_ops(r) or {}).get("failed") is not None
    rows = []
    for op, o in _op_counts(r).items():
        call = IO_URING_OP_SYSCALL.get(op)
        if call is not None and call in PATH_CALLS:
            failed = num(o["failed"]) if failed_known else "n/a"
            rows.append([md_code(call), md_code(op), num(o["sqes"]), failed])
    return sorted(rows)


def _uring_sum(r: dict[str, Any], ops: tuple[str, ...]) -> str | None:
    """SQEs of these opcodes, for a row "via io_uring"; None when no opcode data."""
    if _kernel_ops(r) is None:
        return None
    counts = _op_counts(r)
    total = sum(counts[o]["sqes"] for o in ops if o in counts)
    text = num(total)
    if not (_kernel_ops(r) or {}).get("complete", True):
        text += " (incomplete)"
    return text


def _class_rows(r: dict[str, Any], names: list[str], prefix: str) -> list[list[str]]:
    rows = []
    for name in names:
        vals = [
            _metric(r, f"{prefix}{name}.{c}") for c in ("path_based", "fd_based", "dirfd_relative")
        ]
        total = _metric(r, f"{'scenario.' if prefix else ''}syscall.{name}.calls")
        rows.append([md_code(name), total, *vals])
    return rows


def _metadata(r: dict[str, Any]) -> str:
    paths = r.get("details", {}).get("paths", {})
    scen = r.get("details", {}).get("scenario", {}).get("classes", {})
    out = ["### Metadata operations", ""]
    out.append(
        "How each path-taking call resolved its path: **path-based** (AT_FDCWD or an absolute "
        "path, resolved again on every call: TOCTOU-prone), **fd-based** (on an open fd), "
        "**dirfd-relative** (a directory fd plus a name)."
    )
    head = ["Call", "Calls", "Path-based", "FD-based", "Dirfd-relative"]
    if r.get("details", {}).get("scenario") is not None:
        names = sorted(scen) or []
        out += ["", "On the scenario's files:", ""]
        out.append(
            _table(head, _class_rows(r, names, "scenario."))
            if names
            else "No path-taking call reached the scenario's files."
        )
        files = r.get("metrics", {}).get("scenario.files")
        statx = r.get("metrics", {}).get("scenario.syscall.statx.calls")
        if files and statx is not None:
            line = f"statx per file: {num(statx / files)} ({num(statx)} calls / {num(files)} files)"
            uring_statx = _op_counts(r).get("STATX")
            if uring_statx:
                line += f"; plus {num(uring_statx['sqes'])} io_uring STATX (async, files not known)"
            out += ["", line + "."]
    uring_rows = _uring_path_rows(r)
    if uring_rows:
        out += [
            "",
            "Submitted through io_uring (async): the kernel's tracepoints give the opcode "
            "but not the path, so these are neither split by resolution nor limited to the "
            "scenario's files:",
            "",
            _table(["Call", "io_uring opcode", "SQEs", "Failed"], uring_rows),
        ]
    elif _kernel_ops(r) is None and r.get("metrics", {}).get("io_uring.rings"):
        out += [
            "",
            "Calls submitted through io_uring are not counted here: no opcode data "
            "(see io_uring operations).",
        ]
    names = sorted(paths)
    if names:
        out += [
            "",
            _details(
                "Whole process (start-up and libraries included)",
                _table(head, _class_rows(r, names, "")),
            ),
        ]
    return "\n".join(out)


def _per_file(r: dict[str, Any]) -> str:
    scen = r.get("details", {}).get("scenario")
    out = ["### Per-file breakdown", ""]
    if scen is None:
        out.append("No scenario roots were given, so calls cannot be tied to files.")
        return "\n".join(out)
    rows_src = scen.get("per_path", [])
    fixture = scen.get("fixture") or {}
    by_key = {(p["root"], p["path"]): p["calls"] for p in rows_src}
    files = [rel for rel, kind in fixture.items() if kind == "file"] or sorted(
        {p["path"] for p in rows_src if p["kind"] == "file"}
    )
    if not files:
        out.append("No regular file of the scenario was reached by a system call.")
        return "\n".join(out)
    kernel = _kernel_ops(r)
    uring_files = ((kernel or {}).get("per_file") or {}).get("files")
    by_key_uring = (
        {(p["root"], p["path"]): p["ops"] for p in uring_files} if uring_files is not None else None
    )
    rows = []
    for rel in files[:MAX_PER_FILE_ROWS]:
        for root in ("src", "dst"):
            calls = by_key.get((root, rel), {})
            # Every syscall by name: a legacy stat or an io_uring_enter on a file is what a
            # reviewer looks for, so nothing is folded into "other".
            shown = [f"{k} {v}" for k, v in sorted(calls.items())]
            row = [
                md_path(rel),
                root,
                str(sum(calls.values())),
                md_text(", ".join(shown)) or "none",
            ]
            if by_key_uring is not None:
                ops = by_key_uring.get((root, rel), {})
                row.append(md_text(", ".join(f"{k} {v}" for k, v in ops.items())) or "none")
            rows.append(row)
    head = ["File", "Tree", "Calls", "By syscall"]
    if by_key_uring is not None:
        head.append("Via io_uring (async SQEs)")
    body = _table(head, rows)
    if len(files) > MAX_PER_FILE_ROWS:
        body += f"\n\n{len(files) - MAX_PER_FILE_ROWS} more file(s) in results.json."
    note = ""
    if kernel is not None:
        note = "\n\n" + _per_file_uring_note(kernel)
    elif r.get("metrics", {}).get("io_uring.rings"):
        note = (
            "\n\nCalls submitted through io_uring are not in these counts: no opcode data "
            "was collected (see io_uring operations)."
        )
    summary = f"{len(files)} file(s) of the fixture, source and destination"
    return "\n".join(out) + "\n" + _details(summary, body) + note


def _per_file_uring_note(kernel: dict[str, Any]) -> str:
    pf = kernel.get("per_file") or {}
    with_fd = pf.get("sqes_with_fd", 0)
    if pf.get("files") is None:
        why = pf.get("why_none") or "no per-file data"
        return f"io_uring SQEs are not tied to files here: {md_text(why)}."
    text = (
        f"Via io_uring: SQEs tied to a file through the fd they named, where the trace shows "
        f"exactly which file that fd was at the time ({num(pf.get('attributed', 0))} of "
        f"{num(with_fd)} SQEs that named an fd). SQEs that name a path (OPENAT, STATX, "
        "MKDIRAT, ...) cannot be tied to a file: the tracepoints do not show paths."
    )
    left = pf.get("not_attributed") or {}
    if left:
        text += " Not tied: " + md_text("; ".join(f"{v} ({k})" for k, v in left.items())) + "."
    return text


def _file_ops(r: dict[str, Any]) -> str:
    m = functools.partial(_metric, r)
    rows = [
        ["openat calls (whole process)", m("syscall.openat.calls")],
        ["Opens of scenario files", m("scenario.opens.user_files")],
        ["Opens of scenario directories", m("scenario.opens.directories")],
        ["Direct read/write-family calls on scenario files", m("scenario.direct_io")],
        ["fallocate calls (direct)", m("syscall.fallocate.calls")],
    ]
    files = r.get("metrics", {}).get("scenario.files")
    opens = r.get("metrics", {}).get("scenario.opens.user_files")
    if files and opens is not None:
        rows.insert(2, ["Opens per scenario file", num(opens / files)])
    for label, ops in (
        ("openat via io_uring (OPENAT, OPENAT2 SQEs; async, whole process)", ("OPENAT", "OPENAT2")),
        (
            "Reads via io_uring (READ, READV, READ_FIXED, READV_FIXED, READ_MULTISHOT SQEs)",
            ("READ", "READV", "READ_FIXED", "READV_FIXED", "READ_MULTISHOT"),
        ),
        (
            "Writes via io_uring (WRITE, WRITEV, WRITE_FIXED, WRITEV_FIXED SQEs)",
            ("WRITE", "WRITEV", "WRITE_FIXED", "WRITEV_FIXED"),
        ),
        ("fallocate via io_uring (FALLOCATE SQEs)", ("FALLOCATE",)),
    ):
        count = _uring_sum(r, ops)
        rows.append([label, count if count is not None else "not measured (no opcode data)"])
    return "### File operations\n\n" + _table(["Metric", "Value"], rows)


def _preservation(r: dict[str, Any]) -> str:
    rows = []
    for op, calls in PRESERVE_OPS.items():
        rows.append(
            [
                f"{op} ({md_text('/'.join(calls))})",
                *[_metric(r, f"scenario.preserve.{op}.{k}") for k in PRESERVE_KINDS],
            ]
        )
    out = [
        "### Metadata preservation",
        "",
        "Calls that set metadata on the destination tree, by what they changed:",
        "",
        _table(["Operation", "Files", "Directories", "Symlinks"], rows),
    ]
    rows2 = []
    for name in ("utimensat", "fchmodat", "fchownat"):
        vals = [
            _metric(r, f"scenario.{name}.{c}") for c in ("path_based", "fd_based", "dirfd_relative")
        ]
        rows2.append([md_code(name), *vals])
    out += ["", _table(["Call", "Path-based", "FD-based", "Dirfd-relative"], rows2)]
    return "\n".join(out)


def _mkdir(r: dict[str, Any]) -> str:
    rows = [[md_code("mkdir"), _metric(r, "scenario.syscall.mkdir.calls"), "path-based"]]
    for c in ("path_based", "dirfd_relative"):
        rows.append([md_code("mkdirat"), _metric(r, f"scenario.mkdirat.{c}"), c.replace("_", "-")])
    rows.append(["**Total**", _metric(r, "scenario.dirs_created"), ""])
    uring = _uring_sum(r, ("MKDIRAT",))
    if uring is not None:
        rows.append(
            [f"{md_code('MKDIRAT')} via io_uring", uring, "async; path not visible, whole process"]
        )
    return "### Directory creation\n\n" + _table(["Call", "Count", "Resolution"], rows)


def _symlinks(r: dict[str, Any]) -> str:
    rows = []
    for name in ("symlink", "symlinkat", "readlink", "readlinkat", "lstat"):
        rows.append([md_code(name), _metric(r, f"scenario.syscall.{name}.calls")])
    rows.append(["**Links created**", _metric(r, "scenario.symlinks.created")])
    rows.append(["**Links read**", _metric(r, "scenario.symlinks.read")])
    uring = _uring_sum(r, ("SYMLINKAT",))
    if uring is not None:
        rows.append([f"{md_code('SYMLINKAT')} via io_uring (async, whole process)", uring])
    return "### Symlinks\n\n" + _table(["Call", "Count"], rows)


def _traversal(r: dict[str, Any]) -> str:
    scen = r.get("details", {}).get("scenario")
    if scen is None:
        return "### Directory traversal\n\nNo scenario roots were given."
    roots = scen.get("roots", {})
    rows = [[f"{md_text(label)}: {md_path(path, 120)}"] for label, path in roots.items()]
    out = ["### Directory traversal", "", _table(["Roots"], rows), ""]
    out.append(
        _table(
            ["Metric", "Value"],
            [
                [
                    "getdents64/getdents on source directories",
                    _metric(r, "scenario.traversal.getdents"),
                ],
                ["Directory opens (scenario)", _metric(r, "scenario.opens.directories")],
                ["Directories in the fixture", _metric(r, "scenario.dirs")],
            ],
        )
    )
    return "\n".join(out)


def _unexpected(r: dict[str, Any]) -> str:
    rows = r.get("details", {}).get("unexpected", [])
    out = ["### Unexpected and legacy syscalls", ""]
    # A filtered trace (scenario.tracing: policy) may leave out direct I/O: say so, as
    # an empty or short list would otherwise read as complete.
    partial = r.get("unmeasured", {}).get("unexpected.calls")
    if not rows:
        out.append("None found among the traced calls." if partial else "None found.")
    else:
        out.append(
            _table(
                ["Syscall", "Calls", "Where", "Why it matters"],
                [
                    [
                        md_code(x["syscall"]),
                        num(x["calls"]),
                        md_text(x["scope"]),
                        md_text(x["why"]),
                    ]
                    for x in rows
                ],
            )
        )
    if partial:
        out += ["", f"This list may be incomplete: `unexpected.calls` is not measured "
                f"({md_text(partial)})."]  # fmt: skip
    return "\n".join(out)


def _inventory(r: dict[str, Any]) -> str:
    inv = r.get("details", {}).get("inventory", [])
    rows = []
    for x in inv[:MAX_INVENTORY_ROWS]:
        category = md_text(x["category"])
        if x.get("probably"):
            category += f" (number of {md_code(x['probably'])}, newer than this strace)"
        rows.append(
            [
                md_code(x["syscall"]),
                num(x["calls"]),
                num(x["errors"]),
                num(x.get("unreturned", 0)),
                category,
            ]
        )
    body = _table(["Syscall", "Calls", "Errors", "Never returned", "Category"], rows)
    if len(inv) > MAX_INVENTORY_ROWS:
        body += f"\n\n{len(inv) - MAX_INVENTORY_ROWS} more in results.json."
    total = _metric(r, "syscalls.total")
    parse = r.get("details", {}).get("parse", {})
    check = r.get("details", {}).get("summary_check")
    extra = [f"{total} calls of {len(inv)} distinct syscalls"]
    if parse.get("split_calls"):
        extra.append(f"{num(parse['split_calls'])} printed split by strace and joined")
    if check is not None:
        bad = [x for x in check if not x["match"]]
        extra.append(
            "every returned-call count matches strace's own summary"
            if not bad
            else f"{len(bad)} count(s) differ from strace's own summary"
        )
    traced = r.get("details", {}).get("traced_syscalls")
    if traced is not None:
        # scenario.tracing: policy: strace saw only these; the rest ran untraced.
        return (
            "### Syscall inventory (partial)\n\n"
            + md_text(
                f"Partial: only the {len(traced)} syscall(s) the policy needs were traced "
                "(scenario.tracing: policy); other syscalls ran untraced and are not counted; "
                + "; ".join(extra[1:] or ["no other remark"])
            )
            + ".\n\n"
            + _details("Every traced syscall seen", body)
        )
    return (
        "### Full syscall inventory\n\n"
        + md_text("; ".join(extra))
        + ".\n\n"
        + _details("Every syscall seen", body)
    )


def _security(r: dict[str, Any]) -> str:
    sec = r.get("security", {})
    score = sec.get("score")
    out = ["### Security assessment", ""]
    if score is None:
        why = (r.get("unmeasured") or {}).get("security.score") or "a rule it depends on is ERROR"
        out.append(f"Score: not measured ({md_text(why)}).")
    else:
        out.append(f"Score: **{num(score)}/100** = 100 - the deductions of failing rules.")
    deductions = sec.get("deductions", [])
    if deductions:
        out += [
            "",
            _table(
                ["Rule", "Points", "Reason"],
                [
                    [md_code(d["rule"]), f"-{num(d['points'])}", md_text(d["reason"])]
                    for d in deductions
                ],
            ),
        ]
    else:
        out += ["", "No deduction: no rule with `deduct` failed."]
    return "\n".join(out)


def _recommendations(r: dict[str, Any]) -> str:
    items = [x for x in r.get("rules", []) if x["status"] in ("FAIL", "WARN", "ERROR")]
    out = ["### Recommendations", ""]
    if not items:
        out.append("Nothing to do: every rule passes.")
        return "\n".join(out)
    for x in items:
        # An ERROR rule was not judged: what to fix is the measurement, not the code.
        if x["status"] == "ERROR":
            text = x.get("message") or ""
        else:
            text = x.get("hint") or x.get("reason") or x.get("message") or ""
        out.append(f"- {md_code(x['id'])} ({x['status']}): {md_text(text)}")
    return "\n".join(out)


_RANK = {"ERROR": 0, "FAIL": 1, "WARN": 2}


def _shown_rules(rules: list[dict[str, Any]], max_rows: int | None) -> list[dict[str, Any]]:
    """All rules in policy order, or, when they must be cut, the worst first."""
    if max_rows is None or max_rows >= len(rules):
        return rules
    return sorted(rules, key=lambda x: _RANK.get(x["status"], 3))[: max(max_rows, 0)]


def _rule_row(x: dict[str, Any]) -> list[str]:
    metric = md_code(x["metric"]) + (" per file" if x.get("per") == "file" else "")
    status = STATUS_WORDS.get(x["status"], x["status"])
    if x.get("mode") == "advisory":
        status += " (advisory)"
    value = num(x["value"]) if x["value"] is not None else "not measured"
    spread = x.get("spread")
    if spread:
        value += f" ({x.get('aggregate', 'median')} of {len(spread['values'])}: "
        value += f"{num(spread['min'])} to {num(spread['max'])})"
    base = x.get("baseline")
    if base and base.get("available"):
        value += f" (base {num(base['base'])}, {_signed(base['delta'], base.get('pct'))})"
    elif base:
        value += " (no baseline)"
    if x["status"] == "WARN" and str(x.get("message", "")).startswith("unstable"):
        status += " unstable"
    # Thresholds are built from numbers by the policy stage: nothing to escape.
    return [md_code(x["id"]), metric, value, x["threshold"], status]


def _signed(delta: float | None, pct: float | None) -> str:
    if delta is None:
        return "n/a"
    if delta == 0:
        return "±0"
    text = f"+{num(delta)}" if delta > 0 else f"-{num(-delta)}"
    if pct is not None:
        text += f", {pct:+.1f}%"
    return text


MAX_DELTA_ROWS = 40


def _changes(r: dict[str, Any]) -> str:
    """The base -> head comparison: which baseline, and what moved."""
    base = r.get("baseline")
    if not base:
        return ""
    out = ["### Changes against the base", ""]
    if not base.get("available"):
        level = "ERROR" if base.get("on_unavailable") == "error" else "Warning"
        out.append(f"> **{level}**: no baseline: {md_text(str(base.get('why_not', '')))}")
        return "\n".join(out)
    if base.get("source") == "file":
        where = f"from {md_code(str(base.get('file', '')))}"
    else:
        where = f"the merge base with {md_code(str(base.get('ref', '')))}, traced in this job"
    commit = base.get("commit")
    line = f"Baseline: {where}"
    if commit:
        line += f", commit {md_code(str(commit)[:12])}"
    if base.get("cost_seconds") is not None:
        line += f"; it cost {base['cost_seconds']:.1f} s"
        if base.get("cached_build"):
            line += " (build reused)"
    out.append(line + ".")
    env = base.get("environment") or {}
    if env:
        out.append(
            f"Base environment: strace {md_text(str(env.get('strace')))}, Linux "
            f"{md_text(str(env.get('kernel')))} {md_text(str(env.get('arch', '')))}."
        )
    if base.get("environment_differences"):
        out += [
            "",
            "> **Warning**: the baseline ran in another environment ("
            + md_text("; ".join(base["environment_differences"]))
            + "): baseline verdicts are shown as WARN at most.",
        ]
    deltas = r.get("deltas", [])
    moved = [d for d in deltas if d.get("moved")]
    out.append("")
    if not moved:
        out.append("No metric moved.")
        return "\n".join(out)

    def weight(d: dict[str, Any]) -> float:
        if d.get("pct") is not None:
            return abs(float(d["pct"]))
        return float("inf")

    moved.sort(key=lambda d: (-weight(d), d["metric"]))
    rows = [
        [md_code(d["metric"]), num(d["base"]), num(d["head"]), _signed(d["delta"], d.get("pct"))]
        for d in moved[:MAX_DELTA_ROWS]
    ]
    out.append(f"{len(moved)} metric(s) moved:")
    out += ["", _table(["Metric", "Base", "Head", "Change"], rows)]
    if len(moved) > MAX_DELTA_ROWS:
        out += ["", f"{len(moved) - MAX_DELTA_ROWS} more in results.json."]
    return "\n".join(out)


def _repeats(r: dict[str, Any]) -> str:
    rep = (r.get("details") or {}).get("repeats")
    if not rep:
        return ""
    out = [
        "### Repeated runs",
        "",
        f"The scenario was traced {rep['count']} times; metrics show the median.",
    ]
    varied = rep.get("varied") or {}
    if not varied:
        out += ["", "No metric varied between the runs."]
        return "\n".join(out)
    rows = [
        [md_code(name), num(v["min"]), num(v["median"]), num(v["max"])]
        for name, v in sorted(varied.items())[:MAX_DELTA_ROWS]
    ]
    out += [
        "",
        f"{len(varied)} metric(s) varied:",
        "",
        _table(["Metric", "Min", "Median", "Max"], rows),
    ]
    return "\n".join(out)


def _summary(r: dict[str, Any], max_rows: int | None = None) -> str:
    rules = r.get("rules", [])
    shown = _shown_rules(rules, max_rows)
    out = ["### Summary", ""]
    if shown:
        out.append(_table(["Rule", "Metric", "Value", "Threshold", "Status"],
                          [_rule_row(x) for x in shown]))  # fmt: skip
    else:
        out.append("The policy has no rules.")
    out += _rows_left_out(len(rules) - len(shown))
    for x in shown:
        if x["status"] == "ERROR":
            out.append(f"\n{md_code(x['id'])}: {md_text(x['message'])}")
    return "\n".join(out)


def _rows_left_out(n: int) -> list[str]:
    if n <= 0:
        return []
    return ["", f"{n} more rule(s) left out to fit GitHub's size limit; see the full report."]


SECTIONS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("header", _header),
    ("changes", _changes),
    ("repeats", _repeats),
    ("io_uring", _io_uring),
    ("io_uring_ops", _io_uring_ops),
    ("metadata", _metadata),
    ("per_file", _per_file),
    ("file_ops", _file_ops),
    ("preservation", _preservation),
    ("mkdir", _mkdir),
    ("symlinks", _symlinks),
    ("traversal", _traversal),
    ("unexpected", _unexpected),
    ("inventory", _inventory),
    ("security", _security),
    ("recommendations", _recommendations),
    ("summary", _summary),
]
# Sections kept whatever the size budget: the verdict and its table.
KEEP = ("header", "summary")


def sections(r: dict[str, Any]) -> list[Section]:
    if is_merged(r):
        return _merged_sections(r)
    if not r.get("metrics"):
        # Nothing was measured (the build failed, the input was not strace output):
        # tables of zeros would read as measurements. The verdict and its cause only.
        return [(key, text) for key, fn in SECTIONS if key in KEEP and (text := fn(r))]
    return [(key, text) for key, fn in SECTIONS if (text := fn(r))]


# -- merged results (one report for several scenarios) -------------------------------------------


def is_merged(r: dict[str, Any]) -> bool:
    return isinstance(r.get("scenarios"), list)


def _merged_header(r: dict[str, Any]) -> str:
    status = r.get("status", "ERROR")
    scenarios = r["scenarios"]
    out = [f"## syscall-gate: {STATUS_WORDS.get(status, status)} · {len(scenarios)} scenarios",
           ""]  # fmt: skip
    rows = []
    for s in scenarios:
        counts = s.get("summary", {})
        tally = ", ".join(f"{counts[k]} {k}" for k in ("PASS", "WARN", "FAIL", "ERROR")
                          if counts.get(k))  # fmt: skip
        st = s.get("status", "ERROR")
        rows.append([md_code(s["scenario"]["id"]), STATUS_WORDS.get(st, st), tally or "none"])
    out.append(_table(["Scenario", "Status", "Rules"], rows))
    problems = r.get("problems", [])
    if problems:
        out.append("")
        for p in problems:
            label = "ERROR" if p.get("severity") == "error" else "Warning"
            where = md_code(p["scenario"]) + " " if p.get("scenario") else ""
            out.append(f"> **{label}** {where}({md_code(p.get('code', ''))}): "
                       f"{md_text(p['message'])}")  # fmt: skip
            out.append(">")
        out.pop()
    return "\n".join(out)


def _merged_summary(r: dict[str, Any], max_rows: int | None = None) -> str:
    rules = r.get("rules", [])
    shown = _shown_rules(rules, max_rows)
    out = ["### Summary", ""]
    if shown:
        out.append(_table(["Scenario", "Rule", "Metric", "Value", "Threshold", "Status"],
                          [[md_code(x["scenario"]), *_rule_row(x)] for x in shown]))  # fmt: skip
    else:
        out.append("No scenario has rules.")
    out += _rows_left_out(len(rules) - len(shown))
    for x in shown:
        if x["status"] == "ERROR":
            out.append(f"\n{md_code(x['scenario'])} {md_code(x['id'])}: {md_text(x['message'])}")
    return "\n".join(out)


def _merged_sections(r: dict[str, Any]) -> list[Section]:
    out: list[Section] = [("header", _merged_header(r)), ("summary", _merged_summary(r))]
    for i, s in enumerate(r["scenarios"]):
        # The merged table above already holds each scenario's summary rows.
        out += [(f"{i}:{key}", md) for key, md in sections(s) if key != "summary"]
    return out


def _summary_at_most(r: dict[str, Any], max_rows: int) -> str:
    return _merged_summary(r, max_rows) if is_merged(r) else _summary(r, max_rows)


def _footer(r: dict[str, Any]) -> str:
    notes = r.get("notes", [])
    out = []
    if notes:
        out.append("Notes:\n\n" + "\n".join(f"- {md_text(n)}" for n in notes))
    digest = (r.get("policy") or {}).get("digest")
    line = f"<sub>syscall-gate {md_text(str(r.get('tool', {}).get('version', '')))}"
    if digest:
        line += f" · policy {md_text(str(digest)[:19])}"
    out.append(line + "</sub>")
    return "\n\n".join(out)


def utf8_size(text: str) -> int:
    """Size in UTF-8 bytes (GitHub counts check-run summaries and step summaries in bytes)."""
    return len(text.encode("utf-8", errors="replace"))


def render(
    r: dict[str, Any],
    *,
    max_chars: int | None = None,
    full_report_url: str | None = None,
    marker: str | None = None,
    size: Callable[[str], int] = len,
) -> str:
    """The report; with max_chars, sections are dropped from the bottom (never the header
    or the summary table) until it fits, and a link to the full report is added.

    ``max_chars`` is measured by ``size`` (characters by default; pass :func:`utf8_size` for
    a budget in bytes). When even the header and the summary table are too long, the table
    keeps its worst rows; as a last resort the text is cut.
    """
    parts = sections(r)
    footer = _footer(r)
    prefix = f"{marker}\n" if marker else ""
    where = (f"[the full report]({full_report_url})" if full_report_url
             else "the full report (report.md in the run's artifact)")  # fmt: skip

    def join(ps: list[Section], dropped: int) -> str:
        body = "\n\n".join(md for _, md in ps)
        tail = footer
        if dropped:
            tail = (f"{dropped} section(s) left out to fit GitHub's size limit; see {where}."
                    f"\n\n{footer}")  # fmt: skip
        return f"{prefix}{body}\n\n{tail}\n"

    text = join(parts, 0)
    if max_chars is None or size(text) <= max_chars:
        return text
    kept = list(parts)
    dropped = 0
    for key, _ in reversed(parts):
        if key in KEEP:
            continue
        kept = [p for p in kept if p[0] != key]
        dropped += 1
        text = join(kept, dropped)
        if size(text) <= max_chars:
            return text
    # Header + summary are still too long (thousands of rules): keep the worst rows that fit.
    dropped = max(dropped, 1)

    def with_rows(n: int) -> str:
        return join([(k, _summary_at_most(r, n) if k == "summary" else md) for k, md in kept],
                    dropped)  # fmt: skip

    # A table row takes more than 20 characters: no need to try more rows than that allows.
    lo, hi = 0, min(len(r.get("rules", [])), max_chars // 20)
    while lo < hi:  # the largest row count that fits
        mid = (lo + hi + 1) // 2
        if size(with_rows(mid)) <= max_chars:
            lo = mid
        else:
            hi = mid - 1
    text = with_rows(lo)
    if size(text) <= max_chars:
        return text
    # Not even the header fits (a huge problem message): cut hard.
    note = f"\n\n(report cut to fit GitHub's size limit; see {where})\n"
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(text[:mid]) + size(note) <= max_chars:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + note
