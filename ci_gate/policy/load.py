"""Read a policy file: YAML with positions, JSON Schema, extends, then a semantic pass.

Every problem is collected and reported as FILE:LINE:COL: error: PATH: message;
the first one never hides the rest.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from ci_gate.errors import Diagnostic, PolicyError
from ci_gate.metrics import registry, syscall_table
from ci_gate.metrics.collector import Unexpected
from ci_gate.policy.model import (
    DISABLED,
    ENFORCE,
    Bound,
    Fixture,
    Origin,
    Policy,
    Rule,
    Scenario,
)
from ci_gate.policy.yaml_source import Located, Path_, dotted, load

SUPPORTED_VERSION = 1
BUILTIN = "builtin:"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


@cache
def schema() -> dict[str, Any]:
    text = importlib.resources.files("ci_gate.policy").joinpath("policy-v1.schema.json")
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded


def presets_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("ci_gate.presets")))
    except ModuleNotFoundError:
        # Run from a source checkout without installing: the presets are in policies/.
        return Path(__file__).resolve().parents[2] / "policies"


def available_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yml"))


def parse_size(value: int | str) -> int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)", value.strip())
    assert m is not None, value
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_duration(value: float | str) -> float:
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)", value.strip())
    assert m is not None, value
    return float(m.group(1)) * _SECONDS[m.group(2)]


# -- loading one file ---------------------------------------------------------------------


class _Loaded:
    def __init__(self, doc: Located, path: Path) -> None:
        self.doc = doc
        self.path = path


def _read(path: Path, diags: list[Diagnostic], shown: str) -> _Loaded | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        diags.append(Diagnostic(shown, 1, 1, "", "no such policy file"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        diags.append(Diagnostic(shown, 1, 1, "", f"cannot read the policy: {exc}"))
        return None
    doc, errors = load(text, shown)
    diags.extend(errors)
    if doc.value is None and not errors:
        diags.append(Diagnostic(shown, 1, 1, "", "the policy is empty"))
    if doc.value is None:
        return None
    if not isinstance(doc.value, dict):
        diags.append(Diagnostic(shown, 1, 1, "", "a policy must be a YAML mapping"))
        return None
    return _Loaded(doc, path)


def _check_version(loaded: _Loaded, diags: list[Diagnostic]) -> bool:
    doc = loaded.doc
    version = doc.value.get("version")
    if "version" not in doc.value:
        diags.append(
            Diagnostic(
                doc.file, 1, 1, "version", "missing `version: 1` (this gate reads policy version 1)"
            )
        )
        return False
    if version != SUPPORTED_VERSION:
        line, col = doc.where(("version",))
        if isinstance(version, int) and version > SUPPORTED_VERSION:
            msg = (
                f"policy version {version} is newer than this gate understands (it reads "
                f"version {SUPPORTED_VERSION}); upgrade syscall-gate (a newer action tag, or "
                "`pip install -U syscall-gate`)"
            )
        else:
            msg = f"unknown policy version {version!r}; this gate reads `version: 1`"
        diags.append(Diagnostic(doc.file, line, col, "version", msg))
        return False
    return True


def _schema_errors(doc: Located) -> list[Diagnostic]:
    validator = jsonschema.Draft202012Validator(schema())
    out: list[Diagnostic] = []
    for err in sorted(validator.iter_errors(doc.value), key=lambda e: list(map(str, e.path))):
        out.extend(_explain(err, doc))
    return out


def _schema_at(path: Path_) -> dict[str, Any]:
    """The subschema describing the value at `path` (for lists of valid keys)."""
    node: dict[str, Any] = schema()
    defs = node["$defs"]
    for part in path:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _explain(err: jsonschema.ValidationError, doc: Located) -> list[Diagnostic]:
    path: Path_ = tuple(err.absolute_path)
    line, col = doc.where(path)
    where = dotted(path)
    v = err.validator
    if v == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(_schema_at(path).get("properties", {}))
        out = []
        for key in err.instance:
            if key in allowed:
                continue
            kline, kcol = doc.where((*path, key), key=True)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            out.append(
                Diagnostic(
                    doc.file,
                    kline,
                    kcol,
                    dotted((*path, key)),
                    f"unknown key {key!r}; {hint}valid keys: {', '.join(allowed)}",
                )
            )
        return out
    if v == "required":
        return [Diagnostic(doc.file, line, col, where, err.message.replace("property", "key"))]
    if v == "enum":
        enum_values: Any = err.validator_value
        choices = [str(c) for c in enum_values]
        close = difflib.get_close_matches(str(err.instance), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [
            Diagnostic(
                doc.file,
                line,
                col,
                where,
                f"{err.instance!r} is not valid{hint}; expected one of: {', '.join(choices)}",
            )
        ]
    if v == "type":
        expected = err.validator_value
        got = type(err.instance).__name__ if err.instance is not None else "nothing"
        return [
            Diagnostic(
                doc.file,
                line,
                col,
                where,
                f"expected {_article(expected)}, got {got} {err.instance!r}",
            )
        ]
    if v == "oneOf":
        desc = _schema_at(path).get("description", "a valid value")
        return [
            Diagnostic(
                doc.file, line, col, where, f"{err.instance!r} is not valid here; expected {desc}"
            )
        ]
    if v == "propertyNames" or (v == "pattern" and err.parent is not None):
        key = err.instance
        kline, kcol = doc.where((*path, key), key=True) if isinstance(key, str) else (line, col)
        return [
            Diagnostic(
                doc.file,
                kline,
                kcol,
                dotted((*path, str(key))),
                f"invalid id {key!r}: use letters, digits, '_', '.', '-' "
                "(starting with a letter or digit, at most 64)",
            )
        ]
    if v == "pattern":
        return [
            Diagnostic(
                doc.file,
                line,
                col,
                where,
                f"{err.instance!r} does not match the expected form "
                f"({_schema_at(path).get('description', err.validator_value)})",
            )
        ]
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[
            str(v)
        ]
        return [
            Diagnostic(
                doc.file,
                line,
                col,
                where,
                f"{err.instance!r} is out of range: must be {op} {err.validator_value}",
            )
        ]
    if v == "minProperties":
        return [
            Diagnostic(doc.file, line, col, where, "a bound needs at least one of min, max, eq")
        ]
    if v == "const":
        return [
            Diagnostic(
                doc.file, line, col, where, f"must be {err.validator_value!r}, got {err.instance!r}"
            )
        ]
    return [Diagnostic(doc.file, line, col, where, err.message)]


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


# -- extends and merging ------------------------------------------------------------------------


def _resolve_ref(ref: str, base: Path) -> tuple[Path, str]:
    if ref.startswith(BUILTIN):
        name = ref[len(BUILTIN) :]
        return presets_dir() / f"{name}.yml", ref
    target = (base.parent / ref).resolve()
    return target, ref


def _collect(
    path: Path,
    shown: str,
    diags: list[Diagnostic],
    stack: tuple[Path, ...],
) -> list[_Loaded]:
    """This file and everything it extends, bases first."""
    loaded = _read(path, diags, shown)
    if loaded is None:
        return []
    if not _check_version(loaded, diags):
        return []
    errors = _schema_errors(loaded.doc)
    diags.extend(errors)
    if errors:
        return []
    chain: list[_Loaded] = []
    for i, ref in enumerate(loaded.doc.value.get("extends", [])):
        line, col = loaded.doc.where(("extends", i))
        target, label = _resolve_ref(ref, path)
        if ref.startswith(BUILTIN) and not target.is_file():
            names = available_presets()
            close = difflib.get_close_matches(ref[len(BUILTIN) :], names, n=1)
            hint = f"did you mean 'builtin:{close[0]}'? " if close else ""
            diags.append(
                Diagnostic(
                    shown,
                    line,
                    col,
                    f"extends[{i}]",
                    f"no preset {ref!r}; {hint}presets: {', '.join('builtin:' + n for n in names)}",
                )
            )
            continue
        if not target.is_file():
            diags.append(
                Diagnostic(
                    shown, line, col, f"extends[{i}]", f"{ref!r} not found (looked for {target})"
                )
            )
            continue
        if target.resolve() in stack:
            diags.append(
                Diagnostic(
                    shown, line, col, f"extends[{i}]", f"{ref!r} extends itself through a cycle"
                )
            )
            continue
        shown_target = label if ref.startswith(BUILTIN) else str(_display(target))
        chain.extend(_collect(target, shown_target, diags, (*stack, target.resolve())))
    chain.append(loaded)
    return chain


def _display(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _merge(chain: list[_Loaded]) -> tuple[dict[str, Any], dict[str, tuple[Located, Path_]]]:
    """Merged policy and, for each rule id, the document that last defined it."""
    merged: dict[str, Any] = {"version": SUPPORTED_VERSION}
    rule_src: dict[str, tuple[Located, Path_]] = {}
    for item in chain:
        value = item.doc.value
        if "scenario" in value:
            scen = dict(merged.get("scenario", {}))
            for key, val in value["scenario"].items():
                if key == "fixture":
                    scen["fixture"] = {**scen.get("fixture", {}), **val}
                else:
                    scen[key] = val
            merged["scenario"] = scen
        if "unexpected" in value:
            merged["unexpected"] = {**merged.get("unexpected", {}), **value["unexpected"]}
        for rid, rule in value.get("rules", {}).items():
            rules = merged.setdefault("rules", {})
            # A later definition without a metric patches the earlier rule
            # (e.g. just `mode: advisory`); with a metric it replaces it.
            if "metric" in rule or rid not in rules:
                rules[rid] = dict(rule)
            else:
                rules[rid] = {**rules[rid], **rule}
            rule_src[rid] = (item.doc, ("rules", rid))
    return merged, rule_src


# -- semantic pass ---------------------------------------------------------------------------------


def _bound(raw: dict[str, Any] | None) -> Bound | None:
    if raw is None:
        return None
    return Bound(raw.get("min"), raw.get("max"), raw.get("eq"))


def _semantic(
    merged: dict[str, Any],
    rule_src: dict[str, tuple[Located, Path_]],
    top: Located,
    diags: list[Diagnostic],
) -> tuple[list[Rule], Scenario | None, Unexpected]:
    rules: list[Rule] = []
    for rid, raw in merged.get("rules", {}).items():
        doc, base = rule_src[rid]

        def err(sub: Path_, msg: str, *, _doc: Located = doc, _base: Path_ = base) -> None:
            line, col = _doc.where((*_base, *sub))
            diags.append(Diagnostic(_doc.file, line, col, dotted((*_base, *sub)), msg))

        metric = raw.get("metric")
        if metric is None:
            err((), "rule has no `metric` (and no earlier policy defines this rule id)")
            continue
        spec = registry.lookup(metric)
        if spec is None:
            close = registry.suggest(metric)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            err(("metric",), f"unknown metric {metric!r}{hint} (all metrics: docs/metrics.md)")
        elif raw.get("per") == "file" and not spec.per_file:
            alt = f"scenario.{metric}" if registry.lookup(f"scenario.{metric}") else None
            hint = f"; did you mean {alt!r}?" if alt else ""
            err(
                ("per",),
                f"`per: file` needs a scenario-scoped count; {metric!r} counts the "
                f"whole traced process (dynamic loader and start-up included){hint}",
            )
        warn, fail = _bound(raw.get("warn")), _bound(raw.get("fail"))
        mode = raw.get("mode", ENFORCE)
        if warn is None and fail is None and mode != DISABLED:
            err((), "rule has neither `warn` nor `fail` bounds, so it can never trip")
        if warn is not None and fail is not None:
            if warn.min is not None and fail.min is not None and warn.min < fail.min:
                err(
                    ("warn", "min"),
                    f"warn.min ({warn.min:g}) is below fail.min "
                    f"({fail.min:g}): warn must be the looser bound (warn.min >= fail.min)",
                )
            if warn.max is not None and fail.max is not None and warn.max > fail.max:
                err(
                    ("warn", "max"),
                    f"warn.max ({warn.max:g}) is above fail.max "
                    f"({fail.max:g}): warn must be the looser bound (warn.max <= fail.max)",
                )
            if warn.eq is not None and fail.eq is not None:
                err(("warn", "eq"), "`eq` in both warn and fail: one of them can never trip")
        for name, b in (("warn", warn), ("fail", fail)):
            if b is not None and b.min is not None and b.max is not None and b.min > b.max:
                err(
                    (name,),
                    f"{name}.min ({b.min:g}) is above {name}.max ({b.max:g}): no value can pass",
                )
        if raw.get("deduct") is not None:
            if fail is None:
                err(("deduct",), "`deduct` applies when the rule fails, but it has no `fail` bound")
            if metric == "security.score":
                err(("deduct",), "a rule on security.score cannot deduct from it")
        line, col = doc.where(base, key=True)
        rules.append(
            Rule(
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
            )
        )

    scenario = None
    if "scenario" in merged:
        scenario = _scenario(merged["scenario"], top, diags)
    unexpected = _unexpected(merged.get("unexpected", {}), top, diags)
    return rules, scenario, unexpected


def _scenario(raw: dict[str, Any], top: Located, diags: list[Diagnostic]) -> Scenario:
    command = raw.get("command")
    if command is None:
        line, col = top.where(("scenario",))
        diags.append(
            Diagnostic(
                top.file,
                line,
                col,
                "scenario.command",
                "a scenario needs `command` (the traced command, with {src} and {dst})",
            )
        )
    else:
        for m in _PLACEHOLDER.finditer(command):
            if m.group(1) not in ("src", "dst"):
                line, col = top.where(("scenario", "command"))
                diags.append(
                    Diagnostic(
                        top.file,
                        line,
                        col,
                        "scenario.command",
                        f"unknown placeholder {{{m.group(1)}}}; use {{src}} or {{dst}}",
                    )
                )
    fx = raw.get("fixture", {})
    d = Fixture()
    fixture = Fixture(
        files=fx.get("files", d.files),
        file_size=parse_size(fx.get("file_size", d.file_size)),
        dirs=fx.get("dirs", d.dirs),
        symlinks=fx.get("symlinks", d.symlinks),
        seed=fx.get("seed", d.seed),
    )
    ds = Scenario()
    return Scenario(
        id=raw.get("id", ds.id),
        build=raw.get("build"),
        fixture=fixture,
        command=command,
        env=dict(raw.get("env", {})),
        verify=raw.get("verify", ds.verify),
        timeout=parse_duration(raw.get("timeout", ds.timeout)),
        build_timeout=parse_duration(raw.get("build_timeout", ds.build_timeout)),
        repeats=raw.get("repeats", ds.repeats),
    )


def _unexpected(raw: dict[str, Any], top: Located, diags: list[Diagnostic]) -> Unexpected:
    d = Unexpected()
    for key in ("scenario", "anywhere"):
        for i, name in enumerate(raw.get(key, [])):
            if not syscall_table.is_known(name):
                line, col = top.where(("unexpected", key, i))
                close = difflib.get_close_matches(name, list(syscall_table.CATEGORY), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                diags.append(
                    Diagnostic(
                        top.file,
                        line,
                        col,
                        f"unexpected.{key}[{i}]",
                        f"unknown syscall {name!r}{hint}",
                    )
                )
    return Unexpected(
        scenario=frozenset(raw["scenario"]) if "scenario" in raw else d.scenario,
        anywhere=frozenset(raw.get("anywhere", [])),
        direct_io_with_uring=raw.get("direct_io_with_uring", d.direct_io_with_uring),
    )


def digest_of(resolved: dict[str, Any]) -> str:
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_policy(path: str | Path) -> Policy:
    """The resolved policy, or PolicyError listing every problem found."""
    p = Path(path)
    shown = str(path)
    diags: list[Diagnostic] = []
    chain = _collect(p, shown, diags, (p.resolve(),))
    if diags or not chain:
        raise PolicyError(diags or [Diagnostic(shown, 1, 1, "", "the policy could not be read")])
    merged, rule_src = _merge(chain)
    rules, scenario, unexpected = _semantic(merged, rule_src, chain[-1].doc, diags)
    if diags:
        raise PolicyError(diags)
    return Policy(
        path=shown,
        digest=digest_of(merged),
        rules=tuple(rules),
        scenario=scenario,
        unexpected=unexpected,
        sources=tuple(c.doc.file for c in chain),
        resolved=merged,
    )
