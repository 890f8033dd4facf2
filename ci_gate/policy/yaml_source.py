"""Load a policy's YAML safely, keeping where every key and value was written.

PyYAML's composer gives us nodes with marks; we build plain Python values
from them ourselves, so that:
- no tag can construct an object (only the core scalar types, lists, maps);
- duplicate keys are an error, not last-wins;
- YAML 1.1 surprises (`off` read as false, unquoted dates, 1:30 read as 90)
  are errors with a hint, since a maintainer never means them in a policy;
- alias expansion and file size are bounded (billion laughs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ci_gate.errors import Diagnostic

MAX_POLICY_BYTES = 256 * 1024
MAX_NODES = 20_000

Path_ = tuple[str | int, ...]

_BOOL_WORDS = {"true", "false"}
_STD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_OCTAL_LIKE = re.compile(r"^0[0-7_]+$")


@dataclass
class Located:
    """A loaded document: the plain value and the position of each path."""

    value: Any
    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of `path`, or of its closest written ancestor."""
        table = self.key_positions if key else self.positions
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if not key and p in self.key_positions:
                return self.key_positions[p]
            p = p[:-1]
        return self.positions.get((), (1, 1))


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[Diagnostic] = []
        self.nodes = 0
        self.doc = Located(None, file)

    def diag(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.errors.append(
            Diagnostic(
                self.file,
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                dotted(path),
                message,
            )
        )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(node)
        self.doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if node.tag not in _STD_TAGS:
            self.diag(node, path, f"YAML tag {node.tag!r} is not allowed in a policy")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.diag(key_node, path, "YAML merge keys (<<) are not supported in a policy")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.diag(key_node, path, "a key must be a plain string")
                continue
            key = key_node.value  # keys are names: their text, never a YAML 1.1 bool
            sub = (*path, key)
            if key in out:
                first = self.doc.key_positions.get(sub, (0, 0))
                self.diag(
                    key_node,
                    sub,
                    f"duplicate key {key!r} (first defined at line {first[0]}); "
                    "YAML would silently keep the last one",
                )
                continue
            self.doc.key_positions[sub] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = self.build(value_node, sub)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        text = node.value
        tag = node.tag
        if node.style is not None:  # quoted or block scalar: always a string
            return text
        if tag == "tag:yaml.org,2002:bool":
            if text.lower() not in _BOOL_WORDS:
                self.diag(
                    node,
                    path,
                    f"{text!r} is read by YAML 1.1 as the boolean {text.lower() in _TRUTHY}; "
                    "write true/false, or quote it if you meant the word (for a rule's mode "
                    "use enforce, advisory or disabled)",
                )
                return None
            return text.lower() == "true"
        if tag == "tag:yaml.org,2002:timestamp":
            self.diag(node, path, f"{text!r} is read by YAML as a date; quote it")
            return None
        if tag == "tag:yaml.org,2002:int":
            if _SEXAGESIMAL.match(text):
                self.diag(
                    node,
                    path,
                    f"{text!r} is read by YAML 1.1 as a base-60 number; quote it, or write a "
                    "duration such as 90s",
                )
                return None
            if _OCTAL_LIKE.match(text):
                self.diag(
                    node,
                    path,
                    f"{text!r} is read by YAML 1.1 as octal; quote it or drop the leading zero",
                )
                return None
            try:
                return int(text.replace("_", ""), 0)
            except ValueError:
                return text
        if tag == "tag:yaml.org,2002:float":
            try:
                value = float(text.replace("_", ""))
            except ValueError:
                self.diag(node, path, f"{text!r} is not a number YAML can read")
                return None
            if value != value or value in (float("inf"), float("-inf")):
                self.diag(node, path, f"{text!r} is not a finite number")
                return None
            return value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:str":
            return text
        self.diag(node, path, f"YAML tag {tag!r} is not allowed in a policy")
        return None


_TRUTHY = {"yes", "y", "on", "true"}


class _TooBig(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class _Loader(yaml.SafeLoader):
    """SafeLoader's resolver (YAML 1.1 implicit types) with our own construction."""


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load(text: str, file: str) -> tuple[Located, list[Diagnostic]]:
    """Parse `text`; diagnostics are returned, not raised, so all can be listed."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_POLICY_BYTES:
        return Located(None, file), [
            Diagnostic(file, 1, 1, "", f"the policy is larger than {MAX_POLICY_BYTES} bytes")
        ]
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return Located(None, file), [Diagnostic(file, line, col, "", f"YAML: {problem}")]
    except yaml.YAMLError as exc:
        return Located(None, file), [Diagnostic(file, 1, 1, "", f"YAML: {exc}")]
    builder = _Builder(file)
    if node is None:
        return builder.doc, [Diagnostic(file, 1, 1, "", "the policy is empty")]
    try:
        builder.doc.value = builder.build(node, ())
    except _TooBig as big:
        mark = big.node.start_mark
        return builder.doc, [
            Diagnostic(
                file,
                mark.line + 1,
                mark.column + 1,
                "",
                f"the policy expands to more than {MAX_NODES} YAML nodes "
                "(aliases repeated too often?)",
            )
        ]
    return builder.doc, builder.errors
