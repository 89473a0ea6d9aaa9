"""GitHub REST client for the users crawl: paging, conditional requests, retries, rate limits.

Only what the crawl needs: list users by ID window (``GET /users``) and fetch each one's counters by
ID (``GET /user/{id}``, which survives renames), with ETags so unchanged users cost no rate limit.
Works against api.github.com, GitHub Enterprise (``https://HOST/api/v3``) and the local stand-in.

``detail_mode="graphql"`` reads the counters of up to 100 listed users with one GraphQL query
(``nodes(ids:)`` on their ``node_id``s, about 4 of the 5,000 points an hour) instead of one REST
request each; organizations, bots, users without a ``node_id`` and nodes that come back null or
different fall back to ``GET /user/{id}``.
"""

import contextvars
import heapq
import itertools
import json
import logging
import math
import random
import re
import reprlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, ParamSpec, Self, TypeVar, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PAGE_SIZE = 100
MAX_BODY_BYTES = 10 * 1024 * 1024  # no users answer comes near this; anything bigger is not GitHub
MAX_COUNTER = 10**9  # far above any real account; larger means a broken or hostile server
MAX_RATE_LIMIT_WAITS = 3  # rate-limit sleeps per request before giving up with RateLimitError
SECONDARY_MIN_WAIT = 60.0  # GitHub: "wait at least one minute", then back off exponentially
PRIMARY_WINDOW = 3600.0  # an exhausted budget without X-RateLimit-Reset: assume a whole window
GRAPHQL_BATCH = 100  # GitHub: "You may not provide more than 100 node ids"
# GitHub's secondary limit allows at most 100 concurrent requests per account, and the github_api
# pool (gh_assets/dagster.yaml, default_limit 2) lets 2 runs call GitHub at once: 2 x 32 = 64.
DEFAULT_MAX_CONCURRENCY = 32

DetailMode = Literal["rest", "graphql"]
DETAIL_MODES: tuple[str, ...] = get_args(DetailMode)

# The counters of the users behind ``$ids``: one request, about 4 points per 100 users. The REST
# public_repos counts owned public repositories only: ownerAffiliations defaults to [OWNER,
# COLLABORATOR], which would add collaborations. An Organization has no followers/following/gists.
USER_COUNTS_QUERY = """\
query GhAssetsUserCounts($ids: [ID!]!) {
  rateLimit { cost remaining resetAt }
  nodes(ids: $ids) {
    __typename
    ... on User {
      databaseId
      login
      followers { totalCount }
      following { totalCount }
      gists(privacy: PUBLIC) { totalCount }
      repositories(privacy: PUBLIC, ownerAffiliations: [OWNER]) { totalCount }
    }
  }
}"""

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


