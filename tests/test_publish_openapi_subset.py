"""The committed OpenAPI subset and payloads, and the validator the fake server relies on."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import requests

from ci_gate.publish.endpoints import USED_ENDPOINTS
from github_api.fake_server import DEFAULT_TOKEN, FakeGitHub
from github_api.helpers import PAYLOAD_DIR, manifest
from github_api.openapi_validator import SUBSET_PATH, OpenAPISubset, OpenAPIValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load_regen() -> ModuleType:
    path = REPO_ROOT / "tools" / "regen_github_openapi.py"
    spec = importlib.util.spec_from_file_location("regen_github_openapi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("regen_github_openapi", module)
    spec.loader.exec_module(module)
    return module


regen = _load_regen()


@pytest.fixture(scope="module")
def subset() -> OpenAPISubset:
    return OpenAPISubset()


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def test_subset_records_the_pinned_package_version(subset: OpenAPISubset) -> None:
    meta = subset.spec["info"]["x-syscall-gate-subset"]
    assert meta["package"] == "@octokit/openapi"
    assert meta["version"] == regen.OPENAPI_PACKAGE_VERSION == "23.0.2"
    assert meta["file"] == "generated/api.github.com.json"
    assert len(meta["source_sha256"]) == 64
    assert subset.spec["openapi"].startswith("3.0.")


def test_every_endpoint_the_client_uses_is_in_the_subset(subset: OpenAPISubset) -> None:
    for method, template in USED_ENDPOINTS:
        assert subset.has_endpoint(method, template), f"{method} {template} missing"
    listed = subset.spec["info"]["x-syscall-gate-subset"]["operations"]
    assert sorted(listed) == sorted(f"{m} {p}" for m, p in USED_ENDPOINTS)
    # ...and nothing else: the subset is exactly what is used.
    assert len(subset.operations) == len(USED_ENDPOINTS)


def test_every_reference_in_the_subset_resolves(subset: OpenAPISubset) -> None:
    text = SUBSET_PATH.read_text(encoding="utf-8")
    refs = set(regen._iter_refs(json.loads(text)))
    assert refs, "expected $refs into components"
    for ref in refs:
        assert regen._resolve_pointer(subset.spec, ref) is not None


def test_committed_fixtures_match_the_regenerate_script() -> None:
    """With the npm packages in the cache dir, regenerating must reproduce the committed files
    byte for byte. Without them (CI has no npm cache), the same script is still exercised: its
    pinned versions must equal the recorded ones, and re-trimming the committed subset (which
    contains every used operation and component) must give the committed subset back."""
    cache = regen.cache_dir_from_env()
    openapi_pkg = regen.package_dir(cache, regen.OPENAPI_PACKAGE)
    examples_pkg = regen.package_dir(cache, regen.EXAMPLES_PACKAGE)
    have_cache = (
        (openapi_pkg / regen.OPENAPI_SOURCE_FILE).is_file()
        and (examples_pkg / regen.EXAMPLES_SOURCE_FILE).is_file()
        and regen.read_package_version(openapi_pkg) == regen.OPENAPI_PACKAGE_VERSION
        and regen.read_package_version(examples_pkg) == regen.EXAMPLES_PACKAGE_VERSION
    )
    committed_subset = json.loads(SUBSET_PATH.read_text(encoding="utf-8"))
    if have_cache:
        outputs = regen.generate(cache)
        for path, text in outputs.items():
            assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run the script"
        assert set(outputs) >= {SUBSET_PATH, PAYLOAD_DIR / "MANIFEST.json"}
    else:
        meta = committed_subset["info"]["x-syscall-gate-subset"]
        retrimmed = regen.build_subset(
            committed_subset, version=meta["version"], source_sha256=meta["source_sha256"]
        )
        assert regen.render_json(retrimmed) == SUBSET_PATH.read_text(encoding="utf-8")
    assert manifest()["version"] == regen.EXAMPLES_PACKAGE_VERSION == "7.6.1"
    assert manifest()["package"] == "@octokit/webhooks-examples"


def test_payload_manifest_lists_the_committed_payloads() -> None:
    files = manifest()["files"]
    on_disk = {p.name for p in PAYLOAD_DIR.glob("*.json")} - {"MANIFEST.json"}
    assert set(files) == on_disk
    assert {f["event"] for f in files.values()} >= {"pull_request", "push", "workflow_run"}
    assert files["pull_request.fork.json"]["derived"] is True


# ----------------------------------------------------------------------------- the validator


def _json_headers() -> dict[str, str]:
    return {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "expected"),
    [
        ("GET", "/repos/o/r/issues/1/labels", {}, b"", "path not in the OpenAPI subset"),
        ("PUT", "/repos/o/r/issues/1/comments", {}, b"", "method not allowed"),
        ("POST", "/repos/o/r/issues/1/comments", {}, b"", "required request body is missing"),
        ("POST", "/repos/o/r/issues/1/comments", {}, b"{}", "'body' is a required property"),
        ("POST", "/repos/o/r/issues/1/comments", {}, b'{"body": 1}', "not of type 'string'"),
        ("POST", "/repos/o/r/issues/1/comments", {}, b"{nope", "not valid JSON"),
        ("GET", "/repos/o/r/issues/one/comments", {}, b"", "not of type 'integer'"),
        ("GET", "/repos/o/r/issues/1/comments", {"per_page": ["x"]}, b"", "not of type"),
        ("GET", "/repos/o/r/issues/1/comments", {"perpage": ["1"]}, b"", "not declared"),
        ("GET", "/user", {}, b'{"a": 1}', "declares no request body"),
        ("POST", "/repos/o/r/check-runs", {}, b'{"name": "x"}', "'head_sha' is a required"),
        (
            "POST",
            "/repos/o/r/check-runs",
            {},
            json.dumps(
                {
                    "name": "x",
                    "head_sha": "a" * 40,
                    "output": {
                        "title": "t",
                        "summary": "s",
                        "annotations": [
                            {"path": "p", "start_line": 1, "end_line": 1, "message": "m"}
                        ],
                    },
                }
            ).encode(),
            "'annotation_level' is a required property",
        ),
        (
            "PATCH",
            "/repos/o/r/check-runs/5",
            {},
            b'{"status": "completed"}',
            "not valid under any of the given schemas",
        ),
        (
            "POST",
            "/repos/o/r/statuses/" + "a" * 40,
            {},
            b'{"state": "neutral"}',
            "is not one of",
        ),
    ],
)
def test_validator_rejects_bad_requests(
    subset: OpenAPISubset,
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: bytes,
    expected: str,
) -> None:
    with pytest.raises(OpenAPIValidationError, match=expected):
        subset.validate_request(method, path, query, _json_headers(), body)


def test_validator_accepts_a_good_request(subset: OpenAPISubset) -> None:
    checked = subset.validate_request(
        "GET",
        "/repos/o/r/issues/7/comments",
        {"per_page": ["100"], "page": ["3"]},
        {},
        b"",
    )
    assert checked.operation.operation_id == "issues/list-comments"
    assert checked.path_params == {"owner": "o", "repo": "r", "issue_number": 7}
    assert checked.query == {"per_page": 100, "page": 3}


def test_validator_checks_responses(subset: OpenAPISubset) -> None:
    op = subset.operation("issues/create-comment")
    with pytest.raises(OpenAPIValidationError, match="required property"):
        subset.validate_response(op, 201, "application/json", b'{"id": 1}')
    with pytest.raises(OpenAPIValidationError, match="not declared"):
        subset.validate_response(op, 202, "application/json", b"{}")
    with pytest.raises(OpenAPIValidationError, match="non-JSON"):
        subset.validate_response(op, 502, "text/html", b"<html></html>")
    subset.validate_response(op, 403, "application/json", b'{"message": "Forbidden"}')


def test_fake_server_rejects_an_invalid_request_over_http(gh: FakeGitHub) -> None:
    headers = {
        "Authorization": f"Bearer {DEFAULT_TOKEN}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    base = f"{gh.api_url}/repos/{gh.owner}/{gh.repo}"
    bad = requests.post(f"{base}/issues/2/comments", json={"text": "x"}, headers=headers, timeout=5)
    assert bad.status_code == 422
    unknown = requests.get(f"{base}/issues/2/events", headers=headers, timeout=5)
    assert unknown.status_code == 404
    assert len(gh.validation_errors) == 2
    assert "'body' is a required property" in gh.validation_errors[0]
    assert "not in the OpenAPI subset" in gh.validation_errors[1]
    with pytest.raises(AssertionError, match="violations"):
        gh.assert_valid()
    # A good request records nothing.
    gh.validation_errors.clear()
    ok = requests.post(f"{base}/issues/2/comments", json={"body": "x"}, headers=headers, timeout=5)
    assert ok.status_code == 201
    gh.assert_valid()


def test_fake_server_flags_missing_api_version_header(gh: FakeGitHub) -> None:
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}", "Accept": "application/json"}
    requests.get(f"{gh.api_url}/user", headers=headers, timeout=5)
    assert any("X-GitHub-Api-Version" in e for e in gh.validation_errors)
    assert any("Accept header" in e for e in gh.validation_errors)


def test_validator_rejects_missing_required_parameters(tmp_path: Path) -> None:
    """The GitHub operations in the subset have no required query/header parameters, so this
    uses a minimal description in the same format to show they are enforced."""
    spec = {
        "openapi": "3.0.3",
        "info": {
            "title": "t",
            "version": "1",
            "x-syscall-gate-subset": {"package": "test", "version": "0"},
        },
        "paths": {
            "/things/{id}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "get": {
                    "operationId": "things/get",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "X-Trace",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[a-f0-9]+$"},
                        },
                    ],
                    "responses": {"200": {"description": "ok"}},
                },
            }
        },
        "components": {},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    mini = OpenAPISubset(path)
    mini.validate_request("GET", "/things/3", {"q": ["x"]}, {"X-Trace": "ab12"}, b"")
    with pytest.raises(OpenAPIValidationError, match="missing required query parameter 'q'"):
        mini.validate_request("GET", "/things/3", {}, {"X-Trace": "ab12"}, b"")
    with pytest.raises(OpenAPIValidationError, match="missing required header 'X-Trace'"):
        mini.validate_request("GET", "/things/3", {"q": ["x"]}, {}, b"")
    with pytest.raises(OpenAPIValidationError, match="does not match"):
        mini.validate_request("GET", "/things/3", {"q": ["x"]}, {"x-trace": "ZZ"}, b"")
