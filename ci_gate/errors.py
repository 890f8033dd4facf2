"""Errors that end a run, each with the exit code CI sees.

Exit codes: 0 PASS/WARN, 1 FAIL, 2 bad usage or invalid policy, 3 could not
measure (the run is ERROR and whatever was measured is still reported).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_ERROR = 3


class GateError(Exception):
    exit_code = EXIT_ERROR


class UsageError(GateError):
    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a policy file, printed as FILE:LINE:COL: error: PATH: message."""

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {where}{self.message}"


class PolicyError(GateError):
    exit_code = EXIT_USAGE

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class MeasureError(GateError):
    """The gate could not measure: the run is ERROR (exit 3) with this cause.

    `code` is a stable identifier (e.g. 'strace-missing', 'build-failed') that
    tests and results.json use; `message` says what happened and how to fix it.
    """

    exit_code = EXIT_ERROR

    def __init__(self, code: str, message: str, detail: str | None = None) -> None:
        self.code = code
        self.message = message
        self.detail = detail
        super().__init__(message)