class GitHubConfigError(ValueError):
    """The client's settings cannot work (e.g. anonymous GraphQL against GitHub itself)."""


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
    graphql_points: int = 0  # sum of rateLimit.cost over answered GraphQL queries
    graphql_remaining: int | None = None  # the GraphQL budget (its own; REST's is above)
    graphql_reset: datetime | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # not a field: keeps asdict() and copies working

    def _add(self, *, sent: int = 0, not_modified: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += sent
            self.not_modified += not_modified
            self.retries += retries

    def _observe(self, headers: Mapping[str, str]) -> None:
        """Remember the budget the latest answer reported; None when it reported none.

        GraphQL answers (``X-RateLimit-Resource: graphql``) report the separate points budget.
        """
        reset = _int_header(headers, "X-RateLimit-Reset")
        remaining = _int_header(headers, "X-RateLimit-Remaining")
        reset_at = None if reset is None else datetime.fromtimestamp(reset, UTC)
        with self._lock:
            if headers.get("X-RateLimit-Resource", "").strip().lower() == "graphql":
                self.graphql_remaining, self.graphql_reset = remaining, reset_at
            else:
                self.rate_limit_remaining, self.rate_limit_reset = remaining, reset_at

    def _graphql_cost(self, cost: int) -> None:
        with self._lock:
            self.graphql_points += cost


class RequestTally:
    """Requests sent inside one ``request_tally()`` block, from whatever thread of it.

    Client-wide ``RequestStats`` cannot say which page a request was for once pages overlap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0

    def _add(self) -> None:
        with self._lock:
            self.requests += 1


_TALLY: contextvars.ContextVar[RequestTally | None] = contextvars.ContextVar(
    "gh_assets_request_tally", default=None
)


@contextmanager
def request_tally() -> Iterator[RequestTally]:
    """Count every request (retries included) sent in this context: the client's worker threads
    run in a copy of the caller's context, so requests made for the caller are counted too."""
    tally = RequestTally()
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


_RANK: contextvars.ContextVar[int] = contextvars.ContextVar("gh_assets_request_rank", default=0)


@contextmanager
def request_rank(rank: int) -> Iterator[None]:
    """Requests sent in this context take a free slot of the client before those of a higher
    rank (first come, first served among equals): ``crawl_pages`` gives earlier pages a lower
    rank so they finish first and the next page starts, instead of all pages in flight
    advancing in lockstep and then starting together with only their list requests in flight."""
    token = _RANK.set(rank)
    try:
        yield
    finally:
        _RANK.reset(token)


class _Slots:
    """At most ``size`` holders at once, like a ``BoundedSemaphore``; but a freed slot is handed
    to the waiter of lowest ``request_rank`` (then the longest waiting), never to whichever
    thread grabs it first. A semaphore lets a thread that just released take the slot back for
    its next task, so every page in flight keeps its share and none finishes early."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._size = self._free = size
        self._waiting: list[tuple[int, int, threading.Lock]] = []  # heap: rank, arrival, gate
        self._arrival = itertools.count()

    def __enter__(self) -> None:
        with self._lock:
            if self._free:  # a free slot means nobody waits: release() hands slots to waiters
                self._free -= 1
                return
            gate = threading.Lock()
            gate.acquire()
            heapq.heappush(self._waiting, (_RANK.get(), next(self._arrival), gate))
        gate.acquire()  # released by __exit__ of a holder: the slot is handed over

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].release()
            elif self._free < self._size:
                self._free += 1
            else:
                raise ValueError("a slot was released more often than taken")


def _submit(
    pool: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> Future[T]:
    """``pool.submit`` in a copy of the caller's context (a context cannot run in two threads)."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)


class GitHubClient:
    """Thread-safe GitHub REST client over one pooled session; also a context manager.

    ``max_concurrency`` bounds the HTTP requests in flight from this client, whatever number of
    pages or threads share it (list requests included); backoff and rate-limit sleeps hold no
    slot, and a freed slot goes to the waiting request of lowest ``request_rank``. The default,
    32, keeps the 2 runs the ``github_api`` pool allows at once (2 x 32 = 64) under GitHub's
    secondary limit of 100 concurrent requests per account.

    ``detail_mode`` chooses how ``get_details`` reads counters: ``"rest"`` (one conditional
    ``GET /user/{id}`` per user) or ``"graphql"`` (one query per 100 users at ``graphql_url``,
    by default derived from ``api_url``; needs a token on GitHub itself).
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_rate_limit_wait: float = 90.0,
        user_agent: str = "gh-assets/0.1 (+https://github.com/gh-assets)",
        detail_mode: DetailMode = "rest",
        graphql_url: str | None = None,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        parts = urlsplit(self._api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"api_url must be an http(s) URL, got {_safe_url(api_url)!r}")
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
        if detail_mode not in DETAIL_MODES:
            raise GitHubConfigError(
                f"detail_mode must be one of {', '.join(DETAIL_MODES)}, got {detail_mode!r}"
            )
        self._origin = (parts.scheme, parts.netloc)
        self._token = token or None
        self._detail_mode: DetailMode = detail_mode
        self._graphql_url = (graphql_url or graphql_endpoint(self._api_url)).rstrip("/")
        graphql_parts = urlsplit(self._graphql_url)
        if graphql_parts.scheme not in ("http", "https") or not graphql_parts.hostname:
            raise ValueError(
                f"graphql_url must be an http(s) URL, got {_safe_url(self._graphql_url)!r}"
            )
        if detail_mode == "graphql" and self._token is None and _is_github(self._graphql_url):
            raise GitHubConfigError(
                f"detail_mode='graphql' needs a token: GitHub's GraphQL API "
                f"({_safe_url(self._graphql_url)}) answers anonymous requests 401. Set "
                "GITHUB_TOKEN, or use detail_mode='rest' (GH_ASSETS_DETAIL_MODE=rest)."
            )
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._in_flight = _Slots(max_concurrency)
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
        mode = "" if self._detail_mode == "rest" else f", detail_mode={self._detail_mode!r}"
        return (
            f"GitHubClient(api_url={_safe_url(self._api_url)!r}, "
            f"authenticated={self._token is not None}, max_concurrency={self._max_concurrency}"
            f"{mode})"
        )

    @property
    def detail_mode(self) -> DetailMode:
        return self._detail_mode

    @property
    def graphql_url(self) -> str:
        return self._graphql_url

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
        """``get_user`` for each ``(id, etag)``, within the client's ``max_concurrency``.

        The first error cancels the requests not yet started and is raised.
        """
        if not requests:
            return {}
        results: dict[int, UserDetail | NotModified | Gone] = {}
        workers = min(self._max_concurrency, len(requests))
        with ThreadPoolExecutor(workers, thread_name_prefix="github") as pool:
            futures = {_submit(pool, self.get_user, uid, etag): uid for uid, etag in requests}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return results

    def get_details(
        self, listed: Sequence[ListedUser], etags: Mapping[int, str | None] | None = None
    ) -> dict[int, UserDetail | NotModified | Gone]:
        """The counters of every listed user, the way ``detail_mode`` says; ``etags`` (by id)
        make REST requests conditional.

        ``"rest"``: ``get_users``. ``"graphql"``: one query per 100 users that are listed as
        ``User`` with a ``node_id``; REST (with the ETag) for everyone else and for each node that
        comes back null, as another type, or with another id or login. Users answered by GraphQL
        have no ETag (and no 304). The first error cancels what has not started and is raised.
        """
        etags = etags or {}
        if self._detail_mode == "rest":
            return self.get_users([(user.id, etags.get(user.id)) for user in listed])
        if not listed:
            return {}
        by_graphql = [u for u in listed if u.type == "User" and u.node_id]
        by_rest = [u.id for u in listed if not (u.type == "User" and u.node_id)]
        chunks = [
            by_graphql[i : i + GRAPHQL_BATCH] for i in range(0, len(by_graphql), GRAPHQL_BATCH)
        ]
        results: dict[int, UserDetail | NotModified | Gone] = {}
        workers = min(self._max_concurrency, len(chunks) + len(by_rest))
        with ThreadPoolExecutor(workers, thread_name_prefix="github") as pool:
            pending: dict[Future[Any], int | None] = {
                _submit(pool, self.get_user, uid, etags.get(uid)): uid for uid in by_rest
            }
            pending |= {_submit(pool, self._graphql_counts, chunk): None for chunk in chunks}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        uid = pending.pop(future)
                        if uid is not None:
                            results[uid] = future.result()
                            continue
                        answered, fallback = future.result()
                        results |= answered
                        for other in fallback:
                            pending[_submit(pool, self.get_user, other, etags.get(other))] = other
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return results

    def _graphql_counts(
        self, users: Sequence[ListedUser]
    ) -> tuple[dict[int, UserDetail], list[int]]:
        """One ``nodes(ids:)`` query: (details of the users it answered, ids to ask REST for)."""
        if len(users) > GRAPHQL_BATCH:
            raise ValueError(f"at most {GRAPHQL_BATCH} users per GraphQL query, got {len(users)}")
        safe = _safe_url(self._graphql_url)
        payload = {"query": USER_COUNTS_QUERY, "variables": {"ids": [u.node_id for u in users]}}
        _, data = self._post_json(self._graphql_url, payload)
        try:
            nodes, errors, cost = _graphql_nodes(data, len(users))
        except _Shape as exc:
            raise MalformedResponseError(str(exc), url=safe, status=200, method="POST") from None
        if cost is not None:
            self.stats._graphql_cost(cost)
        if errors:
            text = f"GraphQL errors: {self._scrub(_graphql_errors(errors))}"
            if any(_refused(e) for e in errors):  # retrying the same query cannot help
                raise MalformedResponseError(text, url=safe, status=200, method="POST")
            raise GitHubHTTPError(text, url=safe, status=200, method="POST")
        answered: dict[int, UserDetail] = {}
        fallback: list[int] = []
        for user, node in zip(users, nodes, strict=True):
            try:
                detail = _graphql_user(node)
            except _Shape as exc:
                detail_error = f"node of user {user.id}: {exc}"
                raise MalformedResponseError(
                    detail_error, url=safe, status=200, method="POST"
                ) from None
            if detail is None or (detail.id, detail.login) != (user.id, user.login):
                log.debug("user %d: GraphQL answered %r; asking REST", user.id, detail)
                fallback.append(user.id)
            else:
                answered[user.id] = detail
        return answered, fallback

    def _get(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[requests.Response, Any]:
        """GET with retries and rate-limit waits.

        Returns the final 200, 304 or 404 response and the parsed JSON of a 200; raises otherwise.
        """
        return self._request("GET", url, headers, passed=(304, 404))

    def _post_json(self, url: str, payload: Any) -> tuple[requests.Response, Any]:
        """A GraphQL POST with the retries and rate-limit waits of ``_get``; a 200 whose errors
        say ``RATE_LIMITED`` is GraphQL's primary limit. Returns the 200 and its parsed JSON."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return self._request("POST", url, headers, body=body, limited=_graphql_rate_limit)

    def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
        passed: tuple[int, ...] = (),
        limited: Callable[[requests.Response, Any], tuple[float, datetime, bool] | None]
        | None = None,
    ) -> tuple[requests.Response, Any]:
        """One request with retries and rate-limit waits.

        Returns a 200 with its parsed JSON, or a ``passed`` status with None; raises otherwise.
        ``limited`` recognises a rate limit inside a 200 (GraphQL's), as ``_rate_limit`` does
        for 403/429.
        """
        safe = _safe_url(url)
        attempt = rate_limit_waits = 0
        secondary_wait = SECONDARY_MIN_WAIT
        while True:
            status: int | None = None
            try:
                resp, content = self._send(url, headers, safe, method=method, body=body)
            except _TRANSIENT as exc:
                problem = self._scrub(f"{type(exc).__name__}: {exc}")
            except requests.RequestException as exc:  # e.g. an invalid URL: retrying cannot help
                detail = self._scrub(f"{type(exc).__name__}: {exc}")
                raise GitHubHTTPError(detail, url=safe, status=None, method=method) from exc
            else:
                status = resp.status_code
                limit: tuple[float, datetime, bool] | None = None
                if status in (403, 429):
                    limit = _rate_limit(resp, content, secondary_wait)
                    if limit is None:
                        message = self._message(resp, content)
                        raise GitHubHTTPError(message, url=safe, status=status, method=method)
                elif status in passed:
                    return resp, None
                elif status == 200:
                    try:
                        data = json.loads(content)
                    except ValueError:
                        problem = "200 answer whose body is not JSON"
                    else:
                        limit = limited(resp, data) if limited else None
                        if limit is None:
                            return resp, data
                elif status >= 500:
                    problem = f"server error {status} {resp.reason}"
                else:
                    message = self._message(resp, content)
                    raise GitHubHTTPError(message, url=safe, status=status, method=method)
                if limit is not None:
                    wait_for, reset_at, secondary = limit
                    if (
                        wait_for > self._max_rate_limit_wait
                        or rate_limit_waits >= MAX_RATE_LIMIT_WAITS
                    ):
                        raise RateLimitError(
                            url=safe,
                            status=status,
                            reset_at=reset_at,
                            secondary=secondary,
                            method=method,
                        )
                    if secondary and "Retry-After" not in resp.headers:
                        secondary_wait *= 2
                    rate_limit_waits += 1
                    log.warning(
                        "%s %s -> %d: %s rate limit; waiting %.0f s",
                        method,
                        safe,
                        status,
                        "secondary" if secondary else "primary",
                        wait_for,
                    )
                    self.stats._add(retries=1)
                    self._sleep(wait_for)
                    continue
            if attempt >= self._max_retries:
                raise GitHubHTTPError(
                    f"giving up after {attempt + 1} attempts: {problem}",
                    url=safe,
                    status=status,
                    method=method,
                )
            delay = random.uniform(0, min(self._backoff_max, self._backoff_base * 2**attempt))
            attempt += 1
            log.info(
                "%s %s: %s; retry %d/%d in %.2f s",
                method,
                safe,
                problem,
                attempt,
                self._max_retries,
                delay,
            )
            self.stats._add(retries=1)
            self._sleep(delay)

    def _send(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        safe: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
    ) -> tuple[requests.Response, bytes]:
        """One HTTP exchange within the client's in-flight bound; counted in ``stats`` and in
        the caller's ``request_tally``. Reads at most MAX_BODY_BYTES (decoded): no OOM."""
        with self._in_flight:
            self.stats._add(sent=1)
            tally = _TALLY.get()
            if tally is not None:
                tally._add()
            with self._session.request(
                method, url, headers=headers, data=body, timeout=self._timeout, stream=True
            ) as resp:
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
                            method=method,
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


