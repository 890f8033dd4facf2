"""A bug in the gate is ERROR (exit 3), never FAIL (1); its traceback leaks no token."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_gate import cli, pipeline
from ci_gate.errors import EXIT_ERROR

TOKEN = "ghs_Zx81internalErrorTokenValue42"


def test_an_unexpected_exception_exits_3_with_a_redacted_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INPUT_GITHUB-TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom with Authorization: token {TOKEN}\n::error::injected")

    monkeypatch.setattr(pipeline, "analyze", broken)
    trace = tmp_path / "trace.txt"
    trace.write_text("1 close(3) = 0\n")
    rc = cli.main(["analyze", str(trace), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == EXIT_ERROR == 3
    assert TOKEN not in err
    assert "internal error (a bug in syscall-gate" in err
    assert "RuntimeError: boom with Authorization: token ***" in err
    assert "Traceback (most recent call last):" in err
    assert "in broken" in err  # the frame that raised, for the bug report
    # Nothing in it reads as a workflow command.
    assert not any(line.lstrip().startswith("::") for line in err.splitlines())
