#!/usr/bin/env python3
"""Regenerate the GitHub API test fixtures committed under ``tests/github_api/``.

Two outputs, both derived from pinned npm packages:

* ``tests/github_api/openapi/api.github.com.subset.json``: GitHub's OpenAPI 3.0 description
  (``@octokit/openapi``, file ``generated/api.github.com.json``) trimmed to the operations in
  ``ci_gate.publish.endpoints.USED_ENDPOINTS`` plus every component they reference
  (transitively). Media-type ``examples`` are dropped (validation does not use them); nothing
  else in the kept operations or components is changed. The package name, exact version and
  the SHA-256 of the source file are recorded under ``info.x-syscall-gate-subset``.
* ``tests/github_api/payloads/*.json``: webhook event payloads picked from
  ``@octokit/webhooks-examples`` (``api.github.com/index.json``), plus ``MANIFEST.json``
  recording the package version and which example each file came from. The package has no
  pull_request example whose head is a fork, so ``pull_request.fork.json`` is derived from
  the same-repository example by replacing ``pull_request.head`` with a fork's head
  (documented in the manifest).

Usage (from the repository root)::

    python tools/regen_github_openapi.py --fetch     # npm-install the pinned packages into the
                                                     # cache dir, then regenerate
    python tools/regen_github_openapi.py             # regenerate from an existing cache dir
    python tools/regen_github_openapi.py --check     # exit 1 if the committed files differ

The cache dir defaults to ``.cache/github-api`` (git-ignored); ``--cache-dir`` or the
``SYSCALL_GATE_OCTOKIT_CACHE`` environment variable override it. Tests never need npm: they
use the committed files, and compare them against a regeneration only when the cache exists.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ci_gate.publish.endpoints import USED_ENDPOINTS  # noqa: E402

OPENAPI_PACKAGE = "@octokit/openapi"
OPENAPI_PACKAGE_VERSION = "23.0.2"
OPENAPI_SOURCE_FILE = "generated/api.github.com.json"

EXAMPLES_PACKAGE = "@octokit/webhooks-examples"
EXAMPLES_PACKAGE_VERSION = "7.6.1"
EXAMPLES_SOURCE_FILE = "api.github.com/index.json"

FIXTURE_DIR = REPO_ROOT / "tests" / "github_api"
SUBSET_PATH = FIXTURE_DIR / "openapi" / "api.github.com.subset.json"
PAYLOAD_DIR = FIXTURE_DIR / "payloads"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "github-api"

# (output file, event name, index into that event's examples, expected action or None)
PAYLOAD_PICKS: tuple[tuple[str, str, int, str | None], ...] = (
    ("pull_request.same_repo.json", "pull_request", 0, "opened"),
    ("push.json", "push", 4, None),
    ("workflow_run.json", "workflow_run", 2, "completed"),
    ("merge_group.json", "merge_group", 0, "checks_requested"),
)
FORK_PAYLOAD = "pull_request.fork.json"
FORK_OWNER = "forkuser"
FORK_HEAD_SHA = "c0ffee57ca3a959ca5aad62de7213c562f8c8210"


def cache_dir_from_env(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("SYSCALL_GATE_OCTOKIT_CACHE")
    return Path(env) if env else DEFAULT_CACHE_DIR


def package_dir(cache_dir: Path, package: str) -> Path:
    return cache_dir / "node_modules" / package


def read_package_version(pkg_dir: Path) -> str:
    meta = json.loads((pkg_dir / "package.json").read_text(encoding="utf-8"))
    version = meta["version"]
    assert isinstance(version, str)
    return version


def npm_fetch(cache_dir: Path) -> None:
    """Install the pinned packages into ``cache_dir`` (needs npm and the npm registry)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        "npm",
        "install",
        "--no-save",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        "--prefix",
        str(cache_dir),
        f"{OPENAPI_PACKAGE}@{OPENAPI_PACKAGE_VERSION}",
        f"{EXAMPLES_PACKAGE}@{EXAMPLES_PACKAGE_VERSION}",
    ]
    subprocess.run(cmd, check=True)


