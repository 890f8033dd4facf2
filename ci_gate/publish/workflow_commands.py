"""Workflow commands (``::warning::``) that we write ourselves, with untrusted text escaped.

The runner reads a command from any log line starting with ``::``. Escaping the message
the way ``@actions/core`` does (``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``; in
properties also ``:`` -> ``%3A`` and ``,`` -> ``%2C``) keeps it on one line, so text from a
trace, an artifact or an API answer can never start a command of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from ci_gate.report.escape import printable


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str) -> str:
    """``::name k=v,...::message``, every part escaped. ``name`` is ours, never untrusted."""
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


class WarningLog:
    """Prints each distinct warning once as a ``::warning::`` line (and notes as plain,
    command-proof lines), after removing the token from it."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        redact: Callable[[str], str] | None = None,
        title: str = "syscall-gate",
    ) -> None:
        self._write = write
        self._redact = redact or (lambda s: s)
        self._title = title
        self._seen: set[str] = set()
        self.warnings: list[str] = []

    def set_redact(self, redact: Callable[[str], str]) -> None:
        self._redact = redact

    def warning(self, message: str) -> None:
        # Control and bidi characters shown as escapes; the length kept reasonable for a log.
        text = printable(self._redact(message).replace("\n", " "), 4000)
        if text in self._seen:
            return
        self._seen.add(text)
        self.warnings.append(text)
        self._write(command("warning", text, title=self._title))

    def note(self, message: str) -> None:
        text = printable(self._redact(message), 2000)
        # printable() turned every newline into "\n", so this is one line not starting "::".
        self._write(f"syscall-gate: {text}")
