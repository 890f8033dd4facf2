"""A stateful stand-in for the GitHub REST API on a loopback HTTP server.

``FakeGitHub`` runs ``http.server.ThreadingHTTPServer`` on ``127.0.0.1:0`` in a thread. Every
request it receives is validated against the committed OpenAPI subset
(:mod:`github_api.openapi_validator`) and so is every response it sends; violations are
recorded in ``validation_errors`` and :meth:`FakeGitHub.assert_valid` (called by the test
fixtures at teardown) turns them into a test failure. A request that fails validation is
answered ``422``, as GitHub would.

Besides the schemas, the fake enforces the GitHub behaviour the publisher relies on:

* authentication: ``Authorization: Bearer <token>`` (or ``token <token>``), else ``401``;
  ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version: 2022-11-28`` and a
  ``User-Agent`` are required (recorded as protocol errors when missing);
* token kind: ``token_user=None`` models the Actions ``GITHUB_TOKEN`` (an installation token):
  ``GET /user`` answers ``403 Resource not accessible by integration`` and comments are
  authored by ``github-actions[bot]``; with ``token_user="login"`` it models a user token:
  ``GET /user`` works and creating a check run answers ``403`` (only GitHub Apps may);
* comments: only their author may edit/delete them (``403`` otherwise); bodies are limited to
  65,536 characters; pagination by ``per_page``/``page`` with a real ``Link`` header;
* check runs: at most 50 annotations per request (also in the schema), summary/text at most
  65,535 characters; annotations accumulate over ``PATCH`` requests;
* commit statuses: description at most 140 characters;
* an optional API base path (``/api/v3`` for GitHub Enterprise Server); requests outside it
  are answered ``404`` and recorded as errors.

Faults can be injected per operation id (``issues/create-comment``, ``checks/create``, ...):
a status, JSON or raw body (HTML, invalid JSON), extra headers, for the next *n* requests or
always.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .openapi_validator import OpenAPISubset, OpenAPIValidationError, Operation

DEFAULT_TOKEN = "ghs_FAKEtokenForTests0123456789abcdefXYZ"
ACTIONS_BOT = "github-actions[bot]"
_EPOCH = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)

_SUBSET: OpenAPISubset | None = None
_SUBSET_LOCK = threading.Lock()


def load_subset() -> OpenAPISubset:
    """The committed subset, parsed once per test session."""
    global _SUBSET
    with _SUBSET_LOCK:
        if _SUBSET is None:
            _SUBSET = OpenAPISubset()
        return _SUBSET


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the API base path and query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any
    operation_id: str | None
    status: int = 0


@dataclass
class Fault:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    remaining: int | None  # None: every matching request
    off_spec: bool = False


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    validate: bool = True


class FakeGitHub:
    """See the module docstring. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        base_path: str = "",
        token: str = DEFAULT_TOKEN,
        token_user: str | None = None,
        owner: str = "Codertocat",
        repo: str = "Hello-World",
        subset: OpenAPISubset | None = None,
    ) -> None:
        if base_path and (not base_path.startswith("/") or base_path.endswith("/")):
            raise ValueError("base_path must look like '/api/v3'")
        self.base_path = base_path
        self.token = token
        self.token_user = token_user
        self.owner = owner
        self.repo = repo
        self.subset = subset or load_subset()
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.validation_errors: list[str] = []
        self.faults: dict[str, list[Fault]] = {}
        self._ids = 1000
        self._ticks = 0
        self.comments: dict[int, dict[str, Any]] = {}  # comment id -> comment object
        self.comment_issue: dict[int, int] = {}  # comment id -> issue number
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.check_run_annotations: dict[int, list[dict[str, Any]]] = {}
        self.check_run_requests: dict[int, list[dict[str, Any]]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.pulls: dict[int, dict[str, Any]] = {}
        #: Called with each request before it is handled (tests observe ordering with it).
        self.before_request: Callable[[RecordedRequest], None] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGitHub:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What GITHUB_API_URL would be (``https://HOST/api/v3`` on GHES)."""
        return self.origin + self.base_path

    @property
    def server_url(self) -> str:
        """What GITHUB_SERVER_URL would be."""
        return self.origin

    def assert_valid(self) -> None:
        with self.lock:
            errors = list(self.validation_errors)
        if errors:
            raise AssertionError(
                "the fake GitHub recorded OpenAPI/protocol violations:\n" + "\n".join(errors)
            )

    # ------------------------------------------------------------------ fault injection

    def fail(
        self,
        operation_id: str,
        status: int,
        *,
        times: int | None = None,
        message: str | None = None,
        json_body: Any = None,
        raw_body: bytes | None = None,
        content_type: str = "application/json; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        off_spec: bool = False,
    ) -> None:
        """Answer the next ``times`` requests to ``operation_id`` (all if None) this way.

        A fault's response is validated like any other when it is JSON, unless ``off_spec``
        says it is deliberately malformed; non-JSON bodies (HTML...) are never validated."""
        self.subset.operation(operation_id)  # KeyError for a typo
        if raw_body is None:
            if json_body is None:
                json_body = {
                    "message": message or f"fault injected ({status})",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": str(status),
                }
            raw_body = json.dumps(json_body).encode()
        with self.lock:
            self.faults.setdefault(operation_id, []).append(
                Fault(status, raw_body, content_type, dict(headers or {}), times, off_spec)
            )

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _take_fault(self, operation_id: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get(operation_id, [])
            while queue:
                fault = queue[0]
                if fault.remaining is None:
                    return fault
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        queue.pop(0)
                    return fault
                queue.pop(0)
            return None

    # ------------------------------------------------------------------ object builders

    def _next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    def _now(self) -> str:
        with self.lock:
            self._ticks += 1
            stamp = _EPOCH + dt.timedelta(seconds=self._ticks)
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def identity(self) -> str:
        """The login the token acts as."""
        return self.token_user or ACTIONS_BOT

    def user_object(self, login: str) -> dict[str, Any]:
        is_bot = login.endswith("[bot]")
        uid = 41898282 if login == ACTIONS_BOT else 5000 + sum(map(ord, login))
        api = self.api_url
        return {
            "login": login,
            "id": uid,
            "node_id": f"MDQ6VXNlcn{uid}",
            "avatar_url": f"{self.origin}/avatars/u/{uid}?v=4",
            "gravatar_id": "",
            "url": f"{api}/users/{login}",
            "html_url": f"{self.origin}/{login}",
            "followers_url": f"{api}/users/{login}/followers",
            "following_url": f"{api}/users/{login}/following{{/other_user}}",
            "gists_url": f"{api}/users/{login}/gists{{/gist_id}}",
            "starred_url": f"{api}/users/{login}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/users/{login}/subscriptions",
            "organizations_url": f"{api}/users/{login}/orgs",
            "repos_url": f"{api}/users/{login}/repos",
            "events_url": f"{api}/users/{login}/events{{/privacy}}",
            "received_events_url": f"{api}/users/{login}/received_events",
            "type": "Bot" if is_bot else "User",
            "site_admin": False,
        }

    def _public_user(self, login: str) -> dict[str, Any]:
        user = self.user_object(login)
        user.update(
            {
                "user_view_type": "public",
                "name": login,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "public_repos": 1,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
            }
        )
        return user

    def _actions_app(self) -> dict[str, Any]:
        return {
            "id": 15368,
            "slug": "github-actions",
            "node_id": "MDM6QXBwMTUzNjg=",
            "owner": self.user_object("github"),
            "name": "GitHub Actions",
            "description": "Automate your workflow from idea to production",
            "external_url": "https://help.github.com/en/actions",
            "html_url": f"{self.origin}/apps/github-actions",
            "created_at": "2018-07-30T09:30:17Z",
            "updated_at": "2019-12-10T19:04:12Z",
            "permissions": {"checks": "write", "pull_requests": "write", "statuses": "write"},
            "events": [],
        }

    def add_comment(
        self, issue_number: int, body: str, *, author: str, created_at: str | None = None
    ) -> dict[str, Any]:
        """Seed a comment (as if posted earlier by ``author``)."""
        cid = self._next_id()
        stamp = created_at or self._now()
        api = f"{self.api_url}/repos/{self.owner}/{self.repo}"
        comment = {
            "id": cid,
            "node_id": f"IC_kwDOFake{cid}",
            "url": f"{api}/issues/comments/{cid}",
            "html_url": f"{self.origin}/{self.owner}/{self.repo}/pull/{issue_number}"
            f"#issuecomment-{cid}",
            "body": body,
            "user": self.user_object(author),
            "created_at": stamp,
            "updated_at": stamp,
            "issue_url": f"{api}/issues/{issue_number}",
            "author_association": "NONE" if author.endswith("[bot]") else "CONTRIBUTOR",
            "performed_via_github_app": self._actions_app() if author == ACTIONS_BOT else None,
        }
        with self.lock:
            self.comments[cid] = comment
            self.comment_issue[cid] = issue_number
        return comment

    def issue_comments(self, issue_number: int) -> list[dict[str, Any]]:
        """Comments on an issue, oldest first (GitHub's order)."""
        with self.lock:
            found = [
                c for cid, c in self.comments.items() if self.comment_issue[cid] == issue_number
            ]
        return sorted(found, key=lambda c: (c["created_at"], c["id"]))

    def add_pull(
        self,
        pull_request: Mapping[str, Any],
        *,
        head_sha: str | None = None,
        head_repo_full_name: str | None = None,
    ) -> dict[str, Any]:
        """Store a pull request built from a webhook ``pull_request`` object.

        The webhook object is close to the REST ``pull-request`` schema; fields the REST
        schema requires and the webhook object may lack are filled in.
        """
        pr: dict[str, Any] = json.loads(json.dumps(pull_request))
        if head_sha is not None:
            pr["head"]["sha"] = head_sha
        if head_repo_full_name is not None:
            owner, name = head_repo_full_name.split("/", 1)
            pr["head"]["repo"]["full_name"] = head_repo_full_name
            pr["head"]["repo"]["name"] = name
            pr["head"]["repo"]["owner"]["login"] = owner
        for key, default in (
            ("merged", False),
            ("mergeable", None),
            ("rebaseable", None),
            ("mergeable_state", "unknown"),
            ("merged_by", None),
            ("comments", 0),
            ("review_comments", 0),
            ("maintainer_can_modify", False),
            ("commits", 1),
            ("additions", 1),
            ("deletions", 0),
            ("changed_files", 1),
            ("auto_merge", None),
        ):
            pr.setdefault(key, default)
        with self.lock:
            self.pulls[int(pr["number"])] = pr
        return pr

    # ------------------------------------------------------------------ request handling

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> _Response:
        split = urlsplit(raw_path)
        full_path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        lower = {k.lower(): v for k, v in headers.items()}
        record = RecordedRequest(method, full_path, query, lower, body, None, None)
        with self.lock:
            self.requests.append(record)
        if self.before_request is not None:
            self.before_request(record)
        response = self._dispatch(record, full_path, query, lower, body)
        record.status = response.status
        return response

    def _error(self, errors: str) -> None:
        with self.lock:
            self.validation_errors.append(errors)

    def _dispatch(
        self,
        record: RecordedRequest,
        full_path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Response:
        method = record.method
        if self.base_path:
            if not (full_path == self.base_path or full_path.startswith(self.base_path + "/")):
                self._error(f"{method} {full_path}: outside the API base path {self.base_path}")
                return _json(404, {"message": "Not Found"}, validate=False)
            path = full_path[len(self.base_path) :] or "/"
        else:
            path = full_path
        record.path = path

        try:
            op, _ = self.subset.match(method, path)
        except OpenAPIValidationError as exc:
            self._error(str(exc))
            return _json(404, {"message": "Not Found"}, validate=False)
        record.operation_id = op.operation_id

        # Protocol requirements GitHub documents outside the schemas.
        auth = headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return self._finish(op, _json(401, {"message": "Bad credentials", "status": "401"}))
        if "application/vnd.github+json" not in headers.get("accept", ""):
            self._error(f"{method} {path}: Accept header is {headers.get('accept')!r}")
        if headers.get("x-github-api-version") != "2022-11-28":
            self._error(f"{method} {path}: X-GitHub-Api-Version is missing or not 2022-11-28")
        if not headers.get("user-agent"):
            self._error(f"{method} {path}: no User-Agent header")

        try:
            validated = self.subset.validate_request(method, path, query, headers, body)
        except OpenAPIValidationError as exc:
            self._error(str(exc))
            return self._finish(op, _validation_failed("request violates the OpenAPI description"))
        record.json = validated.body

        fault = self._take_fault(op.operation_id)
        if fault is not None:
            return self._finish(
                op,
                _Response(
                    fault.status,
                    fault.body,
                    fault.content_type,
                    dict(fault.headers),
                    # Garbage (non-JSON) faults are deliberately off-schema.
                    validate=not fault.off_spec
                    and fault.content_type.startswith("application/json")
                    and _is_json(fault.body),
                ),
            )

        handler = getattr(self, "_op_" + op.operation_id.replace("/", "_").replace("-", "_"))
        response: _Response = handler(
            validated.path_params, validated.query, validated.body, self._link_base(path)
        )
        return self._finish(op, response)

    def _finish(self, op: Operation, response: _Response) -> _Response:
        if response.validate:
            try:
                self.subset.validate_response(
                    op, response.status, response.content_type, response.body
                )
            except OpenAPIValidationError as exc:
                self._error(str(exc))
        return response

    def _link_base(self, path: str) -> str:
        return f"{self.api_url}{path}"

    def _check_repo(self, params: Mapping[str, Any]) -> _Response | None:
        if (params["owner"], params["repo"]) != (self.owner, self.repo):
            return _json(404, {"message": "Not Found", "status": "404"})
        return None

    # ------------------------------------------------------------------ operations

    def _op_users_get_authenticated(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        if self.token_user is None:
            return _json(
                403,
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": "https://docs.github.com/rest/users/users"
                    "#get-the-authenticated-user",
                    "status": "403",
                },
            )
        return _json(200, self._public_user(self.token_user))

    def _op_issues_list_comments(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        if (bad := self._check_repo(params)) is not None:
            return bad
        per_page = min(max(int(query.get("per_page", 30)), 1), 100)
        page = max(int(query.get("page", 1)), 1)
        comments = self.issue_comments(int(params["issue_number"]))
        last = max(1, -(-len(comments) // per_page))
        chunk = comments[(page - 1) * per_page : page * per_page]
        rels = []
        if page < last:
            rels += [("next", page + 1), ("last", last)]
        if page > 1:
            rels += [("first", 1), ("prev", page - 1)]
        headers = {}
        if rels:
            headers["Link"] = ", ".join(
                f'<{link}?per_page={per_page}&page={n}>; rel="{rel}"' for rel, n in rels
            )
        return _json(200, chunk, headers=headers)

    def _op_issues_create_comment(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        if (bad := self._check_repo(params)) is not None:
            return bad
        if len(body["body"]) > 65536:
            return _validation_failed("body is too long (maximum is 65536 characters)")
        comment = self.add_comment(int(params["issue_number"]), body["body"], author=self.identity)
        return _json(201, comment, headers={"Location": comment["url"]})

    def _own_comment(
        self, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, _Response | None]:
        if (bad := self._check_repo(params)) is not None:
            return None, bad
        with self.lock:
            comment = self.comments.get(int(params["comment_id"]))
        if comment is None:
            return None, _json(404, {"message": "Not Found", "status": "404"})
        if comment["user"]["login"] != self.identity:
            return None, _json(
                403, {"message": "Resource not accessible by integration", "status": "403"}
            )
        return comment, None

    def _op_issues_update_comment(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        comment, bad = self._own_comment(params)
        if bad is not None:
            return bad
        assert comment is not None
        if len(body["body"]) > 65536:
            return _validation_failed("body is too long (maximum is 65536 characters)")
        with self.lock:
            comment["body"] = body["body"]
            comment["updated_at"] = self._now()
        return _json(200, comment)

    def _op_issues_delete_comment(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        comment, bad = self._own_comment(params)
        if bad is not None:
            return bad
        assert comment is not None
        with self.lock:
            del self.comments[comment["id"]]
            del self.comment_issue[comment["id"]]
        return _Response(204, b"", None)

    def _check_output_limits(self, output: Mapping[str, Any] | None) -> _Response | None:
        if not output:
            return None
        for key in ("summary", "text"):
            if len(output.get(key) or "") > 65535:
                return _validation_failed(f"output.{key} is too long (maximum is 65535 characters)")
        if len(output.get("annotations") or []) > 50:
            return _validation_failed("only 50 annotations are allowed per request")
        return None

    def _op_checks_create(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        if (bad := self._check_repo(params)) is not None:
            return bad
        if self.token_user is not None:
            return _json(
                403, {"message": "You must authenticate via a GitHub App.", "status": "403"}
            )
        if (bad := self._check_output_limits(body.get("output"))) is not None:
            return bad
        if body.get("status") == "completed" and "conclusion" not in body:
            return _validation_failed("conclusion is required when status is completed")
        run_id = self._next_id()
        api = f"{self.api_url}/repos/{self.owner}/{self.repo}"
        output = body.get("output") or {}
        annotations = list(output.get("annotations") or [])
        now = self._now()
        status = "completed" if "conclusion" in body else body.get("status", "queued")
        run = {
            "id": run_id,
            "head_sha": body["head_sha"],
            "node_id": f"CR_kwDOFake{run_id}",
            "external_id": body.get("external_id", ""),
            "url": f"{api}/check-runs/{run_id}",
            "html_url": f"{self.origin}/{self.owner}/{self.repo}/runs/{run_id}",
            "details_url": body.get("details_url"),
            "status": status,
            "conclusion": body.get("conclusion"),
            "started_at": body.get("started_at", now),
            "completed_at": body.get("completed_at", now if status == "completed" else None),
            "output": {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": len(annotations),
                "annotations_url": f"{api}/check-runs/{run_id}/annotations",
            },
            "name": body["name"],
            "check_suite": {"id": 5000 + run_id},
            "app": self._actions_app(),
            "pull_requests": [],
        }
        with self.lock:
            self.check_runs[run_id] = run
            self.check_run_annotations[run_id] = annotations
            self.check_run_requests[run_id] = [body]
        return _json(201, run)

    def _op_checks_update(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        if (bad := self._check_repo(params)) is not None:
            return bad
        run_id = int(params["check_run_id"])
        with self.lock:
            run = self.check_runs.get(run_id)
        if run is None:
            return _json(404, {"message": "Not Found", "status": "404"})
        if (bad := self._check_output_limits(body.get("output"))) is not None:
            return bad
        with self.lock:
            self.check_run_requests[run_id].append(body)
            for key in ("name", "details_url", "external_id", "status", "conclusion"):
                if key in body:
                    run[key] = body[key]
            output = body.get("output")
            if output:
                for key in ("title", "summary", "text"):
                    if key in output:
                        run["output"][key] = output[key]
                self.check_run_annotations[run_id].extend(output.get("annotations") or [])
                run["output"]["annotations_count"] = len(self.check_run_annotations[run_id])
        return _json(200, run)

    def _op_repos_create_commit_status(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        if (bad := self._check_repo(params)) is not None:
            return bad
        description = body.get("description")
        if description is not None and len(description) > 140:
            return _validation_failed("description is too long (maximum is 140 characters)")
        sid = self._next_id()
        now = self._now()
        creator = self.user_object(self.identity)
        status = {
            "url": f"{self.api_url}/repos/{self.owner}/{self.repo}/statuses/{params['sha']}",
            "avatar_url": creator["avatar_url"],
            "id": sid,
            "node_id": f"SC_kwDOFake{sid}",
            "state": body["state"],
            "description": description,
            "target_url": body.get("target_url"),
            "context": body.get("context", "default"),
            "created_at": now,
            "updated_at": now,
            "creator": creator,
        }
        with self.lock:
            self.statuses.append({**status, "sha": params["sha"]})
        return _json(201, status)

    def _op_pulls_get(
        self, params: dict[str, Any], query: dict[str, Any], body: Any, link: str
    ) -> _Response:
        if (bad := self._check_repo(params)) is not None:
            return bad
        with self.lock:
            pr = self.pulls.get(int(params["pull_number"]))
        if pr is None:
            return _json(404, {"message": "Not Found", "status": "404"})
        return _json(200, pr)

    # ------------------------------------------------------------------ inspection helpers

    def requests_for(self, operation_id: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.operation_id == operation_id]

    def iter_writes(self) -> Iterator[RecordedRequest]:
        with self.lock:
            items = list(self.requests)
        return (r for r in items if r.method in ("POST", "PATCH", "PUT", "DELETE"))


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _json(
    status: int,
    value: Any,
    *,
    headers: Mapping[str, str] | None = None,
    validate: bool = True,
) -> _Response:
    return _Response(
        status,
        json.dumps(value).encode(),
        "application/json; charset=utf-8",
        dict(headers or {}),
        validate,
    )


def _validation_failed(message: str) -> _Response:
    return _json(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Fake", "code": "custom", "message": message}],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422",
        },
    )


def _make_handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeGitHub/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items()}
            try:
                response = fake.handle(self.command, self.path, headers, body)
            except Exception as exc:  # a bug in the fake: fail the test, answer 500
                fake._error(f"fake server crashed on {self.command} {self.path}: {exc!r}")
                response = _Response(500, b'{"message":"fake crashed"}', validate=False)
            self.send_response(response.status)
            if response.content_type is not None:
                self.send_header("Content-Type", response.content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.body and self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = _serve
        do_POST = _serve
        do_PATCH = _serve
        do_PUT = _serve
        do_DELETE = _serve

    return Handler
