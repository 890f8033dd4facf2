"""The YAML layer of policy loading: traps, duplicate keys, tags, hostile documents.

Expected positions are counted by hand from the YAML written here (line and
column are 1-based, the column of the first character of the key or value).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from ci_gate.errors import PolicyError
from ci_gate.policy.load import load_policy
from ci_gate.policy.model import Bound
from helpers import REPO


def problems(tmp_path: Path, text: str, name: str = "p.yml") -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    prefix = f"{path}:"
    out = []
    for d in exc.value.diagnostics:
        text = str(d)
        assert text.startswith(prefix), text
        out.append(text[len(prefix) :])
    return out


RULE = "  r: {metric: syscalls.total, fail: {max: 1}}\n"


@pytest.mark.parametrize(
    ("word", "meaning"),
    [("off", "false"), ("no", "false"), ("yes", "true"), ("on", "true"), ("Off", "false")],
)
def test_yaml11_booleans_as_mode_are_refused_with_the_modes(
    tmp_path: Path, word: str, meaning: str
) -> None:
    text = f"version: 1\nrules:\n  r:\n    metric: syscalls.total\n    mode: {word}\n"
    # `mode: ` is 4 spaces + 6 characters: the value starts at column 11 of line 5.
    assert problems(tmp_path, text + "    fail: {max: 1}\n") == [
        f"5:11: error: rules.r.mode: '{word}' is read by YAML 1.1 as the boolean {meaning}, "
        "not a mode; write enforce, advisory or disabled"
    ]


def test_yaml11_boolean_elsewhere_says_how_to_write_it(tmp_path: Path) -> None:
    text = "version: 1\nscenario:\n  command: cp {src} {dst}\n  fixture:\n    symlinks: yes\n"
    assert problems(tmp_path, text) == [
        "5:15: error: scenario.fixture.symlinks: 'yes' is read by YAML 1.1 as the boolean "
        "true; write true"
    ]


def test_quoted_words_are_strings_and_true_false_are_booleans(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(
        "version: 1\n"
        "scenario:\n"
        "  command: cp {src} {dst}\n"
        "  fixture: {symlinks: false}\n"
        "rules:\n"
        "  r: {metric: syscalls.total, fail: {max: 1}, mode: 'disabled', reason: 'off'}\n"
    )
    policy = load_policy(path)
    assert policy.scenario is not None and policy.scenario.fixture.symlinks is False
    assert policy.rules[0].mode == "disabled"
    assert policy.rules[0].reason == "off"


def test_unquoted_date_is_refused(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  r:\n    metric: syscalls.total\n    fail: {max: 1}\n"
    text += "    reason: 2024-01-31\n"
    assert problems(tmp_path, text) == [
        "6:13: error: rules.r.reason: '2024-01-31' is read by YAML as a date; quote it "
        "('2024-01-31') if you meant the text"
    ]


@pytest.mark.parametrize(
    ("text", "value"), [("1:30", "90"), ("2:00:00", "7200"), ("1:30.5", "90.5")]
)
def test_base60_numbers_are_refused(tmp_path: Path, text: str, value: str) -> None:
    policy = f"version: 1\nscenario:\n  command: cp {{src}} {{dst}}\n  timeout: {text}\n"
    assert problems(tmp_path, policy) == [
        f"4:12: error: scenario.timeout: '{text}' is read by YAML 1.1 as the base-60 number "
        f"{value}; write {value}s (a number with a unit: s, m, h or ms)"
    ]
    # The hint leads to a valid policy (quoting '1:30' would not: it is no duration).
    path = tmp_path / "fixed.yml"
    path.write_text(policy.replace(text, f"{value}s"), encoding="utf-8")
    assert load_policy(path).scenario.timeout == float(value)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "value", "decimal"),
    [("010", "8", "10"), ("0755", "493", "755"), ("-010", "-8", "-10")],
)
def test_octal_looking_numbers_are_refused(
    tmp_path: Path, text: str, value: str, decimal: str
) -> None:
    policy = f"version: 1\nrules:\n  r:\n    metric: syscalls.total\n    fail: {{max: {text}}}\n"
    # `    fail: {max: ` is 16 characters: the number starts at column 17.
    assert problems(tmp_path, policy) == [
        f"5:17: error: rules.r.fail.max: '{text}' is read by YAML 1.1 as the octal number "
        f"{value}; write {decimal} (or {value} if you meant octal)"
    ]


# Each trap's hint depends on what the key takes, and following it gives a valid policy.
SCENARIO_HEAD = "version: 1\nscenario:\n  command: cp {src} {dst}\n"


@pytest.mark.parametrize(
    ("line", "message", "fixed"),
    [
        (
            "  id: yes",
            "4:7: error: scenario.id: 'yes' is read by YAML 1.1 as the boolean true; "
            "quote it ('yes') to keep the word",
            "  id: 'yes'",
        ),
        (
            "  verify: off",
            "4:11: error: scenario.verify: 'off' is read by YAML 1.1 as the boolean false, "
            "not one of the words `verify` takes; write tree-equal or none",
            "  verify: none",
        ),
        (
            "  tracing: off",
            "4:12: error: scenario.tracing: 'off' is read by YAML 1.1 as the boolean false, "
            "not one of the words `tracing` takes; write full or policy",
            "  tracing: policy",
        ),
        (
            "  env: {X: 0755}",
            "4:12: error: scenario.env.X: '0755' is read by YAML 1.1 as the octal number 493; "
            "quote it ('0755') to keep it as written",
            "  env: {X: '0755'}",
        ),
        (
            "  env: {X: 1:30}",
            "4:12: error: scenario.env.X: '1:30' is read by YAML 1.1 as the base-60 number 90; "
            "quote it ('1:30') to keep the text",
            "  env: {X: '1:30'}",
        ),
        (
            "  build_timeout: 010",
            "4:18: error: scenario.build_timeout: '010' is read by YAML 1.1 as the octal number "
            "8; write 10 (or 8 if you meant octal)",
            "  build_timeout: 10",
        ),
        (
            "  repeats: 070",
            # 70 is above the maximum of 50: only the octal reading is a valid value.
            "4:12: error: scenario.repeats: '070' is read by YAML 1.1 as the octal number 56; "
            "expected a number from 1 to 50",
            "  repeats: 5",
        ),
        (
            "  fixture: {dirs: 0100}",
            "4:19: error: scenario.fixture.dirs: '0100' is read by YAML 1.1 as the octal number "
            "64; write 64 if you meant octal",
            "  fixture: {dirs: 64}",
        ),
    ],
)
def test_trap_hints_depend_on_what_the_key_takes(
    tmp_path: Path, line: str, message: str, fixed: str
) -> None:
    assert problems(tmp_path, SCENARIO_HEAD + line + "\n") == [message]
    path = tmp_path / "fixed.yml"
    path.write_text(SCENARIO_HEAD + fixed + "\n" + "rules:\n" + RULE, encoding="utf-8")
    load_policy(path)


def test_trap_hints_for_numbers_and_booleans_in_rules(tmp_path: Path) -> None:
    text = (
        "version: 1\nrules:\n"
        "  r: {metric: syscalls.total, fail: {max: 1:30, min: yes}, deduct: 0150}\n"
        "  s: {metric: syscalls.total, fail: {max: 1}, reason: 2024-01-31, max_spread: -010}\n"
        "  t: {metric: syscalls.total, fail: {max: 2024-01-31}}\n"
    )
    assert problems(tmp_path, text) == [
        "3:43: error: rules.r.fail.max: '1:30' is read by YAML 1.1 as the base-60 number 90; "
        "write 90 if that is the number you meant",
        "3:54: error: rules.r.fail.min: 'yes' is read by YAML 1.1 as the boolean true; "
        "expected a number",
        "3:68: error: rules.r.deduct: '0150' is read by YAML 1.1 as the octal number 104; "
        "expected a number from 0 to 100",
        "4:55: error: rules.s.reason: '2024-01-31' is read by YAML as a date; quote it "
        "('2024-01-31') if you meant the text",
        "4:79: error: rules.s.max_spread: '-010' is read by YAML 1.1 as the octal number -8; "
        "expected a number of at least 0",
        "5:43: error: rules.t.fail.max: '2024-01-31' is read by YAML as a date; expected a number",
    ]


def test_numbers_yaml_reads_plainly_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    # Forms YAML 1.1 and 1.2 read alike (1_000 and 0b11 are not: test_policy_validation).
    path.write_text(
        "version: 1\nrules:\n"
        "  a: {metric: syscalls.total, fail: {max: 1000}}\n"
        "  b: {metric: syscalls.total, fail: {max: 0x10}}\n"
        "  c: {metric: io_uring.batch.avg, fail: {min: .5}}\n"
        "  d: {metric: io_uring.batch.avg, fail: {min: 0}}\n"
    )
    bounds = [(r.fail.max, r.fail.min) for r in load_policy(path).rules if r.fail]
    assert bounds == [(1000, None), (16, None), (None, 0.5), (None, 0)]


def test_exponent_without_dot_is_text_and_says_so(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  r:\n    metric: syscalls.total\n    fail: {max: 1e3}\n"
    assert problems(tmp_path, text) == [
        "5:17: error: rules.r.fail.max: expected a number, got the string '1e3' (YAML 1.1 "
        "reads an exponent as a number only in the form 1.0e+3)"
    ]


def test_infinity_is_refused(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  r:\n    metric: syscalls.total\n    fail: {max: .inf}\n"
    assert problems(tmp_path, text) == [
        "5:17: error: rules.r.fail.max: '.inf' is not a finite number"
    ]


def test_duplicate_keys_are_errors_at_every_level(tmp_path: Path) -> None:
    text = (
        "version: 1\n"  # 1
        "rules:\n"  # 2
        "  r:\n"  # 3
        "    metric: syscalls.total\n"  # 4
        "    fail: {max: 1}\n"  # 5
        "    fail: {max: 2}\n"  # 6
        "  r:\n"  # 7
        "    metric: syscalls.total\n"  # 8
        "version: 1\n"  # 9
    )
    assert problems(tmp_path, text) == [
        "6:5: error: rules.r.fail: duplicate key 'fail' (first defined at line 5); YAML would "
        "silently keep only the last one",
        "7:3: error: rules.r: duplicate key 'r' (first defined at line 3); YAML would silently "
        "keep only the last one",
        "9:1: error: version: duplicate key 'version' (first defined at line 1); YAML would "
        "silently keep only the last one",
    ]


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "rules:\n"
        "  a: &base {metric: syscalls.total, fail: {max: 1}}\n"
        "  b:\n"
        "    <<: *base\n"
        "    mode: advisory\n"
    )
    assert problems(tmp_path, text) == [
        "5:5: error: rules.b: YAML merge keys (<<) are not supported in a policy; write the "
        "keys out, or use `extends`"
    ]


def test_aliases_within_bounds_are_read(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(
        "version: 1\nrules:\n"
        "  a: {metric: syscalls.total, fail: &tight {max: 5}}\n"
        "  b: {metric: syscalls.errors, fail: *tight}\n"
    )
    a, b = load_policy(path).rules
    assert a.fail == b.fail == Bound(max=5)


def test_python_object_tag_is_refused_and_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    text = (
        "version: 1\n"
        "rules:\n"
        "  r:\n"
        f"    metric: !!python/object/apply:os.system ['touch {marker}']\n"
        "    fail: {max: 1}\n"
    )
    assert problems(tmp_path, text) == [
        "4:13: error: rules.r.metric: the YAML tag !!python/object/apply:os.system is not "
        "allowed in a policy"
    ]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!!python/name:os.system ''", "!!python/name:os.system"), ("!custom x", "!custom"),
     ("!!binary aGk=", "!!binary"), ("!!set {a, b}", "!!set")],
)  # fmt: skip
def test_other_tags_are_refused(tmp_path: Path, value: str, tag: str) -> None:
    text = f"version: 1\nrules:\n  r:\n    metric: syscalls.total\n    reason: {value}\n"
    assert problems(tmp_path, text + "    fail: {max: 1}\n") == [
        f"5:13: error: rules.r.reason: the YAML tag {tag} is not allowed in a policy"
    ]


def test_yaml_syntax_error_has_its_position(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n  r: {metric: syscalls.total, fail: {max: 1}\n"
    # The flow mapping opened at 3:6 is still open when the stream ends at 4:1.
    assert problems(tmp_path, text) == [
        "4:1: error: YAML: expected ',' or '}', but got '<stream end>'"
    ]


def test_two_documents_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\n---\nversion: 1\n") == [
        "2:1: error: YAML: a second YAML document (`---`) follows: a policy is one document"
    ]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_policy(tmp_path: Path, text: str) -> None:
    assert problems(tmp_path, text) == ["1:1: error: the policy is empty"]


@pytest.mark.parametrize("text", ["- version: 1\n", "just text\n", "42\n"])
def test_policy_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    assert problems(tmp_path, text) == [
        "1:1: error: a policy must be a YAML mapping (version: 1, rules: ...)"
    ]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_bytes(b"version: 1\nrules: {}\n# caf\xe9\n")
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert [str(d) for d in exc.value.diagnostics] == [
        f"{path}:3:6: error: the policy is not UTF-8 text"
    ]


def test_control_character(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\nrules: {}\n# a\x01b\n") == [
        "3:4: error: YAML: the character '\\x01' is not allowed (quote binary data, or remove it)"
    ]


def test_size_cap(tmp_path: Path) -> None:
    text = "version: 1\n" + "#" * 300_000 + "\n"
    assert problems(tmp_path, text) == ["1:1: error: the policy is larger than 262144 bytes"]


def test_deep_nesting_is_refused_before_it_exhausts_the_stack(tmp_path: Path) -> None:
    # The top mapping is level 1, so the 20th '[' opens level 21; '[' number k is at
    # column 7 + k of line 2 (after "rules: ").
    text = "version: 1\nrules: " + "[" * 20 + "]" * 20 + "\n"
    assert problems(tmp_path, text) == ["2:27: error: the policy nests deeper than 20 levels"]
    many = "version: 1\nrules: " + "[" * 100_000 + "\n"
    assert problems(tmp_path, many) == ["2:27: error: the policy nests deeper than 20 levels"]
    ok = "version: 1\nrules: " + "[" * 19 + "]" * 19 + "\n"
    assert problems(tmp_path, ok) == ["2:8: error: rules: expected a mapping, got a list"]


def test_recursive_alias(tmp_path: Path) -> None:
    # An alias has no position of its own once composed: the error points at the anchor.
    assert problems(tmp_path, "version: 1\nrules: &a\n  r: *a\n") == [
        "2:8: error: rules.r: a recursive alias (an anchor that contains itself)"
    ]


def billion_laughs() -> str:
    lines = ["version: 1", "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    lines.append("rules: {r: {metric: syscalls.total, fail: {max: 1}, reason: *l9}}")
    return "\n".join(lines) + "\n"


def _limit_memory() -> None:
    limit = 512 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_billion_laughs_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    """10^10 nodes if expanded; the alias count cap stops it.

    The child runs with a 512 MiB address-space limit: expansion would die with
    MemoryError instead of printing the cap's message. The timeout only guards a hang.
    """
    path = tmp_path / "laughs.yml"
    path.write_text(billion_laughs())
    proc = subprocess.run(
        [sys.executable, "-m", "ci_gate", "validate-policy", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, preexec_fn=_limit_memory,
    )  # fmt: skip
    # Values built depth-first: the root (1), version (2), l0 (11: 3-13), l1 (111: 14-124),
    # l2 (1111: 125-1235), l3 (11111: 1236-12346), l4's list (12347), then its first *l3
    # from 12348. Node 20001 is offset 7653 in that copy of l3: past its own node and 6
    # copies of l2 (1111 each) -> 986 into the 7th l2; past its node and 8 copies of l1
    # (111 each) -> 97 into the 9th l1; past its node and 8 copies of l0 (11 each) -> 8
    # into the 9th l0: its 8th `lol`, written on line 2 at column 10 + 7 * 5 = 45.
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        f"{path}:2:45: error: the policy expands to more than 20000 YAML nodes, counting each "
        "use of an alias in full: expand fewer aliases, or split the file (each file of "
        "`extends` has its own limit)\n"
    )


def test_tabs_say_what_to_do(tmp_path: Path) -> None:
    assert problems(tmp_path, "version: 1\nrules:\n\ta: {metric: syscalls.total}\n") == [
        "3:1: error: YAML: found character '\\t' that cannot start any token (YAML indents "
        "with spaces, never tabs: replace the tab with spaces)"
    ]
