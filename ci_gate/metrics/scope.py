"""The scenario's roots and fixture: which paths count as the scenario's work."""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
OTHER = "other"

# Roots made only of these characters print verbatim in strace's strings and
# decorations, or (-xx, and -x when a path below the root holds a byte that
# is not printable ASCII) as one \xHH per byte; so a call whose line holds
# neither a root nor any "\x" cannot touch them.
_HEX_ESCAPE = "\\x"
_VERBATIM = re.compile(r"[A-Za-z0-9/._+,:=@%-]+\Z")


@dataclass
class Fixture:
    """What the source tree holds: relative path -> kind (file, dir, symlink)."""

    entries: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return sum(1 for k in self.entries.values() if k == FILE)

    @property
    def dirs(self) -> int:
        return sum(1 for k in self.entries.values() if k == DIR)

    @property
    def symlinks(self) -> int:
        return sum(1 for k in self.entries.values() if k == SYMLINK)

    @classmethod
    def scan(cls, root: Path) -> Fixture:
        entries: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                mode = os.lstat(full).st_mode
                if stat.S_ISLNK(mode):
                    entries[rel] = SYMLINK
                elif stat.S_ISDIR(mode):
                    entries[rel] = DIR
                elif stat.S_ISREG(mode):
                    entries[rel] = FILE
                else:
                    entries[rel] = OTHER
        return cls(entries)

    def to_json(self) -> dict[str, str]:
        return dict(sorted(self.entries.items()))


@dataclass
class Scope:
    """Scenario roots by label ('src', 'dst', or 'rootN') and the source fixture.

    The fixture describes the source tree; the destination mirrors it, so a
    destination path's kind is looked up by the same relative path.
    """

    roots: dict[str, str]
    fixture: Fixture | None = None
    _forms: list[tuple[str, str]] = field(default_factory=list, init=False)
    verbatim: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        forms: list[tuple[str, str]] = []
        for label, root in self.roots.items():
            norm = posixpath.normpath(root)
            forms.append((label, norm))
            real = os.path.realpath(norm)
            if real != norm:
                forms.append((label, real))
        # Longest first, so a nested root wins over its parent.
        forms.sort(key=lambda f: len(f[1]), reverse=True)
        self._forms = forms
        self.verbatim = all(_VERBATIM.match(r) for _, r in forms)

    @property
    def needles(self) -> list[str]:
        """Each root verbatim, and "\\x", which every hex-escaped (-x/-xx) form holds: one
        needle for those rather than one per root, in the parser's line loop."""
        plain = [r for _, r in self._forms]
        return [*plain, _HEX_ESCAPE] if plain else []

    def locate(self, path: str) -> tuple[str, str] | None:
        """(label, relative path) when `path` lies under a root ('' for the root itself)."""
        if not path.startswith("/"):
            return None
        path = posixpath.normpath(path)
        for label, root in self._forms:
            if path == root:
                return label, ""
            if path.startswith(root) and path[len(root)] == "/":
                return label, path[len(root) + 1 :]
        return None

    def kind(self, rel: str) -> str:
        if rel == "":
            return DIR
        if self.fixture is None:
            return OTHER
        return self.fixture.entries.get(rel, OTHER)

    def file_count(self) -> int | None:
        return None if self.fixture is None else self.fixture.files