def _graphql_rate_limit(resp: requests.Response, data: Any) -> tuple[float, datetime, bool] | None:
    """GraphQL's primary limit: HTTP 200 with an error of type RATE_LIMITED. Wait until
    ``rateLimit.resetAt`` if the answer has it, else ``X-RateLimit-Reset``, else a whole window."""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not any(
        isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors
    ):
        return None
    now = time.time()
    reset: float | None = None
    payload = data.get("data")
    rate = payload.get("rateLimit") if isinstance(payload, dict) else None
    if isinstance(rate, dict) and isinstance(rate.get("resetAt"), str):
        try:
            reset = datetime.fromisoformat(rate["resetAt"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            reset = None
    if reset is None:
        reset = _int_header(resp.headers, "X-RateLimit-Reset")
    if reset is None:
        return PRIMARY_WINDOW, _utc(now + PRIMARY_WINDOW), False
    return max(reset - now, 0.0) + 1.0, _utc(reset), False


def graphql_endpoint(api_url: str) -> str:
    """GitHub's GraphQL URL for a REST base URL: ``https://api.github.com/graphql``;
    ``https://HOST/api/graphql`` for GitHub Enterprise ``https://HOST/api/v3``; otherwise
    ``{api_url}/graphql`` (the stand-in)."""
    api_url = api_url.rstrip("/")
    parts = urlsplit(api_url)
    if (parts.hostname or "").lower() == "api.github.com":
        return urlunsplit((parts.scheme, parts.netloc, "/graphql", "", ""))
    if parts.path.lower().endswith("/api/v3"):
        path = parts.path[: -len("/v3")] + "/graphql"
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return f"{api_url}/graphql"


def _is_github(graphql_url: str) -> bool:
    """GitHub's own GraphQL endpoints (github.com, Enterprise), which refuse anonymous calls."""
    parts = urlsplit(graphql_url)
    return (parts.hostname or "").lower() == "api.github.com" or parts.path.lower().endswith(
        "/api/graphql"
    )


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


def _graphql_nodes(data: Any, expected: int) -> tuple[list[Any], list[dict[str, Any]], int | None]:
    """(``data.nodes``, the errors that are not about a null node, ``rateLimit.cost``).

    An error whose path is a node that came back null (NOT_FOUND for a deleted account, as
    GitHub answers) is that node's answer; any other error is returned, to be raised.
    """
    if not isinstance(data, dict):
        raise _Shape(f"expected a GraphQL response object, got {reprlib.repr(data)}")
    errors = data.get("errors")
    if errors is not None and (
        not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors)
    ):
        raise _Shape(f"errors must be a list of objects, got {reprlib.repr(errors)}")
    payload = data.get("data")
    if payload is None:
        if errors:
            return [], errors, None
        raise _Shape("a GraphQL response with neither data nor errors")
    if not isinstance(payload, dict):
        raise _Shape(f"data must be an object, got {reprlib.repr(payload)}")
    nodes = payload.get("nodes")
    if not isinstance(nodes, list) or len(nodes) != expected:
        raise _Shape(f"data.nodes must be a list of {expected} entries, got {reprlib.repr(nodes)}")
    other = [e for e in errors or () if not _about_null_node(e, nodes)]
    cost = None
    rate = payload.get("rateLimit")
    if rate is not None:
        if not isinstance(rate, dict):
            raise _Shape(f"rateLimit must be an object, got {reprlib.repr(rate)}")
        cost = _integer(rate, "cost", 0, MAX_COUNTER)
        _integer(rate, "remaining", 0, MAX_COUNTER)
        _string(rate, "resetAt")
    return nodes, other, cost


def _about_null_node(error: dict[str, Any], nodes: list[Any]) -> bool:
    path = error.get("path")
    if not isinstance(path, list) or len(path) < 2 or path[0] != "nodes":
        return False
    index = path[1]
    return type(index) is int and 0 <= index < len(nodes) and nodes[index] is None


def _refused(error: dict[str, Any]) -> bool:
    """A GraphQL error that the same query would get again: a validation error (GitHub gives
    those an ``extensions.code``) or a type that names a permanent refusal. Others, such as
    GitHub's untyped "Something went wrong while executing your query" timeouts, may pass."""
    extensions = error.get("extensions")
    return (isinstance(extensions, dict) and "code" in extensions) or error.get("type") in (
        "ARGUMENT_LIMIT",
        "FORBIDDEN",
        "INSUFFICIENT_SCOPES",
        "MAX_NODE_LIMIT_EXCEEDED",
        "UNPROCESSABLE",
    )


def _graphql_errors(errors: list[dict[str, Any]]) -> str:
    """``message (TYPE at path)`` of each error, bounded."""
    texts = []
    for error in errors[:5]:
        message = str(error.get("message", "no message"))[:200]
        where = [str(error[k]) for k in ("type",) if error.get(k)]
        if isinstance(error.get("path"), list):
            where.append("at " + ".".join(map(str, error["path"])))
        texts.append(f"{message} ({' '.join(where)})" if where else message)
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(texts) + more


def _graphql_user(node: Any) -> UserDetail | None:
    """A ``User`` node's counters; None for a null node or any other type (REST answers those)."""
    if node is None:
        return None
    if not isinstance(node, dict):
        raise _Shape(f"expected a node object or null, got {reprlib.repr(node)}")
    kind = _string(node, "__typename")
    if kind != "User":
        return None
    return UserDetail(
        id=_integer(node, "databaseId", 1, 2**63),
        login=_string(node, "login"),
        type="User",
        public_repos=_total(node, "repositories"),
        public_gists=_total(node, "gists"),
        followers=_total(node, "followers"),
        following=_total(node, "following"),
    )


def _total(node: dict[str, Any], connection: str) -> int:
    value = node.get(connection)
    if not isinstance(value, dict):
        raise _Shape(f"{connection} must be a connection object, got {reprlib.repr(value)}")
    try:
        return _integer(value, "totalCount", 0, MAX_COUNTER)
    except _Shape as exc:
        raise _Shape(f"{connection}.{exc}") from None


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
