"""Size limits of GitHub's text channels and truncation that never splits a character."""

from __future__ import annotations

import re
from typing import Final

#: Maximum length of an issue / pull-request comment body, in characters.
COMMENT_MAX_CHARS: Final = 65536
#: Maximum size of a check run's ``output.summary`` (GitHub counts 65,535 characters; bytes
#: are used here, which is never more than characters, so the limit holds either way).
CHECK_SUMMARY_MAX_BYTES: Final = 65535
#: Maximum size of the job step summary file (``GITHUB_STEP_SUMMARY``), per step.
STEP_SUMMARY_MAX_BYTES: Final = 1024 * 1024
#: Maximum length of a commit status description, in characters.
STATUS_DESCRIPTION_MAX_CHARS: Final = 140
#: Check run output title: GitHub documents no limit; keep it to one short line.
CHECK_TITLE_MAX_CHARS: Final = 255

_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)


def to_utf8(text: str) -> bytes:
    """Encode, replacing lone surrogates (which are not valid UTF-8) with `?`."""
    return text.encode("utf-8", errors="replace")


def _fence_closer(text: str) -> str:
    """The line needed to close a Markdown code fence left open by a cut, or ''."""
    opened: str | None = None
    for match in _FENCE.finditer(text):
        token = match.group(1)
        if opened is None:
            opened = token
        elif token == opened:
            opened = None
    return "" if opened is None else f"\n{opened}\n"


def _cut_bytes(data: bytes, limit: int) -> str:
    # Dropping an incomplete trailing sequence is all 'ignore' does on a prefix of valid UTF-8.
    return data[: max(limit, 0)].decode("utf-8", errors="ignore")


def truncate_utf8(text: str, max_bytes: int, note: str) -> tuple[str, bool]:
    """Return ``(text, False)`` if it fits in ``max_bytes`` UTF-8 bytes, else a prefix cut at a
    character boundary, an open code fence closed, and ``note`` appended, within the limit."""
    data = to_utf8(text)
    if len(data) <= max_bytes:
        return data.decode("utf-8"), False
    note_size = len(to_utf8(note))
    if note_size >= max_bytes:
        return _cut_bytes(to_utf8(note), max_bytes), True
    head = _cut_bytes(data, max_bytes - note_size)
    closer = _fence_closer(head)
    if closer:
        head = _cut_bytes(data, max_bytes - note_size - len(closer))
        closer = _fence_closer(head)
    return head + closer + note, True


def truncate_chars(text: str, max_chars: int, note: str) -> tuple[str, bool]:
    """Like :func:`truncate_utf8`, counting characters (code points)."""
    if len(text) <= max_chars:
        return text, False
    if len(note) >= max_chars:
        return note[:max_chars], True
    head = text[: max_chars - len(note)]
    closer = _fence_closer(head)
    if closer:
        head = text[: max_chars - len(note) - len(closer)]
        closer = _fence_closer(head)
    return head + closer + note, True


def truncate_plain(text: str, max_chars: int) -> str:
    """One-line text cut to ``max_chars`` with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"
