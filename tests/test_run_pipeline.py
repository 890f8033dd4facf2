"""`syscall-gate run` end to end on the reference copier, traced by the real strace.

Expected values come from the copier's construction (examples/uring-copy/README.md,
encoded in helpers.copier_expectations) and from strace's own -C summary.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from helpers import COPIER, Tree, copier_expectations, gate, strace_summary

MiB = 1 << 20


def policy(
    tmp_path: Path,
    command: str,
    *,
    extra: str = "",
    fixture: str = "",
    extends: str = "builtin:io-uring-copier",
) -> Path:
    fx = fixture or "{files: 3, file_size: 1MiB, dirs: 2, symlinks: true}"
    text = (
        textwrap.dedent(f"""\
        version: 1
        extends: [{extends}]
        scenario:
          id: test
          command: {command}
          fixture: {fx}
          timeout: 60s
        """)
        + extra
    )
    p = tmp_path / "policy.yml"
    p.write_text(text)
    return p


def run(tmp_path: Path, pol: Path, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / "out"
    proc = gate("run", "--policy", str(pol), "--out", str(out), *args)
    res = json.loads((out / "results.json").read_text())
    return proc.returncode, res, proc.stdout + proc.stderr


def test_good_mode_matches_construction(tmp_path: Path, copier: Path) -> None:
    pol = policy(tmp_path, f"{COPIER} {{src}} {{dst}}")
    rc, res, out = run(tmp_path, pol)
    assert rc == 0, out
    assert res["status"] == "PASS"
    expected = copier_expectations(Tree(3, MiB, 2, True))
    got = {k: res["metrics"].get(k, 0) for k in expected}
    assert got == expected
    assert res["metrics"]["trace.summary_mismatches"] == 0
    assert all(r["status"] == "PASS" for r in res["rules"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### Summary" in report and "| `batching` | `io_uring.batch.avg` | 8 |" in report
    assert "report:" in out and "status: PASS" in out


def test_whole_trace_counts_equal_strace_summary(tmp_path: Path, copier: Path) -> None:
    pol = policy(tmp_path, f"{COPIER} --threads 3 {{src}} {{dst}}")
    rc, res, out = run(tmp_path, pol)
    assert rc == 0, out
    summary = strace_summary(tmp_path / "out" / "trace.txt")
    unreturned = res["details"]["parse"]["unreturned_by_name"]
    for name, (calls, errors) in summary.items():
        assert res["metrics"][f"syscall.{name}.calls"] - unreturned.get(name, 0) == calls, name
        assert res["metrics"][f"syscall.{name}.errors"] == errors, name
    assert res["metrics"]["io_uring.setup.calls"] == 3
    # The threads split calls across lines; each must still count once.
    assert res["details"]["parse"]["split_calls"] > 0


def test_regression_fails_with_exact_values(tmp_path: Path, copier: Path) -> None:
    pol = policy(tmp_path, f"{COPIER} --path-based --batch 1 --extra-statx 1 {{src}} {{dst}}")
    rc, res, out = run(tmp_path, pol)
    assert rc == 1, out
    assert res["status"] == "FAIL"
    t = Tree(3, MiB, 2, True)
    m = res["metrics"]
    assert m["io_uring.batch.avg"] == 1
    assert m["io_uring.batch.single"] == m["io_uring.enter.calls"] == 2 * t.F * 8
    assert m["scenario.statx.path_based"] == 1 + t.F + t.D + t.L + t.F
    assert m["scenario.utimensat.path_based"] == (t.F + t.D + 1) + t.L
    failed = {r["id"] for r in res["rules"] if r["status"] == "FAIL"}
    assert {"batching", "no-path-statx", "no-path-utimensat"} <= failed
    assert res["security"]["score"] == 100 - 20 - 10
    assert "FAIL" in out


def test_analyze_gives_the_same_metrics(tmp_path: Path, copier: Path) -> None:
    pol = policy(tmp_path, f"{COPIER} {{src}} {{dst}}")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rc, res, out = run(tmp_path, pol, "--keep-fixture", "--scratch", str(scratch))
    assert rc == 0, out
    roots = res["scenario"]["roots"]
    again = gate(
        "analyze",
        str(tmp_path / "out" / "trace.txt"),
        "--out",
        str(tmp_path / "an"),
        "--policy",
        str(pol),
        "--root",
        roots["src"],
        "--root",
        roots["dst"],
    )
    assert again.returncode == 0, again.stderr
    res2 = json.loads((tmp_path / "an" / "results.json").read_text())
    # The kernel's opcode counts (io_uring.ops.*) exist only where `run` recorded them.
    traced = {k: v for k, v in res["metrics"].items() if not k.startswith("io_uring.ops.")}
    assert res2["metrics"] == traced
    assert [r["status"] for r in res2["rules"]] == [r["status"] for r in res["rules"]]


@pytest.mark.parametrize(
    ("args", "code"),
    [(("--corrupt",), "wrong-copy"), (("--exit-code", "4"), "target-failed")],
)
def test_target_failures_are_errors(
    tmp_path: Path, copier: Path, args: tuple[str, ...], code: str
) -> None:
    pol = policy(tmp_path, f"{COPIER} {' '.join(args)} {{src}} {{dst}}")
    rc, res, out = run(tmp_path, pol)
    assert rc == 3, out
    assert res["status"] == "ERROR"
    assert code in [p["code"] for p in res["problems"]]
    # What was measured is kept.
    assert res["metrics"]["io_uring.enter.calls"] > 0
    if code == "wrong-copy":
        # ...but no rule is judged on a wrong copy: each is ERROR with the cause.
        assert {r["status"] for r in res["rules"]} == {"ERROR"}
        for r in res["rules"]:
            if r["metric"] != "security.score":  # that one: the score is not known
                assert "the copy is wrong" in r["message"], r


def test_build_failure_is_an_error_with_the_log_tail(tmp_path: Path) -> None:
    pol = policy(tmp_path, "true {src} {dst}")
    build = "  build: |\n    echo compiling; echo 'fatal: no such header' >&2; exit 7\n"
    text = pol.read_text().replace("  id: test\n", "  id: test\n" + build)
    pol.write_text(text)
    rc, res, _ = run(tmp_path, pol)
    assert rc == 3
    assert res["status"] == "ERROR"
    prob = res["problems"][0]
    assert prob["code"] == "build-failed"
    assert "exit status 7" in prob["message"]
    assert prob["detail"].splitlines()[-2:] == ["compiling", "fatal: no such header"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "compiling\nfatal: no such header\n" in report and "\\n" not in report
    # Every rule is listed, ERROR, with the reason it was not judged.
    assert res["rules"] and all(x["status"] == "ERROR" for x in res["rules"])
    assert all(x["message"].startswith("not measured") for x in res["rules"])
    assert sum("build command failed (exit status 7)" in x["message"] for x in res["rules"]) >= 3
    assert "The policy has no rules." not in report


def test_invalid_policy_exits_2_with_position(tmp_path: Path) -> None:
    p = tmp_path / "bad.yml"
    p.write_text("version: 1\nrules:\n  r1: {metric: io_uring.enter.cals, fail: {min: 1}}\n")
    proc = gate("run", "--policy", str(p), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert f"{p}:3:" in proc.stderr
    assert "io_uring.enter.calls" in proc.stderr  # did you mean


def test_the_command_is_shown_as_a_shell_would_run_it(tmp_path: Path) -> None:
    """The report and the progress line quote each argument: what they show can be re-run."""
    pol = policy(tmp_path, """'sh -c "cp -a \\"$1\\" \\"$2\\"" sh {src} {dst}'""")
    rc, res, out = run(tmp_path, pol)
    # Judged by the io_uring preset, cp has no batching to measure: that rule is ERROR.
    assert rc == 3 and res["status"] == "ERROR", out
    assert {r["id"]: r["status"] for r in res["rules"]}["batching"] == "ERROR"
    src, dst = res["scenario"]["roots"]["src"], res["scenario"]["roots"]["dst"]
    shown = f'sh -c \'cp -a "$1" "$2"\' sh {src} {dst}'
    assert f"tracing: {shown}" in out
    assert f"| Command | `{shown}` |" in (tmp_path / "out" / "report.md").read_text()


def test_run_without_a_scenario_is_bad_usage(tmp_path: Path) -> None:
    p = tmp_path / "rules-only.yml"
    p.write_text("version: 1\nrules:\n  r: {metric: syscalls.total, warn: {max: 5}}\n")
    proc = gate("run", "--policy", str(p), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert f"{p}:1:1: error: scenario.command: `run` needs a scenario.command" in proc.stderr


def test_missing_target_is_an_error(tmp_path: Path) -> None:
    pol = policy(tmp_path, "./no-such-program {src} {dst}")
    rc, res, _ = run(tmp_path, pol)
    assert rc == 3
    assert res["problems"][0]["code"] == "target-not-found"
