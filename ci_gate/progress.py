"""Progress of long steps: a live line on a terminal, a log line now and then in CI.

A step (build, fixture, tracing, analysis) that lasts is shown while it runs:
on a terminal (stderr is a tty) one line rewritten twice a second; elsewhere
(CI logs) one plain line every `every` seconds, and none at all for a step
shorter than that. What is shown comes from a callable the step keeps true
(files made, bytes traced, bytes analysed), read from a background thread.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

# CI logs: not too chatty.
LOG_EVERY = 15.0
TTY_EVERY = 0.5


class Counter:
    """A number a step increments and the progress line reads (no lock: one writer)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def file_size(path: os.PathLike[str] | str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def mib(n: int) -> str:
    return f"{n / 1024**2:,.1f} MiB"


class Reading:
    """How far a reader has got through files read one after another (read from another
    thread: the offset of the open file, plus the sizes of the files before it)."""

    __slots__ = ("base", "fd")

    def __init__(self) -> None:
        self.fd = -1
        self.base = 0

    def done(self) -> int:
        fd = self.fd
        if fd < 0:
            return self.base
        try:
            return self.base + os.lseek(fd, 0, os.SEEK_CUR)
        except OSError:
            return self.base


@contextmanager
def shown(
    label: str,
    status: Callable[[], str] | None = None,
    *,
    log: Callable[[str], None] | None = None,
    stream: TextIO | None = None,
    every: float | None = None,
) -> Iterator[None]:
    """Show `label` and `status()` while the block runs (see the module's docstring)."""
    out = stream if stream is not None else sys.stderr
    tty = out.isatty() if hasattr(out, "isatty") else False
    if not tty and log is None:
        yield
        return
    period = every if every is not None else (TTY_EVERY if tty else LOG_EVERY)
    done = threading.Event()
    start = time.monotonic()

    def line() -> str:
        text = f"{label}: {time.monotonic() - start:,.0f}s"
        if status is not None:
            # A progress line never breaks the step it shows.
            with contextlib.suppress(Exception):
                text += ", " + status()
        return text

    def loop() -> None:
        while not done.wait(period):
            if tty:
                out.write("\r\x1b[K" + line())
                out.flush()
            elif log is not None:
                log(line())

    thread = threading.Thread(target=loop, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if tty and time.monotonic() - start >= period:
            out.write("\r\x1b[K")
            out.flush()
