"""HTTP exchanges with the API: retries with backoff, rate-limit waits, bounded bodies, and no
credential in any URL or message the client shows."""

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter

from gh_assets.github.budget_use import report_limit, take_budget
from gh_assets.github.concurrency import _Slots
from gh_assets.github.credentials import ANONYMOUS, Credential, digest
from gh_assets.github.errors import (
    GitHubHTTPError,
    GitHubUnreachableError,
    MalformedResponseError,
    RateLimitError,
    answer_message,
    connection_reason,
    scrub,
)
from gh_assets.github.governor import Governor
from gh_assets.github.ratelimit import (
    SECONDARY_MIN_WAIT,
    RateLimitWait,
    _graphql_rate_limit,
    _rate_limit,
)
from gh_assets.github.session import API_VERSION, TRANSIENT, SameOriginSession, read_bounded
from gh_assets.github.stats import _TALLY, RequestStats
from gh_assets.github.urls import origin_of, safe_url

__all__ = ["Transport", "safe_url"]

log = logging.getLogger(__name__)

MAX_RATE_LIMIT_WAITS = 3  # rate-limit sleeps per request before giving up with RateLimitError


class Transport:
    """One pooled session to one API origin; the base of ``GitHubClient``, which checks the
    settings first. Thread-safe; also a context manager that closes the session."""

    def __init__(
        self,
        origin: tuple[str, str, int | None],
        token: str | None,
        *,
        basic_auth: tuple[str, str] | None = None,
        timeout: float,
        max_concurrency: int,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        max_rate_limit_wait: float,
        user_agent: str,
        credentials: list[Credential] | None = None,
        governor: Governor | None = None,
    ) -> None:
        self._origin = origin  # origin_of(api_url)
        self._token = token
        self._secrets = [secret for secret in (token, *(basic_auth or ())) if secret]
        # Who may send: without a governor only the first credential is used (no shared budget
        # to choose by); ``GitHubClient`` resolves several tokens' accounts before the first use.
        if credentials is None:
            credentials = [_single_credential(token, basic_auth)]
        self._credentials = credentials
        self._governor = governor
        self._timeout = timeout
        self._in_flight = _Slots(max_concurrency)
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_rate_limit_wait = max_rate_limit_wait
        self._sleep: Callable[[float], None] = time.sleep  # tests record waits instead
        self.stats = RequestStats()
        self._session = SameOriginSession()
        self._session.auth = basic_auth  # from the API URL; never sent to another origin
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

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(
        self, url: str, headers: Mapping[str, str] | None = None, *, etag_auth: str | None = None
    ) -> tuple[requests.Response, Any]:
        """The final 200 (with its parsed JSON), 304 or 404 response; raises otherwise."""
        resp, data, _ = self._get_as(url, headers, etag_auth=etag_auth)
        return resp, data

    def _get_as(
        self, url: str, headers: Mapping[str, str] | None = None, *, etag_auth: str | None = None
    ) -> tuple[requests.Response, Any, Credential]:
        """``_get``, and the credential that got the answer. ``etag_auth`` names the credential
        an ``If-None-Match`` ETag came from: it is sent only with that one (ETags are specific
        to a token)."""
        return self._request_as("GET", url, headers, passed=(304, 404), etag_auth=etag_auth)

    def _post_json(self, url: str, payload: Any, cost: int = 1) -> tuple[requests.Response, Any]:
        """A GraphQL POST (``cost``: its estimated points): the 200 and its parsed JSON, after
        GraphQL's rate-limit waits."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return self._request(
            "POST", url, headers, body=body, limited=_graphql_rate_limit, cost=cost
        )

    def _request(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, **options: Any
    ) -> tuple[requests.Response, Any]:
        resp, data, _ = self._request_as(method, url, headers, **options)
        return resp, data

    def _request_as(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
        passed: tuple[int, ...] = (),
        limited: Callable[[requests.Response, Any], RateLimitWait | None] | None = None,
        cost: int = 1,
        etag_auth: str | None = None,
        credential: Credential | None = None,
    ) -> tuple[requests.Response, Any, Credential]:
        """One request with retries and rate-limit waits, and the credential it was sent as.

        Returns a 200 or 201 with its parsed JSON, or a ``passed`` status with None; raises
        otherwise.
        ``limited`` recognises a rate limit inside a 200 (GraphQL's), as ``_rate_limit`` does
        for 403/429. With a governor every attempt waits for shared budget and a rate-limit
        answer is reported to it (every process then holds back); ``credential`` sends as that
        one credential, its own identity in the governor (finding a token's account).
        """
        safe = safe_url(url)
        attempt = rate_limit_waits = 0
        secondary_wait = SECONDARY_MIN_WAIT
        while True:
            status: int | None = None
            reason: str | None = None  # set when no connection could be made
            try:
                resp, content, sent_as, slot = self._send(
                    url,
                    headers,
                    safe,
                    method=method,
                    body=body,
                    cost=cost,
                    etag_auth=etag_auth,
                    credential=credential,
                )
            except TRANSIENT as exc:
                if isinstance(exc, requests.ConnectionError):
                    reason = connection_reason(exc)
                problem = self._scrub(f"{type(exc).__name__}: {reason or exc}")
            except requests.RequestException as exc:  # e.g. an invalid URL: retrying cannot help
                detail = self._scrub(f"{type(exc).__name__}: {exc}")
                raise GitHubHTTPError(detail, url=safe, status=None, method=method) from exc
            else:
                status = resp.status_code
                limit: RateLimitWait | None = None
                if status in (403, 429):
                    limit = _rate_limit(resp, content, secondary_wait)
                    if limit is None:
                        message = self._message(resp, content)
                        raise GitHubHTTPError(message, url=safe, status=status, method=method)
                elif status in passed:
                    return resp, None, sent_as
                elif status in (200, 201):
                    try:
                        data = json.loads(content)
                    except ValueError:
                        problem = f"{status} answer whose body is not JSON"
                    else:
                        limit = limited(resp, data) if limited else None
                        if limit is None:
                            return resp, data, sent_as
                elif status >= 500:
                    problem = f"server error {status} {resp.reason}"
                else:
                    message = self._message(resp, content)
                    if (
                        status == 401
                        and credential is None
                        and self._drop_refused(sent_as, message)
                    ):
                        continue  # that token is dropped: another credential sends it again
                    raise GitHubHTTPError(message, url=safe, status=status, method=method)
                if limit is not None and self._governor is not None:
                    if rate_limit_waits >= MAX_RATE_LIMIT_WAITS:
                        raise RateLimitError.of(limit, url=safe, status=status, method=method)
                    rate_limit_waits += 1
                    report_limit(
                        self._governor,
                        resp,
                        limit,
                        sent_as,
                        slot,
                        method=method,
                        safe=safe,
                        stats=self.stats,
                    )
                    continue
                if limit is not None:
                    wait_for, _, secondary = limit
                    if (
                        wait_for > self._max_rate_limit_wait
                        or rate_limit_waits >= MAX_RATE_LIMIT_WAITS
                    ):
                        raise RateLimitError.of(limit, url=safe, status=status, method=method)
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
                detail = f"giving up after {attempt + 1} attempts: {problem}"
                if reason is not None:
                    raise GitHubUnreachableError(detail, url=safe, reason=reason, method=method)
                raise GitHubHTTPError(detail, url=safe, status=status, method=method)
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
        cost: int = 1,
        etag_auth: str | None = None,
        credential: Credential | None = None,
    ) -> tuple[requests.Response, bytes, Credential, float | None]:
        """One HTTP exchange within the client's in-flight bound and, with a governor, a lease on
        shared budget; counted in ``stats`` and in the caller's ``request_tally``. Reads at most
        MAX_BODY_BYTES (decoded): no OOM. Returns the answer, the credential it was sent as and
        the governor's slot for it (None without a governor)."""
        if credential is None:
            self._ready_credentials()  # before taking a slot: finding accounts takes one too
        with self._in_flight:
            grant, credential = take_budget(
                self._governor,
                [credential] if credential else self._ready_credentials(),
                method=method,
                safe=safe,
                cost=cost,
                etag_auth=etag_auth,
                max_wait=self._max_rate_limit_wait,
                stats=self.stats,
            )
            headers = dict(headers or {})
            if etag_auth is not None and credential.digest != etag_auth:
                headers.pop("If-None-Match", None)  # another token's ETag could never match
            if credential.bearer is not None:
                token = credential.bearer()
                if token not in self._secrets:
                    self._secrets.append(token)  # an App's minted token: scrubbed too
                headers["Authorization"] = f"Bearer {token}"
            self.stats._add(sent=1)
            tally = _TALLY.get()
            if tally is not None:
                tally._add()
            answered: requests.Response | None = None
            try:
                with self._session.request(
                    method, url, headers=headers, data=body, timeout=self._timeout, stream=True
                ) as resp:
                    answered = resp
                    self.stats._observe(resp.headers)
                    content = read_bounded(resp, safe, method)
            finally:
                if grant is not None and self._governor is not None:
                    self._governor.release(
                        grant,
                        None if answered is None else answered.headers,
                        charged=answered is None or answered.status_code != 304,
                    )
        return resp, content, credential, None if grant is None else grant.slot

    def _ready_credentials(self) -> list[Credential]:
        """The credentials to send with (``GitHubClient`` finds their accounts first)."""
        return self._credentials

    def _drop_refused(self, credential: Credential, detail: str) -> bool:
        """GitHub answered 401 (``detail``) to ``credential``: whether another one sends instead."""
        return False

    def _same_origin(self, url: str, safe_from: str) -> str:
        """The next-page URL, refused if it points elsewhere: the token must not leave the API."""
        if origin_of(url) != self._origin:
            raise MalformedResponseError(
                f"Link rel=next leaves the API: {safe_url(url)}", url=safe_from, status=200
            )
        return url

    def _message(self, resp: requests.Response, body: bytes) -> str:
        """GitHub's own error message (bounded, secrets removed), for the exception text."""
        return answer_message(resp.reason, body, self._secrets)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)


def _single_credential(token: str | None, basic_auth: tuple[str, str] | None) -> Credential:
    """The one credential of a client built without a list: a token, the API URL's user and
    password (sent by the session), or none. Its digest is what stored ETags were named by."""
    if token:
        return Credential(digest(token), f"token:{digest(token)}", lambda: token)
    if basic_auth:
        name = digest(":".join(basic_auth))
        return Credential(name, f"basic:{name}")
    return Credential(ANONYMOUS, ANONYMOUS)
