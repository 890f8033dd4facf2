"""extends: presets and local files, merge by rule id, positions in the file at fault, digest.

Expected rule sets of the presets are read from policies/*.yml with PyYAML here,
not through the loader under test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from ci_gate.errors import PolicyError
from ci_gate.policy.load import load_policy
from ci_gate.policy.model import Bound
from helpers import REPO

PRESETS = REPO / "policies"
PRESET_LIST = "presets: builtin:file-tool, builtin:io-uring-copier, builtin:minimal"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: str | Path) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    return [str(d) for d in exc.value.diagnostics]


def preset_rules(name: str) -> dict[str, dict[str, object]]:
    rules: dict[str, dict[str, object]] = yaml.safe_load((PRESETS / f"{name}.yml").read_text())[
        "rules"
    ]
    return rules


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# -- presets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["file-tool", "io-uring-copier", "minimal"])
def test_each_preset_extends_as_written(tmp_path: Path, name: str) -> None:
    write(tmp_path / "p.yml", f"version: 1\nextends: [builtin:{name}]\n")
    policy = load_policy("p.yml")
    expected = preset_rules(name)
    assert [r.id for r in policy.rules] == list(expected)
    for r in policy.rules:
        raw = expected[r.id]
        assert r.metric == raw["metric"]
        assert r.mode == raw.get("mode", "enforce")
        assert r.fail == (Bound(**raw["fail"]) if "fail" in raw else None)  # type: ignore[arg-type]
        assert r.warn == (Bound(**raw["warn"]) if "warn" in raw else None)  # type: ignore[arg-type]
        assert r.deduct == raw.get("deduct")
        assert r.origin.file == f"builtin:{name}"
    assert policy.sources == (f"builtin:{name}", "p.yml")
    assert policy.scenario is None


def test_the_demo_is_not_a_preset(tmp_path: Path) -> None:
    write(tmp_path / "p.yml", "version: 1\nextends: [builtin:uring-copy-demo]\n")
    assert problems("p.yml") == [
        "p.yml:2:11: error: extends[0]: no preset 'builtin:uring-copy-demo'; "
        f"policies/uring-copy-demo.yml is an example to copy, not a preset; {PRESET_LIST}"
    ]


@pytest.mark.parametrize(
    ("ref", "hint"),
    [("builtin:minimall", "did you mean 'builtin:minimal'? "),
     ("builtin:io_uring_copier", "did you mean 'builtin:io-uring-copier'? "),
     ("builtin:../minimal", "did you mean 'builtin:minimal'? "),
     ("builtin:zzz", "")],
)  # fmt: skip
def test_missing_preset_with_did_you_mean(tmp_path: Path, ref: str, hint: str) -> None:
    write(tmp_path / "p.yml", f"version: 1\nextends:\n  - {ref}\n")
    assert problems("p.yml") == [f"p.yml:3:5: error: extends[0]: no preset '{ref}'; {hint}"
                                 f"{PRESET_LIST}"]  # fmt: skip


def test_preset_named_like_a_local_file(tmp_path: Path) -> None:
    write(tmp_path / "ci" / "p.yml", "version: 1\nextends: [minimal.yml]\n")
    assert problems("ci/p.yml") == [
        "ci/p.yml:2:11: error: extends[0]: 'minimal.yml' not found (looked for ci/minimal.yml, "
        "relative to the extending file); did you mean 'builtin:minimal'?"
    ]


# -- local files ----------------------------------------------------------------------------------


def test_local_extends_resolve_relative_to_the_extending_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()  # one checkout holds repo/ and shared/
    write(tmp_path / "shared" / "base.yml",
          "version: 1\nextends: [more/deeper.yml]\n"
          "rules:\n  base-rule: {metric: syscalls.total, fail: {max: 100}}\n")  # fmt: skip
    deeper = "version: 1\nrules:\n  deep-rule: {metric: syscalls.errors, warn: {max: 0}}\n"
    write(tmp_path / "shared" / "more" / "deeper.yml", deeper)
    write(tmp_path / "repo" / "ci" / "policy.yml",
          "version: 1\nextends: [../../shared/base.yml]\n"
          "rules:\n  own: {metric: io_uring.rings, fail: {min: 1}}\n")  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    policy = load_policy(tmp_path / "repo" / "ci" / "policy.yml")
    assert [r.id for r in policy.rules] == ["deep-rule", "base-rule", "own"]
    assert policy.sources == (
        "../shared/more/deeper.yml",
        "../shared/base.yml",
        str(tmp_path / "repo" / "ci" / "policy.yml"),
    )


def test_extends_outside_the_repository_is_refused(tmp_path: Path) -> None:
    # The policy comes from the pull request: it must not make the gate read (and quote
    # the keys of) files outside the checkout, such as a runner's credentials.
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    write(tmp_path / "secret.yml", "version: 1\nrules: {}\n")
    write(tmp_path / "repo" / "p.yml", "version: 1\nextends: [../secret.yml, /etc/passwd]\n")
    policy = tmp_path / "repo" / "p.yml"
    with pytest.raises(PolicyError) as err:
        load_policy(policy)
    messages = [d.message for d in err.value.diagnostics]
    assert len(messages) == 2
    assert messages[0].startswith("'../secret.yml' is outside the repository")
    # Only policy files are ever read, wherever the repository's bounds are.
    assert messages[1] == (
        "'/etc/passwd' is not a policy file: a policy extends presets (builtin:NAME) and files "
        "named .yml, .yaml, .json"
    )
    # Named whole, whatever directory the gate was started in.
    assert f"outside the repository ({tmp_path / 'repo'}), which holds the policy" in messages[0]


def test_missing_local_file(tmp_path: Path) -> None:
    write(tmp_path / "ci" / "p.yml", "version: 1\nextends: [../common/base.yml]\n")
    assert problems("ci/p.yml") == [
        "ci/p.yml:2:11: error: extends[0]: '../common/base.yml' not found (looked for "
        "common/base.yml, relative to the extending file)"
    ]


def test_later_wins_and_the_extending_file_wins_last(tmp_path: Path) -> None:
    write(tmp_path / "x.yml", "version: 1\nrules:\n  r: {metric: syscalls.total, fail: {max: 1}}\n"
          "  only-x: {metric: syscalls.errors, fail: {max: 1}}\n")  # fmt: skip
    write(tmp_path / "y.yml", "version: 1\nrules:\n  r: {metric: syscalls.total, fail: {max: 2}}\n")
    write(tmp_path / "a.yml", "version: 1\nextends: [x.yml, y.yml]\n")
    write(tmp_path / "b.yml", "version: 1\nextends: [x.yml, y.yml]\n"
          "rules:\n  r: {metric: syscalls.total, fail: {max: 3}}\n")  # fmt: skip
    a = {r.id: r for r in load_policy("a.yml").rules}
    b = {r.id: r for r in load_policy("b.yml").rules}
    assert list(a) == list(b) == ["r", "only-x"]  # first definition fixes the order
    assert (a["r"].fail, a["r"].origin.file) == (Bound(max=2), "y.yml")
    assert (b["r"].fail, b["r"].origin.file) == (Bound(max=3), "b.yml")


def test_diamond_is_read_twice_but_reported_once(tmp_path: Path) -> None:
    write(tmp_path / "d.yml", "version: 1\nrules:\n  d: {metric: zzz, fail: {max: 1}}\n")
    write(tmp_path / "b.yml", "version: 1\nextends: [d.yml]\n")
    write(tmp_path / "c.yml", "version: 1\nextends: [d.yml]\n")
    write(tmp_path / "a.yml", "version: 1\nextends: [b.yml, c.yml]\n")
    assert problems("a.yml") == [
        "d.yml:3:15: error: rules.d.metric: unknown metric 'zzz' (all metrics: docs/metrics.md)"
    ]


@pytest.mark.parametrize("self_ref", ["a.yml", "./a.yml", "../here/a.yml"])
def test_a_file_extending_itself(tmp_path: Path, self_ref: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    write(tmp_path / "here" / "a.yml", f"version: 1\nextends: [{self_ref}]\n")
    monkeypatch.chdir(tmp_path / "here")
    assert problems("a.yml") == ["a.yml:2:11: error: extends[0]: extends cycle: a.yml -> a.yml"]


def test_cycle_through_two_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yml", "version: 1\nextends: [sub/b.yml]\n")
    write(tmp_path / "sub" / "b.yml", "version: 1\nrules: {}\nextends: [../a.yml]\n")
    assert problems("a.yml") == [
        "sub/b.yml:3:11: error: extends[0]: extends cycle: a.yml -> sub/b.yml -> a.yml"
    ]


# -- patches --------------------------------------------------------------------------------------


def test_patching_a_preset_rule_mode_keeps_the_rest(tmp_path: Path) -> None:
    write(tmp_path / "p.yml",
          "version: 1\n"
          "extends: [builtin:io-uring-copier]\n"
          "rules:\n"
          "  no-path-statx: {mode: advisory}\n"
          "  batching:\n"
          "    warn: {min: 6}\n"
          "  no-direct-fallocate: {mode: disabled}\n")  # fmt: skip
    rules = {r.id: r for r in load_policy("p.yml").rules}
    preset = preset_rules("io-uring-copier")
    statx = rules["no-path-statx"]
    assert (statx.mode, statx.metric, statx.fail, statx.deduct, statx.reason, statx.hint) == (
        "advisory", preset["no-path-statx"]["metric"], Bound(max=0),
        preset["no-path-statx"]["deduct"], preset["no-path-statx"]["reason"],
        preset["no-path-statx"]["hint"],
    )  # fmt: skip
    assert (statx.origin.file, statx.origin.line, statx.origin.col) == ("p.yml", 4, 3)
    batching = rules["batching"]
    assert (batching.warn, batching.fail, batching.mode) == (Bound(min=6), Bound(min=2), "enforce")
    assert rules["no-direct-fallocate"].mode == "disabled"
    assert list(rules) == list(preset)  # patches keep the preset's order


def test_redefining_with_a_metric_replaces_the_whole_rule(tmp_path: Path) -> None:
    write(tmp_path / "p.yml",
          "version: 1\n"
          "extends: [builtin:io-uring-copier]\n"
          "rules:\n"
          "  batching: {metric: io_uring.batch.max, fail: {min: 4}}\n")  # fmt: skip
    b = {r.id: r for r in load_policy("p.yml").rules}["batching"]
    assert (b.metric, b.fail, b.warn, b.reason, b.hint) == (
        "io_uring.batch.max", Bound(min=4), None, None, None,
    )  # fmt: skip


def test_patching_an_id_nobody_defined(tmp_path: Path) -> None:
    write(tmp_path / "p.yml",
          "version: 1\n"
          "extends: [builtin:io-uring-copier]\n"
          "rules:\n"
          "  no-path-stat: {mode: advisory}\n"
          "  brand-new: {mode: advisory}\n")  # fmt: skip
    assert problems("p.yml") == [
        "p.yml:4:3: error: rules.no-path-stat: rule 'no-path-stat' has no `metric`, and no "
        "policy it extends defines this id, so there is nothing to patch; did you mean "
        "'no-path-statx'?",
        "p.yml:5:3: error: rules.brand-new: rule 'brand-new' has no `metric`, and no policy it "
        "extends defines this id, so there is nothing to patch",
    ]


def test_a_patch_that_makes_warn_useless_is_reported_in_the_patching_file(tmp_path: Path) -> None:
    write(tmp_path / "base.yml", "version: 1\nrules:\n"
          "  r: {metric: syscalls.total, warn: {max: 5}, fail: {max: 10}}\n")  # fmt: skip
    write(tmp_path / "p.yml", "version: 1\nextends: [base.yml]\nrules:\n  r: {fail: {max: 4}}\n")
    # The conflict is between base.yml's warn.max and p.yml's fail.max: p.yml can fix it.
    assert problems("p.yml") == [
        "p.yml:4:19: error: rules.r.fail.max: warn.max (5) must be below fail.max (4): a value "
        "above warn.max warns before one above fail.max fails; as written the warning can "
        "never show"
    ]


# -- problems in extended files -------------------------------------------------------------------


def test_every_file_reports_its_own_problems_at_its_own_positions(tmp_path: Path) -> None:
    write(tmp_path / "common" / "base.yml",
          "version: 1\n"  # 1
          "scenario:\n"  # 2
          "  command: ./copy {src} {dest}\n"  # 3
          "  fixture: {files: 2, dirz: 1}\n"  # 4: dirz at 23
          "rules:\n"  # 5
          "  stat: {metric: syscall.statx.calls, fail: {max: 10}}\n"  # 6
          "  bad: {metric: zzz, fail: {max: 1}}\n")  # 7: zzz at 17  # fmt: skip
    write(tmp_path / "ci" / "p.yml",
          "version: 1\n"  # 1
          "extends: [../common/base.yml, builtin:minimal]\n"  # 2
          "scenario:\n"  # 3
          "  timeout: 10 s\n"  # 4
          "rules:\n"  # 5
          "  stat: {mode: off}\n"  # 6: off at 16
          "  trace-intact: {fail: {max: 1}, warn: {max: 2}}\n")  # 7: warn.max at 46  # fmt: skip
    assert problems("ci/p.yml") == [
        "ci/p.yml:6:16: error: rules.stat.mode: 'off' is read by YAML 1.1 as the boolean false, "
        "not a mode; write enforce, advisory or disabled",
        "ci/p.yml:7:46: error: rules.trace-intact.warn.max: warn.max (2) must be below fail.max "
        "(1): a value above warn.max warns before one above fail.max fails; as written the "
        "warning can never show",
        "common/base.yml:3:12: error: scenario.command: unknown placeholder {dest}; did you mean "
        "{dst}? the command takes {src} and {dst}",
        "common/base.yml:4:23: error: scenario.fixture.dirz: unknown key 'dirz'; did you mean "
        "'dirs'? valid keys: dirs, file_size, files, seed, symlinks",
        "common/base.yml:7:17: error: rules.bad.metric: unknown metric 'zzz' (all metrics: "
        "docs/metrics.md)",
    ]


def test_a_scenario_without_command_points_at_the_last_scenario_written(tmp_path: Path) -> None:
    write(tmp_path / "base.yml", "version: 1\nscenario:\n  build: make\n")
    write(tmp_path / "p.yml", "version: 1\nextends: [base.yml]\n\nscenario:\n  timeout: 5s\n")
    assert problems("p.yml") == [
        "p.yml:4:1: error: scenario: a scenario needs `command` (the traced command, with {src} "
        "and {dst})"
    ]


def test_an_override_hides_the_base_value_it_replaces(tmp_path: Path) -> None:
    write(tmp_path / "base.yml", "version: 1\nscenario:\n  command: ./copy {src} {dest}\n")
    write(tmp_path / "p.yml", "version: 1\nextends: [base.yml]\nscenario:\n"
          "  command: ./copy {src} {dst}\n")  # fmt: skip
    policy = load_policy("p.yml")
    assert policy.scenario is not None and policy.scenario.command == "./copy {src} {dst}"


def test_scenario_merges_key_by_key(tmp_path: Path) -> None:
    write(tmp_path / "base.yml",
          "version: 1\nscenario:\n  command: ./copy {src} {dst}\n  build: make\n"
          "  fixture: {files: 5, dirs: 1, file_size: 1KiB}\n  env: {A: '1'}\n")  # fmt: skip
    write(tmp_path / "p.yml",
          "version: 1\nextends: [base.yml]\nscenario:\n  timeout: 30s\n"
          "  fixture: {dirs: 3}\n  env: {B: '2'}\n")  # fmt: skip
    s = load_policy("p.yml").scenario
    assert s is not None
    assert (s.command, s.build, s.timeout, s.env) == (
        "./copy {src} {dst}", "make", 30.0, {"A": "1", "B": "2"},
    )  # fmt: skip
    assert (s.fixture.files, s.fixture.dirs, s.fixture.file_size) == (5, 3, 1024)


def test_newer_version_in_an_extended_file(tmp_path: Path) -> None:
    write(tmp_path / "base.yml", "version: 3\nrules:\n  r: {metric: new.thing}\n")
    write(tmp_path / "p.yml", "version: 1\nextends: [base.yml]\nrules:\n  r: {mode: advisory}\n")
    # Only the version: p.yml's patch of `r` cannot be checked against a file we cannot read.
    assert problems("p.yml") == [
        "base.yml:1:10: error: version: policy version 3 is newer than this gate understands (it "
        "reads version 1); upgrade syscall-gate: a newer action tag, or `pip install -U "
        "syscall-gate`"
    ]


# -- digest ---------------------------------------------------------------------------------------


def canonical_digest(resolved: dict[str, object]) -> str:
    """The documented digest: sha256 of the resolved policy as sorted, compact JSON."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_digest_of_a_flat_policy_is_that_of_its_content(tmp_path: Path) -> None:
    write(tmp_path / "p.yml", "# a comment\nversion: 1\nrules:\n"
          "  r: {fail: {max: 2}, metric: syscalls.total}\n")  # fmt: skip
    expected = {"version": 1, "rules": {"r": {"metric": "syscalls.total", "fail": {"max": 2}}}}
    assert load_policy("p.yml").digest == canonical_digest(expected)


