"""``GitHubClient``: the users crawl's calls, over REST and, for counters, optionally GraphQL."""

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

import requests

from gh_assets.github.app_auth import GitHubApp
from gh_assets.github.concurrency import DEFAULT_MAX_CONCURRENCY, _submit, _worker_pool
from gh_assets.github.credentials import Credential, split_tokens, token_credential
from gh_assets.github.errors import (
    GitHubConfigError,
    GitHubError,
    GitHubHTTPError,
    MalformedResponseError,
)
from gh_assets.github.governor import Governor
from gh_assets.github.graphql import (
    GRAPHQL_BATCH,
    USER_COUNTS_QUERY,
    _graphql_errors,
    _graphql_nodes,
    _graphql_user,
    _is_github,
    _refused,
    graphql_endpoint,
)
from gh_assets.github.identities import Identities
from gh_assets.github.models import GONE, NOT_MODIFIED, Answer, ListedUser, UserDetail
from gh_assets.github.urls import origin_of, safe_url, url_credentials
from gh_assets.github.validation import _etag, _listed_user, _parse, _Shape, _user_detail

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
PAGE_SIZE = 100

DetailMode = Literal["rest", "graphql"]
# What an unset setting means (gh_assets.settings and its resources take them from here).
DEFAULT_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_MAX_RATE_LIMIT_WAIT = 30.0, 5, 90
DEFAULT_DETAIL_MODE: DetailMode = "rest"
CREDENTIALS_CONFLICT = (
    "GITHUB_API_URL={url!r} carries a user and password and GITHUB_TOKEN is set too: which "
    "credential would be sent is ambiguous; keep only one of them"
)
DETAIL_MODES: tuple[str, ...] = get_args(DetailMode)
# A stored ETag: the tag alone (sent with any credential) or (tag, digest of the credential
# that got it), or None.
StoredETag = str | tuple[str, str | None] | None


