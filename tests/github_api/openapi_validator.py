"""Validate HTTP requests and responses against the committed GitHub OpenAPI 3.0 subset.

The subset (``openapi/api.github.com.subset.json``) is produced by
``tools/regen_github_openapi.py`` from the npm package ``@octokit/openapi``. Schemas use the
OpenAPI 3.0 dialect (``nullable``, ``readOnly``/``writeOnly``), so they are checked with
``openapi_schema_validator``'s OAS 3.0 validators (built on ``jsonschema``); ``$ref`` s are
resolved through a ``referencing`` registry holding the whole subset document.

What is checked for a request: the (method, path) pair is an operation of the subset; path
parameters match their schemas; query parameters are declared by the operation (unknown ones
are rejected), required ones are present and every value matches its schema; a declared
request body is present when required, has a declared media type, parses as JSON and matches
its schema (OAS 3.0 "write" semantics); a body is rejected for operations that declare none.

For a response: the status code is declared for the operation (exact code, ``NXX`` range or
``default``), the media type is declared, and the JSON body matches the schema ("read"
semantics). Error statuses that GitHub's description does not list for an operation (it
omits many 4xx/5xx) are accepted only when the body is a ``basic-error`` object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema.protocols import Validator
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    oas30_format_checker,
)
from referencing import Registry
from referencing.jsonschema import DRAFT4

SUBSET_PATH = Path(__file__).resolve().parent / "openapi" / "api.github.com.subset.json"
_BASE_URI = "urn:syscall-gate:github-openapi-subset"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class OpenAPIValidationError(AssertionError):
    """A request or response does not conform to the OpenAPI description."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    parameters: tuple[dict[str, Any], ...]
    schema_pointers: tuple[str, ...]
    request_body: dict[str, Any] | None
    responses: dict[str, Any]
    pointer: str
    regex: re.Pattern[str]
    literal_len: int


@dataclass(frozen=True)
class ValidatedRequest:
    operation: Operation
    path_params: dict[str, Any]
    query: dict[str, Any]
    body: Any


