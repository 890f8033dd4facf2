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

import re
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
_TRUE_WORDS = {"yes", "on", "true"}
_MODE_WORDS = "enforce, advisory or disabled"


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
    def __init__(self, file: str) -> None:
        self.file = file
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
            meaning = "true" if word in _TRUE_WORDS else "false"
            if path and path[-1] == "mode":
                return self.diag(
                    node,
                    path,
                    f"{text!r} is read by YAML 1.1 as the boolean "
                    f"{meaning}, not a mode; write {_MODE_WORDS}",
                )
            return self.diag(
                node,
                path,
                f"{text!r} is read by YAML 1.1 as the boolean "
                f"{meaning}; write {meaning}, or quote it ('{text}') if you "
                "meant the word",
            )
        if tag == f"{_T}timestamp":
            return self.diag(
                node,
                path,
                f"{text!r} is read by YAML as a date; quote it ('{text}') if you meant the text",
            )
        if tag in (f"{_T}int", f"{_T}float") and _SEXAGESIMAL.match(text):
            return self.diag(
                node,
                path,
                f"{text!r} is read by YAML 1.1 as the base-60 number "
                f"{_base60(text)}; write a duration such as 90s, or quote it",
            )
        if tag == f"{_T}int":
            if _OCTAL_LIKE.match(text):
                value = int(text.replace("_", "").lstrip("+-"), 8)
                value = -value if text.startswith("-") else value
                return self.diag(
                    node,
                    path,
                    f"{text!r} is read by YAML 1.1 as the octal number "
                    f"{value}; drop the leading zero, or quote it",
                )
            try:
                return int(text.replace("_", ""), 0)
            except ValueError:
                return self.diag(node, path, f"{text!r} is not a number YAML can read")
        if tag == f"{_T}float":
            if text.lstrip("+-").lower() in (".inf", ".nan"):
                return self.diag(node, path, f"{text!r} is not a finite number")
            try:
                number = float(text.replace("_", ""))
            except ValueError:
                return self.diag(node, path, f"{text!r} is not a number YAML can read")
            return number
        if tag == f"{_T}null":
            return None
        return text


class _Loader(yaml.SafeLoader):
    """SafeLoader's resolver (YAML 1.1 implicit types); we construct values ourselves."""


def _yaml_error(exc: yaml.YAMLError, file: str, text: str) -> Diagnostic:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
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


def load(text: str, file: str) -> tuple[Located, list[Diagnostic]]:
    """Parse `text`; diagnostics are returned, not raised, so all can be listed.

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
    builder = _Builder(file)
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
                f"the policy expands to more than {MAX_NODES} YAML nodes "
                "(aliases repeated too often?)",
            )
        ]
    if value is None and not builder.errors:
        return builder.doc, [Diagnostic(file, 1, 1, "", "the policy is empty")]
    builder.doc.value = None if value is INVALID else value
    return builder.doc, builder.errors
