"""Read a policy file: YAML with positions, JSON Schema, extends, then a semantic pass.

Every problem is collected and reported as FILE:LINE:COL: error: PATH: message,
in the file that holds it (an extended file's problem points into that file).
The first problem never hides the rest: a value found wrong is replaced by
INVALID, later checks skip it, and everything else is still checked.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jsonschema

from ci_gate.compare.bounds import BaselineRule
from ci_gate.errors import Diagnostic, PolicyError
from ci_gate.metrics import registry, syscall_table
from ci_gate.metrics.collector import Unexpected
from ci_gate.policy import schema as policy_schema
from ci_gate.policy.model import (
    DISABLED,
    ENFORCE,
    BaselineSpec,
    Bound,
    Fixture,
    Origin,
    Policy,
    Rule,
    Scenario,
    fmt_number,
)
from ci_gate.policy.yaml_source import (
    INVALID,
    MAX_POLICY_BYTES,
    Located,
    Path_,
    dotted,
    load,
)
from ci_gate.units import BYTE_UNITS

SUPPORTED_VERSION = 1
BUILTIN = "builtin:"
MAX_FILES = 32  # files in one policy's extends graph
_PRESET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # `{}` (find -exec) is no typo
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def schema() -> dict[str, Any]:
    """The JSON Schema the loader validates with (metric names left to the semantic pass)."""
    return policy_schema.for_validation()


def presets_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("ci_gate.presets")))
    except ModuleNotFoundError:
        # Run from a source checkout without installing: the presets are in policies/.
        return Path(__file__).resolve().parents[2] / "policies"


def available_presets() -> list[str]:
    """builtin:NAME presets; policies/*-demo.yml are complete example policies, not presets."""
    return sorted(p.stem for p in presets_dir().glob("*.yml") if not p.stem.endswith("-demo"))


def parse_size(value: int | str) -> float:
    """Bytes; a string carries a unit (the schema has checked its form)."""
    if isinstance(value, int):
        return float(value)
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)", value.strip())
    assert m is not None, value
    return float(m.group(1)) * BYTE_UNITS[m.group(2)]


def parse_duration(value: float | str) -> float:
    """Seconds; a string carries a unit (the schema has checked its form)."""
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)", value.strip())
    assert m is not None, value
    return float(m.group(1)) * _SECONDS[m.group(2)]


# -- collecting diagnostics ---------------------------------------------------------------------


@dataclass
class _Doc:
    """One file of the extends graph."""

    located: Located
    path: Path

    @property
    def value(self) -> dict[str, Any]:
        v: dict[str, Any] = self.located.value
        return v

    @property
    def file(self) -> str:
        return self.located.file


@dataclass
class _Ctx:
    diags: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    order: dict[str, int] = field(default_factory=dict)  # file -> when it was first read
    files_read: int = 0
    incomplete: bool = False  # some extended file could not be read: its rules are unknown
    # Local extends must stay inside this tree: the policy comes from the pull request,
    # and an error message quoting another file's keys must not leak it.
    confine: Path | None = None

    def add(
        self,
        doc: Located | str,
        path: Path_,
        message: str,
        *,
        key: bool = False,
        line_col: tuple[int, int] | None = None,
        severity: str = "error",
    ) -> None:
        if isinstance(doc, str):
            file, (line, col) = doc, line_col or (1, 1)
        else:
            file, (line, col) = doc.file, line_col or doc.where(path, key=key)
        d = Diagnostic(file, line, col, dotted(path), message, severity=severity)
        (self.diags if severity == "error" else self.warnings).append(d)

    def sorted(self, *, warnings: bool = False) -> list[Diagnostic]:
        """File by file in reading order, then by position; each problem once."""
        found = self.diags + self.warnings if warnings else self.diags
        unique = dict.fromkeys(found)  # a file extended twice reports its problems once
        return sorted(unique, key=lambda d: (self.order.get(d.file, 1 << 30), d.line, d.col))


# -- one file -------------------------------------------------------------------------------------


def _read(path: Path, shown: str, ctx: _Ctx) -> Located | None:
    ctx.order.setdefault(shown, len(ctx.order))
    try:
        with path.open("rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        ctx.add(shown, (), "no such policy file")
        return None
    except OSError as exc:
        ctx.add(shown, (), f"cannot read the policy: {exc.strerror or exc}")
        return None
    if len(data) > MAX_POLICY_BYTES:
        ctx.add(shown, (), f"the policy is larger than {MAX_POLICY_BYTES} bytes")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        ctx.add(shown, (), "the policy is not UTF-8 text", line_col=(line, col))
        return None
    doc, errors = load(text, shown, _schema_at)
    ctx.diags.extend(errors)
    if doc.value is None:
        return None
    if not isinstance(doc.value, dict):
        ctx.add(doc, (), "a policy must be a YAML mapping (version: 1, rules: ...)")
        return None
    return doc


def _check_version(doc: Located, ctx: _Ctx) -> bool:
    """False when the file is written for another format and nothing else in it can be read."""
    if "version" not in doc.value:
        ctx.add(
            doc.file,
            ("version",),
            "missing `version: 1` (the policy format this gate reads); add it as the first line",
        )
        return True
    version = doc.value["version"]
    # type(): true and 1.0 equal 1 in Python, but neither is the number this format names.
    if version is INVALID or (type(version) is int and version == SUPPORTED_VERSION):
        return True
    if isinstance(version, bool) or (isinstance(version, float) and version.is_integer()):
        shown = str(version).lower() if isinstance(version, bool) else repr(version)
        ctx.add(
            doc,
            ("version",),
            f"write `version: {SUPPORTED_VERSION}`, the integer, not {shown}",
        )
        return True
    if isinstance(version, int) and not isinstance(version, bool) and version > 1:
        ctx.add(
            doc,
            ("version",),
            f"policy version {version} is newer than this gate "
            f"understands (it reads version {SUPPORTED_VERSION}); upgrade syscall-gate: a "
            "newer action tag, or `pip install -U syscall-gate`",
        )
        return False
    if isinstance(version, str) and version.strip() == str(SUPPORTED_VERSION):
        ctx.add(
            doc,
            ("version",),
            f"write `version: {SUPPORTED_VERSION}`, a number, not the string {version!r}",
        )
        return True
    ctx.add(
        doc,
        ("version",),
        f"unknown policy version {version!r}; this gate reads `version: {SUPPORTED_VERSION}`",
    )
    return True


def _parent(root: Any, path: Path_) -> Any:
    """The container holding `path`'s value, or None when a step is gone or not a container."""
    node = root
    for part in path[:-1]:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_dict or in_list):
            return None
        node = node[part]
    return node if isinstance(node, dict | list) else None


def _schema_pass(doc: Located, ctx: _Ctx) -> None:
    """Report schema errors and mark the values they concern INVALID."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = list(validator.iter_errors(doc.value))
    removals: list[tuple[Path_, str | None]] = []
    poisoned: list[Path_] = []
    for err in errors:
        path: Path_ = tuple(err.absolute_path)
        if err.instance is INVALID or path[:1] == ("version",):
            continue  # reported by the YAML reader, or by the version check
        if err.validator == "required":
            continue  # only `version` is required
        if err.validator == "additionalProperties":
            removals += _unknown_keys(err, path, doc, ctx)
            continue
        if "propertyNames" in err.absolute_schema_path:
            key = str(err.instance)
            if path[-1:] == ("env",):
                why = f"invalid environment variable name {key!r}: {_ENV_FORM}"
            else:
                why = f"invalid id {key!r}: {_ID_FORM}"
            ctx.add(doc, (*path, key), why, key=True)
            poisoned.append((*path, key))
            continue
        ctx.add(doc, path, _explain(err, path))
        poisoned.append(path)
    for path, meant in removals:
        parent = _parent(doc.value, path)
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
            if meant is not None:
                # A misspelt key stands for the key it resembles, with a value already
                # reported: `comand:` must not also give "a scenario needs `command`".
                parent.setdefault(meant, INVALID)
    # Deepest first: a value inside one that is about to become INVALID is still reachable.
    for path in sorted(poisoned, key=len, reverse=True):
        parent = _parent(doc.value, path) if path else None
        if parent is not None:
            parent[path[-1]] = INVALID


_ID_FORM = "use letters, digits, '_', '.', '-', starting with a letter or digit, at most 64"
_ENV_FORM = "use letters, digits and '_', not starting with a digit"


def _unknown_keys(
    err: jsonschema.ValidationError, path: Path_, doc: Located, ctx: _Ctx
) -> list[tuple[Path_, str | None]]:
    allowed = sorted(_schema_at(path).get("properties", {}))
    out: list[tuple[Path_, str | None]] = []
    instance = cast(dict[str, Any], err.instance)
    for key in instance:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        ctx.add(
            doc,
            (*path, key),
            f"unknown key {key!r}; {hint}valid keys: {', '.join(allowed)}",
            key=True,
        )
        out.append(((*path, key), close[0] if close else None))
    return out


def _schema_at(path: Path_) -> dict[str, Any]:
    """The subschema describing the value at `path` (for lists of valid keys, titles)."""
    node: dict[str, Any] = schema()
    defs = node["$defs"]

    def deref(n: dict[str, Any]) -> dict[str, Any]:
        return defs[n["$ref"].rsplit("/", 1)[-1]] if "$ref" in n else n

    for part in path:
        node = deref(node)
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return deref(node)


def describe(value: Any) -> str:
    """A value as an error message names it."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {fmt_number(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _article(t: object) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
    }
    if isinstance(t, list):
        return " or ".join(names.get(str(x), str(x)) for x in t)
    return names.get(str(t), str(t))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")


# Mappings of limits (keys from properties, in the schema's order): what to write instead.
_PCT_ABS = (
    "{pct: 15}, {abs: 1} or {pct: 15, abs: 1} (pct: percent of the base; abs: in the metric's unit)"
)
_MAPPING_EXAMPLES = {
    ("pct", "abs"): _PCT_ABS,
    ("max_increase", "max_decrease"): "{max_increase: {pct: 15}} or {max_decrease: {abs: 1}}",
    ("warn", "fail"): "{fail: {max_increase: {pct: 15}}}",
}


def _mapping_hint(path: Path_, value: Any) -> str | None:
    """For a limit mapping written wrong: which keys it takes and an example to write."""
    keys = tuple(_schema_at(path).get("properties", {}))
    example = _MAPPING_EXAMPLES.get(keys)
    if example is None:
        return None
    if keys == ("pct", "abs") and isinstance(value, int | float) and not isinstance(value, bool):
        v = fmt_number(float(value))
        example = f"{{pct: {v}}} (percent of the base) or {{abs: {v}}} (in the metric's unit)"
    return f"write {' and/or '.join(keys)}, e.g. {example}"


def _explain(err: jsonschema.ValidationError, path: Path_) -> str:
    v, value = err.validator, cast(Any, err.instance)
    if v == "type":
        msg = f"expected {_article(err.validator_value)}, got {describe(value)}"
        hint = _mapping_hint(path, value) if err.validator_value == "object" else None
        if hint is not None:
            return f"{msg}; {hint}"
        if isinstance(value, str) and err.validator_value in ("number", "integer"):
            try:
                float(value)
            except ValueError:
                return msg
            if "e" in value.lower():
                msg += " (YAML 1.1 reads an exponent as a number only in the form 1.0e+3)"
            else:
                msg += " (write numbers without quotes)"
        return msg
    if v == "enum":
        choices = [str(c) for c in cast(list[Any], err.validator_value)]
        close = difflib.get_close_matches(str(value), choices, n=1) if value is not None else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{describe(value)} is not allowed here{hint}; expected one of: {', '.join(choices)}"
    if v == "oneOf" or (v == "pattern" and path[-1:] != ("id",)):
        sub = _schema_at(path)
        title = sub.get("title", "value")
        return (
            f"{describe(value)} is not a valid {title}; expected "
            f"{_lower_first(sub.get('description', 'a valid value'))}"
        )
    if v == "pattern":
        return f"invalid id {value!r}: {_ID_FORM}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[
            str(v)
        ]
        return f"{fmt_number(float(value))} is out of range: must be {op} {err.validator_value}"
    if v == "minProperties":
        hint = _mapping_hint(path, value)
        if hint is not None:
            return f"an empty mapping sets no limit; {hint}"
        return "a bound needs at least one of min, max, eq"
    if v == "minLength":
        return "must not be empty"
    return err.message


# -- extends ------------------------------------------------------------------------------------


def _collect(path: Path, shown: str, ctx: _Ctx, stack: tuple[Path, ...]) -> list[_Doc]:
    """This file and everything it extends, bases first."""
    ctx.files_read += 1
    located = _read(path, shown, ctx)
    if located is None:
        return []
    if not _check_version(located, ctx):
        return []
    _schema_pass(located, ctx)
    doc = _Doc(located, path)
    chain: list[_Doc] = []
    refs = doc.value.get("extends", [])
    for i, ref in enumerate(refs if isinstance(refs, list) else []):
        if not isinstance(ref, str):
            continue  # reported by the schema pass
        target = _resolve(ref, doc, ("extends", i), ctx)
        if target is None:
            ctx.incomplete = True
            continue
        if target in stack:
            names = " -> ".join(_display(p) for p in (*stack[stack.index(target) :], target))
            ctx.add(located, ("extends", i), f"extends cycle: {names}")
            continue
        if ctx.files_read >= MAX_FILES:
            ctx.add(located, ("extends", i), f"more than {MAX_FILES} files in the extends graph")
            ctx.incomplete = True
            continue
        label = ref if ref.startswith(BUILTIN) else _display(target)
        bases = _collect(target, label, ctx, (*stack, target))
        if not bases:
            ctx.incomplete = True  # its rules are unknown: patches of them cannot be checked
        chain.extend(bases)
    chain.append(doc)
    return chain


POLICY_SUFFIXES = (".yml", ".yaml", ".json")


def _resolve(ref: str, doc: _Doc, at: Path_, ctx: _Ctx) -> Path | None:
    if ref.startswith(BUILTIN):
        name = ref[len(BUILTIN) :]
        names = available_presets()
        if _PRESET_NAME.match(name) and name in names:
            return (presets_dir() / f"{name}.yml").resolve()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean 'builtin:{close[0]}'? " if close else ""
        if name.endswith("-demo") and (presets_dir() / f"{name}.yml").is_file():
            hint = f"policies/{name}.yml is an example to copy, not a preset; "
        ctx.add(
            doc.located,
            at,
            f"no preset {ref!r}; {hint}presets: {', '.join(BUILTIN + n for n in names)}",
        )
        return None
    target = (doc.path.parent / ref).resolve()
    if target.suffix.lower() not in POLICY_SUFFIXES:
        # Nothing else is a policy; and a file such as /etc/shadow is never read, nor its
        # lines quoted back in errors, whatever the repository's bounds turn out to be.
        ctx.add(
            doc.located,
            at,
            f"{ref!r} is not a policy file: a policy extends presets (builtin:NAME) and "
            f"files named {', '.join(POLICY_SUFFIXES)}",
        )
        return None
    if ctx.confine is not None and not target.is_relative_to(ctx.confine):
        ctx.add(
            doc.located,
            at,
            f"{ref!r} is outside the repository ({ctx.confine}), which holds the policy: "
            "a policy may extend presets (builtin:NAME) and files of its own repository only",
        )
        return None
    if target.is_dir():
        ctx.add(doc.located, at, f"{ref!r} is a directory; name a policy file in it")
        return None
    if not target.is_file():
        name = ref.removesuffix(".yml")
        hint = f"; did you mean 'builtin:{name}'?" if name in available_presets() else ""
        ctx.add(
            doc.located,
            at,
            f"{ref!r} not found (looked for {_display(target)}, relative to the extending "
            f"file){hint}",
        )
        return None
    return target


def _repository_of(policy: Path) -> Path:
    """The tree local extends may reach: the policy's git checkout; outside one, the
    current directory when the policy lies in it (a workspace), else the policy's own."""
    here = policy.resolve().parent
    for d in (here, *here.parents):
        if (d / ".git").exists():
            return d
    cwd = Path.cwd().resolve()
    # Never the whole file system: run from /, the policy's own directory bounds it.
    return cwd if here.is_relative_to(cwd) and cwd.parent != cwd else here


def _display(path: Path) -> str:
    """How a file is named in messages: relative to the current directory, like the
    path given on the command line."""
    return os.path.relpath(path)


# -- merging ------------------------------------------------------------------------------------


Sources = dict[Path_, _Doc]  # merged path -> the file that supplied the value there


def _merge(chain: list[_Doc]) -> tuple[dict[str, Any], Sources, dict[str, set[str]]]:
    """The merged policy, where each part came from, and the rule ids each file saw before.

    scenario, scenario.fixture, scenario.env and unexpected merge key by key;
    rules merge by id: a later rule with `metric` replaces the earlier one, a
    later rule without it patches the earlier one key by key.
    """
    merged: dict[str, Any] = {"version": SUPPORTED_VERSION}
    src: Sources = {}
    earlier_ids: dict[str, set[str]] = {}
    for doc in chain:
        value = doc.value
        earlier_ids[doc.file] = set(merged.get("rules", {}))
        for section in ("scenario", "unexpected", "baseline"):
            if section not in value:
                continue
            incoming = value[section]
            src[(section,)] = doc
            if not isinstance(incoming, dict):
                merged[section] = INVALID
                continue
            current = merged.get(section)
            if not isinstance(current, dict):
                current = {}
            current = dict(current)
            for key, val in incoming.items():
                sub = (section, key)
                old = current.get(key)
                if key in ("fixture", "env") and isinstance(val, dict) and isinstance(old, dict):
                    current[key] = {**old, **val}
                    src.update({(*sub, k): doc for k in val})
                else:
                    current[key] = val
                    src = {p: d for p, d in src.items() if p[:2] != sub}
                src[sub] = doc
            merged[section] = current
        rules_in = value.get("rules", {})
        if not isinstance(rules_in, dict):
            continue
        rules = merged.setdefault("rules", {})
        for rid, rule in rules_in.items():
            base = ("rules", rid)
            old = rules.get(rid)
            if rule is INVALID or (old is INVALID and "metric" not in rule):
                rules[rid] = INVALID
            elif "metric" in rule or old is None:
                rules[rid] = dict(rule)
                src = {p: d for p, d in src.items() if p[:2] != base}
            else:
                rules[rid] = {**old, **rule}
            if isinstance(rule, dict):
                src.update({(*base, k): doc for k in rule})
            src[base] = doc
    return merged, src, earlier_ids


# -- semantic pass ------------------------------------------------------------------------------


class _Where:
    """Reports a problem at a merged path, in the file that supplied the value there."""

    def __init__(self, src: Sources, chain: list[_Doc], ctx: _Ctx) -> None:
        self.src = {(): chain[-1], **src}
        self.rank = {id(d): i for i, d in enumerate(chain)}
        self.ctx = ctx

    def doc(self, path: Path_) -> _Doc:
        p = path
        while p not in self.src:
            p = p[:-1]
        return self.src[p]

    def latest(self, *paths: Path_) -> Path_:
        """Of paths whose values conflict, the one written last: the file that can fix it."""
        return max(paths, key=lambda p: self.rank[id(self.doc(p))])

    def __call__(
        self, path: Path_, message: str, *, key: bool = False, severity: str = "error"
    ) -> None:
        self.ctx.add(self.doc(path).located, path, message, key=key, severity=severity)


def _ok(raw: dict[str, Any], key: str) -> bool:
    """The key is present and was not already reported as wrong."""
    return key in raw and raw[key] is not INVALID


def _has_invalid(value: Any) -> bool:
    """Some value at any depth was already reported as wrong."""
    if value is INVALID:
        return True
    if isinstance(value, dict):
        return any(_has_invalid(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_invalid(v) for v in value)
    return False


def _bound(raw: Any) -> Bound | None:
    if not isinstance(raw, dict) or INVALID in raw.values():
        return None
    return Bound(raw.get("min"), raw.get("max"), raw.get("eq"))


def _allowed(b: Bound) -> tuple[float, float]:
    """The interval of values that do not trip the bound."""
    low = max(x for x in (b.min, b.eq, float("-inf")) if x is not None)
    high = min(x for x in (b.max, b.eq, float("inf")) if x is not None)
    return low, high


def _check_rule(
    rid: str, raw: dict[str, Any], at: _Where, ctx: _Ctx, earlier: set[str]
) -> Rule | None:
    base: Path_ = ("rules", rid)
    n = fmt_number
    problems_before = len(ctx.diags)
    if "metric" not in raw:
        if not ctx.incomplete:
            close = difflib.get_close_matches(rid, sorted(earlier), n=1)
            if earlier:
                hint = f"; did you mean {close[0]!r}?" if close else ""
                msg = (
                    f"rule {rid!r} has no `metric`, and no policy it extends defines this id, "
                    f"so there is nothing to patch{hint}"
                )
            else:
                msg = f"rule {rid!r} has no `metric`"
            at(base, msg, key=True)
        return None
    metric = raw["metric"]
    spec = registry.lookup(metric) if metric is not INVALID else None
    if metric is not INVALID and spec is None:
        close = registry.suggest(metric)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        at((*base, "metric"), f"unknown metric {metric!r}{hint} (all metrics: docs/metrics.md)")
    if spec is not None and raw.get("per") == "file" and not spec.per_file:
        alt = f"scenario.{metric}"
        hint = f"; did you mean {alt!r}?" if registry.lookup(alt) else ""
        what = (
            "counts the whole traced process (start-up included)"
            if spec.scope == registry.TRACE
            else "is not such a count"
        )
        at(
            at.latest((*base, "per"), (*base, "metric")),
            f"`per: file` needs a count of calls on the scenario's files; {metric!r} {what}{hint}",
        )

    warn, fail = _bound(raw.get("warn")), _bound(raw.get("fail"))
    mode = raw.get("mode", ENFORCE)
    if (
        "warn" not in raw
        and "fail" not in raw
        and "baseline" not in raw
        and mode not in (DISABLED, INVALID)
    ):
        at(
            base,
            f"rule {rid!r} has neither `warn`, `fail` nor `baseline` bounds, so it can never trip",
            key=True,
        )
    for name, b in (("warn", warn), ("fail", fail)):
        if b is None:
            continue
        low, high = _allowed(b)
        if low > high:
            what = "every value fails" if name == "fail" else "every value warns"
            keys = [k for k in ("min", "eq", "max") if getattr(b, k) is not None]
            at(
                (*base, name),
                f"{name} has {' and '.join(f'{k} {n(getattr(b, k))}' for k in keys)}: {what}",
            )
    if spec is not None:
        _check_range(base, metric, spec, raw.get("per") == "file", warn, fail, at)
    if warn is not None and fail is not None:
        wp, fp = (*base, "warn"), (*base, "fail")
        if warn.min is not None and fail.min is not None and warn.min <= fail.min:
            at(
                at.latest((*wp, "min"), (*fp, "min")),
                f"warn.min ({n(warn.min)}) must be above fail.min ({n(fail.min)}): a value "
                "below warn.min warns before one below fail.min fails; as written the warning "
                "can never show",
            )
        elif warn.max is not None and fail.max is not None and warn.max >= fail.max:
            at(
                at.latest((*wp, "max"), (*fp, "max")),
                f"warn.max ({n(warn.max)}) must be below fail.max ({n(fail.max)}): a value "
                "above warn.max warns before one above fail.max fails; as written the warning "
                "can never show",
            )
        elif len(ctx.diags) == problems_before:
            (flow, fhigh), (wlow, whigh) = _allowed(fail), _allowed(warn)
            if spec is not None:  # only values the metric can take matter
                low, high = spec.value_range(raw.get("per") == "file")
                flow, wlow = max(flow, low), max(wlow, low)
                fhigh, whigh = min(fhigh, high), min(whigh, high)
            if max(flow, wlow) > min(fhigh, whigh):
                at(
                    at.latest(wp, fp),
                    "no value can pass: every value inside the fail bounds "
                    "is outside the warn bounds",
                )
            elif wlow <= flow and fhigh <= whigh:
                at(
                    at.latest(wp, fp),
                    "the warning can never show: every value outside the "
                    "warn bounds is already outside the fail bounds",
                )
    _check_baseline_order(base, raw.get("baseline"), at)
    if _ok(raw, "deduct"):
        if "fail" not in raw:
            at(
                (*base, "deduct"),
                "`deduct` takes points off when the rule fails, but the rule has no `fail` bound",
            )
        if metric == "security.score":
            at((*base, "deduct"), "a rule on security.score cannot deduct from it")
    if len(ctx.diags) > problems_before or _has_invalid(raw):
        return None  # nested values too: `baseline.fail.max_increase` may have been refused
    doc = at.doc(base)
    line, col = doc.located.where(base, key=True)
    return Rule(
        id=rid,
        metric=metric,
        origin=Origin(doc.file, line, col),
        per=raw.get("per"),
        warn=warn,
        fail=fail,
        mode=mode,
        reason=raw.get("reason"),
        hint=raw.get("hint"),
        deduct=raw.get("deduct"),
        aggregate=raw.get("aggregate", "median"),
        baseline=BaselineRule.from_raw(raw.get("baseline")),
        max_spread=raw.get("max_spread"),
    )


def _check_baseline_order(base: Path_, bl: Any, at: _Where) -> None:
    """A baseline warn limit must trip before the fail limit, as value bounds must."""
    if not isinstance(bl, dict) or not isinstance(bl.get("warn"), dict):
        return
    if not isinstance(bl.get("fail"), dict):
        return
    for kind in ("max_increase", "max_decrease"):
        w, f = bl["warn"].get(kind), bl["fail"].get(kind)
        if not isinstance(w, dict) or not isinstance(f, dict) or not f:
            continue
        limits = [k for k in ("pct", "abs") if k in f]
        if not limits or len(limits) != len(f):
            continue  # another problem, already reported

        def number(x: Any) -> bool:
            return isinstance(x, int | float) and not isinstance(x, bool)

        # A change trips a limit when it exceeds every part given (pct and abs). If warn
        # names each part fail names, at least as large, whatever warns already fails.
        if all(number(f[k]) and number(w.get(k)) and w[k] >= f[k] for k in limits):

            def shown(d: dict[str, Any]) -> str:
                return ", ".join(
                    f"{k} {fmt_number(v)}" for k, v in d.items() if k in ("pct", "abs")
                )

            at(
                (*base, "baseline", "warn", kind),
                f"baseline.warn.{kind} ({shown(w)}) must be below baseline.fail.{kind} "
                f"({shown(f)}): a change past the warn limit warns before one past the fail "
                "limit fails; as written the warning can never show",
            )


def _no_whole_number(low: float, high: float) -> bool:
    return high != math.inf and math.ceil(low) > math.floor(high)


def _check_range(
    base: Path_,
    metric: str,
    spec: registry.MetricSpec,
    per_file: bool,
    warn: Bound | None,
    fail: Bound | None,
    at: _Where,
) -> None:
    """Bounds against the values the metric can take: a bound no possible value passes is an
    error (like one whose min is above its max); a limit no possible value trips is a warning."""
    low, high = spec.value_range(per_file)
    n = fmt_number
    what = f"{metric} per file" if per_file else metric
    span = f"{n(low)} or more" if high == float("inf") else f"{n(low)} to {n(high)}"
    for name, b in (("warn", warn), ("fail", fail)):
        if b is None:
            continue
        blow, bhigh = _allowed(b)
        if blow > bhigh:
            continue  # every value trips it whatever the metric: reported already
        every = "every value fails" if name == "fail" else "every value warns"
        whole = spec.whole and not per_file
        if b.eq is not None and not low <= b.eq <= high:
            at(
                (*base, name, "eq"),
                f"{name}.eq {n(b.eq)} is a value {what} never takes (it is {span}): {every}",
            )
        elif b.eq is not None and whole and not float(b.eq).is_integer():
            at(
                (*base, name, "eq"),
                f"{name}.eq {n(b.eq)} is a value {what} never takes (it counts whole "
                f"{spec.unit}): {every}",
            )
        elif b.max is not None and b.max < low:
            at(
                (*base, name, "max"),
                f"{name}.max {n(b.max)} is below every value {what} can take (it is {span}): "
                f"{every}",
            )
        elif b.min is not None and b.min > high:
            at(
                (*base, name, "min"),
                f"{name}.min {n(b.min)} is above every value {what} can take (it is {span}): "
                f"{every}",
            )
        elif whole and _no_whole_number(max(blow, low), min(bhigh, high)):
            keys = [k for k in ("min", "max") if getattr(b, k) is not None]
            at(
                (*base, name, keys[-1] if keys else "eq"),
                f"no whole number is inside {name} "
                f"{' and '.join(f'{k} {n(getattr(b, k))}' for k in keys)}, and {what} counts "
                f"whole {spec.unit}: {every}",
            )
        else:
            if b.min is not None and b.min <= low:
                at(
                    (*base, name, "min"),
                    f"{name}.min {n(b.min)} can never trip: {what} is never below {n(low)}",
                    severity="warning",
                )
            if b.max is not None and b.max >= high:
                at(
                    (*base, name, "max"),
                    f"{name}.max {n(b.max)} can never trip: {what} is never above {n(high)}",
                    severity="warning",
                )


def _scenario(raw: dict[str, Any], at: _Where) -> Scenario | None:
    base: Path_ = ("scenario",)
    ok = True
    command = raw.get("command")
    if "command" not in raw:
        at(base, "a scenario needs `command` (the traced command, with {src} and {dst})", key=True)
        ok = False
    elif isinstance(command, str):
        for m in _PLACEHOLDER.finditer(command):
            if m.group(1) not in ("src", "dst"):
                close = difflib.get_close_matches(m.group(1).lower(), ["src", "dst"], n=1)
                hint = f"did you mean {{{close[0]}}}? " if close else ""
                at(
                    (*base, "command"),
                    f"unknown placeholder {{{m.group(1)}}}; {hint}the "
                    "command takes {src} and {dst}",
                )
                ok = False
        try:
            shlex.split(command)
        except ValueError as exc:
            at((*base, "command"), f"cannot be split into words like a shell would: {exc}")
            ok = False
    for key in ("timeout", "build_timeout"):
        if _ok(raw, key) and parse_duration(raw[key]) <= 0:
            at((*base, key), f"{key} must be longer than 0")
            ok = False
    fx = raw.get("fixture", {})
    size: float = Fixture().file_size
    if isinstance(fx, dict) and _ok(fx, "file_size"):
        size = parse_size(fx["file_size"])
        if not size.is_integer():
            at(
                (*base, "fixture", "file_size"),
                f"{fx['file_size']!r} is not a whole number of bytes",
            )
            ok = False
    if (
        not ok
        or not isinstance(fx, dict)
        or any(v is INVALID for v in (*raw.values(), *fx.values()))
    ):
        return None
    d, ds = Fixture(), Scenario()
    return Scenario(
        id=raw.get("id", ds.id),
        build=raw.get("build"),
        fixture=Fixture(
            files=fx.get("files", d.files),
            file_size=int(size),
            dirs=fx.get("dirs", d.dirs),
            symlinks=fx.get("symlinks", d.symlinks),
            seed=fx.get("seed", d.seed),
        ),
        command=command,
        env=dict(raw.get("env", {})),
        verify=raw.get("verify", ds.verify),
        timeout=parse_duration(raw.get("timeout", ds.timeout)),
        build_timeout=parse_duration(raw.get("build_timeout", ds.build_timeout)),
        repeats=raw.get("repeats", ds.repeats),
        tracing=raw.get("tracing", ds.tracing),
    )


def _unexpected(raw: dict[str, Any], at: _Where) -> Unexpected:
    d = Unexpected()
    for key in ("scenario", "anywhere"):
        names = raw.get(key, [])
        for i, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and not syscall_table.is_known(name):
                close = difflib.get_close_matches(name, list(syscall_table.CATEGORY), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                at(("unexpected", key, i), f"unknown syscall {name!r}{hint}")

    def names_of(key: str) -> frozenset[str] | None:
        v = raw.get(key)
        return frozenset(v) if isinstance(v, list) else None

    direct = raw.get("direct_io_with_uring", d.direct_io_with_uring)
    return Unexpected(
        scenario=names_of("scenario") or (frozenset() if "scenario" in raw else d.scenario),
        anywhere=names_of("anywhere") or frozenset(),
        direct_io_with_uring=direct if isinstance(direct, bool) else d.direct_io_with_uring,
    )


def _baseline(raw: Any, rules: list[Rule], at: _Where) -> BaselineSpec | None:
    """The baseline source: the policy's `baseline:`, or the default (merge base) when a
    rule compares against a baseline and the policy does not say where it comes from."""
    wanted = any(r.baseline is not None for r in rules)
    if not isinstance(raw, dict):
        return BaselineSpec() if wanted else None
    # INVALID stands for a misspelt key (`fille:`), already reported as such.
    if raw.get("ref", INVALID) is not INVALID and raw.get("file", INVALID) is not INVALID:
        at(("baseline", "file"), "`baseline` takes `ref` or `file`, not both")
        return None
    file = raw.get("file")
    resolved = None
    if isinstance(file, str):
        doc = at.doc(("baseline", "file"))
        resolved = str((doc.path.parent / file).resolve())
    return BaselineSpec(
        ref=raw.get("ref", "merge-base"),
        file=resolved,
        on_unavailable=raw.get("on_unavailable", "warn"),
    )


def digest_of(resolved: dict[str, Any]) -> str:
    """sha256 of the merged policy as canonical JSON: equal for equal resolved policies."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_policy(path: str | Path) -> Policy:
    """The resolved policy, or PolicyError listing every problem found."""
    p = Path(path)
    shown = str(path)
    ctx = _Ctx(confine=_repository_of(p))
    chain = _collect(p, shown, ctx, (p.resolve(),))
    if not chain:
        raise PolicyError(ctx.sorted() or [Diagnostic(shown, 1, 1, "", "cannot be read")])
    merged, src, earlier_ids = _merge(chain)
    at = _Where(src, chain, ctx)
    rules: list[Rule] = []
    for rid, raw in merged.get("rules", {}).items():
        if isinstance(raw, dict):
            rule = _check_rule(rid, raw, at, ctx, earlier_ids[at.doc(("rules", rid)).file])
            if rule is not None:
                rules.append(rule)
    scenario = None
    if isinstance(merged.get("scenario"), dict):
        scenario = _scenario(merged["scenario"], at)
    unexpected_raw = merged.get("unexpected", {})
    unexpected = _unexpected(unexpected_raw if isinstance(unexpected_raw, dict) else {}, at)
    baseline = _baseline(merged.get("baseline"), rules, at)
    if ctx.diags:
        raise PolicyError(ctx.sorted(warnings=True))  # every problem, warnings too
    warnings = sorted(
        dict.fromkeys(ctx.warnings), key=lambda d: (ctx.order.get(d.file, 1 << 30), d.line, d.col)
    )
    if not any(r.mode == ENFORCE for r in rules):
        top = chain[-1].located
        line, col = top.where(("rules",), key=True) if "rules" in top.value else (1, 1)
        warnings.append(
            Diagnostic(
                top.file,
                line,
                col,
                "rules",
                "no rule is enforced: the "
                "report shows the metrics, but the gate can never fail on "
                "them",
                severity="warning",
            )
        )
    return Policy(
        path=shown,
        digest=digest_of(merged),
        rules=tuple(rules),
        scenario=scenario,
        unexpected=unexpected,
        sources=tuple(dict.fromkeys(d.file for d in chain)),
        resolved=merged,
        warnings=tuple(warnings),
        baseline=baseline,
    )
