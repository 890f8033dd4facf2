"""Byte sizes as policies and the command line write them: 4096, "4KiB", "1.5 MB"."""

from __future__ import annotations

import re

BYTE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)")


def parse_bytes(text: str) -> int:
    """Bytes from a plain integer or a number with a unit; ValueError names the valid forms."""
    text = text.strip()
    if text.isdecimal():
        return int(text)
    m = _SIZE.fullmatch(text)
    if m is None or m.group(2) not in BYTE_UNITS:
        raise ValueError(
            f"{text!r} is not a size: write bytes (1048576) or a number with one of "
            f"{', '.join(BYTE_UNITS)} (16GiB, 500 MB)"
        )
    return int(float(m.group(1)) * BYTE_UNITS[m.group(2)])
