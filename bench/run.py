"""`make bench`: parse throughput and peak memory on big generated traces.

Generates (once, cached in the work directory) traces of at least 200 MB from
real strace output (bench/gen_trace.py), then runs each workload in a child
process several times and reports MB/s (median and range) and the child's
peak RSS, both measured by /usr/bin/time:

  grep -c .                    the floor: reading the file and finding lines
  parse (count only)           bench/parse_only.py: the parser's fast path
  parse (every call an event)  bench/parse_only.py --events
  analyze                      syscall-gate analyze TRACE (counts, io_uring, path classes,
                               report); the metrics the default policy needs
  analyze --root SRC --root DST   plus scenario attribution through -y decorations

Usage: python bench/run.py [--work DIR] [--runs N] [--mb N] [--mix gate,short]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def measure(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, by /usr/bin/time) of one child process.

    (wait4's rusage of a child forked from this process would count this
    process's own pages, copied at fork, in the child's peak.)
    """
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%M", *argv],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - start
        # analyze exits 1 when a rule fails and 3 when it measured nothing; neither here.
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace')[-2000:]}"
            )
        rss = report.read().split()[-1]
    return elapsed, int(rss)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "syscall-gate-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=210)
    ap.add_argument("--mix", default="gate,short")
    args = ap.parse_args()
    work: Path = args.work
    mixes = args.mix.split(",")
    if not all((work / f"{m}.trace").is_file() for m in mixes):
        gen = [sys.executable, str(HERE / "gen_trace.py"), str(work), "--mb", str(args.mb)]
        subprocess.run(gen, check=True)
    src, dst = (work / "roots").read_text().split()
    py = sys.executable
    gate = [py, "-m", "ci_gate", "analyze"]
    out = work / "out"
    load = os.getloadavg()[0]
    print(
        f"# {os.cpu_count()} cores, load average {load:.2f} at the start; {args.runs} runs each\n"
    )
    print("| trace | workload | MB/s (median, min-max) | lines/s (median) | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for mix in mixes:
        trace = work / f"{mix}.trace"
        size = trace.stat().st_size
        with trace.open("rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
        workloads = [
            ("grep -c . (floor)", ["grep", "-c", ".", str(trace)]),
            ("parse (count only)", [py, str(HERE / "parse_only.py"), str(trace)]),
            ("parse (every call an event)", [py, str(HERE / "parse_only.py"), str(trace), "-e"]),
            ("analyze", [*gate, str(trace), "--out", str(out)]),
            (
                "analyze --root SRC --root DST",
                [*gate, str(trace), "--out", str(out), "--root", src, "--root", dst],
            ),
        ]
        for label, argv in workloads:
            times, rss = [], []
            for _ in range(args.runs):
                t, r = measure(argv)
                times.append(t)
                rss.append(r)
            speeds = sorted(size / t / 1e6 for t in times)
            med = statistics.median(speeds)
            print(
                f"| {mix} ({size / 1e6:.0f} MB, {size / lines:.0f} B/line) | {label} | "
                f"{med:.0f} ({speeds[0]:.0f}-{speeds[-1]:.0f}) | "
                f"{lines / statistics.median(times) / 1e6:.2f} M | {max(rss) / 1024:.0f} |",
                flush=True,
            )
    shutil.rmtree(out, ignore_errors=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
