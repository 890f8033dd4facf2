"""File names from a pull request are attacker-controlled; the report must keep them inert.

A tree with hostile names is copied with `cp -a` under the real strace, then the
report is rendered to HTML by a CommonMark/GFM parser (markdown-it-py) and inspected:
no HTML, links, images, mentions, issue references or broken tables may come out of
a name, and nothing in the job log may start a workflow command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from markdown_it import MarkdownIt

from helpers import gate

HOSTILE = [
    "with space.txt",
    "new\nline.txt",
    "quote\"s'.txt",
    "back`tick``s.txt",
    "pipe|cell|break.txt",
    "<lt>gt&amp.txt",
    "@octocat ping.txt",
    "#123 ref.txt",
    "<",  # a directory: with the file below, the path holds "</details><details open>"
    "<img src=x onerror=alert(1)>.txt",
    "[x](javascript:alert(1)).txt",
    "::error::injected.txt",
    "##[error]legacy.txt",
    "rtl\u202egnp.exe",
]
INVALID_UTF8 = b"bad-\xff\xfe-utf8.txt"


def make_tree(root: Path) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    for name in HOSTILE:
        if name == "<":
            (src / name).mkdir()
            (src / name / "details><details open>.txt").write_bytes(b"x")
        else:
            (src / name).write_bytes(b"x")
    with open(os.path.join(os.fsencode(src), INVALID_UTF8), "wb") as f:
        f.write(b"y")
    # A 4 KiB path: nested directories with 250-byte names.
    deep = src
    for i in range(16):
        deep = deep / (f"{i:02d}" + "d" * 248)
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_bytes(b"z")
    return src


def test_hostile_names_stay_inert(tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    dst = tmp_path / "dst"
    trace = tmp_path / "trace.txt"
    subprocess.run(["strace", "-f", "-y", "-s", "4096", "-C", "-o", str(trace),
                    "cp", "-a", str(src), str(dst)], check=True)  # fmt: skip
    out = tmp_path / "out"
    proc = gate("analyze", str(trace), "--root", str(src), "--root", str(dst), "--out", str(out),
                "--publish", "never",
                env=dict(os.environ, GITHUB_ACTIONS="true"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    # The job log: no line the runner would read as a command.
    for line in (proc.stdout + proc.stderr).splitlines():
        stripped = line.lstrip()
        if stripped.startswith("::stop-commands::") or re.fullmatch(r"::[0-9a-f]{32}::", stripped):
            continue
        if re.fullmatch(r"::warning title=syscall-gate::[^\r\n]*", line):
            continue  # ours, its message escaped for the runner
        assert not stripped.startswith("::"), line
        assert "##[" not in line, line

    report = (out / "report.md").read_text(encoding="utf-8")  # valid UTF-8 or this raises
    json.loads((out / "results.json").read_text(encoding="utf-8"))

    md = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
    html = md.render(report)
    tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html))
    assert tags <= {"h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code",
                    "strong", "details", "summary", "sub", "ul", "li", "blockquote", "pre",
                    "em"}, tags  # fmt: skip
    assert "<img" not in html and "<a " not in html and "href" not in html
    assert report.count("<details>") == html.count("<details>") == html.count("</details>")
    assert "<details open>" not in html

    tokens = md.parse(report)
    # Tables: every row has as many cells as its header.
    cells, widths = 0, []
    for tok in tokens:
        if tok.type == "tr_open":
            cells = 0
        elif tok.type in ("th_open", "td_open"):
            cells += 1
        elif tok.type == "tr_close":
            widths.append(cells)
        elif tok.type == "table_close":
            assert len(set(widths)) == 1, widths
            widths = []
    # Mentions and issue references only ever inside code spans.
    for tok in tokens:
        for child in tok.children or []:
            if child.type == "text":
                assert not re.search(r"(?<![\w`])@[A-Za-z0-9-]+", child.content), child.content
                assert not re.search(r"(?<![\w&])#\d+", child.content), child.content

    # The names are still shown, visibly escaped, so a reviewer can find the file.
    assert "rtl\\u202egnp.exe" in report
    assert "bad-\\xff\\xfe-utf8.txt" in report
    assert "new\\nline.txt" in report
    assert "…" in report  # the 4 KiB path is shortened
