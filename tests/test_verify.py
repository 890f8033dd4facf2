"""verify: tree-equal finds every kind of difference a wrong copy can have."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ci_gate.scenario.verify import MAX_REPORTED, compare_trees, tree_differences


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "empty").write_bytes(b"")
    (src / "small").write_bytes(b"x" * 4096)
    # Larger than verify's read chunk, so a difference in the last chunk is what matters.
    (src / "a" / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (src / "a" / "b" / "deep").write_bytes(b"deep")
    (src / "odd\nname \xe9".encode("utf-8", "surrogateescape").decode("utf-8")).write_bytes(b"1")
    (src / os.fsdecode(b"not-utf8-\xff")).write_bytes(b"2")
    (src / "link-file").symlink_to("small")
    (src / "link-dir").symlink_to("a/b")
    (src / "dangling").symlink_to("nowhere")
    dst = tmp_path / "dst"
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return src, dst


def test_a_faithful_copy_has_no_difference(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    assert tree_differences(src, dst) == []


def test_no_destination(tmp_path: Path, trees: tuple[Path, Path]) -> None:
    src, _ = trees
    [line] = tree_differences(src, tmp_path / "none")
    assert "was not created" in line


def test_last_byte_of_a_big_file(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    f = dst / "a" / "big"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    assert tree_differences(src, dst) == [
        f"contents of 'a/big' differ ({len(data)} bytes in the source, {len(data)} in the copy)"
    ]


def test_size(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    (dst / "empty").write_bytes(b"z")
    assert tree_differences(src, dst) == [
        "contents of 'empty' differ (0 bytes in the source, 1 in the copy)"
    ]


def test_missing_and_extra_entries(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    (dst / "a" / "b" / "deep").unlink()
    (dst / "extra").write_bytes(b"")
    shutil.rmtree(dst / "a" / "b")
    assert tree_differences(src, dst) == [
        "missing in the copy: 'a/b'",
        "missing in the copy: 'a/b/deep'",
        "not in the source: 'extra'",
    ]


def test_modes_of_an_entry_and_of_the_root(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    (dst / "small").chmod(0o600)
    dst.chmod(0o700)
    src_mode = (src / "small").stat().st_mode & 0o7777
    root_mode = src.stat().st_mode & 0o7777
    assert tree_differences(src, dst) == [
        f"mode of the root differs: {root_mode:o} in the source, 700 in the copy",
        f"mode of 'small' differs: {src_mode:o} in the source, 600 in the copy",
    ]


def test_symlink_target_and_kind(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    (dst / "link-file").unlink()
    (dst / "link-file").symlink_to("empty")
    (dst / "link-dir").unlink()
    (dst / "link-dir").mkdir()
    assert tree_differences(src, dst) == [
        "'link-dir' is a symlink in the source but a directory in the copy",
        "symlink 'link-file' points to 'empty' instead of 'small'",
    ]


def test_odd_names_are_quoted(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    odd = next(p for p in dst.iterdir() if p.name.startswith("odd"))
    odd.write_bytes(b"9")
    (dst / os.fsdecode(b"not-utf8-\xff")).write_bytes(b"9")
    got = tree_differences(src, dst)
    assert len(got) == 2
    assert all("\n" not in line for line in got)
    assert got[0].startswith("contents of 'not-utf8-\\udcff' differ")
    assert got[1].startswith("contents of 'odd\\nname \u00e9' differ")


def test_many_differences_are_capped(trees: tuple[Path, Path]) -> None:
    src, dst = trees
    for i in range(MAX_REPORTED + 5):
        (dst / f"extra-{i:02}").write_bytes(b"")
    got = tree_differences(src, dst)
    assert len(got) == MAX_REPORTED + 1
    assert got[-1] == "... and 5 more difference(s)"
    # The count is of every difference, not of the lines kept (it said 11 here).
    assert compare_trees(src, dst) == (got, MAX_REPORTED + 5)
