"""Schema and semantic checks of one policy file: exact messages at exact positions.

Positions are counted by hand from the YAML below. In a block rule written by
`rule(...)`, line 4 is `    metric: ...` (value at column 13) and each further
line follows; inside `    fail: {max: 1}` the key `fail` is at column 5, its
mapping at 11, `max` at 12 and the number at 17.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_gate.errors import PolicyError
from ci_gate.policy.load import load_policy
from ci_gate.policy.model import Bound

TOP_KEYS = "baseline, extends, rules, scenario, unexpected, version"
RULE_KEYS = "aggregate, baseline, deduct, fail, hint, max_spread, metric, mode, per, reason, warn"
SCENARIO_KEYS = "build, build_timeout, command, env, fixture, id, repeats, timeout, tracing, verify"
FIXTURE_KEYS = "dirs, file_size, files, seed, symlinks"
SIZE = "expected bytes as an integer, or a number with a unit: 5MiB, 64KiB, 1GiB, 500KB, 4096B"
DURATION = "expected seconds as a number, or a number with a unit: 90s, 5m, 1h, 1500ms"
MODES = "expected one of: enforce, advisory, disabled"


def write(tmp_path: Path, text: str, name: str = "p.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """The diagnostics, without the file name (every one must name the file)."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    out = []
    for d in exc.value.diagnostics:
        s = str(d)
        assert s.startswith(f"{path}:"), s
        out.append(s[len(str(path)) + 1 :])
    return out


def rule(metric: str, *lines: str) -> str:
    return (
        "version: 1\nrules:\n  r:\n"
        + f"    metric: {metric}\n"
        + "".join(f"    {line}\n" for line in lines)
    )


def scenario(*lines: str) -> str:
    return "version: 1\nscenario:\n" + "".join(f"  {line}\n" for line in lines)


# -- a complete valid policy ----------------------------------------------------------------------


def test_every_key_of_a_valid_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\n"
        "scenario:\n"
        "  id: demo-1\n"
        "  build: make\n"
        "  fixture: {files: 4, file_size: 1.5KiB, dirs: 1, symlinks: false, seed: 7}\n"
        "  command: ./copy -a {src} {dst}\n"
        "  env: {LC_ALL: C}\n"
        "  verify: none\n"
        "  timeout: 1500ms\n"
        "  build_timeout: 5m\n"
        "  repeats: 3\n"
        "unexpected:\n"
        "  scenario: [stat, access]\n"
        "  anywhere: [ptrace]\n"
        "  direct_io_with_uring: false\n"
        "rules:\n"
        "  uring: {metric: io_uring.enter.calls, fail: {min: 101}, reason: why, hint: how}\n"
        "  statx-per-file:\n"
        "    metric: scenario.syscall.statx.calls\n"
        "    per: file\n"
        "    warn: {max: 1.5}\n"
        "    fail: {max: 2}\n"
        "    deduct: 5\n"
        "    aggregate: worst\n"
        "  batching: {metric: io_uring.batch.avg, warn: {min: 4}, fail: {min: 2}, mode: advisory}\n"
        "  off: {metric: syscalls.total, mode: disabled}\n"
        "  security: {metric: security.score, warn: {min: 80}}\n",
    )
    p = load_policy(path)
    assert p.scenario is not None
    s = p.scenario
    assert (s.id, s.build, s.command, s.env, s.verify) == (
        "demo-1", "make", "./copy -a {src} {dst}", {"LC_ALL": "C"}, "none",
    )  # fmt: skip
    assert (s.timeout, s.build_timeout, s.repeats) == (1.5, 300.0, 3)
    f = s.fixture
    assert (f.files, f.file_size, f.dirs, f.symlinks, f.seed) == (4, 1536, 1, False, 7)
    assert p.unexpected.scenario == frozenset({"stat", "access"})
    assert p.unexpected.anywhere == frozenset({"ptrace"})
    assert p.unexpected.direct_io_with_uring is False
    by_id = {r.id: r for r in p.rules}
    assert list(by_id) == ["uring", "statx-per-file", "batching", "off", "security"]
    u = by_id["uring"]
    assert (u.metric, u.fail, u.warn, u.mode, u.reason, u.hint) == (
        "io_uring.enter.calls", Bound(min=101), None, "enforce", "why", "how",
    )  # fmt: skip
    st = by_id["statx-per-file"]
    assert (st.per, st.warn, st.fail, st.deduct, st.aggregate) == (
        "file", Bound(max=1.5), Bound(max=2), 5, "worst",
    )  # fmt: skip
    assert st.threshold() == "fail if > 2 per file; warn if > 1.5 per file"
    assert (st.origin.file, st.origin.line, st.origin.col) == (str(path), 18, 3)
    assert by_id["batching"].mode == "advisory"
    assert by_id["off"].mode == "disabled"
    assert [r.id for r in p.enforced] == ["uring", "statx-per-file", "security"]
    assert p.warnings == ()


def test_version_and_rules_alone_are_a_complete_policy(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, rule("syscalls.total", "fail: {max: 1}")))
    assert p.scenario is None
    assert [r.id for r in p.rules] == ["r"]


