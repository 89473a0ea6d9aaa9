"""GitHub REST client for the users crawl: paging, conditional requests, retries, rate limits.

Only what the crawl needs: list users by ID window (``GET /users``) and fetch each one's counters by
ID (``GET /user/{id}``, which survives renames), with ETags so unchanged users cost no rate limit.
Works against api.github.com, GitHub Enterprise (``https://HOST/api/v3``) and the local stand-in.
"""

import json
import logging
import math
import random
import re
import reprlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PAGE_SIZE = 100
MAX_BODY_BYTES = 10 * 1024 * 1024  # no users answer comes near this; anything bigger is not GitHub
MAX_COUNTER = 10**9  # far above any real account; larger means a broken or hostile server
MAX_RATE_LIMIT_WAITS = 3  # rate-limit sleeps per request before giving up with RateLimitError
SECONDARY_MIN_WAIT = 60.0  # GitHub: "wait at least one minute", then back off exponentially
PRIMARY_WINDOW = 3600.0  # an exhausted budget without X-RateLimit-Reset: assume a whole window

_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
_SECRET_PARAM = re.compile(r"token|secret|key|sig|pass|auth|code", re.IGNORECASE)


@dataclass(frozen=True)
class ListedUser:
    """One item of ``GET /users`` (``simple-user``): identity only, no counters."""

    id: int
    login: str
    type: str
    node_id: str | None = None


@dataclass(frozen=True)
class UserDetail:
    """``GET /user/{id}``: identity, the four public counters and the ETag to revalidate with."""

    id: int
    login: str
    type: str
    public_repos: int
    public_gists: int
    followers: int
    following: int
    etag: str | None = None  # opaque part only, without ``W/`` and quotes


class _Singleton:
    __slots__ = ()
    _instance: Any = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance


class NotModified(_Singleton):
    """The user is unchanged since the ETag was taken (304); the stored copy is still right."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_MODIFIED"


class Gone(_Singleton):
    """404 for a user ID: the account was deleted (or hidden) since it was listed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "GONE"


NOT_MODIFIED = NotModified()
GONE = Gone()


class GitHubError(Exception):
    """Base of every error the client raises; the message names method, URL and status."""

    def __init__(self, detail: str, *, url: str, status: int | None, method: str = "GET") -> None:
        answer = "no response" if status is None else status
        super().__init__(f"{method} {url} -> {answer}: {detail}")
        self.method = method
        self.url = url
        self.status = status


class MalformedResponseError(GitHubError):
    """The answer does not have the shape GitHub documents; retrying would not help."""


class GitHubHTTPError(GitHubError):
    """A status that retrying cannot fix (401, plain 403, 422...), or retries exhausted."""


class RateLimitError(GitHubError):
    """The rate limit needs a longer wait than the client may sleep; retry after ``reset_at``."""

    def __init__(
        self, *, url: str, status: int, reset_at: datetime, secondary: bool, method: str = "GET"
    ) -> None:
        kind = "secondary" if secondary else "primary"
        seconds = max(0.0, (reset_at - datetime.now(UTC)).total_seconds())
        super().__init__(
            f"GitHub rate limit exhausted ({kind}); resets at "
            f"{reset_at:%Y-%m-%dT%H:%M:%SZ} ({_in(seconds)})",
            url=url,
            status=status,
            method=method,
        )
        self.reset_at = reset_at
        self.secondary = secondary


