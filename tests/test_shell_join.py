"""The command shown in the report and the log pastes back into a shell as the same words."""

from __future__ import annotations

import subprocess

import pytest

from ci_gate.report.escape import printable, shell_join

WORDS = [
    ["cp", "-a", "/tmp/plain/src", "/tmp/plain/dst"],
    ["sh", "-c", 'cp -a "$1" "$2"', "sh", "/tmp/a b", "it's"],
    ["cp", "/tmp/sc\nnl/src", "/tmp/tab\there", "/tmp/bidi\u202ename"],
    ["cp", "/tmp/bytes\udcff\udcc1/src", "/tmp/back\\slash'quote\n"],
]


@pytest.mark.parametrize("argv", WORDS)
def test_bash_reads_the_shown_command_back_as_the_same_words(argv: list[str]) -> None:
    shown = shell_join(argv)
    # One line, nothing invisible: the report and the log show it unchanged.
    assert "\n" not in shown and printable(shown, 10**6) == shown
    # bash splits it into the same words, byte for byte (NUL-separated).
    out = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {shown}"], capture_output=True, check=True
    ).stdout
    assert out.split(b"\0")[:-1] == [a.encode("utf-8", "surrogateescape") for a in argv]


def test_file_names_in_the_report_tell_a_byte_from_a_backslash() -> None:
    from ci_gate.report.escape import md_path

    literal, byte = "c\\xff", "c\udcff"  # four characters; 'c' and the byte 0xff
    assert md_path(literal) == "`c\\\\xff`" and md_path(byte) == "`c\\xff`"
    assert md_path("n\\nl") != md_path("n\nl")
    assert md_path("a|b") == "`a\\|b`"  # still safe in a table cell