def test_defaults(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, scenario("command: cp -a {src} {dst}")))
    assert p.scenario is not None
    s, f = p.scenario, p.scenario.fixture
    assert (s.id, s.build, s.verify, s.timeout, s.build_timeout, s.repeats) == (
        "default", None, "tree-equal", 300.0, 1800.0, 1,
    )  # fmt: skip
    assert (f.files, f.file_size, f.dirs, f.symlinks, f.seed) == (3, 5 * 1024 * 1024, 2, True, 1)


# -- version --------------------------------------------------------------------------------------


def test_newer_version_is_refused_with_an_upgrade_hint_and_nothing_else(tmp_path: Path) -> None:
    # A version-2 file may use keys this gate does not know: they are not reported.
    text = "version: 2\nrules:\n  r: {metric: some.v2.metric, threshold: 3}\n"
    assert problems(tmp_path, text) == [
        "1:10: error: version: policy version 2 is newer than this gate understands (it "
        "reads version 1); upgrade syscall-gate: a newer action tag, or `pip install -U "
        "syscall-gate`"
    ]


def test_missing_version_is_reported_along_with_the_rest(tmp_path: Path) -> None:
    text = "rules:\n  r: {metric: syscalls.total, fail: {max: 1}, mode: of}\n"
    assert problems(tmp_path, text) == [
        "1:1: error: version: missing `version: 1` (the policy format this gate reads); add it "
        "as the first line",
        f"2:53: error: rules.r.mode: the string 'of' is not allowed here; {MODES}",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [("'1'", "write `version: 1`, a number, not the string '1'"),
     ("0", "unknown policy version 0; this gate reads `version: 1`"),
     ("v1", "unknown policy version 'v1'; this gate reads `version: 1`"),
     # true and 1.0 equal 1 in Python; neither is the integer the format names.
     ("true", "write `version: 1`, the integer, not true"),
     ("1.0", "write `version: 1`, the integer, not 1.0"),
     ("yes", "'yes' is read by YAML 1.1 as the boolean true; write 1")],
)  # fmt: skip
def test_other_versions(tmp_path: Path, value: str, message: str) -> None:
    assert problems(tmp_path, f"version: {value}\n") == [f"1:10: error: version: {message}"]


# -- unknown keys ---------------------------------------------------------------------------------


def test_unknown_top_level_keys_with_did_you_mean_and_the_valid_keys(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "rule:\n"
        "  r: {metric: syscalls.total, fail: {max: 1}}\n"
        "scenaro:\n"
        "  command: cp {src} {dst}\n"
        "colour: red\n"
    )
    assert problems(tmp_path, text) == [
        f"2:1: error: rule: unknown key 'rule'; did you mean 'rules'? valid keys: {TOP_KEYS}",
        f"4:1: error: scenaro: unknown key 'scenaro'; did you mean 'scenario'? valid keys: "
        f"{TOP_KEYS}",
        f"6:1: error: colour: unknown key 'colour'; valid keys: {TOP_KEYS}",
    ]


def test_unknown_keys_in_rules_bounds_scenario_and_fixture(tmp_path: Path) -> None:
    text = (
        "version: 1\n"  # 1
        "scenario:\n"  # 2
        "  comand: cp {src} {dst}\n"  # 3
        "  fixture: {files: 1, file_sise: 1KiB}\n"  # 4: file_sise at 23
        "rules:\n"  # 5
        "  r:\n"  # 6
        "    metric: syscalls.total\n"  # 7
        "    fail: {maximum: 3}\n"  # 8: maximum at 12
        "    reasn: typo\n"  # 9
        "    xyz: 1\n"  # 10
    )
    assert problems(tmp_path, text) == [
        f"3:3: error: scenario.comand: unknown key 'comand'; did you mean 'command'? valid "
        f"keys: {SCENARIO_KEYS}",
        f"4:23: error: scenario.fixture.file_sise: unknown key 'file_sise'; did you mean "
        f"'file_size'? valid keys: {FIXTURE_KEYS}",
        "8:12: error: rules.r.fail.maximum: unknown key 'maximum'; did you mean 'max'? valid "
        "keys: eq, max, min",
        f"9:5: error: rules.r.reasn: unknown key 'reasn'; did you mean 'reason'? valid keys: "
        f"{RULE_KEYS}",
        f"10:5: error: rules.r.xyz: unknown key 'xyz'; valid keys: {RULE_KEYS}",
    ]


# -- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [("Enforce", f"the string 'Enforce' is not allowed here (did you mean 'enforce'?); {MODES}"),
     ("strict", f"the string 'strict' is not allowed here; {MODES}"),
     ("", f"an empty value is not allowed here; {MODES}")],
)  # fmt: skip
def test_mode_values(tmp_path: Path, value: str, message: str) -> None:
    text = rule("syscalls.total", "fail: {max: 1}", f"mode: {value}")
    # `    mode: ` is 10 characters; an empty value is placed right after the colon.
    col = 11 if value else 10
    assert problems(tmp_path, text) == [f"6:{col}: error: rules.r.mode: {message}"]