@dataclass
class RequestStats:
    """Cumulative counters of one client, updated from all its threads."""

    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    rate_limit_remaining: int | None = None
    rate_limit_reset: datetime | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # not a field: keeps asdict() and copies working

    def _add(self, *, sent: int = 0, not_modified: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += sent
            self.not_modified += not_modified
            self.retries += retries

    def _observe(self, headers: Mapping[str, str]) -> None:
        """Remember the budget the latest answer reported; None when it reported none."""
        reset = _int_header(headers, "X-RateLimit-Reset")
        with self._lock:
            self.rate_limit_remaining = _int_header(headers, "X-RateLimit-Remaining")
            self.rate_limit_reset = None if reset is None else datetime.fromtimestamp(reset, UTC)


class GitHubClient:
    """Thread-safe GitHub REST client over one pooled session; also a context manager."""

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_rate_limit_wait: float = 90.0,
        user_agent: str = "gh-assets/0.1 (+https://github.com/gh-assets)",
    ) -> None:
        self._api_url = api_url.rstrip("/")
        parts = urlsplit(self._api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"api_url must be an http(s) URL, got {_safe_url(api_url)!r}")
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
        self._origin = (parts.scheme, parts.netloc)
        self._token = token or None
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_rate_limit_wait = max_rate_limit_wait
        self._sleep: Callable[[float], None] = time.sleep  # tests record waits instead
        self.stats = RequestStats()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=max(max_concurrency, 10))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": user_agent,
            }
        )
        if self._token:
            self._session.headers["Authorization"] = f"Bearer {self._token}"

    def __repr__(self) -> str:
        return (
            f"GitHubClient(api_url={_safe_url(self._api_url)!r}, "
            f"authenticated={self._token is not None}, max_concurrency={self._max_concurrency})"
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def list_users(self, first_id: int, last_id: int) -> list[ListedUser]:
        """Every user with ``first_id <= id <= last_id``, following ``Link: rel="next"``."""
        if last_id < first_id:
            return []
        users: list[ListedUser] = []
        previous = first_id - 1
        url = f"{self._api_url}/users?since={previous}&per_page={PAGE_SIZE}"
        while True:
            safe = _safe_url(url)
            resp, data = self._get(url)
            if resp.status_code != 200:
                raise GitHubHTTPError(
                    "unexpected status for a users page", url=safe, status=resp.status_code
                )
            if not isinstance(data, list):
                raise MalformedResponseError(
                    f"expected a JSON array of users, got {type(data).__name__}",
                    url=safe,
                    status=200,
                )
            for item in data:
                user = _parse(_listed_user, item, safe)
                if user.id <= previous:
                    raise MalformedResponseError(
                        f"user IDs not strictly increasing: {user.id} after {previous}",
                        url=safe,
                        status=200,
                    )
                previous = user.id
                if user.id <= last_id:
                    users.append(user)
            next_url = resp.links.get("next", {}).get("url")
            if not data or previous >= last_id or not next_url:
                return users
            url = self._same_origin(next_url, safe)

    def users_after(self, since: int, limit: int = PAGE_SIZE) -> list[ListedUser]:
        """One ``GET /users`` page: up to ``limit`` users with ``id > since`` (a frontier probe)."""
        url = f"{self._api_url}/users?since={since}&per_page={min(limit, PAGE_SIZE)}"
        safe = _safe_url(url)
        resp, data = self._get(url)
        if resp.status_code != 200 or not isinstance(data, list):
            raise MalformedResponseError(
                "expected a JSON array of users", url=safe, status=resp.status_code
            )
        return [_parse(_listed_user, item, safe) for item in data]

    def get_user(self, user_id: int, etag: str | None = None) -> UserDetail | NotModified | Gone:
        """One user's counters; with ``etag``, ``NOT_MODIFIED`` when unchanged (free of quota)."""
        url = f"{self._api_url}/user/{user_id}"
        safe = _safe_url(url)
        resp, data = self._get(url, {"If-None-Match": f'W/"{etag}"'} if etag else None)
        if resp.status_code == 304:
            self.stats._add(not_modified=1)
            return NOT_MODIFIED
        if resp.status_code == 404:
            return GONE
        user = _parse(_user_detail, data, safe)
        if user.id != user_id:
            raise MalformedResponseError(
                f"asked for user {user_id}, got {user.id}", url=safe, status=200
            )
        return replace(user, etag=_etag(resp.headers.get("ETag")))

    def get_users(
        self, requests: Sequence[tuple[int, str | None]]
    ) -> dict[int, UserDetail | NotModified | Gone]:
        """``get_user`` for each ``(id, etag)``, at most ``max_concurrency`` in flight.

        The first error cancels the requests not yet started and is raised.
        """
        if not requests:
            return {}
        results: dict[int, UserDetail | NotModified | Gone] = {}
        workers = min(self._max_concurrency, len(requests))
        with ThreadPoolExecutor(workers, thread_name_prefix="github") as pool:
            futures = {pool.submit(self.get_user, uid, etag): uid for uid, etag in requests}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return results

    def _get(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[requests.Response, Any]:
        """GET with retries and rate-limit waits.

        Returns the final 200, 304 or 404 response and the parsed JSON of a 200; raises otherwise.
        """
        safe = _safe_url(url)
        attempt = rate_limit_waits = 0
        secondary_wait = SECONDARY_MIN_WAIT
        while True:
            status: int | None = None
            try:
                resp, body = self._send(url, headers, safe)
            except _TRANSIENT as exc:
                problem = self._scrub(f"{type(exc).__name__}: {exc}")
            except requests.RequestException as exc:  # e.g. an invalid URL: retrying cannot help
                detail = self._scrub(f"{type(exc).__name__}: {exc}")
                raise GitHubHTTPError(detail, url=safe, status=None) from exc
            else:
                status = resp.status_code
                if status in (403, 429):
                    limit = _rate_limit(resp, body, secondary_wait)
                    if limit is None:
                        raise GitHubHTTPError(self._message(resp, body), url=safe, status=status)
                    wait, reset_at, secondary = limit
                    if wait > self._max_rate_limit_wait or rate_limit_waits >= MAX_RATE_LIMIT_WAITS:
                        raise RateLimitError(
                            url=safe, status=status, reset_at=reset_at, secondary=secondary
                        )
                    if secondary and "Retry-After" not in resp.headers:
                        secondary_wait *= 2
                    rate_limit_waits += 1
                    log.warning(
                        "GET %s -> %d: %s rate limit; waiting %.0f s",
                        safe,
                        status,
                        "secondary" if secondary else "primary",
                        wait,
                    )
                    self.stats._add(retries=1)
                    self._sleep(wait)
                    continue
                if status in (304, 404):
                    return resp, None
                if status == 200:
                    try:
                        return resp, json.loads(body)
                    except ValueError:
                        problem = "200 answer whose body is not JSON"
                elif status >= 500:
                    problem = f"server error {status} {resp.reason}"
                else:
                    raise GitHubHTTPError(self._message(resp, body), url=safe, status=status)
            if attempt >= self._max_retries:
                raise GitHubHTTPError(
                    f"giving up after {attempt + 1} attempts: {problem}", url=safe, status=status
                )
            delay = random.uniform(0, min(self._backoff_max, self._backoff_base * 2**attempt))
            attempt += 1
            log.info(
                "GET %s: %s; retry %d/%d in %.2f s",
                safe,
                problem,
                attempt,
                self._max_retries,
                delay,
            )
            self.stats._add(retries=1)
            self._sleep(delay)

    def _send(
        self, url: str, headers: Mapping[str, str] | None, safe: str
    ) -> tuple[requests.Response, bytes]:
        """One HTTP request; reads at most MAX_BODY_BYTES (decoded) so a huge body cannot OOM."""
        self.stats._add(sent=1)
        with self._session.get(url, headers=headers, timeout=self._timeout, stream=True) as resp:
            self.stats._observe(resp.headers)
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise MalformedResponseError(
                        f"body larger than {MAX_BODY_BYTES} bytes",
                        url=safe,
                        status=resp.status_code,
                    )
                chunks.append(chunk)
        return resp, b"".join(chunks)

    def _same_origin(self, url: str, safe_from: str) -> str:
        """The next-page URL, refused if it points elsewhere: the token must not leave the API."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise MalformedResponseError(
                f"Link rel=next leaves the API: {_safe_url(url)}", url=safe_from, status=200
            )
        return url

    def _message(self, resp: requests.Response, body: bytes) -> str:
        """GitHub's own error message (bounded, token removed), for the exception text."""
        text = body.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            text = data["message"]
        return self._scrub(text.strip()[:300]) or resp.reason or "no message"

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _rate_limit(
    resp: requests.Response, body: bytes, secondary_wait: float
) -> tuple[float, datetime, bool] | None:
    """(seconds to wait, reset time, secondary?) for a 403/429 that is a rate limit, else None.

    GitHub's documented order: Retry-After; then X-RateLimit-Remaining 0 until X-RateLimit-Reset;
    then a secondary limit (by message, or any 429) for at least a minute, doubling.
    """
    now = time.time()
    exhausted = resp.headers.get("X-RateLimit-Remaining", "").strip() == "0"
    retry_after = _int_header(resp.headers, "Retry-After")
    if retry_after is not None:
        wait = float(max(retry_after, 0))
        return wait, _utc(now + wait), not exhausted
    if exhausted:
        reset = _int_header(resp.headers, "X-RateLimit-Reset")
        if reset is None:
            return PRIMARY_WINDOW, _utc(now + PRIMARY_WINDOW), False
        return max(reset - now, 0.0) + 1.0, _utc(reset), False
    text = body.decode("utf-8", "replace").lower()
    if resp.status_code == 429 or "secondary rate limit" in text or "abuse detection" in text:
        return secondary_wait, _utc(now + secondary_wait), True
    return None


class _Shape(ValueError):
    """A body that does not match the documented schema."""


def _parse(parser: Callable[[Any], T], data: Any, safe: str) -> T:
    try:
        return parser(data)
    except _Shape as exc:
        raise MalformedResponseError(str(exc), url=safe, status=200) from None


def _listed_user(item: Any) -> ListedUser:
    if not isinstance(item, dict):
        raise _Shape(f"expected a user object, got {reprlib.repr(item)}")
    node_id = item.get("node_id")
    return ListedUser(
        id=_integer(item, "id", 1, 2**63),
        login=_string(item, "login"),
        type=_string(item, "type"),
        node_id=node_id if isinstance(node_id, str) else None,
    )


def _user_detail(data: Any) -> UserDetail:
    listed = _listed_user(data)
    counters = ("public_repos", "public_gists", "followers", "following")
    return UserDetail(
        id=listed.id,
        login=listed.login,
        type=listed.type,
        **{name: _integer(data, name, 0, MAX_COUNTER) for name in counters},
    )


def _integer(item: dict[str, Any], key: str, low: int, high: int) -> int:
    value = item.get(key)
    if type(value) is not int or not low <= value < high:  # bool is an int subclass: refuse it
        raise _Shape(f"{key} must be an integer in [{low}, {high}), got {reprlib.repr(value)}")
    return value


def _string(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise _Shape(f"{key} must be a non-empty string, got {reprlib.repr(value)}")
    return value


def _etag(value: str | None) -> str | None:
    """The opaque part of ``W/"abc"`` or ``"abc"``: short enough to keep Redis hashes compact."""
    if not value:
        return None
    value = value.strip().removeprefix("W/").strip('"')
    return value or None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _in(seconds: float) -> str:
    if seconds < 120:
        return f"in {math.ceil(seconds)} s"
    return f"in {round(seconds / 60)} min"


def _safe_url(url: str) -> str:
    """``url`` without userinfo, fragment, or the values of credential-like query parameters."""
    parts = urlsplit(url)
    query = [
        (key, "***" if _SECRET_PARAM.search(key) else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))
