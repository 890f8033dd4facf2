"""`make bench`: the gate's cost beside strace's, analysis throughput and peak memory.

Gate overhead (`syscall-gate run` beside a bare `strace -f -y -o FILE TARGET` of the
same scenario, build excluded, the two interleaved run by run so that the machine's
load hits both alike): the demo scenario (policies/uring-copy-demo.yml) and `cp -a` of
3,000 small files, with `scenario.tracing: full` and `policy`; the ratio of wall times
per pair, median and range. `--big` adds one 20,000-file run. The bare strace runs
twice per pair: as is, and pinned to one CPU (`taskset -c 0`). On a VM whose idle
vCPUs wake slowly, strace and its tracee ping-ponging across two CPUs is several times
slower than on one, and the gate, busy reading the trace meanwhile, escapes that; the
pinned run is the stricter baseline, so both ratios are shown.

Analysis throughput:

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
                           [--skip overhead|analysis] [--big]
"""

from __future__ import annotations

import argparse
import json
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
            env=child_env(),
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


def child_env() -> dict[str, str]:
    # pip-installed packages carry compiled bytecode; a run must not recompile every module
    # (PYTHONDONTWRITEBYTECODE, set on some machines, would make it do so every time).
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["GITHUB_ACTIONS"] = "false"
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env


def timed(argv: list[str], cwd: Path = REPO) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command; any exit status but 3 is fine."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%M", *argv],
            cwd=cwd,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode not in (0, 1):
            raise SystemExit(
                f"{' '.join(argv)} failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace')[-2000:]}"
            )
        return elapsed, int(report.read().split()[-1])


CP_POLICY = """version: 1
scenario:
  id: {id}
  command: cp -a {{src}} {{dst}}
  fixture: {{files: {files}, file_size: 4KiB, dirs: 2, symlinks: true}}
  verify: tree-equal
  timeout: 1800s
  tracing: {tracing}
rules:
  no-path-statx: {{metric: scenario.statx.path_based, mode: advisory, warn: {{max: 0}}}}
  times-per-file: {{metric: scenario.preserve.times.file, per: file, warn: {{max: 1}}}}
  opens: {{metric: syscall.openat.calls, mode: advisory, warn: {{max: 1000000}}}}
"""


def _stats(values: list[float]) -> str:
    v = sorted(values)
    return f"{statistics.median(v):.2f} ({v[0]:.2f}-{v[-1]:.2f})"


def overhead(work: Path, runs: int, big: bool) -> None:
    """Gate run vs bare strace, interleaved pair by pair."""
    sys.path.insert(0, str(REPO))
    from ci_gate.policy.model import Fixture
    from ci_gate.scenario import fixture

    py = sys.executable
    subprocess.run(["make", "-s", "-C", str(REPO / "examples" / "uring-copy")], check=True)
    copier = str(REPO / "examples" / "uring-copy" / "uring-copy")
    scen = work / "scenarios"
    shutil.rmtree(scen, ignore_errors=True)
    scen.mkdir(parents=True)
    cases: list[tuple[str, Path, list[str], int]] = []
    demo_src = scen / "demo-src"
    fixture.create(demo_src, Fixture(files=3, file_size=5 * 1024**2, dirs=2, symlinks=True))
    cases.append(("demo (uring-copy, 3 x 5 MiB)", REPO / "policies" / "uring-copy-demo.yml",
                  [copier, str(demo_src)], runs))  # fmt: skip
    sizes = [(3000, runs)] + ([(20000, 1)] if big else [])
    for files, n in sizes:
        src = scen / f"src-{files}"
        fixture.create(src, Fixture(files=files, file_size=4096, dirs=2, symlinks=True))
        for tracing in ("full", "policy"):
            pol = scen / f"cp-{files}-{tracing}.yml"
            pol.write_text(CP_POLICY.format(id=f"cp-{files}", files=files, tracing=tracing))
            label = f"cp -a, {files:,} files of 4 KiB, tracing: {tracing}"
            cases.append((label, pol, ["cp", "-a", str(src)], n))
    print("| scenario | runs | bare strace s | bare strace, one CPU s | gate run s "
          "| ratio gate/bare | ratio gate/bare one CPU | gate: fixture s | gate: trace s "
          "| gate: the rest s | gate peak RSS MiB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, pol, target, n in cases:
        bare, gate, ratio, made, traced, rest, rss = [], [], [], [], [], [], []
        pinned, ratio_pinned = [], []
        for i in range(n):
            dst = scen / "dst"
            bare_argv = ["strace", "-f", "-y", "-o", str(scen / "bare.txt"), *target, str(dst)]
            shutil.rmtree(dst, ignore_errors=True)
            t_bare, _ = timed(bare_argv)
            shutil.rmtree(dst, ignore_errors=True)
            t_pinned, _ = timed(["taskset", "-c", "0", *bare_argv])
            shutil.rmtree(dst, ignore_errors=True)
            out = scen / f"out-{i}"
            t_gate, r = timed([py, "-m", "ci_gate", "run", "--policy", str(pol), "--out",
                               str(out), "--no-build", "--scratch", str(scen)])  # fmt: skip
            res = json.loads((out / "results.json").read_text())
            if res["status"] == "ERROR":
                raise SystemExit(f"{label}: the gate run was ERROR: {res['problems']}")
            bare.append(t_bare)
            pinned.append(t_pinned)
            gate.append(t_gate)
            ratio.append(t_gate / t_bare)
            ratio_pinned.append(t_gate / t_pinned)
            made.append(res["timing"]["fixture"])
            traced.append(res["timing"]["trace"])
            # start-up, probes, verify, the analysis after strace ended, report, clean-up
            rest.append(t_gate - made[-1] - traced[-1])
            rss.append(r)
            shutil.rmtree(out, ignore_errors=True)
        print(f"| {label} | {n} | {_stats(bare)} | {_stats(pinned)} | {_stats(gate)} | "
              f"{_stats(ratio)} | {_stats(ratio_pinned)} | "
              f"{_stats(made)} | {_stats(traced)} | {_stats(rest)} | {max(rss) / 1024:.0f} |",
              flush=True)  # fmt: skip
    shutil.rmtree(scen, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "syscall-gate-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=210)
    ap.add_argument("--mix", default="gate,short")
    ap.add_argument("--skip", default="", help="overhead or analysis")
    ap.add_argument("--big", action="store_true", help="add one 20,000-file scenario run")
    args = ap.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"# {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"at the start; {args.runs} runs each; median (min-max)\n"
    )
    if "overhead" not in args.skip:
        overhead(work, args.runs, args.big)
        print()
    if "analysis" in args.skip:
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        return 0
    mixes = args.mix.split(",")
    if not all((work / f"{m}.trace").is_file() for m in mixes):
        gen = [sys.executable, str(HERE / "gen_trace.py"), str(work), "--mb", str(args.mb)]
        subprocess.run(gen, check=True)
    src, dst = (work / "roots").read_text().split()
    py = sys.executable
    gate = [py, "-m", "ci_gate", "analyze"]
    out = work / "out"
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