def test_other_enums(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "scenario:\n"
        "  command: cp {src} {dst}\n"
        "  verify: tree_equal\n"
        "rules:\n"
        "  r: {metric: scenario.calls, per: files, fail: {max: 1}, aggregate: medain}\n"
    )
    assert problems(tmp_path, text) == [
        "4:11: error: scenario.verify: the string 'tree_equal' is not allowed here (did you "
        "mean 'tree-equal'?); expected one of: tree-equal, none",
        "6:36: error: rules.r.per: the string 'files' is not allowed here (did you mean "
        "'file'?); expected one of: file",
        "6:70: error: rules.r.aggregate: the string 'medain' is not allowed here (did you mean "
        "'median'?); expected one of: median, worst, best, mean",
    ]


def test_types(tmp_path: Path) -> None:
    text = (
        "version: 1\n"  # 1
        "extends: builtin:minimal\n"  # 2
        "scenario:\n"  # 3
        "  command: cp {src} {dst}\n"  # 4
        "  fixture: {files: three, dirs: 2.5}\n"  # 5: three at 20, 2.5 at 33
        "  env: {A: 1}\n"  # 6: 1 at 12
        "rules:\n"  # 7
        "  a: syscalls.total\n"  # 8
        "  b: {metric: syscalls.total, fail: {max: 1}, reason:}\n"  # 9: empty, after the colon
        "  c: {metric: [syscalls.total], fail: {max: '1'}}\n"  # 10: list at 15, '1' at 45
    )
    assert problems(tmp_path, text) == [
        "2:10: error: extends: expected a list, got the string 'builtin:minimal'",
        "5:20: error: scenario.fixture.files: expected an integer, got the string 'three'",
        "5:33: error: scenario.fixture.dirs: expected an integer, got the number 2.5",
        "6:12: error: scenario.env.A: expected a string, got the integer 1",
        "8:6: error: rules.a: expected a mapping, got the string 'syscalls.total'",
        "9:54: error: rules.b.reason: expected a string, got an empty value",
        "10:15: error: rules.c.metric: expected a string, got a list",
        "10:45: error: rules.c.fail.max: expected a number, got the string '1' (write numbers "
        "without quotes)",
    ]


def test_rules_must_be_a_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\nrules:\n  - metric: syscalls.total\n") == [
        "3:3: error: rules: expected a mapping, got a list"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [("repeats: 0", "scenario.repeats: 0 is out of range: must be >= 1"),
     ("repeats: 51", "scenario.repeats: 51 is out of range: must be <= 50"),
     ("fixture: {dirs: 65}", "scenario.fixture.dirs: 65 is out of range: must be <= 64"),
     ("fixture: {files: -1}", "scenario.fixture.files: -1 is out of range: must be >= 0")],
)  # fmt: skip
def test_ranges_in_the_scenario(tmp_path: Path, line: str, message: str) -> None:
    # Line 4 is `  <line>`; the number follows the last ": ".
    col = 3 + line.rindex(": ") + 2
    text = scenario("command: cp {src} {dst}", line)
    assert problems(tmp_path, text) == [f"4:{col}: error: {message}"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("101", "101 is out of range: must be <= 100"), ("-1", "-1 is out of range: must be >= 0")],
)
def test_deduct_range(tmp_path: Path, value: str, message: str) -> None:
    text = rule("syscalls.total", "fail: {max: 1}", f"deduct: {value}")
    assert problems(tmp_path, text) == [f"6:13: error: rules.r.deduct: {message}"]


def test_rule_ids(tmp_path: Path) -> None:
    long = "a" * 65
    text = (
        "version: 1\nrules:\n"
        "  -r: {metric: syscalls.total, fail: {max: 1}}\n"
        f"  {long}: {{metric: syscalls.total, fail: {{max: 1}}}}\n"
        "  ok.id_2-x: {metric: syscalls.total, fail: {max: 1}}\n"
    )
    form = "use letters, digits, '_', '.', '-', starting with a letter or digit, at most 64"
    assert problems(tmp_path, text) == [
        f"3:3: error: rules.-r: invalid id '-r': {form}",
        f"4:3: error: rules.{long}: invalid id '{long}': {form}",
    ]


def test_scenario_id_form(tmp_path: Path) -> None:
    text = scenario("id: my scenario", "command: cp {src} {dst}")
    assert problems(tmp_path, text) == [
        "3:7: error: scenario.id: invalid id 'my scenario': use letters, digits, '_', '.', '-', "
        "starting with a letter or digit, at most 64"
    ]


def test_empty_bound(tmp_path: Path) -> None:
    assert problems(tmp_path, rule("syscalls.total", "fail: {}")) == [
        "5:11: error: rules.r.fail: a bound needs at least one of min, max, eq"
    ]


# -- units ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("4096B", 4096), ("500KB", 500_000), ("2 MB", 2_000_000),
     ("1GB", 10**9), ("64KiB", 65_536), ("5MiB", 5_242_880), ("1.5KiB", 1536),
     ("1GiB", 1_073_741_824), ("0", 0)],
)  # fmt: skip
def test_sizes(tmp_path: Path, text: str, size: int) -> None:
    p = load_policy(write(tmp_path, scenario("command: x", f"fixture: {{file_size: {text}}}")))
    assert p.scenario is not None and p.scenario.fixture.file_size == size


