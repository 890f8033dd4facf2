"""Argument text: splitting, strings, -y decorations, escapes (lines from tests/corpus)."""

from __future__ import annotations

import pytest

from ci_gate.trace.args import (
    decoration,
    fd_number,
    has_flag,
    is_at_fdcwd,
    is_truncated,
    scan,
    split_args,
    string_value,
    unescape,
    unescape_path,
)

HOSTILE_OPEN = (  # hostile.log, line 16
    'AT_FDCWD</tmp/p/c>, "/tmp/p/corp/we ird \\"q\\" <a>, (b) = 3 \\\\", '
    "O_RDWR|O_CREAT|O_TRUNC, 0600"
)
HOSTILE_WRITE = (  # hostile.log, line 18
    '3</tmp/p/corp/we ird \\"q\\" \\74a\\76, (b) = 3 \\\\>(deleted), "a = b) = 7\\n\\"", 12'
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", []),
        ("3", ["3"]),
        (HOSTILE_OPEN, ['AT_FDCWD</tmp/p/c>', '"/tmp/p/corp/we ird \\"q\\" <a>, (b) = 3 \\\\"',
                        "O_RDWR|O_CREAT|O_TRUNC", "0600"]),
        (HOSTILE_WRITE, ['3</tmp/p/corp/we ird \\"q\\" \\74a\\76, (b) = 3 \\\\>(deleted)',
                         '"a = b) = 7\\n\\""', "12"]),
        # yy.log: a decoration nesting the device numbers
        ('3</dev/null<char 1:3>>, "", 4', ["3</dev/null<char 1:3>>", '""', "4"]),
        # -yy sockets hold "->" inside brackets
        ("3<TCP:[127.0.0.1:22->10.0.0.1:5000]>, 0x7ffd, 4", [
            "3<TCP:[127.0.0.1:22->10.0.0.1:5000]>", "0x7ffd", "4"]),
        # structs, arrays, nested brackets, truncated strings, comments
        ('3, {st_mode=S_IFREG|0644, st_rdev=makedev(0x1, 0x3), ...}, [{fd=3, events=POLLIN}]',
         ["3", "{st_mode=S_IFREG|0644, st_rdev=makedev(0x1, 0x3), ...}",
          "[{fd=3, events=POLLIN}]"]),
        ('3, "\\177ELF\\2\\1\\1\\3"..., 832', ["3", '"\\177ELF\\2\\1\\1\\3"...', "832"]),
        ("-100 /* AT_FDCWD */, \"/x\", 0 /* O_RDONLY */",
         ["-100 /* AT_FDCWD */", '"/x"', "0 /* O_RDONLY */"]),
        ("<... resuming interrupted read ...>", ["<... resuming interrupted read ...>"]),
        ("a,", ["a", ""]),
    ],
)  # fmt: skip
def test_split(text: str, want: list[str]) -> None:
    assert split_args(text) == want
    assert scan(text)[0] == want
    for n in range(1, 6):
        assert split_args(text, n) == want[:n], n


def test_scan_finds_the_closing_parenthesis_past_hostile_strings() -> None:
    text = '1, "a \\"q\\", (p) = 1\\n", 15) = 15'
    args, close = scan(text, stop_at_close=True)
    assert text[close:] == ") = 15"
    assert args == ["1", '"a \\"q\\", (p) = 1\\n"', "15"]


def test_strings_and_escapes() -> None:
    assert string_value('"/tmp/p/corp/we ird \\"q\\" <a>, (b) = 3 \\\\"') == (
        '/tmp/p/corp/we ird "q" <a>, (b) = 3 \\'
    )
    assert unescape("\\x61\\x20\\x22\\t\\0\\303\\251") == b'a "\t\x00\xc3\xa9'
    assert unescape_path("\\303\\251t\\303\\251") == "été"
    # Bytes that are not UTF-8 come back as surrogates, as os.fsdecode gives them.
    assert unescape_path("\\377") == "\udcff"
    assert string_value("NULL") is None
    assert is_truncated('"abc"...') and not is_truncated('"abc"')


def test_decorations() -> None:
    fd, path = decoration(HOSTILE_WRITE.split(", ")[0] + ", (b) = 3 \\\\>(deleted)") or ("", "")
    assert (fd, unescape_path(path)) == ("3", '/tmp/p/corp/we ird "q" <a>, (b) = 3 \\ (deleted)')
    assert decoration("3</tmp/x (deleted)>") == ("3", "/tmp/x (deleted)")
    assert decoration("AT_FDCWD</tmp/p/c>") == ("AT_FDCWD", "/tmp/p/c")
    assert decoration("-100 /* AT_FDCWD */</tmp>") == ("AT_FDCWD", "/tmp")
    assert decoration("3") is None
    assert fd_number("3</dev/null<char 1:3>>") == 3
    assert fd_number("AT_FDCWD") is None and fd_number("-100") is None
    assert is_at_fdcwd("AT_FDCWD</x>") and is_at_fdcwd("-100 /* AT_FDCWD */")


def test_flags_symbolic_and_raw() -> None:
    assert has_flag("O_RDONLY|O_DIRECTORY|O_CLOEXEC", "O_DIRECTORY", 0o200000)
    assert not has_flag("O_RDONLY|O_DIRECTORY_X", "O_DIRECTORY", 0o200000)
    assert has_flag("0x10000", "O_DIRECTORY", 0o200000)
    assert has_flag("0x1 /* IORING_ENTER_GETEVENTS */", "IORING_ENTER_GETEVENTS", 1)
