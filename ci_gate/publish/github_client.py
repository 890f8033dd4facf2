"""A small GitHub REST client on ``requests``.

* Headers on every request: ``Authorization: Bearer <token>``,
  ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version: 2022-11-28``, a
  ``User-Agent``; a (connect, read) timeout on every request.
* Pagination by the ``Link`` header, ``per_page=100``; ``next`` links are followed only on the
  API's own origin, so the token is never sent elsewhere.
* Retries with bounded exponential backoff for connection errors/timeouts, 5xx, 429 and
  rate limits (403/429 with ``retry-after``, or ``x-ratelimit-remaining: 0`` with
  ``x-ratelimit-reset``, or a "rate limit" message), honouring those headers, and giving up
  as soon as the next wait would exceed :attr:`RetryPolicy.max_total_wait`. ``sleep`` and
  ``clock`` are injectable so tests never wait.
* Failures raise :class:`GitHubAPIError` carrying the HTTP status and GitHub's ``message``;
  no message, ``repr`` or log line ever contains the token (it is also scrubbed from any text
  that might echo it).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
import requests.auth

from ci_gate import __version__

from .context import Secret

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
USER_AGENT = f"syscall-gate/{__version__} (python-requests)"

ErrorKind = Literal["http", "unreachable", "invalid-response", "rate-limited"]

_log = logging.getLogger("ci_gate.publish.github")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Total sleeping never exceeds ``max_total_wait`` seconds."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 20.0
    max_total_wait: float = 60.0
    #: Wait for a rate limit that gives no hint (GitHub: "wait at least one minute").
    rate_limit_default_wait: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based) when the server gave no hint."""
        return float(min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))