class GitHubClient(Identities):
    """Thread-safe GitHub client over one pooled session; also a context manager.

    ``max_concurrency`` bounds the HTTP requests in flight from this client, whatever number of
    pages or threads share it (list requests included); backoff and rate-limit sleeps hold no
    slot. ``detail_mode`` chooses how ``get_details`` reads counters; GraphQL goes to
    ``graphql_url``, by default derived from ``api_url``, and needs a token on GitHub itself.

    ``token`` may hold several tokens, comma-separated, and ``app`` adds a GitHub App's
    installations; with a ``governor`` each request waits for the shared budget of one of their
    identities (accounts and installations, found before the first request), and without one
    only the first credential is used.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        user_agent: str = "gh-assets/0.1 (+https://github.com/gh-assets)",
        detail_mode: DetailMode = DEFAULT_DETAIL_MODE,
        graphql_url: str | None = None,
        governor: Governor | None = None,
        app: GitHubApp | None = None,
        installation_ids: Sequence[int] = (),
    ) -> None:
        parts = urlsplit(api_url.rstrip("/"))
        if not _is_http_url(api_url):
            raise GitHubConfigError(
                f"GITHUB_API_URL={safe_url(api_url)!r}: expected an http:// or https:// URL"
            )
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
        if detail_mode not in DETAIL_MODES:
            raise GitHubConfigError(
                f"GH_ASSETS_DETAIL_MODE: detail_mode must be one of {', '.join(DETAIL_MODES)}, "
                f"got {detail_mode!r}"
            )
        tokens = split_tokens(token)
        token = tokens[0] if tokens else None
        basic_auth = url_credentials(api_url)
        if basic_auth and token:
            raise GitHubConfigError(CREDENTIALS_CONFLICT.format(url=safe_url(api_url)))
        self._app, self._installation_ids = app, list(installation_ids)
        self._unresolved = [token_credential(t) for t in tokens]
        self._resolved: list[Credential] | None = None
        self._resolving = threading.Lock()
        # Credentials leave the URL for the session, so every request to the API carries them,
        # next-page links included, and no URL the client shows or logs can hold them.
        self._api_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._detail_mode: DetailMode = detail_mode
        self._graphql_url = (graphql_url or graphql_endpoint(self._api_url)).rstrip("/")
        if not _is_http_url(self._graphql_url):
            raise GitHubConfigError(
                f"graphql_url must be an http(s) URL, got {safe_url(self._graphql_url)!r}"
            )
        anonymous = token is None and basic_auth is None and app is None
        if detail_mode == "graphql" and anonymous and _is_github(self._graphql_url):
            raise GitHubConfigError(
                f"detail_mode='graphql' needs a token: GitHub's GraphQL API "
                f"({safe_url(self._graphql_url)}) answers anonymous requests 401. Set "
                "GITHUB_TOKEN, or use detail_mode='rest' (GH_ASSETS_DETAIL_MODE=rest)."
            )
        self._max_concurrency = max_concurrency
        super().__init__(
            origin_of(self._api_url),
            token,
            basic_auth=basic_auth,
            timeout=timeout,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_rate_limit_wait=max_rate_limit_wait,
            user_agent=user_agent,
            credentials=None if app is None else [],
            governor=governor,
        )
        self._secrets += tokens[1:]

    def __repr__(self) -> str:
        mode = "" if self._detail_mode == "rest" else f", detail_mode={self._detail_mode!r}"
        return (
            f"GitHubClient(api_url={safe_url(self._api_url)!r}, "
            f"authenticated={bool(self._session.auth or self._unresolved or self._app)}, "
            f"max_concurrency={self._max_concurrency}"
            f"{mode})"
        )

    @property
    def detail_mode(self) -> DetailMode:
        return self._detail_mode

    @property
    def graphql_url(self) -> str:
        return self._graphql_url

    def list_users(self, first_id: int, last_id: int) -> list[ListedUser]:
        """Every user with ``first_id <= id <= last_id``, following ``Link: rel="next"``."""
        if last_id < first_id:
            return []
        users: list[ListedUser] = []
        previous = first_id - 1
        url = f"{self._api_url}/users?since={previous}&per_page={PAGE_SIZE}"
        while True:
            safe = safe_url(url)
            resp, data = self._users_page(url, safe)
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
        safe = safe_url(url)
        _, data = self._users_page(url, safe)
        return [_parse(_listed_user, item, safe) for item in data]

    def _users_page(self, url: str, safe: str) -> tuple[requests.Response, list[Any]]:
        """One ``GET /users`` answer and its JSON array; another status (a 404 the transport
        passes through) or shape raises, naming it."""
        resp, data = self._get(url)
        if resp.status_code != 200:
            raise GitHubHTTPError(
                "unexpected status for a users page", url=safe, status=resp.status_code
            )
        if not isinstance(data, list):
            raise MalformedResponseError(
                f"expected a JSON array of users, got {type(data).__name__}", url=safe, status=200
            )
        return resp, data

    def check_access(self) -> None:
        """One cheap request that proves the API answers and takes the credential: ``GET
        /rate_limit``, free on GitHub; a server without rate limits (GitHub Enterprise) answers
        404, which is fine. Raises as any request does (401 for a refused token). With a
        governor it goes as the first credential, named by its account when that is known (no
        lookup), within that identity's budget: while GitHub blocks it, RateLimitError and
        nothing is sent; a block GitHub answers is recorded for every process."""
        first = self._named(self._credentials[0]) if self._governor and self._credentials else None
        self._request("GET", f"{self._api_url}/rate_limit", passed=(404,), credential=first)

    def get_user(
        self, user_id: int, etag: str | None = None, etag_auth: str | None = None
    ) -> UserDetail | Answer:
        """One user's counters; with ``etag``, ``NOT_MODIFIED`` when unchanged (free of quota).
        ``etag_auth`` names the credential that got ``etag``: the ETag is sent only with it."""
        url = f"{self._api_url}/user/{user_id}"
        safe = safe_url(url)
        headers = {"If-None-Match": f'W/"{etag}"'} if etag else None
        resp, data, sent_as = self._get_as(url, headers, etag_auth=etag_auth if etag else None)
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
        etag = _etag(resp.headers.get("ETag"))
        return replace(user, etag=etag, etag_auth=sent_as.digest if etag else None)

    def get_users(
        self, requests: Sequence[tuple[int, str | None] | tuple[int, str | None, str | None]]
    ) -> dict[int, UserDetail | Answer]:
        """``get_user`` for each ``(id, etag)`` or ``(id, etag, etag_auth)``, within the client's
        ``max_concurrency``.

        The first error cancels the requests not yet started and is raised.
        """
        if not requests:
            return {}
        results: dict[int, UserDetail | Answer] = {}
        with (
            _keep_answers(results),
            _worker_pool(min(self._max_concurrency, len(requests))) as pool,
        ):
            futures = {_submit(pool, self.get_user, *request): request[0] for request in requests}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
        return results

    def get_details(
        self, listed: Sequence[ListedUser], etags: Mapping[int, StoredETag] | None = None
    ) -> dict[int, UserDetail | Answer]:
        """The counters of every listed user, the way ``detail_mode`` says; ``etags`` (by id)
        make REST requests conditional.

        ``"rest"``: ``get_users``. ``"graphql"``: one query per 100 users that are listed as
        ``User`` with a ``node_id``; REST (with the ETag) for everyone else and for each node that
        comes back null, as another type, or with another id or login. Users answered by GraphQL
        have no ETag (and no 304). The first error cancels what has not started and is raised.
        """
        etags = etags or {}
        if self._detail_mode == "rest":
            return self.get_users([(user.id, *_etag_args(etags.get(user.id))) for user in listed])
        if not listed:
            return {}
        by_graphql = [u for u in listed if u.type == "User" and u.node_id]
        by_rest = [u.id for u in listed if not (u.type == "User" and u.node_id)]
        chunks = [
            by_graphql[i : i + GRAPHQL_BATCH] for i in range(0, len(by_graphql), GRAPHQL_BATCH)
        ]
        results: dict[int, UserDetail | Answer] = {}
        workers = min(self._max_concurrency, len(chunks) + len(by_rest))
        with _keep_answers(results), _worker_pool(workers) as pool:
            pending: dict[Future[Any], int | None] = {
                _submit(pool, self.get_user, uid, *_etag_args(etags.get(uid))): uid
                for uid in by_rest
            }
            pending |= {_submit(pool, self._graphql_counts, chunk): None for chunk in chunks}
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
                        again = _submit(pool, self.get_user, other, *_etag_args(etags.get(other)))
                        pending[again] = other
        return results

    def _graphql_counts(
        self, users: Sequence[ListedUser]
    ) -> tuple[dict[int, UserDetail], list[int]]:
        """One ``nodes(ids:)`` query: (details of the users it answered, ids to ask REST for)."""
        if len(users) > GRAPHQL_BATCH:
            raise ValueError(f"at most {GRAPHQL_BATCH} users per GraphQL query, got {len(users)}")
        safe = safe_url(self._graphql_url)
        payload = {"query": USER_COUNTS_QUERY, "variables": {"ids": [u.node_id for u in users]}}
        # GitHub's price: the connections asked for over 100, at least 1 (4 per 100 users).
        estimate = max(1, round(4 * len(users) / 100))
        _, data = self._post_json(self._graphql_url, payload, cost=estimate)
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


@contextmanager
def _keep_answers(results: dict[int, UserDetail | Answer]) -> Iterator[None]:
    """An error out of a batch carries the answers that came in before it (``partial``)."""
    try:
        yield
    except GitHubError as error:
        error.partial = dict(results)
        raise


def _etag_args(stored: StoredETag) -> tuple[str | None, str | None]:
    if isinstance(stored, tuple):
        return stored
    return stored, None


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
