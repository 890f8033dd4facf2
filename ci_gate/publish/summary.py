"""The job step summary (``GITHUB_STEP_SUMMARY``): a local file, so it works when every API
call fails. GitHub accepts at most 1 MiB per step; what is already in the file counts."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._text import STEP_SUMMARY_MAX_BYTES, to_utf8, truncate_utf8


@dataclass(frozen=True)
class SummaryResult:
    written: bool
    truncated: bool = False
    bytes_written: int = 0
    reason: str = ""


def append_step_summary(
    path: str | os.PathLike[str] | None,
    markdown: str,
    *,
    max_bytes: int = STEP_SUMMARY_MAX_BYTES,
) -> SummaryResult:
    """Append ``markdown`` (plus a final newline) to the step summary file.

    Returns ``written=False`` when no path is set or no room is left. The text is cut at a
    UTF-8 character boundary, with a note, to keep the file within ``max_bytes``.
    ``OSError`` propagates.
    """
    if not path:
        return SummaryResult(False, reason="GITHUB_STEP_SUMMARY is not set")
    try:
        used = os.path.getsize(path)
    except FileNotFoundError:
        used = 0
    budget = max_bytes - used
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    note = (
        "\n\n> **Note:** syscall-gate truncated this summary to stay within GitHub's "
        "1 MiB step-summary limit.\n"
    )
    if budget < len(to_utf8(note)) and len(to_utf8(text)) > budget:
        return SummaryResult(False, reason=f"step summary already holds {used} bytes")
    text, truncated = truncate_utf8(text, budget, note)
    data = to_utf8(text)
    with open(path, "ab") as fh:
        fh.write(data)
    return SummaryResult(True, truncated, len(data))