class GitHubAPIError(Exception):
    """A GitHub API call failed. ``status`` is None when no HTTP answer was received."""

    def __init__(
        self,
        summary: str,
        *,
        kind: ErrorKind = "http",
        status: int | None = None,
        method: str = "",
        path: str = "",
        github_message: str | None = None,
        documentation_url: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.kind: ErrorKind = kind
        self.status = status
        self.method = method
        self.path = path
        self.github_message = github_message
        self.documentation_url = documentation_url
        self.request_id = request_id
        self.attempts = attempts

    @property
    def is_permission_error(self) -> bool:
        """403 that is not a rate limit (missing scope/permission, fork PR token...)."""
        return self.status == 403 and self.kind == "http"

    def __str__(self) -> str:
        return self.summary

    def __repr__(self) -> str:
        return f"GitHubAPIError({self.summary!r}, kind={self.kind!r}, status={self.status!r})"


@dataclass(frozen=True)
class ApiResponse:
    status: int
    data: Any
    headers: Mapping[str, str] = field(repr=False)
    next_url: str | None = None


def repo_path(repository: str, *parts: str | int) -> str:
    """``/repos/{owner}/{repo}/...`` with every segment percent-encoded."""
    owner, name = repository.split("/", 1)
    segments = [owner, name, *(str(p) for p in parts)]
    return "/repos/" + "/".join(quote(s, safe="") for s in segments)


class GitHubClient:
    """See the module docstring. Not thread-safe (one ``requests.Session``)."""

    def __init__(
        self,
        api_url: str,
        token: Secret | str | None,
        *,
        timeout: float | tuple[float, float] = (5.0, 20.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
        log: logging.Logger | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        split = urlsplit(self.api_url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise ValueError(f"api_url must be an http(s) URL, got {api_url!r}")
        self._origin = (split.scheme, split.netloc.lower())
        self._token = token if isinstance(token, Secret) or token is None else Secret(token)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._session = session or requests.Session()
        self._auth = _BearerAuth(self._token)
        self._user_agent = user_agent
        self._log = log or _log
        #: Seconds slept in retries over this client's life (for diagnostics and tests).
        self.total_slept = 0.0

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def redact(self, text: str) -> str:
        return self._token.redact(text) if self._token else text

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": self._user_agent,
        }

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            split = urlsplit(path_or_url)
            if (split.scheme, split.netloc.lower()) != self._origin:
                raise GitHubAPIError(
                    "refusing to send the token to another origin",
                    kind="invalid-response",
                    path=split.path,
                )
            return path_or_url
        if not path_or_url.startswith("/"):
            raise ValueError(f"path must start with '/': {path_or_url!r}")
        return self.api_url + path_or_url

    def _display_path(self, url: str) -> str:
        path = urlsplit(url).path
        base = urlsplit(self.api_url).path
        return path[len(base) :] if base and path.startswith(base) else path

    @staticmethod
    def _parse_json(response: requests.Response) -> tuple[bool, Any]:
        if not response.content:
            return True, None
        try:
            return True, response.json()
        except ValueError:
            return False, None

    def _rate_limit_wait(self, response: requests.Response, message: str) -> float | None:
        """Seconds to wait if ``response`` is a (primary or secondary) rate limit, else None."""
        if response.status_code not in (403, 429):
            return None
        headers = response.headers
        retry_after = headers.get("retry-after")
        if retry_after:
            seconds = _parse_retry_after(retry_after, self._clock())
            if seconds is not None:
                return seconds
        if headers.get("x-ratelimit-remaining") == "0":
            reset = headers.get("x-ratelimit-reset")
            try:
                return max(0.0, float(reset or "") - self._clock()) + 1.0
            except ValueError:  # no or unreadable reset time
                return self.retry.rate_limit_default_wait
        if response.status_code == 429 or "rate limit" in message.lower():
            return self.retry.rate_limit_default_wait
        return None

    # ------------------------------------------------------------------ core

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> ApiResponse:
        """One API call, retried as described in the module docstring."""
        method = method.upper()
        url = self._url(path_or_url)
        shown = self._display_path(url)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            error: GitHubAPIError
            wait: float | None
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=self._headers(),
                    auth=self._auth,
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                detail = self.redact(f"{type(exc).__name__}: {exc}")[:300]
                error = GitHubAPIError(
                    f"{method} {shown}: GitHub API unreachable ({detail})",
                    kind="unreachable",
                    method=method,
                    path=shown,
                    attempts=attempt,
                )
                wait = self.retry.backoff(attempt)
            else:
                ok_json, data = self._parse_json(response)
                status = response.status_code
                self._log.debug("%s %s -> %s (attempt %d)", method, shown, status, attempt)
                if 200 <= status < 300:
                    if not ok_json:
                        raise GitHubAPIError(
                            f"{method} {shown}: GitHub answered {status} with a body that is "
                            f"not JSON ({_content_type(response)})",
                            kind="invalid-response",
                            status=status,
                            method=method,
                            path=shown,
                            request_id=response.headers.get("x-github-request-id"),
                            attempts=attempt,
                        )
                    nxt = response.links.get("next", {}).get("url")
                    return ApiResponse(status, data, dict(response.headers), nxt)
                error = self._http_error(method, shown, response, ok_json, data, attempt)
                if status >= 500:
                    wait = self.retry.backoff(attempt)
                else:
                    wait = self._rate_limit_wait(response, error.github_message or "")
                    if wait is not None:
                        error.kind = "rate-limited"
            if wait is None:
                raise error
            if attempt >= self.retry.max_attempts or waited + wait > self.retry.max_total_wait:
                error.summary += (
                    f" (gave up after {attempt} attempt{'s' if attempt > 1 else ''}, "
                    f"{waited:g}s of waiting)"
                )
                error.args = (error.summary,)
                raise error
            self._log.info(
                "GitHub API %s %s failed (%s); retrying in %.3gs",
                method,
                shown,
                error.status if error.status is not None else error.kind,
                wait,
            )
            self._sleep(wait)
            waited += wait
            self.total_slept += wait

    def _http_error(
        self,
        method: str,
        shown: str,
        response: requests.Response,
        ok_json: bool,
        data: Any,
        attempt: int,
    ) -> GitHubAPIError:
        status = response.status_code
        message: str | None = None
        doc: str | None = None
        if ok_json and isinstance(data, Mapping):
            raw_message = data.get("message")
            message = self.redact(str(raw_message))[:500] if raw_message is not None else None
            raw_doc = data.get("documentation_url")
            doc = str(raw_doc) if raw_doc is not None else None
        detail = message if message is not None else f"non-JSON body ({_content_type(response)})"
        return GitHubAPIError(
            f"{method} {shown}: HTTP {status}: {detail}",
            kind="http" if ok_json else "invalid-response",
            status=status,
            method=method,
            path=shown,
            github_message=message,
            documentation_url=doc,
            request_id=response.headers.get("x-github-request-id"),
            attempts=attempt,
        )

    # ------------------------------------------------------------------ conveniences

    def get(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any:
        return self.request("GET", path, params=params).data

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body).data

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body).data

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        max_pages: int = 100,
    ) -> Iterator[Any]:
        """Yield the items of a list endpoint, following ``Link: <...>; rel="next"``."""
        query: dict[str, str | int] = {**(params or {}), "per_page": 100}
        response = self.request("GET", path, params=query)
        pages = 1
        while True:
            if not isinstance(response.data, list):
                raise GitHubAPIError(
                    f"GET {self._display_path(self._url(path))}: expected a JSON array",
                    kind="invalid-response",
                    status=response.status,
                    method="GET",
                    path=path,
                )
            yield from response.data
            if response.next_url is None:
                return
            if pages >= max_pages:
                self._log.warning("stopped paginating %s after %d pages", path, pages)
                return
            response = self.request("GET", response.next_url)
            pages += 1


class _BearerAuth(requests.auth.AuthBase):
    """Adds the token at send time. Passing an explicit ``auth`` also stops ``requests`` from
    substituting credentials from ``~/.netrc``; on a redirect to another host ``requests``
    drops the header."""

    def __init__(self, token: Secret | None) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token:
            r.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return r

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


def _content_type(response: requests.Response) -> str:
    return response.headers.get("content-type", "no content type").split(";")[0] or "empty"


def _parse_retry_after(value: str, now: float) -> float | None:
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
