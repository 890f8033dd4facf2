"""The step summary file and the text truncation helpers."""

from __future__ import annotations

from pathlib import Path

from ci_gate.publish import STEP_SUMMARY_MAX_BYTES, append_step_summary
from ci_gate.publish._text import truncate_chars, truncate_utf8


def test_appends_markdown(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("# earlier step output\n", encoding="utf-8")
    res = append_step_summary(path, "## syscall-gate: PASS")
    assert res.written and not res.truncated
    assert path.read_text(encoding="utf-8") == "# earlier step output\n## syscall-gate: PASS\n"


def test_unset_path_is_not_an_error() -> None:
    res = append_step_summary(None, "x")
    assert not res.written and "not set" in res.reason


def test_truncated_to_one_mebibyte_at_a_utf8_boundary(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_bytes(b"x" * 1000)
    body = "```text\n" + "ü" * STEP_SUMMARY_MAX_BYTES  # 2 bytes each: 2 MiB
    res = append_step_summary(path, body)
    assert res.written and res.truncated
    data = path.read_bytes()
    assert len(data) <= STEP_SUMMARY_MAX_BYTES
    text = data.decode("utf-8")  # strict: no split character
    assert "truncated" in text
    assert text.count("```") % 2 == 0


def test_full_file_gets_nothing_more(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_bytes(b"x" * STEP_SUMMARY_MAX_BYTES)
    res = append_step_summary(path, "more")
    assert not res.written
    assert path.stat().st_size == STEP_SUMMARY_MAX_BYTES


def test_truncate_utf8_never_splits_a_character() -> None:
    for limit in range(20, 60):
        out, cut = truncate_utf8("😀" * 40, limit, "[cut]")
        assert cut
        assert len(out.encode("utf-8")) <= limit
        assert out.endswith("[cut]")
        out.encode("utf-8").decode("utf-8")
    assert truncate_utf8("short", 100, "[cut]") == ("short", False)
    # Lone surrogates (not encodable as UTF-8) are replaced, not crashed on.
    assert truncate_utf8("a\ud800b", 100, "") == ("a?b", False)


def test_truncate_chars() -> None:
    out, cut = truncate_chars("abcdefghij", 8, "..")
    assert (out, cut) == ("abcdef..", True)
    assert truncate_chars("abc", 3, "..") == ("abc", False)
