"""Every file of tests/corpus against the events written down beside it.

The sidecars (tests/corpus/*.yml, format in tests/corpus/README.md) were
written by hand from how each file was made: which program, which flags.
Each file is parsed twice: once handing over every call as an event, once
only counting (the fast path the gate uses for calls no metric needs); the
counts must agree.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_gate.errors import MeasureError
from ci_gate.metrics.collector import Collector
from ci_gate.trace import source
from ci_gate.trace.events import Call, ProcessExit, SignalDelivery
from ci_gate.trace.parser import Selection, TraceParser

CORPUS = Path(__file__).parent / "corpus"
SEQUENCES: dict[str, list[str]] = yaml.safe_load((CORPUS / "sequences.yml").read_text())

# Each test runs with the parser's C line filter and without it (conftest.parser_path).
pytestmark = pytest.mark.usefixtures("parser_path")


def _cases() -> list[Path]:
    sidecars = sorted(CORPUS.glob("*.yml")) + sorted((CORPUS / "real").glob("*.yml"))
    return [s for s in sidecars if s.name != "sequences.yml"]


def _trace_of(sidecar: Path) -> Path:
    return sidecar.with_name(sidecar.name[: -len(".yml")])


# -- expected outcomes ----------------------------------------------------------------


def outcome_of(text: str) -> tuple[Any, str | None, bool]:
    """'= 3' -> (3, None, True); '= -1 ENOENT' -> (-1, 'ENOENT', True); '= ?' -> not returned."""
    parts = text.split()
    assert parts[0] == "=", text
    value = parts[1]
    rest = parts[2:]
    if value == "?":
        if not rest:
            return None, None, False
        if rest == ["unavailable"]:
            return None, None, True
        return None, rest[0], True
    if value == "*":
        return "*", None, True
    return int(value, 0), (rest[0] if rest else None), True


def call_outcome(c: Call) -> tuple[Any, str | None, bool]:
    return c.retval, c.errno, c.returned


def same_outcome(expected: tuple[Any, str | None, bool], got: tuple[Any, str | None, bool]) -> bool:
    if expected[0] == "*":
        return got[1] is None and got[2] and got[0] is not None
    return expected == got


def expected_calls(spec: dict[str, Any]) -> list[tuple[int | None, int, str, str]]:
    """(line or None, pid, name, outcome text) for every call the sidecar names."""
    out: list[tuple[int | None, int, str, str]] = []
    if "sequence" in spec:
        pid = spec["pid"]
        event_pid = spec.get("event_pid", pid)
        for item in SEQUENCES[spec["sequence"]]:
            name, outcome = item.split(" = ", 1)
            out.append((None, event_pid, name, "= " + outcome.replace("PID", str(pid))))
    for item in spec.get("calls", []):
        head, outcome = item.split(" = ", 1)
        words = head.split()
        if len(words) == 3:
            out.append((int(words[0]), int(words[1]), words[2], "= " + outcome.split("#")[0]))
        else:
            out.append((None, int(words[0]), words[1], "= " + outcome.split("#")[0]))
    return out


# -- parsing ----------------------------------------------------------------------------


def parse(trace: Path, select: Selection | None = None) -> tuple[list[Any], Any, str | None]:
    parser = TraceParser(select=select)
    events: list[Any] = []
    error = None
    try:
        for ev in source.events(source.resolve(str(trace)), parser):
            events.append(ev)
    except MeasureError as exc:
        error = exc.code
    return events, parser.stats, error


@pytest.mark.parametrize("sidecar", _cases(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file(sidecar: Path) -> None:
    spec = yaml.safe_load(sidecar.read_text())
    assert spec.get("form"), f"{sidecar.name}: say which form the file shows"
    trace = _trace_of(sidecar)
    events, stats, error = parse(trace)
    calls = [e for e in events if type(e) is Call]

    assert error == spec.get("error"), f"error {error!r}"

    # Calls: in start-line order when the sidecar gives lines, else as a multiset.
    want = expected_calls(spec)
    if want:
        if all(line is not None for line, *_ in want) and "sequence" not in spec:
            got = sorted(calls, key=lambda c: (c.lineno, c.pid))
            assert [(c.lineno, c.pid, c.name) for c in got] == [w[:3] for w in want]
            for c, w in zip(got, want, strict=True):
                assert same_outcome(outcome_of(w[3]), call_outcome(c)), (w, c, c.ret)
        elif "sequence" in spec:
            got = sorted(calls, key=lambda c: c.lineno)
            assert [(c.pid, c.name) for c in got] == [(w[1], w[2]) for w in want]
            for c, w in zip(got, want, strict=True):
                assert same_outcome(outcome_of(w[3]), call_outcome(c)), (w, c, c.ret)
        else:
            remaining = list(calls)
            for _, pid, name, outcome in want:
                exp = outcome_of(outcome)
                match = next(
                    (
                        c
                        for c in remaining
                        if (c.pid, c.name) == (pid, name) and same_outcome(exp, call_outcome(c))
                    ),
                    None,
                )
                assert match is not None, f"no call {pid} {name} {outcome} among {remaining}"
                remaining.remove(match)
            assert not remaining, f"calls not in the sidecar: {remaining}"

    for line, checks in (spec.get("at") or {}).items():
        at = [c for c in calls if c.lineno == line]
        assert len(at) == 1, f"one call starts on line {line}: {at}"
        c = at[0]
        for key, value in checks.items():
            assert getattr(c, key) == value, f"line {line} {key}: {getattr(c, key)!r}"

    if "counts" in spec:
        got_counts = {n: t for n, t in stats.tally.items()}
        assert got_counts == {n: list(v) for n, v in spec["counts"].items()}

    exits = []
    for e in events:
        if isinstance(e, ProcessExit):
            if e.signal is None:
                exits.append(f"{e.pid} exited {e.code}")
            else:
                exits.append(f"{e.pid} killed {e.signal}" + (" core" if e.core_dumped else ""))
    if "exits" in spec or "sequence" in spec or "calls" in spec:
        assert exits == spec.get("exits", [])
    if "signals" in spec:
        signals = [f"{e.pid} {e.signal}" for e in events if isinstance(e, SignalDelivery)]
        assert signals == spec["signals"]

    assert [d.lineno for d in stats.damaged_samples] == spec.get("damaged", [])[:10]
    assert stats.damaged == len(spec.get("damaged", []))
    for key, value in (spec.get("stats") or {}).items():
        assert getattr(stats, key) == value, f"stats.{key}: {getattr(stats, key)!r}"

    rows = {r.syscall: [r.calls, r.errors] for r in stats.summary or []}
    if "summary" in spec:
        assert rows == {n: list(v) for n, v in spec["summary"].items()}
    if "summary_rows" in spec:
        assert len(rows) == spec["summary_rows"]
    for n, v in (spec.get("summary_some") or {}).items():
        assert rows[n] == list(v), n
    if "mismatch" in spec:
        collector = Collector()
        parser = TraceParser(select=collector.selection())
        collector.consume(source.events(source.resolve(str(trace)), parser))
        m = collector.result(parser.stats)
        rows = m.details["summary_check"]
        assert sorted(r["syscall"] for r in rows if not r["match"]) == spec["mismatch"]
        assert m.values["trace.summary_mismatches"] == len(spec["mismatch"])


@pytest.mark.parametrize("sidecar", _cases(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_counting_alone_agrees(sidecar: Path) -> None:
    """The fast path (no events wanted) counts exactly what the full parse counts."""
    trace = _trace_of(sidecar)
    _, full, err_full = parse(trace)
    events, fast, err_fast = parse(trace, Selection(()))
    assert not [e for e in events if type(e) is Call]
    assert err_fast == err_full
    assert fast.tally == full.tally
    assert Counter(fast.unreturned_by_name) == Counter(full.unreturned_by_name)
    for key in (
        "split_calls",
        "orphan_resumed",
        "never_resumed",
        "damaged",
        "unreturned",
        "program_output_lines",
        "truncated_last_line",
    ):
        assert getattr(fast, key) == getattr(full, key), key


def test_corpus_has_twenty_forms() -> None:
    forms = [s for s in _cases() if s.parent == CORPUS]
    assert len(forms) >= 20
    real = sorted(p.name for p in (CORPUS / "real").iterdir() if p.name.startswith("0"))
    assert len([r for r in real if not r.endswith(".yml")]) == 9
    for r in real:
        if not r.endswith(".yml"):
            assert (CORPUS / "real" / (r + ".yml")).is_file(), f"{r} has no sidecar"
