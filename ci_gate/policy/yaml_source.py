"""Load a policy's YAML safely, keeping where every key and value was written.

PyYAML's composer gives us nodes with marks; we build plain Python values
from them ourselves, so that:
- no tag can construct an object (only the core scalar types, lists, maps);
- duplicate keys are an error, not last-wins;
- YAML 1.1 surprises (`off` read as false, unquoted dates, 1:30 read as 90,
  010 read as 8) are errors with a hint, since a maintainer never means them
  in a policy;
- nesting, alias expansion and file size are bounded (billion laughs, stack
  exhaustion), so a hostile policy costs milliseconds and a few MiB.

A value that was rejected here becomes INVALID, so that later passes skip it
instead of reporting it a second time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ci_gate.errors import Diagnostic

MAX_POLICY_BYTES = 256 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 20  # a policy needs 4 (rules.ID.fail.max); the composer recurses per level

Path_ = tuple[str | int, ...]


class _Invalid:
    """A value already reported as wrong."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()

_T = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_T}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_OCTAL_LIKE = re.compile(r"^[-+]?0[0-7_]+$")
# Read as numbers by YAML 1.1 only: digit separators (1_000) and binary (0b101). YAML 1.2
# tools (editors, yq, the schema in an editor) read them as text, so the two disagree.
_YAML11_ONLY_NUMBER = re.compile(r"^[-+]?(?:0b[01_]+|[0-9.]*_[0-9_.]*(?:[eE][-+]?[0-9]+)?)$")
_TRUE_WORDS = {"yes", "on", "true"}
_MODE_WORDS = "enforce, advisory or disabled"

# The JSON Schema of the value expected at a path ({} when unknown): a trap's hint
# depends on it, so that following the hint never leads to another error.
SchemaAt = Callable[[Path_], dict[str, Any]]


def _kind(sub: dict[str, Any]) -> str:
    """What a schema accepts, as the traps' hints need it ('' when unknown)."""
    if "enum" in sub:
        return "enum"
    if sub.get("title") in ("duration", "size"):
        return str(sub["title"])
    t = sub.get("type")
    if t == "string":
        return "string"
    if t in ("number", "integer"):
        return "number"
    if t == "boolean":
        return "boolean"
    return ""


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _fits(kind: str, sub: dict[str, Any], x: float) -> bool:
    """Whether the number x is a valid value of the schema (durations > 0, sizes >= 0)."""
    if kind == "duration":
        return x > 0
    if kind == "size":
        return x >= 0
    return (
        sub.get("minimum", x) <= x <= sub.get("maximum", x)
        and x > sub.get("exclusiveMinimum", x - 1)
        and (sub.get("type") != "integer" or float(x).is_integer())
    )


def _range(sub: dict[str, Any]) -> str:
    if "minimum" in sub and "maximum" in sub:
        return f" from {sub['minimum']} to {sub['maximum']}"
    if "minimum" in sub:
        return f" of at least {sub['minimum']}"
    return ""


def _expected(kind: str, sub: dict[str, Any]) -> str:
    if kind == "enum":
        return _or([str(w) for w in sub.get("enum", [])] or ["a listed word"])
    return {
        "duration": "a duration such as 90s, 5m, 1h or 1500ms",
        "size": "a size such as 4096, 64KiB or 5MiB",
        "number": "a number",
        "boolean": "true or false",
    }.get(kind, "a string")