@pytest.mark.parametrize(
    ("text", "shown"),
    [("5M", "the string '5M'"), ("5 mib", "the string '5 mib'"), ("5MiBs", "the string '5MiBs'"),
     ("-1", "the integer -1"), ("1.5", "the number 1.5"), ("5 MiB extra", "the string "
                                                          "'5 MiB extra'")],
)  # fmt: skip
def test_bad_sizes(tmp_path: Path, text: str, shown: str) -> None:
    # `  fixture: {file_size: ` is 23 characters.
    assert problems(tmp_path, scenario("command: x", f"fixture: {{file_size: {text}}}")) == [
        f"4:24: error: scenario.fixture.file_size: {shown} is not a valid size; {SIZE}"
    ]


def test_size_must_be_whole_bytes(tmp_path: Path) -> None:
    assert problems(tmp_path, scenario("command: x", "fixture: {file_size: 1.5B}")) == [
        "4:24: error: scenario.fixture.file_size: '1.5B' is not a whole number of bytes"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("2.5", 2.5), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0),
     ("1500ms", 1.5), ("0.5 s", 0.5)],
)  # fmt: skip
def test_durations(tmp_path: Path, text: str, seconds: float) -> None:
    p = load_policy(write(tmp_path, scenario("command: x", f"timeout: {text}")))
    assert p.scenario is not None and p.scenario.timeout == seconds


@pytest.mark.parametrize(
    ("text", "shown"),
    [("5min", "the string '5min'"), ("0", "the integer 0"), ("-1s", "the string '-1s'"),
     ("soon", "the string 'soon'"), ("true", "the boolean true")],
)  # fmt: skip
def test_bad_durations(tmp_path: Path, text: str, shown: str) -> None:
    assert problems(tmp_path, scenario("command: x", f"timeout: {text}")) == [
        f"4:12: error: scenario.timeout: {shown} is not a valid duration; {DURATION}"
    ]


def test_zero_duration_with_a_unit(tmp_path: Path) -> None:
    assert problems(tmp_path, scenario("command: x", "build_timeout: 0ms")) == [
        "4:18: error: scenario.build_timeout: build_timeout must be longer than 0"
    ]


# -- semantic: metrics ----------------------------------------------------------------------------


def test_unknown_metric_without_a_close_name(tmp_path: Path) -> None:
    assert problems(tmp_path, rule("zzz", "fail: {max: 1}")) == [
        "4:13: error: rules.r.metric: unknown metric 'zzz' (all metrics: docs/metrics.md)"
    ]


@pytest.mark.parametrize(
    ("metric", "meant"),
    [("io_uring.batch.avgg", "io_uring.batch.avg"),
     ("syscall.statxx.calls", "syscall.statx.calls"),
     ("scenario.statx.path_base", "scenario.statx.path_based"),
     # A typo outside the syscall name: the family is still matched against the syscall table.
     ("syscall.statx.call", "syscall.statx.calls"),
     ("syscal.statx.calls", "syscall.statx.calls"),
     ("scenario.syscall.statx.call", "scenario.syscall.statx.calls"),
     ("syscall.opne.errors", "syscall.open.errors")],
)  # fmt: skip
def test_unknown_metric_suggests_the_close_one_first(
    tmp_path: Path, metric: str, meant: str
) -> None:
    (msg,) = problems(tmp_path, rule(metric, "fail: {max: 1}"))
    head = f"4:13: error: rules.r.metric: unknown metric '{metric}'; did you mean '{meant}'"
    assert msg.startswith(head), msg
    assert msg.endswith("? (all metrics: docs/metrics.md)"), msg


@pytest.mark.parametrize("metric", ["syscall.statx.call", "syscal.statx.calls"])
def test_a_typo_around_a_syscall_name_suggests_that_syscall(tmp_path: Path, metric: str) -> None:
    assert problems(tmp_path, rule(metric, "fail: {max: 1}")) == [
        f"4:13: error: rules.r.metric: unknown metric '{metric}'; did you mean "
        "'syscall.statx.calls', 'syscall.futex.calls', 'syscall.statx.errors'? "
        "(all metrics: docs/metrics.md)"
    ]


@pytest.mark.parametrize(
    ("metric", "why"),
    [("syscall.statx.calls", "counts the whole traced process (start-up included); did you "
      "mean 'scenario.syscall.statx.calls'?"),
     ("statx.path_based", "counts the whole traced process (start-up included); did you "
      "mean 'scenario.statx.path_based'?"),
     ("io_uring.enter.calls", "counts the whole traced process (start-up included)"),
     ("security.score", "is not such a count")],
)  # fmt: skip
def test_per_file_needs_a_scenario_count(tmp_path: Path, metric: str, why: str) -> None:
    assert problems(tmp_path, rule(metric, "per: file", "fail: {max: 1}")) == [
        f"5:10: error: rules.r.per: `per: file` needs a count of calls on the scenario's "
        f"files; '{metric}' {why}"
    ]


@pytest.mark.parametrize(
    "metric",
    ["scenario.syscall.statx.calls", "scenario.statx.path_based", "scenario.opens.user_files",
     "scenario.preserve.times.file", "scenario.direct_io", "scenario.legacy.calls"],
)  # fmt: skip
def test_per_file_on_scenario_counts(tmp_path: Path, metric: str) -> None:
    (r,) = load_policy(write(tmp_path, rule(metric, "per: file", "fail: {max: 1}"))).rules
    assert r.per == "file"


