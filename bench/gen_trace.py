"""Make a big strace trace for `make bench` out of real strace output.

Records `cp -a`, `rsync -a`, `fio --ioengine=io_uring --numjobs=4` and a
threaded program (tests/corpus/programs/mt.c) under strace 6.1, then writes
copies of those traces one after another, each copy with fresh pids (as if
the programs ran again), until the file reaches the wanted size.

Two mixes:
  gate   recorded with the gate's own flags (-f -y -s 4096): long lines where
         programs move data (rsync's writes, fio's file layout)
  short  recorded with -f -y (strings cut at 32 bytes): short lines, the hard
         case for MB/s

Usage: python bench/gen_trace.py WORKDIR [--mb 210]
Writes WORKDIR/{gate,short}.trace and WORKDIR/roots (the source and
destination roots of the cp/rsync runs, for `analyze --root`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MT_SOURCE = REPO / "tests" / "corpus" / "programs" / "mt.c"
MIXES = {"gate": ["-f", "-y", "-s", "4096"], "short": ["-f", "-y"]}

_PREFIX = re.compile(r"^(\d+)( +)")
_CHILD = re.compile(r"^(\d+ +(?:clone3?|v?fork)\(.*\) += )(\d+)$")
_SUPERSEDED = re.compile(r"(superseded by execve in pid )(\d+)")


def make_tree(root: Path) -> None:
    """A source tree: nested directories, files of several sizes, symlinks."""
    rnd = os.urandom
    for d in range(6):
        sub = root / f"dir {d}" / "nested"
        sub.mkdir(parents=True)
        for f in range(25):
            (sub / f"file-{f}.dat").write_bytes(rnd(1024 * (1 + f % 16)))
        os.symlink("nested/file-0.dat", root / f"dir {d}" / "link")


def record(work: Path, flags: list[str], name: str, argv: list[str]) -> Path:
    out = work / f"{name}.{'-'.join(f.strip('-') for f in flags)}.txt"
    subprocess.run(
        ["strace", *flags, "-o", str(out), "--", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return out


def record_all(work: Path) -> dict[str, list[Path]]:
    tree = work / "tree"
    if not tree.exists():
        make_tree(tree)
    mt = work / "mt"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(mt), str(MT_SOURCE)], check=True)
    traces: dict[str, list[Path]] = {}
    for mix, flags in MIXES.items():
        for d in ("cp-dst", "rsync-dst", "fio", "mt-dir"):
            shutil.rmtree(work / d, ignore_errors=True)
        (work / "fio").mkdir()
        (work / "mt-dir").mkdir()
        traces[mix] = [
            record(work, flags, "cp", ["cp", "-a", str(tree), str(work / "cp-dst")]),
            record(work, flags, "rsync", ["rsync", "-a", f"{tree}/", str(work / "rsync-dst")]),
            record(
                work,
                flags,
                "fio",
                [
                    "fio",
                    "--name=bench",
                    f"--directory={work / 'fio'}",
                    "--ioengine=io_uring",
                    "--numjobs=4",
                    "--size=1M",
                    "--bs=4k",
                    "--rw=randrw",
                    "--iodepth=8",
                ],
            ),
            record(work, flags, "mt", [str(mt), str(work / "mt-dir")]),
        ]
    (work / "roots").write_text(f"{tree}\n{work / 'cp-dst'}\n")
    return traces


def renumber(line: str, shift: int) -> str:
    """The line as the same program would print it with every pid moved by `shift`."""
    m = _CHILD.match(line.rstrip("\n"))
    if m is not None:
        line = f"{m.group(1)}{int(m.group(2)) + shift}\n"
    line = _SUPERSEDED.sub(lambda s: f"{s.group(1)}{int(s.group(2)) + shift}", line)
    return _PREFIX.sub(lambda p: f"{int(p.group(1)) + shift}{p.group(2)}", line, count=1)


def write_big(sources: list[Path], out: Path, megabytes: int) -> None:
    texts = [p.read_text(errors="surrogateescape").splitlines(keepends=True) for p in sources]
    target = megabytes * 1_000_000
    written = 0
    copy = 0
    with out.open("w", errors="surrogateescape") as f:
        while written < target:
            for lines in texts:
                for line in lines:
                    text = renumber(line, (copy % 3000) * 1000)
                    f.write(text)
                    written += len(text.encode("utf-8", "surrogateescape"))
            copy += 1
    print(f"{out}: {written / 1e6:.0f} MB, {copy} copies of {len(sources)} traces")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("work", type=Path)
    ap.add_argument("--mb", type=int, default=210, help="size of each big trace in MB")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    traces = record_all(args.work)
    for mix, sources in traces.items():
        sizes = ", ".join(
            f"{p.name.split('.')[0]} {p.stat().st_size / 1e6:.1f} MB" for p in sources
        )
        print(f"{mix}: recorded {sizes}")
        write_big(sources, args.work / f"{mix}.trace", args.mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