@dataclass
class Located:
    """A loaded document: the plain value and the position of each path."""

    value: Any
    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of `path`, or of its closest written ancestor.

        key=True prefers where the key was written (`rules:` rather than its value).
        """
        p = tuple(path)
        while p:
            if key and p in self.key_positions:
                return self.key_positions[p]
            if p in self.positions:
                return self.positions[p]
            if p in self.key_positions:
                return self.key_positions[p]
            p = p[:-1]
        return self.positions.get((), (1, 1))


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short(tag: str) -> str:
    return "!!" + tag[len(_T) :] if tag.startswith(_T) else tag


def _base60(text: str) -> str:
    sign = -1 if text.startswith("-") else 1
    value = 0.0
    for part in text.lstrip("+-").replace("_", "").split(":"):
        value = value * 60 + float(part)
    value *= sign
    return str(int(value)) if value.is_integer() else f"{value:g}"


class _TooBig(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class _Builder:
    def __init__(self, file: str, schema_at: SchemaAt | None = None) -> None:
        self.file = file
        self.schema_at = schema_at
        self.errors: list[Diagnostic] = []
        self.nodes = 0
        self.doc = Located(None, file)
        self._stack: set[int] = set()  # nodes being built: a repeat is a recursive alias

    def diag(self, node: yaml.Node, path: Path_, message: str) -> Any:
        mark = node.start_mark
        self.errors.append(
            Diagnostic(self.file, mark.line + 1, mark.column + 1, dotted(path), message)
        )
        return INVALID

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(node)
        self.doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if len(path) > MAX_DEPTH:
            return self.diag(
                node, path, f"nested deeper than {MAX_DEPTH} levels (through aliases?)"
            )
        if id(node) in self._stack:
            return self.diag(node, path, "a recursive alias (an anchor that contains itself)")
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if node.tag not in (f"{_T}map", f"{_T}seq"):
                return self.diag(
                    node, path, f"the YAML tag {_short(node.tag)} is not allowed in a policy"
                )
            self._stack.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._stack.discard(id(node))
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> Any:
        out: dict[str, Any] = {}
        complete = True  # without the keys we refused, the mapping would mislead later checks
        for key_node, value_node in node.value:
            if key_node.tag == f"{_T}merge":
                complete = False
                self.diag(
                    key_node,
                    path,
                    "YAML merge keys (<<) are not supported in a policy; "
                    "write the keys out, or use `extends`",
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                complete = False
                self.diag(key_node, path, "a key must be a plain string")
                continue
            key = key_node.value  # keys are names: their text, never a YAML 1.1 bool or number
            sub = (*path, key)
            if key in out:
                first = self.doc.key_positions[sub]
                self.diag(
                    key_node,
                    sub,
                    f"duplicate key {key!r} (first defined at line "
                    f"{first[0]}); YAML would silently keep only the last one",
                )
                continue
            mark = key_node.start_mark
            self.doc.key_positions[sub] = (mark.line + 1, mark.column + 1)
            out[key] = self.build(value_node, sub)
        return out if complete else INVALID

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        text = node.value
        tag = node.tag
        if node.style is not None and tag == f"{_T}str":  # quoted or block: a string
            return text
        if tag not in _SCALAR_TAGS:
            if tag in (f"{_T}value", f"{_T}merge") and node.style is None:
                return text  # a plain `=` or `<<` as a value is just text
            return self.diag(node, path, f"the YAML tag {_short(tag)} is not allowed in a policy")
        if node.style is not None:  # an explicit tag on a quoted scalar: `!!int "5"`
            return self.diag(
                node,
                path,
                f"the YAML tag {_short(tag)} is not allowed in a policy; write the value plainly",
            )
        if tag == f"{_T}bool":
            word = text.lower()
            if word in ("true", "false"):
                return word == "true"
            return self.diag(node, path, self._bool_trap(text, path))
        if tag == f"{_T}timestamp":
            return self.diag(node, path, self._date_trap(text, path))
        if tag in (f"{_T}int", f"{_T}float") and _SEXAGESIMAL.match(text):
            return self.diag(node, path, self._base60_trap(text, path))
        if tag == f"{_T}int":
            if _OCTAL_LIKE.match(text):
                return self.diag(node, path, self._octal_trap(text, path))
            try:
                value = int(text.replace("_", ""), 0)
            except ValueError:
                return self.diag(node, path, f"{text!r} is not a number YAML can read")
            if _YAML11_ONLY_NUMBER.match(text):
                return self.diag(node, path, self._yaml11_number_trap(text, value, path))
            return value
        if tag == f"{_T}float":
            if text.lstrip("+-").lower() in (".inf", ".nan"):
                return self.diag(node, path, f"{text!r} is not a finite number")
            try:
                number = float(text.replace("_", ""))
            except ValueError:
                return self.diag(node, path, f"{text!r} is not a number YAML can read")
            if not math.isfinite(number):
                return self.diag(
                    node, path, f"{text!r} is too large for a number (it reads as infinity)"
                )
            if _YAML11_ONLY_NUMBER.match(text):
                return self.diag(node, path, self._yaml11_number_trap(text, number, path))
            return number
        if tag == f"{_T}null":
            return None
        return text

    # -- YAML 1.1 traps: the hint says what to write for the type the key takes ----------

    def _expects(self, path: Path_) -> tuple[str, dict[str, Any]]:
        sub = self.schema_at(path) if self.schema_at is not None else {}
        return _kind(sub), sub

    def _bool_trap(self, text: str, path: Path_) -> str:
        meaning = "true" if text.lower() in _TRUE_WORDS else "false"
        said = f"{text!r} is read by YAML 1.1 as the boolean {meaning}"
        kind, sub = self._expects(path)
        key = path[-1] if path and isinstance(path[-1], str) else None
        if "const" in sub:
            return f"{said}; write {sub['const']}"
        if key == "mode" and kind in ("enum", ""):
            return f"{said}, not a mode; write {_MODE_WORDS}"
        if kind == "enum":
            return f"{said}, not one of the words `{key}` takes; write {_expected(kind, sub)}"
        if kind == "boolean":
            return f"{said}; write {meaning}"
        if kind == "string":
            return f"{said}; quote it ('{text}') to keep the word"
        if kind:
            return f"{said}; expected {_expected(kind, sub)}"
        return f"{said}; write {meaning}, or quote it ('{text}') if you meant the word"

    def _yaml11_number_trap(self, text: str, value: float, path: Path_) -> str:
        shown = int(value) if float(value).is_integer() else value
        said = (
            f"{text!r} is read by YAML 1.1 as the number {shown}, and by YAML 1.2 tools "
            "(editors, yq) as text"
        )
        kind, _ = self._expects(path)
        if kind == "string":
            return f"{said}; quote it ('{text}') to keep the text"
        return f"{said}; write {shown}"

    def _date_trap(self, text: str, path: Path_) -> str:
        said = f"{text!r} is read by YAML as a date"
        kind, sub = self._expects(path)
        if kind in ("string", ""):
            return f"{said}; quote it ('{text}') if you meant the text"
        return f"{said}; expected {_expected(kind, sub)}"

    def _base60_trap(self, text: str, path: Path_) -> str:
        number = _base60(text)
        said = f"{text!r} is read by YAML 1.1 as the base-60 number {number}"
        kind, sub = self._expects(path)
        if kind == "duration":
            if float(number) > 0:
                return f"{said}; write {number}s (a number with a unit: s, m, h or ms)"
            return f"{said}; a duration must be longer than 0, e.g. 90s"
        if kind == "string":
            return f"{said}; quote it ('{text}') to keep the text"
        if kind == "number" and _fits(kind, sub, float(number)):
            return f"{said}; write {number} if that is the number you meant"
        if kind:
            return f"{said}; expected {_expected(kind, sub)}"
        return f"{said}; write a duration such as 90s, or quote it"

    def _octal_trap(self, text: str, path: Path_) -> str:
        value = int(text.replace("_", "").lstrip("+-"), 8)
        value = -value if text.startswith("-") else value
        said = f"{text!r} is read by YAML 1.1 as the octal number {value}"
        kind, sub = self._expects(path)
        if kind in ("number", "duration", "size"):
            digits = text.replace("_", "").lstrip("+-").lstrip("0") or "0"
            decimal = int(f"-{digits}" if text.startswith("-") else digits)
            fits = [x for x in dict.fromkeys((decimal, value)) if _fits(kind, sub, x)]
            if not fits:
                return f"{said}; expected {_expected(kind, sub)}{_range(sub)}"
            if len(fits) == 2:
                return f"{said}; write {decimal} (or {value} if you meant octal)"
            meant = " if you meant octal" if fits[0] == value and value != decimal else ""
            return f"{said}; write {fits[0]}{meant}"
        if kind == "string":
            return f"{said}; quote it ('{text}') to keep it as written"
        if kind:
            return f"{said}; expected {_expected(kind, sub)}"
        return f"{said}; drop the leading zero, or quote it"


class _Loader(yaml.SafeLoader):
    """SafeLoader's resolver (YAML 1.1 implicit types); we construct values ourselves."""


