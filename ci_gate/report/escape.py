"""Make untrusted strings inert in Markdown, HTML and workflow logs.

File names in a trace come from the pull request being tested. They reach the
PR comment, the step summary, the check run and the job log; none of them may
render as HTML, a link, a mention, an issue reference, a table break or a
workflow command.
"""

from __future__ import annotations

import re
import secrets
import shlex

MAX_SHOWN = 160

# Characters that change how text is laid out or read: controls, bidi
# overrides and isolates, zero-width characters, line/paragraph separators.
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _visible(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}")
    return f"\\u{code:04x}"


def shell_join(argv: list[str]) -> str:
    """A command line a POSIX shell (bash, zsh, ksh) runs as these exact words.

    Words with invisible characters (a newline in a path, a bidi override, a byte
    that is not UTF-8) are written in $'...' quoting with escapes, so what is shown
    stays on one line, reads as it is, and pastes back as the same bytes.
    """
    return " ".join(_shell_word(a) for a in argv)


def _shell_word(arg: str) -> str:
    if _INVISIBLE.search(arg) is None:
        return shlex.quote(arg)
    body = _INVISIBLE.sub(lambda m: _visible(m.group()), arg.replace("\\", "\\\\"))
    return "$'" + body.replace("'", "\\'") + "'"


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """Control, bidi and invalid characters shown as escapes; long text shortened."""
    out = _INVISIBLE.sub(lambda m: _visible(m.group()), text)
    if len(out) > limit:
        # Keep both ends: a long path's start says where, its end says which file.
        head = (limit - 1) // 3
        out = out[:head] + "…" + out[len(out) - (limit - 1 - head) :]
    return out


def md_code(text: str, limit: int = MAX_SHOWN) -> str:
    """Untrusted text as an inline code span that is safe inside a table cell.

    Code spans never render HTML, links, mentions or issue references; the
    fence is longer than any backtick run inside; '|' is escaped because GFM
    splits table cells on it even inside code spans.
    """
    shown = printable(text, limit).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or not shown.strip() else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def md_path(path: str, limit: int = MAX_SHOWN) -> str:
    """A file name as a code span, its backslashes doubled: a name holding the four
    characters `\xff` must not read like one holding the byte 0xff (shown `\xff`)."""
    return md_code(path.replace("\\", "\\\\"), limit)


# What could change meaning rather than style: code spans, links and images
# ('[' and ']' escaped means no '](' can form), table cells; '<', '>' and '&'
# become entities. Emphasis characters are left alone: at worst they style.
_MD_SPECIAL = re.compile(r"([\\`\[\]|])")


def md_text(text: str, limit: int = 2000) -> str:
    """Untrusted text as plain Markdown text: escaped, with mentions and refs broken."""
    shown = printable(text, limit)
    shown = shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    shown = _MD_SPECIAL.sub(r"\\\1", shown)
    # A zero-width space after @ and # stops GitHub from linking @user and #123.
    shown = shown.replace("@", "@\u200b").replace("#", "#\u200b")
    return shown


def md_fence(text: str, info: str = "") -> str:
    """A fenced block that text cannot close early."""
    longest = max((len(m) for m in re.findall(r"`{3,}|~{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = _INVISIBLE.sub(lambda m: m.group() if m.group() in "\n\t" else _visible(m.group()), text)
    return f"{fence}{info}\n{body.rstrip()}\n{fence}"


def log_safe(text: str) -> str:
    """Text for the job log that the runner cannot read as a workflow command.

    The runner trims leading whitespace and then looks for '::' (and, in the
    legacy form, '##[' anywhere). A zero-width space is not whitespace to it,
    so prefixing one keeps the line readable and inert.
    """
    out = []
    for line in text.split("\n"):
        line = line.replace("##[", "##\u200b[")
        if line.lstrip().startswith("::"):
            line = "\u200b" + line
        out.append(line)
    return "\n".join(out)


class StopCommands:
    """Wrap untrusted output in ::stop-commands:: so the runner ignores commands in it."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)

    def start(self) -> str:
        return f"::stop-commands::{self.token}"

    def end(self) -> str:
        return f"::{self.token}::"