def test_digest_is_of_the_resolved_policy(tmp_path: Path) -> None:
    write(tmp_path / "p.yml", "version: 1\nextends: [builtin:minimal]\nrules:\n"
          "  no-legacy-calls: {mode: advisory}\n")  # fmt: skip
    rules = preset_rules("minimal")
    rules["no-legacy-calls"]["mode"] = "advisory"
    flat = write(tmp_path / "flat.yml", yaml.safe_dump({"version": 1, "rules": rules}))
    patched = load_policy("p.yml")
    assert (
        patched.digest
        == load_policy(flat).digest
        == canonical_digest({"version": 1, "rules": rules})
    )
    plain = load_policy(write(tmp_path / "plain.yml", "version: 1\nextends: [builtin:minimal]\n"))
    assert plain.digest != patched.digest


def test_run_from_the_root_directory_reads_no_file_outside_the_policys_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside a git checkout the current directory bounds local extends; started from /,
    # that would be everything: the policy's own directory bounds them instead.
    write(tmp_path / "outside.yml", "version: 1\nrules: {}\n")
    write(tmp_path / "ci" / "p.yml", "version: 1\nextends: [../outside.yml]\n")
    monkeypatch.chdir("/")
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "ci" / "p.yml")
    [d] = err.value.diagnostics
    assert d.message.startswith(
        f"'../outside.yml' is outside the repository ({tmp_path / 'ci'}), which holds the policy"
    )


def test_a_directory_is_not_a_policy_file(tmp_path: Path) -> None:
    (tmp_path / "common.yml").mkdir()
    write(tmp_path / "p.yml", "version: 1\nextends: [common.yml]\n")
    assert problems("p.yml") == [
        "p.yml:2:11: error: extends[0]: 'common.yml' is a directory; name a policy file in it"
    ]