def _escape_pointer(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class OpenAPISubset:
    """The committed subset, loaded once; thread-safe for validation (read-only)."""

    def __init__(self, path: Path = SUBSET_PATH) -> None:
        self.path = path
        self.spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        meta = self.spec["info"]["x-syscall-gate-subset"]
        self.package: str = meta["package"]
        self.version: str = meta["version"]
        self._registry: Registry[Any] = Registry().with_resource(
            _BASE_URI, DRAFT4.create_resource(self.spec)
        )
        self._validators: dict[tuple[str, bool], Validator] = {}  # by (pointer, write)
        self.operations: list[Operation] = []
        for template, item in self.spec["paths"].items():
            shared = item.get("parameters", [])
            for method in _METHODS:
                if method not in item:
                    continue
                op = item[method]
                path_ptr = f"#/paths/{_escape_pointer(template)}"
                params = self._merge_params(
                    shared,
                    f"{path_ptr}/parameters",
                    op.get("parameters", []),
                    f"{path_ptr}/{method}/parameters",
                )
                self.operations.append(
                    Operation(
                        method=method.upper(),
                        template=template,
                        operation_id=op["operationId"],
                        parameters=tuple(p for p, _ in params),
                        schema_pointers=tuple(ptr for _, ptr in params),
                        request_body=self._deref(op["requestBody"])
                        if "requestBody" in op
                        else None,
                        responses=op["responses"],
                        pointer=f"#/paths/{_escape_pointer(template)}/{method}",
                        regex=self._compile(template, [p for p, _ in params]),
                        literal_len=len(re.sub(r"\{[^}]+\}", "", template)),
                    )
                )

    # ------------------------------------------------------------------ helpers

    def _deref(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"non-local $ref {ref!r}")
            target: Any = self.spec
            for raw in ref[2:].split("/"):
                target = target[raw.replace("~1", "/").replace("~0", "~")]
            node = target
            seen += 1
            if seen > 20:
                raise ValueError(f"$ref loop at {ref!r}")
        return node

    def _merge_params(
        self, shared: Sequence[Any], shared_ptr: str, own: Sequence[Any], own_ptr: str
    ) -> list[tuple[dict[str, Any], str]]:
        """Path-level and operation-level parameters (the latter win), each with a JSON
        pointer to its schema inside the document."""
        merged: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for base_ptr, raw_list in ((shared_ptr, shared), (own_ptr, own)):
            for i, raw in enumerate(raw_list):
                param = self._deref(raw)
                ptr = f"{raw['$ref']}/schema" if "$ref" in raw else f"{base_ptr}/{i}/schema"
                merged[(param["name"], param["in"])] = (param, ptr)
        return list(merged.values())

    @staticmethod
    def _compile(template: str, params: Sequence[dict[str, Any]]) -> re.Pattern[str]:
        multi = {p["name"] for p in params if p["in"] == "path" and p.get("x-multi-segment")}
        out = ""
        for piece in re.split(r"(\{[^}]+\})", template):
            if piece.startswith("{") and piece.endswith("}"):
                name = piece[1:-1]
                out += f"(?P<{name}>.+)" if name in multi else f"(?P<{name}>[^/]+)"
            else:
                out += re.escape(piece)
        return re.compile(f"^{out}$")

    def _validator(self, schema: Any, *, write: bool) -> Validator:
        # Schemas are validated by reference into the registered document, so that the
        # "#/components/..." references inside them resolve against the whole subset.
        cls = OAS30WriteValidator if write else OAS30ReadValidator
        return cls(schema, registry=self._registry, format_checker=oas30_format_checker)  # type: ignore[no-any-return]

    def _schema_errors(self, schema: str, instance: Any, *, write: bool, where: str) -> list[str]:
        validator = self._validators.get((schema, write))
        if validator is None:
            validator = self._validator({"$ref": f"{_BASE_URI}{schema}"}, write=write)
            self._validators[(schema, write)] = validator
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [
            f"{where}{'/' + '/'.join(str(p) for p in e.absolute_path) if e.absolute_path else ''}"
            f": {e.message[:300]}"
            for e in errors
        ]

    # ------------------------------------------------------------------ lookup

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        candidates: list[tuple[Operation, dict[str, str]]] = []
        path_exists = False
        for op in self.operations:
            m = op.regex.match(path)
            if m is None:
                continue
            path_exists = True
            if op.method == method.upper():
                candidates.append((op, {k: unquote(v) for k, v in m.groupdict().items()}))
        if not candidates:
            what = "method not allowed for" if path_exists else "path not in the OpenAPI subset:"
            raise OpenAPIValidationError(f"{method.upper()} {path}: {what} {path}")
        candidates.sort(key=lambda c: -c[0].literal_len)
        return candidates[0]

    def operation(self, operation_id: str) -> Operation:
        for op in self.operations:
            if op.operation_id == operation_id:
                return op
        raise KeyError(operation_id)

    def has_endpoint(self, method: str, template: str) -> bool:
        return any(
            op.method == method.upper() and op.template == template for op in self.operations
        )

    # ------------------------------------------------------------------ requests

    def _coerce(self, raw: str, schema: dict[str, Any]) -> Any:
        schema = self._deref(schema)
        kind = schema.get("type")
        if kind == "integer":
            if re.fullmatch(r"[+-]?\d+", raw):
                return int(raw)
            return raw  # left as a string: the schema check reports the type error
        if kind == "number":
            try:
                return float(raw)
            except ValueError:
                return raw
        if kind == "boolean":
            return {"true": True, "false": False}.get(raw, raw)
        return raw

    def validate_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> ValidatedRequest:
        op, raw_path_params = self.match(method, path)
        errors: list[str] = []
        path_params: dict[str, Any] = {}
        query_values: dict[str, Any] = {}
        lower_headers = {k.lower(): v for k, v in headers.items()}
        declared_query = set()
        for param, ptr in zip(op.parameters, op.schema_pointers, strict=True):
            name, where = param["name"], param["in"]
            schema = param.get("schema", {})
            if where == "path":
                value = self._coerce(raw_path_params[name], schema)
                errors += self._schema_errors(ptr, value, write=True, where=f"path param {name}")
                path_params[name] = value
            elif where == "query":
                declared_query.add(name)
                if name not in query:
                    if param.get("required"):
                        errors.append(f"missing required query parameter {name!r}")
                    continue
                values = list(query[name])
                if self._deref(schema).get("type") == "array":
                    items = self._deref(schema).get("items", {})
                    value = [self._coerce(v, items) for v in values]
                elif len(values) != 1:
                    errors.append(f"query parameter {name!r} given {len(values)} times")
                    continue
                else:
                    value = self._coerce(values[0], schema)
                errors += self._schema_errors(ptr, value, write=True, where=f"query param {name}")
                query_values[name] = value
            elif where == "header":
                if name.lower() not in lower_headers:
                    if param.get("required"):
                        errors.append(f"missing required header {name!r}")
                    continue
                value = self._coerce(lower_headers[name.lower()], schema)
                errors += self._schema_errors(ptr, value, write=True, where=f"header {name}")
        for name in query:
            if name not in declared_query:
                errors.append(f"query parameter {name!r} is not declared by {op.operation_id}")

        parsed: Any = None
        if op.request_body is None:
            if body:
                errors.append(f"{op.operation_id} declares no request body, but one was sent")
        elif not body:
            if op.request_body.get("required"):
                errors.append(f"{op.operation_id}: required request body is missing")
        else:
            media = _media_type(lower_headers.get("content-type"))
            content = op.request_body.get("content", {})
            if media not in content:
                errors.append(f"request media type {media!r} not in {sorted(content)}")
            else:
                try:
                    parsed = json.loads(body)
                except ValueError as exc:
                    errors.append(f"request body is not valid JSON: {exc}")
                else:
                    ptr = self._body_pointer(op, media)
                    errors += self._schema_errors(ptr, parsed, write=True, where="body")
        if errors:
            raise OpenAPIValidationError(
                f"{method.upper()} {path} ({op.operation_id}) violates the OpenAPI description:\n  "
                + "\n  ".join(errors)
            )
        return ValidatedRequest(op, path_params, query_values, parsed)

    @staticmethod
    def _body_pointer(op: Operation, media: str) -> str:
        return f"{op.pointer}/requestBody/content/{_escape_pointer(media)}/schema"

    # ------------------------------------------------------------------ responses

    def validate_response(
        self, op: Operation, status: int, content_type: str | None, body: bytes
    ) -> None:
        errors: list[str] = []
        key = None
        for candidate in (str(status), f"{str(status)[0]}XX", "default"):
            if candidate in op.responses:
                key = candidate
                break
        if key is None:
            if status < 400:
                raise OpenAPIValidationError(
                    f"{op.operation_id}: status {status} is not declared by the description"
                )
            # Undeclared error status: GitHub's description omits many; accept basic-error only.
            try:
                parsed = json.loads(body)
            except ValueError as exc:
                raise OpenAPIValidationError(
                    f"{op.operation_id}: undeclared error status {status} with non-JSON body"
                ) from exc
            errors = self._schema_errors(
                "#/components/schemas/basic-error", parsed, write=False, where="error body"
            )
        else:
            response = self._deref(op.responses[key])
            ref = op.responses[key].get("$ref")
            base_ptr = ref if ref else f"{op.pointer}/responses/{key}"
            content = response.get("content")
            if not content:
                if body:
                    errors.append(f"status {status} declares no content but a body was sent")
            else:
                media = _media_type(content_type)
                if media not in content:
                    errors.append(f"response media type {media!r} not in {sorted(content)}")
                else:
                    try:
                        parsed = json.loads(body)
                    except ValueError as exc:
                        errors.append(f"response body is not valid JSON: {exc}")
                    else:
                        ptr = f"{base_ptr}/content/{_escape_pointer(media)}/schema"
                        errors += self._schema_errors(ptr, parsed, write=False, where="response")
        if errors:
            raise OpenAPIValidationError(
                f"response {status} to {op.operation_id} violates the OpenAPI description:\n  "
                + "\n  ".join(errors)
            )
