"""Decode ftrace's binary ring buffer (per_cpu/cpuN/trace_pipe_raw) for a few known events.

The text output (trace_pipe) prints task names verbatim, and a task may name
itself anything, newlines included, so a line-oriented reader of it can be
misled by the programs it watches. The binary pages carry the same events
with fixed layouts, described by the kernel in events/header_page and each
event's `format` file; this module reads both. The page and event-header
layout is the one libtraceevent's kbuffer.c decodes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Event header: type_len in the low 5 bits, time delta in the upper 27.
_PADDING = 29
_TIME_EXTEND = 30
_TIME_STAMP = 31
_TS_SHIFT = 27
# The page's commit word: data size in the low bits, lost-event flags on top.
_COMMIT_MASK = (1 << 27) - 1
_MISSED_EVENTS = 1 << 31
_MISSED_STORED = 1 << 30

_FIELD = re.compile(
    r"^\s*field:\s*(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"\s*signed:(?P<signed>\d+);"
)
_INT_CODES = {
    (1, 0): "B",
    (1, 1): "b",
    (2, 0): "H",
    (2, 1): "h",
    (4, 0): "I",
    (4, 1): "i",
    (8, 0): "Q",
    (8, 1): "q",
}


class FormatError(Exception):
    """A tracefs format file does not look as this module expects."""


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    signed: bool
    data_loc: bool  # __data_loc: a u32 holding length << 16 | offset of the bytes
    rel_loc: bool  # __rel_loc: the same, offset counted from the end of the field
    array: bool  # a fixed char[N]


@dataclass
class EventFormat:
    system: str
    name: str
    id: int
    fields: dict[str, Field] = field(default_factory=dict)

    @classmethod
    def parse(cls, system: str, name: str, text: str) -> EventFormat:
        m = re.search(r"^ID:\s*(\d+)", text, re.M)
        if m is None:
            raise FormatError(f"{system}/{name}: no ID in the format file")
        fmt = cls(system, name, int(m.group(1)))
        for line in text.splitlines():
            fm = _FIELD.match(line)
            if fm is None:
                continue
            decl = fm.group("decl").strip()
            array = decl.endswith("]")
            fname = re.sub(r"\[[^\]]*\]$", "", decl).split()[-1].lstrip("*")
            fmt.fields[fname] = Field(
                fname,
                int(fm.group("offset")),
                int(fm.group("size")),
                fm.group("signed") == "1",
                decl.startswith("__data_loc"),
                decl.startswith("__rel_loc"),
                array,
            )
        if "common_type" not in fmt.fields or "common_pid" not in fmt.fields:
            raise FormatError(f"{system}/{name}: no common_type/common_pid fields")
        return fmt

    @classmethod
    def load(cls, events_dir: Path, system: str, name: str) -> EventFormat:
        text = (events_dir / system / name / "format").read_text(errors="replace")
        return cls.parse(system, name, text)

    def reader(self, *names: str) -> FieldReader:
        missing = [n for n in names if n not in self.fields]
        if missing:
            raise FormatError(f"{self.system}/{self.name} has no field {', '.join(missing)}")
        return FieldReader([self.fields[n] for n in names])


class FieldReader:
    """Pulls named fields out of an event's payload: ints as ints, strings as str."""

    def __init__(self, fields: list[Field]) -> None:
        self.fields = fields
        self._plan: list[tuple[int, struct.Struct | None, Field]] = []
        for f in fields:
            if f.data_loc or f.rel_loc or f.array:
                self._plan.append((f.offset, None, f))
                continue
            code = _INT_CODES.get((f.size, int(f.signed)))
            if code is None:
                raise FormatError(f"field {f.name}: unsupported size {f.size}")
            self._plan.append((f.offset, struct.Struct("=" + code), f))

    def read(self, payload: bytes) -> list[int | str]:
        out: list[int | str] = []
        for offset, st, f in self._plan:
            if st is not None:
                out.append(st.unpack_from(payload, offset)[0])
                continue
            if f.array:
                raw = payload[offset : offset + f.size]
            else:
                (loc,) = struct.unpack_from("=I", payload, offset)
                start, length = loc & 0xFFFF, loc >> 16
                if f.rel_loc:
                    start += offset + f.size
                raw = payload[start : start + length]
            out.append(raw.split(b"\0", 1)[0].decode("utf-8", "replace"))
        return out


@dataclass(frozen=True)
class PageLayout:
    """Where a ring-buffer page keeps its timestamp, commit word and data (events/header_page)."""

    ts_offset: int = 0
    commit_offset: int = 8
    commit_size: int = 8
    data_offset: int = 16

    @classmethod
    def parse(cls, text: str) -> PageLayout:
        found: dict[str, tuple[int, int]] = {}
        for line in text.splitlines():
            fm = _FIELD.match(line)
            if fm is not None:
                name = fm.group("decl").split()[-1]
                found.setdefault(name, (int(fm.group("offset")), int(fm.group("size"))))
        try:
            return cls(
                found["timestamp"][0], found["commit"][0], found["commit"][1], found["data"][0]
            )
        except KeyError as exc:
            raise FormatError(f"events/header_page lacks the field {exc}") from exc


@dataclass
class PageStats:
    pages: int = 0
    events: int = 0
    missed_pages: int = 0  # pages flagged "events were lost before this page"
    missed_events: int = 0  # the count, where the kernel stored it


def events(page: bytes, layout: PageLayout, stats: PageStats) -> Iterator[tuple[int, bytes]]:
    """(timestamp, payload) of each event on one page, in order."""
    ts = struct.unpack_from("=Q", page, layout.ts_offset)[0]
    code = "=Q" if layout.commit_size == 8 else "=I"
    commit = struct.unpack_from(code, page, layout.commit_offset)[0]
    size = commit & _COMMIT_MASK
    start = layout.data_offset
    end = min(start + size, len(page))
    stats.pages += 1
    if commit & _MISSED_EVENTS:
        stats.missed_pages += 1
        if commit & _MISSED_STORED and end + 8 <= len(page):
            stats.missed_events += struct.unpack_from("=Q", page, end)[0]
    u32 = struct.Struct("=I")
    pos = start
    while pos + 4 <= end:
        head = u32.unpack_from(page, pos)[0]
        type_len = head & 0x1F
        delta = head >> 5
        if type_len == _PADDING:
            if delta == 0:
                break  # the rest of the page is empty
            length = u32.unpack_from(page, pos + 4)[0]
            ts += delta
            pos += 4 + length
            continue
        if type_len == _TIME_EXTEND:
            ts += (u32.unpack_from(page, pos + 4)[0] << _TS_SHIFT) + delta
            pos += 8
            continue
        if type_len == _TIME_STAMP:
            ts = (u32.unpack_from(page, pos + 4)[0] << _TS_SHIFT) | delta
            pos += 8
            continue
        if type_len == 0:
            length = u32.unpack_from(page, pos + 4)[0] - 4
            length = (length + 3) & ~3
            data = pos + 8
        else:
            length = type_len * 4
            data = pos + 4
        ts += delta
        stats.events += 1
        yield ts, page[data : data + length]
        pos = data + length