# -- semantic: bounds -----------------------------------------------------------------------------


NEVER = "as written the warning can never show"


@pytest.mark.parametrize(
    ("warn", "fail", "at", "message"),
    [("{min: 2}", "{min: 2}", "5:17: error: rules.r.warn.min",
      f"warn.min (2) must be above fail.min (2): a value below warn.min warns before one "
      f"below fail.min fails; {NEVER}"),
     ("{min: 1}", "{min: 2}", "5:17: error: rules.r.warn.min",
      f"warn.min (1) must be above fail.min (2): a value below warn.min warns before one "
      f"below fail.min fails; {NEVER}"),
     ("{max: 3}", "{max: 3}", "5:17: error: rules.r.warn.max",
      f"warn.max (3) must be below fail.max (3): a value above warn.max warns before one "
      f"above fail.max fails; {NEVER}"),
     ("{max: 2.5}", "{max: 2}", "5:17: error: rules.r.warn.max",
      f"warn.max (2.5) must be below fail.max (2): a value above warn.max warns before one "
      f"above fail.max fails; {NEVER}"),
     ("{eq: 1}", "{eq: 1}", "5:11: error: rules.r.warn",
      "the warning can never show: every value outside the warn bounds is already outside "
      "the fail bounds"),
     ("{eq: 1}", "{eq: 2}", "5:11: error: rules.r.warn",
      "no value can pass: every value inside the fail bounds is outside the warn bounds"),
     ("{max: 1}", "{min: 5}", "5:11: error: rules.r.warn",
      "no value can pass: every value inside the fail bounds is outside the warn bounds"),
     ("{min: 0, max: 10}", "{eq: 5}", "5:11: error: rules.r.warn",
      "the warning can never show: every value outside the warn bounds is already outside "
      "the fail bounds")],
)  # fmt: skip
def test_warn_must_trip_before_fail(
    tmp_path: Path, warn: str, fail: str, at: str, message: str
) -> None:
    text = rule("io_uring.batch.avg", f"warn: {warn}", f"fail: {fail}")
    # Warnings come along with errors ("warn.min 0 can never trip"); these cases are about
    # the error.
    assert [p for p in problems(tmp_path, text) if ": error: " in p] == [f"{at}: {message}"]


@pytest.mark.parametrize(
    ("warn", "fail"),
    [("{min: 4}", "{min: 2}"), ("{max: 1.5}", "{max: 2}"), ("{eq: 1}", "{max: 3}"),
     ("{max: 5}", "{min: 2}"), ("{min: 1, max: 4}", "{min: 0, max: 5}")],
)  # fmt: skip
def test_warn_looser_than_fail_is_valid(tmp_path: Path, warn: str, fail: str) -> None:
    (r,) = load_policy(write(tmp_path, rule("io_uring.batch.avg", f"warn: {warn}",
                                            f"fail: {fail}"))).rules  # fmt: skip
    assert r.warn is not None and r.fail is not None


def test_a_bound_no_value_can_meet(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  a: {metric: syscalls.total, fail: {min: 5, max: 3}}\n"  # fail at 31
        "  b: {metric: syscalls.total, warn: {eq: 4, max: 3}}\n"
    )
    assert problems(tmp_path, text) == [
        "3:37: error: rules.a.fail: fail has min 5 and max 3: every value fails",
        "4:37: error: rules.b.warn: warn has eq 4 and max 3: every value warns",
    ]


def test_a_rule_needs_a_bound_unless_disabled(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  a: {metric: syscalls.total}\n"
        "  b: {metric: syscalls.total, mode: advisory}\n"
        "  c: {metric: syscalls.total, mode: disabled}\n"
    )
    assert problems(tmp_path, text) == [
        "3:3: error: rules.a: rule 'a' has neither `warn`, `fail` nor `baseline` bounds, "
        "so it can never trip",
        "4:3: error: rules.b: rule 'b' has neither `warn`, `fail` nor `baseline` bounds, "
        "so it can never trip",
    ]


def test_a_rule_needs_a_metric(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\nrules:\n  a: {fail: {max: 1}}\n") == [
        "3:3: error: rules.a: rule 'a' has no `metric`"
    ]


def test_deduct_needs_a_fail_bound_and_not_the_score(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  a: {metric: syscalls.total, warn: {max: 1}, deduct: 5}\n"  # deduct value at 55
        "  b: {metric: security.score, fail: {min: 50}, deduct: 5}\n"  # at 56
    )
    assert problems(tmp_path, text) == [
        "3:55: error: rules.a.deduct: `deduct` takes points off when the rule fails, but the "
        "rule has no `fail` bound",
        "4:56: error: rules.b.deduct: a rule on security.score cannot deduct from it",
    ]


# -- semantic: scenario and unexpected ------------------------------------------------------------


def test_scenario_needs_a_command(tmp_path: Path) -> None:
    assert problems(tmp_path, scenario("build: make")) == [
        "2:1: error: scenario: a scenario needs `command` (the traced command, with {src} and "
        "{dst})"
    ]


