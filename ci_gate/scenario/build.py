"""Build the target with the policy's build command before tracing it."""

from __future__ import annotations

from pathlib import Path

from ci_gate.errors import MeasureError
from ci_gate.scenario import process
from ci_gate.scenario.tracer import tail


def build(command: str, *, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> float:
    """Run `command` with /bin/sh -c (the documented exception: it is the user's shell
    command, run as written). Returns the elapsed seconds; raises MeasureError with
    the tail of the build log when it fails or runs past the deadline."""
    done = process.run(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=log.with_suffix(".stderr"),
        timeout=timeout,
    )
    # One log, in the order a user expects: stdout then stderr.
    err_part = log.with_suffix(".stderr")
    if err_part.exists():
        with open(log, "ab") as out, open(err_part, "rb") as err:
            out.write(err.read())
        err_part.unlink()
    if done.timed_out:
        raise MeasureError(
            "build-timeout",
            f"the build command ran past its {timeout:g}s deadline and was killed; "
            f"the tail of {log} follows",
            tail(log),
        )
    if done.returncode != 0:
        raise MeasureError(
            "build-failed",
            f"the build command failed (exit status {done.returncode}); the tail of {log} follows",
            tail(log),
        )
    return done.elapsed