# --------------------------------------------------------------------------- OpenAPI subset


def _iter_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _iter_refs(item)


def _drop_media_examples(node: Any) -> Any:
    """Copy of ``node`` without the ``examples`` maps of media-type objects."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "content" and isinstance(value, dict):
                out[key] = {
                    media: {k: _drop_media_examples(v) for k, v in obj.items() if k != "examples"}
                    for media, obj in value.items()
                }
            else:
                out[key] = _drop_media_examples(value)
        return out
    if isinstance(node, list):
        return [_drop_media_examples(item) for item in node]
    return node


def _resolve_pointer(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, got {ref!r}")
    node: Any = doc
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def build_subset(
    spec: dict[str, Any],
    *,
    version: str,
    source_sha256: str,
    endpoints: Iterable[tuple[str, str]] = USED_ENDPOINTS,
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, template in endpoints:
        path_item = spec["paths"].get(template)
        if path_item is None or method.lower() not in path_item:
            raise KeyError(f"{method} {template} is not in {OPENAPI_SOURCE_FILE} {version}")
        entry = paths.setdefault(template, {})
        if "parameters" in path_item:
            entry["parameters"] = _drop_media_examples(path_item["parameters"])
        entry[method.lower()] = _drop_media_examples(path_item[method.lower()])

    # Transitive closure of component references.
    wanted: set[str] = set()
    todo = list(_iter_refs(paths))
    while todo:
        ref = todo.pop()
        if ref in wanted:
            continue
        if not ref.startswith("#/components/"):
            raise ValueError(f"unexpected reference {ref!r}")
        wanted.add(ref)
        todo.extend(_iter_refs(_drop_media_examples(_resolve_pointer(spec, ref))))

    components: dict[str, dict[str, Any]] = {}
    for kind, entries in spec["components"].items():
        kept = {
            name: _drop_media_examples(value)
            for name, value in entries.items()
            if f"#/components/{kind}/{name}" in wanted
        }
        if kept:
            components[kind] = dict(sorted(kept.items()))

    # Paths in a stable order (sorted template, then method).
    ordered_paths = {
        template: {
            key: paths[template][key]
            for key in sorted(paths[template], key=lambda k: (k != "parameters", k))
        }
        for template in sorted(paths)
    }
    info = dict(spec["info"])
    info["x-syscall-gate-subset"] = {
        "package": OPENAPI_PACKAGE,
        "version": version,
        "file": OPENAPI_SOURCE_FILE,
        "source_sha256": source_sha256,
        "operations": [
            f"{m.upper()} {p}" for m, p in sorted(endpoints, key=lambda e: (e[1], e[0]))
        ],
        "trimming": "only the listed operations and the components they reference; "
        "media-type 'examples' dropped; everything else verbatim",
        "regenerate": "python tools/regen_github_openapi.py --fetch",
    }
    return {
        "openapi": spec["openapi"],
        "info": info,
        "servers": spec.get("servers", []),
        "paths": ordered_paths,
        "components": dict(sorted(components.items())),
    }


def load_openapi_source(pkg_dir: Path) -> tuple[str, dict[str, Any], str]:
    raw = (pkg_dir / OPENAPI_SOURCE_FILE).read_bytes()
    return read_package_version(pkg_dir), json.loads(raw), hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- webhook payloads


def _replace_strings(node: Any, old: str, new: str) -> Any:
    if isinstance(node, str):
        return node.replace(old, new)
    if isinstance(node, dict):
        return {k: _replace_strings(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_strings(v, old, new) for v in node]
    return node


def derive_fork_payload(same_repo: dict[str, Any]) -> dict[str, Any]:
    """A pull_request payload whose head lives in a fork, derived from a same-repo one."""
    payload = copy.deepcopy(same_repo)
    pr = payload["pull_request"]
    base_repo = pr["base"]["repo"]
    base_full = base_repo["full_name"]
    base_owner = base_repo["owner"]["login"]
    fork_full = f"{FORK_OWNER}/{base_repo['name']}"

    fork_user = _replace_strings(copy.deepcopy(base_repo["owner"]), base_owner, FORK_OWNER)
    fork_user["id"] = int(fork_user["id"]) + 1_000_000
    fork_user["node_id"] = "MDQ6VXNlcjIyMjIyMjIy"

    fork_repo = _replace_strings(copy.deepcopy(base_repo), base_full, fork_full)
    fork_repo["id"] = int(base_repo["id"]) + 1_000_000
    fork_repo["node_id"] = "MDEwOlJlcG9zaXRvcnkxMTExMTExMTE="
    fork_repo["full_name"] = fork_full
    fork_repo["owner"] = fork_user
    fork_repo["fork"] = True

    pr["head"] = {
        "label": f"{FORK_OWNER}:{pr['head']['ref']}",
        "ref": pr["head"]["ref"],
        "sha": FORK_HEAD_SHA,
        "user": fork_user,
        "repo": fork_repo,
    }
    pr["user"] = fork_user
    payload["sender"] = fork_user
    return payload


def build_payloads(index: list[dict[str, Any]], *, version: str) -> dict[str, Any]:
    """Return ``{file name: JSON value}`` including ``MANIFEST.json``."""
    by_event = {entry["name"]: entry["examples"] for entry in index}
    files: dict[str, Any] = {}
    manifest_files: dict[str, Any] = {}
    for name, event, idx, action in PAYLOAD_PICKS:
        example = by_event[event][idx]
        if action is not None and example.get("action") != action:
            raise ValueError(f"{event}[{idx}] has action {example.get('action')!r}, not {action}")
        files[name] = example
        manifest_files[name] = {"event": event, "example_index": idx, "derived": False}
    files[FORK_PAYLOAD] = derive_fork_payload(files["pull_request.same_repo.json"])
    manifest_files[FORK_PAYLOAD] = {
        "event": "pull_request",
        "example_index": PAYLOAD_PICKS[0][2],
        "derived": True,
        "derivation": (
            "the package has no fork pull_request example: pull_request.head (label, sha, "
            f"user, repo) replaced by a fork owned by {FORK_OWNER!r}; pull_request.user and "
            "sender set to that user; everything else unchanged"
        ),
    }
    files["MANIFEST.json"] = {
        "package": EXAMPLES_PACKAGE,
        "version": version,
        "file": EXAMPLES_SOURCE_FILE,
        "files": dict(sorted(manifest_files.items())),
        "regenerate": "python tools/regen_github_openapi.py --fetch",
    }
    return files


def load_examples_index(pkg_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    index = json.loads((pkg_dir / EXAMPLES_SOURCE_FILE).read_text(encoding="utf-8"))
    return read_package_version(pkg_dir), index


# --------------------------------------------------------------------------- driver


def render_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def generate(cache_dir: Path) -> dict[Path, str]:
    """Everything this script writes, as ``{path: text}``, from the packages in ``cache_dir``."""
    out: dict[Path, str] = {}
    version, spec, digest = load_openapi_source(package_dir(cache_dir, OPENAPI_PACKAGE))
    if version != OPENAPI_PACKAGE_VERSION:
        raise SystemExit(
            f"{OPENAPI_PACKAGE} in cache is {version}, pinned {OPENAPI_PACKAGE_VERSION}"
        )
    out[SUBSET_PATH] = render_json(build_subset(spec, version=version, source_sha256=digest))
    ex_version, index = load_examples_index(package_dir(cache_dir, EXAMPLES_PACKAGE))
    if ex_version != EXAMPLES_PACKAGE_VERSION:
        raise SystemExit(
            f"{EXAMPLES_PACKAGE} in cache is {ex_version}, pinned {EXAMPLES_PACKAGE_VERSION}"
        )
    for name, value in build_payloads(index, version=ex_version).items():
        out[PAYLOAD_DIR / name] = render_json(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", help="where the npm packages are (node_modules/...)")
    parser.add_argument("--fetch", action="store_true", help="npm-install the pinned packages")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    cache_dir = cache_dir_from_env(args.cache_dir)
    if args.fetch:
        npm_fetch(cache_dir)
    outputs = generate(cache_dir)
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