def test_command_placeholders_and_words(tmp_path: Path) -> None:
    text = "version: 1\nscenario:\n  command: cp {source} {SRC} {x} {dst}\n"
    assert problems(tmp_path, text) == [
        "3:12: error: scenario.command: unknown placeholder {source}; did you mean {src}? the "
        "command takes {src} and {dst}",
        "3:12: error: scenario.command: unknown placeholder {SRC}; did you mean {src}? the "
        "command takes {src} and {dst}",
        "3:12: error: scenario.command: unknown placeholder {x}; the command takes {src} and {dst}",
    ]
    assert problems(tmp_path, scenario('command: "sh -c \'cp {src} {dst}"')) == [
        "3:12: error: scenario.command: cannot be split into words like a shell would: No "
        "closing quotation"
    ]


def test_command_may_hold_other_braces(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, scenario("command: find {src} -exec cp {} {dst} ;")))
    assert p.scenario is not None and p.scenario.command == "find {src} -exec cp {} {dst} ;"


def test_unexpected_syscall_names(tmp_path: Path) -> None:
    text = "version: 1\nunexpected:\n  scenario: [stat, statxx]\n  anywhere: [ptrace]\n"
    assert problems(tmp_path, text) == [
        "3:20: error: unexpected.scenario[1]: unknown syscall 'statxx'; did you mean 'statx'?"
    ]


# -- all at once ----------------------------------------------------------------------------------


def test_every_problem_is_listed_in_file_order(tmp_path: Path) -> None:
    text = (
        "version: 1\n"  # 1
        "scenario:\n"  # 2
        "  command: cp {src} {dest}\n"  # 3
        "  timeout: 5 minutes\n"  # 4
        "rules:\n"  # 5
        "  a: {metric: syscall.statx.calls, per: file, fail: {max: 2}}\n"  # 6
        "  b: {metric: syscalls.total, mode: off, fail: {max: 1}}\n"  # 7
        "  c: {metric: zzz, warn: {max: 3}, fail: {max: 2}, reasn: x}\n"  # 8
        "  b: {metric: syscalls.total}\n"  # 9
    )
    assert problems(tmp_path, text) == [
        "3:12: error: scenario.command: unknown placeholder {dest}; did you mean {dst}? the "
        "command takes {src} and {dst}",
        f"4:12: error: scenario.timeout: the string '5 minutes' is not a valid duration; "
        f"{DURATION}",
        "6:41: error: rules.a.per: `per: file` needs a count of calls on the scenario's files; "
        "'syscall.statx.calls' counts the whole traced process (start-up included); did you "
        "mean 'scenario.syscall.statx.calls'?",
        "7:37: error: rules.b.mode: 'off' is read by YAML 1.1 as the boolean false, not a mode; "
        "write enforce, advisory or disabled",
        "8:15: error: rules.c.metric: unknown metric 'zzz' (all metrics: docs/metrics.md)",
        f"8:32: error: rules.c.warn.max: warn.max (3) must be below fail.max (2): a value above "
        f"warn.max warns before one above fail.max fails; {NEVER}",
        f"8:52: error: rules.c.reasn: unknown key 'reasn'; did you mean 'reason'? valid keys: "
        f"{RULE_KEYS}",
        "9:3: error: rules.b: duplicate key 'b' (first defined at line 7); YAML would silently "
        "keep only the last one",
    ]


def test_no_enforced_rule_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nrules:\n  a: {metric: syscalls.total, mode: advisory, "
                 "warn: {max: 1}}\n")  # fmt: skip
    assert [str(w) for w in load_policy(path).warnings] == [
        f"{path}:2:1: warning: rules: no rule is enforced: the report shows the metrics, but the "
        "gate can never fail on them"
    ]
    bare = write(tmp_path, "version: 1\n", "bare.yml")
    assert [str(w) for w in load_policy(bare).warnings] == [
        f"{bare}:1:1: warning: rules: no rule is enforced: the report shows the metrics, but the "
        "gate can never fail on them"
    ]


def test_errors_inside_a_rule_with_an_invalid_id_are_all_reported(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  -r: {metric: 5, fail: {maxx: 1}}\n"
    # `-r` at 3; the mapping at 7, `metric`'s value at 16, `maxx` at 26.
    assert problems(tmp_path, text) == [
        "3:3: error: rules.-r: invalid id '-r': use letters, digits, '_', '.', '-', starting "
        "with a letter or digit, at most 64",
        "3:16: error: rules.-r.metric: expected a string, got the integer 5",
        "3:26: error: rules.-r.fail.maxx: unknown key 'maxx'; did you mean 'max'? valid keys: "
        "eq, max, min",
    ]


# -- baseline bounds written wrong ----------------------------------------------------------------

CHANGE_EXAMPLE = (
    "{pct: 15}, {abs: 1} or {pct: 15, abs: 1} (pct: percent of the base; abs: in the metric's unit)"
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("{}", f"an empty mapping sets no limit; write pct and/or abs, e.g. {CHANGE_EXAMPLE}"),
        (
            "5",
            "expected a mapping, got the integer 5; write pct and/or abs, e.g. {pct: 5} "
            "(percent of the base) or {abs: 5} (in the metric's unit)",
        ),
        (
            "x",
            f"expected a mapping, got the string 'x'; write pct and/or abs, e.g. {CHANGE_EXAMPLE}",
        ),
    ],
)
def test_a_change_limit_written_wrong_is_an_error_not_a_crash(
    tmp_path: Path, change: str, message: str
) -> None:
    # The schema marks the value invalid; the semantic pass must not read it as a mapping.
    text = "version: 1\nrules:\n"
    limit = f"{{fail: {{max_increase: {change}}}}}"
    text += f"  b: {{metric: syscall.statx.calls, baseline: {limit}}}\n"
    assert problems(tmp_path, text) == [
        f"3:68: error: rules.b.baseline.fail.max_increase: {message}"
    ]


