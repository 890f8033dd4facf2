"""Lazy helpers over strace's argument text.

The parser keeps a call's arguments as the raw text strace printed. Metrics that
need an argument split it here, on demand, so the hot loop never pays for it.
"""

from __future__ import annotations

import re

# C-style escapes strace uses in quoted strings and in -y path decorations:
# \n \t \r \v \f \\ \" and octal (\1, \74, \303) or, with -x/-xx, \xHH.
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{2})|(.))", re.S)
_SIMPLE = {
    b"n": b"\n",
    b"t": b"\t",
    b"r": b"\r",
    b"v": b"\v",
    b"f": b"\f",
    b"a": b"\a",
    b"b": b"\b",
    b"e": b"\x1b",
    b"\\": b"\\",
    b'"': b'"',
    b"'": b"'",
    b"?": b"?",
}


def _unescape_match(m: re.Match[bytes]) -> bytes:
    octal, hexa, other = m.groups()
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    if hexa is not None:
        return bytes((int(hexa, 16),))
    return _SIMPLE.get(other, b"\\" + other)


def unescape(text: str) -> bytes:
    """Undo strace's escaping; the result is the raw bytes the kernel saw."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\\" not in raw:
        return raw
    return _ESCAPE.sub(_unescape_match, raw)


def unescape_path(text: str) -> str:
    """Unescape a path and return it as a str the way os.fsdecode would."""
    return unescape(text).decode("utf-8", "surrogateescape")


# How an absolute path starts in a quoted string or a decoration: "/" as is,
# or "\x2f" under -xx (and -x when the string holds a non-printable byte).
ABSOLUTE_STARTS = ("/", "\\x2f")


def is_absolute(text: str) -> bool:
    """Whether escaped path text (a decoration, a string's content) starts with '/'."""
    return text.startswith(ABSOLUTE_STARTS)


# What the splitter must see in an argument list: strings (commas and
# brackets inside them do not count), -y decorations (their own grammar:
# quotes are escaped, "[...]" may hold "->", and -yy nests one "<...>"),
# -X verbose comments, brackets and commas. Everything else is skipped by the
# regex engine, so a typical call costs a handful of Python steps.
_TOKEN = re.compile(
    r"""
      "[^"\\]*(?:\\.[^"\\]*)*"                         # quoted string ("..."... when truncated)
    | <[^<>\\\[\]]*(?:(?:\\.|\[[^\]]*\]|<[^<>]*>)[^<>\\\[\]]*)*>  # -y decoration
    | /\*.*?\*/                                         # -X verbose comment
    | ([()\[\]{},])
    """,
    re.X | re.S,
)
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def scan(
    text: str, start: int = 0, *, stop_at_close: bool = False, limit: int = 0
) -> tuple[list[str], int]:
    """Split `text` into its top-level comma-separated arguments.

    With stop_at_close, scanning ends at the first unmatched ')' and the index
    of that parenthesis is returned (used to find where a call's arguments end
    when a hostile string makes the fast path ambiguous). Otherwise the index
    returned is len(text), or with `limit` the index after the comma that
    ended the limit-th argument, once that many are found. Unbalanced closers
    are ignored.
    """
    args: list[str] = []
    stack: list[str] = []
    arg_start = start
    for m in _TOKEN.finditer(text, start):
        tok = m.group(1)
        if tok is None:
            continue
        if tok == ",":
            if not stack:
                args.append(text[arg_start : m.start()].strip())
                arg_start = m.end()
                if len(args) == limit:
                    return args, arg_start
        elif tok in "([{":
            stack.append(tok)
        elif stack:
            if stack[-1] == _CLOSERS[tok]:
                stack.pop()
        elif tok == ")" and stop_at_close:
            pos = m.start()
            piece = text[arg_start:pos].strip()
            if piece or args:
                args.append(piece)
            return args, pos
    n = len(text)
    piece = text[arg_start:n].strip()
    if piece or args:
        args.append(piece)
    return args, n


# A top-level argument made only of strings, -y decorations and plain words
# (no brackets, no comments): most leading arguments (dirfd, path, flags)
# look like this, so a metric that needs the first few of them gets them from
# one regex match instead of a walk over every token.
_SIMPLE_ARG = r"""
    (
      (?:"[^"\\]*+(?:\\.[^"\\]*+)*+"(?:\.\.\.)?     # string
        | <[^<>]*+(?:<[^<>]*+>[^<>]*+)*+>              # decoration
        | [^",()\[\]{}<>/\s]++                         # a word
        | \s++(?=[^,\s])                              # blanks inside it
      )++
    )\s*+"""


def _leading_pattern(n: int) -> re.Pattern[str]:
    """The first n simple arguments: each followed by a comma, or the text ends."""
    body = ""
    for _ in range(n - 1):
        body = r"(?:,\s*+" + _SIMPLE_ARG + body + ")?"
    return re.compile(r"\s*+" + _SIMPLE_ARG + body + r"(,|$)", re.X)


_LEADING = {n: _leading_pattern(n) for n in range(1, 5)}


def split_args(text: str, limit: int = 0) -> list[str]:
    """Top-level arguments of a call, e.g. 'AT_FDCWD</d>, "a, b", O_RDONLY' -> 3 items.

    With `limit`, at most the first `limit` arguments (the rest is not read).
    """
    if 0 < limit <= 4:
        m = _LEADING[limit].match(text)
        if m is not None:
            *found, end = m.groups()
            args = [a for a in found if a is not None]
            # Fewer than asked for is the answer only if the text ended there.
            if len(args) == limit or not end:
                return args
    return scan(text, limit=limit)[0]


_DECORATED = re.compile(r"^(-?\d+|AT_FDCWD)(?:\s*/\*[^*]*\*/)?<(.*)>(\(deleted\))?$", re.S)


def decoration(arg: str) -> tuple[str, str] | None:
    """('3', '/path') for a -y decorated fd argument such as 3</path>, else None.

    The path is returned still escaped; use unescape_path on it.
    AT_FDCWD</cwd> gives ('AT_FDCWD', '/cwd'); -X raw/verbose print AT_FDCWD
    as -100 (with a comment), which is normalised to 'AT_FDCWD'. A file
    unlinked while open reads '/path (deleted)', whether strace printed that
    inside the brackets (older versions) or after them (6.x: 3</path>(deleted)).
    """
    m = _DECORATED.match(arg)
    if m is None:
        return None
    fd = m.group(1)
    if fd == "-100":
        fd = "AT_FDCWD"
    path = m.group(2)
    if m.group(3) is not None:
        path += " (deleted)"
    return fd, path


def string_value(arg: str) -> str | None:
    """The unescaped content of a quoted string argument, or None if not a string.

    A truncated string ("abc"...) returns its visible part; callers that need
    to know use is_truncated.
    """
    if len(arg) < 2 or arg[0] != '"':
        return None
    end = arg.rfind('"')
    if end <= 0:
        return None
    return unescape_path(arg[1:end])


def is_truncated(arg: str) -> bool:
    return arg.endswith('"...')


def fd_number(arg: str) -> int | None:
    """The fd number of an fd argument: '3', '3</p>', 'AT_FDCWD' -> None."""
    head = arg.split("<", 1)[0].split("/*", 1)[0].strip()
    if head.lstrip("-").isdigit():
        value = int(head)
        return None if value == -100 else value
    return None


# AT_FDCWD as -e raw=... prints it: -100 as an unsigned register, 32- or 64-bit wide.
RAW_AT_FDCWD = ("0xffffff9c", "0xffffffffffffff9c")


def is_at_fdcwd(arg: str) -> bool:
    head = arg.split("<", 1)[0].strip()
    return head.startswith("AT_FDCWD") or head.startswith("-100") or head in RAW_AT_FDCWD


_FLAG_TOKEN = re.compile(r"[A-Z_][A-Z0-9_]*|0x[0-9a-fA-F]+|\d+")


def has_flag(arg: str, name: str, value: int) -> bool:
    """Whether a flags argument carries `name`, printed symbolically or raw (-X raw)."""
    if name in arg:
        return name in {t for t in _FLAG_TOKEN.findall(arg)}
    raw = flag_value(arg)
    return raw is not None and bool(raw & value)


def flag_value(arg: str) -> int | None:
    """Numeric value of a flags argument printed raw (-X raw), e.g. '0x1000'."""
    head = arg.split("/*", 1)[0].strip()
    if not head or not (head[0].isdigit() or head[0] in "+-"):
        return None  # symbolic (int() would refuse it, at the cost of an exception)
    try:
        return int(head, 0)
    except ValueError:
        return None