def _yaml_error(exc: yaml.YAMLError, file: str, text: str) -> Diagnostic:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "'\\t'" in problem:
            problem += " (YAML indents with spaces, never tabs: replace the tab with spaces)"
        elif "another document" in problem:
            problem = "a second YAML document (`---`) follows: a policy is one document"
        return Diagnostic(file, line, col, "", f"YAML: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        pos = min(exc.position, len(text))
        line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        return Diagnostic(
            file,
            line,
            col,
            "",
            f"YAML: the character {char!r} is not allowed (quote binary data, or remove it)",
        )
    return Diagnostic(file, 1, 1, "", f"YAML: {exc}")


def _too_deep(text: str, file: str) -> Diagnostic | None:
    """Check nesting on the event stream first: the composer recurses once per level."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            mark = event.start_mark
            if depth > MAX_DEPTH and mark is not None:
                return Diagnostic(
                    file,
                    mark.line + 1,
                    mark.column + 1,
                    "",
                    f"the policy nests deeper than {MAX_DEPTH} levels",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def load(
    text: str, file: str, schema_at: SchemaAt | None = None
) -> tuple[Located, list[Diagnostic]]:
    """Parse `text`; diagnostics are returned, not raised, so all can be listed.

    `schema_at` gives the schema of the value expected at a path, for the traps' hints.

    The document's value is None when nothing usable was read.
    """
    if len(text.encode("utf-8", "surrogateescape")) > MAX_POLICY_BYTES:
        return Located(None, file), [
            Diagnostic(file, 1, 1, "", f"the policy is larger than {MAX_POLICY_BYTES} bytes")
        ]
    try:
        deep = _too_deep(text, file)
        if deep is not None:
            return Located(None, file), [deep]
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return Located(None, file), [_yaml_error(exc, file, text)]
    builder = _Builder(file, schema_at)
    if node is None:
        return builder.doc, [Diagnostic(file, 1, 1, "", "the policy is empty")]
    try:
        value = builder.build(node, ())
    except _TooBig as big:
        mark = big.node.start_mark
        return Located(None, file), [
            Diagnostic(
                file,
                mark.line + 1,
                mark.column + 1,
                "",
                f"the policy expands to more than {MAX_NODES} YAML nodes, counting each "
                "use of an alias in full: expand fewer aliases, or split the file (each file "
                "of `extends` has its own limit)",
            )
        ]
    if value is None and not builder.errors:
        return builder.doc, [Diagnostic(file, 1, 1, "", "the policy is empty")]
    builder.doc.value = None if value is INVALID else value
    return builder.doc, builder.errors