def test_every_level_of_a_baseline_bound_says_what_it_takes(tmp_path: Path) -> None:
    text = (
        rule(
            "syscall.statx.calls",
            "baseline:",
            "  warn: {}",
            "  fail: 3",
        )
        + "  s: {metric: syscalls.total, baseline: {}}\n"
    )
    text += "  t: {metric: syscalls.total, baseline: {fail: {max_decrease: {pct: yes}}}}\n"
    assert problems(tmp_path, text) == [
        "6:13: error: rules.r.baseline.warn: an empty mapping sets no limit; write max_increase "
        "and/or max_decrease, e.g. {max_increase: {pct: 15}} or {max_decrease: {abs: 1}}",
        "7:13: error: rules.r.baseline.fail: expected a mapping, got the integer 3; write "
        "max_increase and/or max_decrease, e.g. {max_increase: {pct: 15}} or "
        "{max_decrease: {abs: 1}}",
        "8:41: error: rules.s.baseline: an empty mapping sets no limit; write warn and/or fail, "
        "e.g. {fail: {max_increase: {pct: 15}}}",
        "9:69: error: rules.t.baseline.fail.max_decrease.pct: 'yes' is read by YAML 1.1 as the "
        "boolean true; expected a number",
    ]


# -- bounds against the values a metric can take --------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "lines", "message"),
    [
        (
            "syscall.statx.calls",
            ("fail: {max: -1}",),
            "5:17: error: rules.r.fail.max: fail.max -1 is below every value "
            "syscall.statx.calls can take (it is 0 or more): every value fails",
        ),
        (
            "security.score",
            ("warn: {min: 150}",),
            "5:17: error: rules.r.warn.min: warn.min 150 is above every value security.score "
            "can take (it is 0 to 100): every value warns",
        ),
        (
            "security.score",
            ("fail: {eq: 101}",),
            "5:16: error: rules.r.fail.eq: fail.eq 101 is a value security.score never takes "
            "(it is 0 to 100): every value fails",
        ),
        (
            "scenario.syscall.statx.calls",
            ("per: file", "fail: {max: -0.5}"),
            "6:17: error: rules.r.fail.max: fail.max -0.5 is below every value "
            "scenario.syscall.statx.calls per file can take (it is 0 or more): every value fails",
        ),
        (
            # warn.min -1 looks like a warning below -1; counts are never below 0.
            "syscall.statx.calls",
            ("warn: {min: -1}", "fail: {max: 5}"),
            "5:11: error: rules.r.warn: the warning can never show: every value outside the warn "
            "bounds is already outside the fail bounds",
        ),
    ],
)
def test_a_bound_no_possible_value_passes_is_an_error(
    tmp_path: Path, metric: str, lines: tuple[str, ...], message: str
) -> None:
    errors = [p for p in problems(tmp_path, rule(metric, *lines)) if ": error: " in p]
    assert errors == [message]


@pytest.mark.parametrize(
    ("metric", "lines", "message"),
    [
        (
            "io_uring.batch.avg",
            ("fail: {min: -3}",),
            "5:17: warning: rules.r.fail.min: fail.min -3 can never trip: io_uring.batch.avg is "
            "never below 0",
        ),
        (
            "syscall.statx.calls",
            ("warn: {min: 0, max: 10}",),
            "5:17: warning: rules.r.warn.min: warn.min 0 can never trip: syscall.statx.calls is "
            "never below 0",
        ),
        (
            "security.score",
            ("warn: {max: 100, min: 80}",),
            "5:17: warning: rules.r.warn.max: warn.max 100 can never trip: security.score is "
            "never above 100",
        ),
        (
            "scenario.syscall.statx.calls",
            ("per: file", "fail: {min: 0}"),
            "6:17: warning: rules.r.fail.min: fail.min 0 can never trip: "
            "scenario.syscall.statx.calls per file is never below 0",
        ),
    ],
)
def test_a_limit_no_possible_value_trips_is_a_warning(
    tmp_path: Path, metric: str, lines: tuple[str, ...], message: str
) -> None:
    path = write(tmp_path, rule(metric, *lines))
    policy = load_policy(path)
    assert [str(w) for w in policy.warnings] == [f"{path}:{message}"]


def test_bounds_inside_the_range_give_no_warning(tmp_path: Path) -> None:
    text = rule("security.score", "warn: {min: 80, max: 99.5}", "fail: {min: 1}")
    text += "  z: {metric: syscall.statx.calls, fail: {min: 0.5, eq: 1}}\n"
    assert load_policy(write(tmp_path, text)).warnings == ()


# -- findings of a QA pass ------------------------------------------------------------------------


def test_yaml11_only_numbers_and_overflow(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  a: {metric: syscalls.total, fail: {max: 1_000}}\n"
        "  b: {metric: syscalls.total, fail: {max: 0b11}}\n"
        "  c: {metric: syscalls.total, fail: {max: 1.0e+400}}\n"
        "  d: {metric: syscalls.total, fail: {max: 0x10}}\n"  # hex: YAML 1.2 reads it too
    )
    assert problems(tmp_path, text) == [
        "3:43: error: rules.a.fail.max: '1_000' is read by YAML 1.1 as the number 1000, and by "
        "YAML 1.2 tools (editors, yq) as text; write 1000",
        "4:43: error: rules.b.fail.max: '0b11' is read by YAML 1.1 as the number 3, and by "
        "YAML 1.2 tools (editors, yq) as text; write 3",
        "5:43: error: rules.c.fail.max: '1.0e+400' is too large for a number (it reads as "
        "infinity)",
    ]


def test_bounds_no_whole_count_passes(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  a: {metric: io_uring.rings, fail: {eq: 0.5}}\n"
        "  b: {metric: io_uring.rings, fail: {min: 0.5, max: 0.9}}\n"
        "  c: {metric: io_uring.batch.avg, fail: {min: 0.5, max: 0.9}}\n"  # an average: fine
        "  d: {metric: scenario.syscall.statx.calls, per: file, fail: {eq: 0.5}}\n"  # per file
    )
    assert problems(tmp_path, text) == [
        "3:42: error: rules.a.fail.eq: fail.eq 0.5 is a value io_uring.rings never takes (it "
        "counts whole rings): every value fails",
        "4:53: error: rules.b.fail.max: no whole number is inside fail min 0.5 and max 0.9, and "
        "io_uring.rings counts whole rings: every value fails",
    ]


def test_warnings_are_listed_with_the_errors(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  w: {metric: io_uring.batch.avg, fail: {min: -3}}\n"
        "  e: {metric: io_uring.ringz, fail: {max: 1}}\n"
    )
    found = problems(tmp_path, text)
    assert found[0] == (
        "3:47: warning: rules.w.fail.min: fail.min -3 can never trip: io_uring.batch.avg is "
        "never below 0"
    )
    assert found[1].startswith("4:15: error: rules.e.metric: unknown metric 'io_uring.ringz'")
    assert len(found) == 2


def test_baseline_typo_is_not_also_ref_and_file(tmp_path: Path) -> None:
    text = (
        "version: 1\nbaseline:\n  ref: main\n  fille: results.json\nrules:\n"
        "  a: {metric: io_uring.rings, baseline: {fail: {max_increase: {abs: 0}}}}\n"
    )
    assert problems(tmp_path, text) == [
        "4:3: error: baseline.fille: unknown key 'fille'; did you mean 'file'? valid keys: "
        "file, on_unavailable, ref"
    ]


def test_baseline_warn_limit_must_trip_before_the_fail_limit(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  a: {metric: io_uring.rings, baseline: {warn: {max_increase: {pct: 20}}, "
        "fail: {max_increase: {pct: 10}}}}\n"
        "  b: {metric: io_uring.rings, baseline: {warn: {max_decrease: {pct: 5, abs: 2}}, "
        "fail: {max_decrease: {abs: 1}}}}\n"
        # fine: warn has no abs part, so a change of 12% by 1 warns and does not fail
        "  c: {metric: io_uring.rings, baseline: {warn: {max_increase: {pct: 20}}, "
        "fail: {max_increase: {pct: 10, abs: 5}}}}\n"
    )
    assert problems(tmp_path, text) == [
        "3:63: error: rules.a.baseline.warn.max_increase: baseline.warn.max_increase (pct 20) "
        "must be below baseline.fail.max_increase (pct 10): a change past the warn limit warns "
        "before one past the fail limit fails; as written the warning can never show",
        "4:63: error: rules.b.baseline.warn.max_decrease: baseline.warn.max_decrease (pct 5, "
        "abs 2) must be below baseline.fail.max_decrease (abs 1): a change past the warn limit "
        "warns before one past the fail limit fails; as written the warning can never show",
    ]


def test_env_names(tmp_path: Path) -> None:
    text = scenario("command: cp -a {src} {dst}", 'env: {"": x, "A=B": y, 1: z, OK_1: w}')
    why = "use letters, digits and '_', not starting with a digit"
    assert problems(tmp_path, text) == [
        f"4:9: error: scenario.env.: invalid environment variable name '': {why}",
        f"4:16: error: scenario.env.A=B: invalid environment variable name 'A=B': {why}",
        f"4:26: error: scenario.env.1: invalid environment variable name '1': {why}",
    ]


@pytest.mark.parametrize(
    ("written", "meant"),
    [("syscall.STATX.calls", "syscall.statx.calls"), ("io_uring.ops.read", "io_uring.ops.READ"),
     ("IO_URING.RINGS", "io_uring.rings"), ("syscall.statx.calls.", "syscall.statx.calls")],
)  # fmt: skip
def test_a_metric_off_only_by_case_suggests_exactly_that(
    tmp_path: Path, written: str, meant: str
) -> None:
    [found] = problems(tmp_path, rule(written, "fail: {max: 1}"))
    assert found == (
        f"4:13: error: rules.r.metric: unknown metric {written!r}; did you mean {meant!r}? "
        "(all metrics: docs/metrics.md)"
    )
