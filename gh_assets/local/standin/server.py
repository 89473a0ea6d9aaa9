"""A local HTTP stand-in for GitHub's REST users API, with faults and rate limits to steer.

It answers ``GET /users``, ``GET /users/{login}``, ``GET /user/{id}``, ``GET /user`` and
``GET /rate_limit`` the way api.github.com does (bodies, ``Link`` paging, weak per-credential
ETags, free 304s, primary rate limit, the User-Agent rule), and ``POST /graphql`` with a subset of
GitHub's GraphQL schema (``graphql_api``) charged against a separate point budget, so the crawler
can be demoed, tested and benchmarked offline.

Budgets are kept per account, as GitHub keeps them (``accounts``): the tokens registered to one
login share one; an unregistered token is an account of its own; anonymous callers are their IP;
each GitHub App installation (``app_auth``: JWT, installation tokens that expire) has its own.
GitHub's secondary limits (``secondary_limits``: requests in flight, REST and GraphQL points per
rolling minute, blocks that grow while a refused account keeps sending) are enforced per account
once configured, and off by default; what each account sent is recorded (``account_record``).
``/_standin/...`` admin endpoints let a test in another process inject faults, change the limits,
register tokens and Apps and read counters; the same operations are methods of ``StandinServer``.

This module is the server object and the order in which an API request is checked: identified,
let through the secondary limits (or refused, uncharged), delayed, failed, charged to its primary
budget and answered; what the answers contain, the budgets, the faults, the accounts, the admin
endpoints and the HTTP plumbing each live in a module of their own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from gh_assets.local.standin import rest_api
from gh_assets.local.standin.accounts import AccountRegistry, Identity, bad_credentials
from gh_assets.local.standin.admin_endpoints import answer_admin
from gh_assets.local.standin.app_auth import GitHubApps
from gh_assets.local.standin.data import Dataset
from gh_assets.local.standin.faults import Faults, edge_error
from gh_assets.local.standin.graphql_api import GraphQLApi, RateLimitState
from gh_assets.local.standin.graphql_cost import Prepared
from gh_assets.local.standin.http_server import (
    KeepAliveHTTPServer,
    Reply,
    Request,
    json_body,
    json_reply,
)
from gh_assets.local.standin.rate_limit import (
    Budget,
    RateLimiter,
    api_headers,
    rate_limit_body,
    rate_limited,
)
from gh_assets.local.standin.secondary_limits import (
    Admission,
    SecondaryLimits,
    secondary_refusal,
)

GRAPHQL_PATH = "/graphql"
USER_AGENT_DOCS = (
    "https://docs.github.com/rest/overview/resources-in-the-rest-api#user-agent-required"
)
KEEP: Any = object()  # set_secondary_limits: leave this setting as it is


class StandinServer:
    """The stand-in on a background thread; ``start()``/``stop()`` or use it as a context manager.

    Faults, rate limits, tokens and Apps can be changed while it runs, from this process
    (methods) or any other (admin endpoints); both share one implementation and are
    thread-safe.
    """

    def __init__(
        self,
        dataset: Dataset | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        error_rate: float = 0.0,
        fail_ids: Iterable[Iterable[int]] = (),
        rate_limit: int = 5000,
        rate_window: float = 3600,
        graphql_limit: int = 5000,
        seed: int = 0,
        verbose: bool = False,
        tokens: Mapping[str, str] | None = None,
        minute: float = 60.0,
        secondary_in_flight: int | None = None,
        rest_points_per_minute: int | None = None,
        graphql_points_per_minute: int | None = None,
        secondary_retry_after: bool = True,
        secondary_status: int = 403,
        secondary_block: float | None = None,
        apps: Mapping[int, str | bytes] | None = None,
        installations: Mapping[int, int] | None = None,
        installation_token_ttl: float = 3600.0,
        installation_limit: int | None = None,
    ) -> None:
        """``tokens``: token -> login (tokens of one login share its budgets); the secondary
        limits are off while ``None`` (GitHub: 100 in flight, 900 REST and 2,000 GraphQL points
        a minute); ``apps``: App id -> public key PEM, ``installations``: installation id ->
        App id; ``installation_limit``: an installation's primary budget (default
        ``rate_limit``; GitHub: 5,000 to 12,500 an hour)."""
        self.dataset = dataset if dataset is not None else Dataset(seed=seed)
        self.host, self.port, self.verbose = host, port, verbose
        self.rate_limiter = RateLimiter(rate_limit, rate_window)
        self.graphql_limiter = RateLimiter(graphql_limit, rate_window, "graphql")  # points
        self.installation_limit = _limit("installation_limit", installation_limit)
        self.accounts = AccountRegistry(tokens)
        self.secondary = SecondaryLimits(
            minute=minute,
            secondary_in_flight=secondary_in_flight,
            rest_points_per_minute=rest_points_per_minute,
            graphql_points_per_minute=graphql_points_per_minute,
            secondary_retry_after=secondary_retry_after,
            secondary_status=secondary_status,
            secondary_block=secondary_block,
        )
        self.apps = GitHubApps(self.accounts, installation_token_ttl)
        installed = dict(installations or {})
        if set(installed.values()) - set(apps or {}):
            raise ValueError("installations name an App that is not in apps")
        for app_id, public_key_pem in (apps or {}).items():
            mine = [i for i, owner in installed.items() if owner == app_id]
            self.apps.add_app(app_id, public_key_pem, mine)
        self.graphql = GraphQLApi(self.dataset)
        self.faults = Faults(seed)
        self._stats_lock = threading.Lock()
        self._by_status: Counter[str] = Counter()
        self._by_route: Counter[str] = Counter()
        self._in_flight = self._peak_in_flight = 0  # API requests being answered, and the most
        self._httpd: KeepAliveHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_faults(latency_ms=latency_ms, error_rate=error_rate, fail_ids=fail_ids)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL once started, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("the stand-in is not started")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("the stand-in is already started")
        self._httpd = KeepAliveHTTPServer((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin:{self._httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open keep-alive connections, and wait for the serving thread."""
        httpd, thread, self._httpd, self._thread = self._httpd, self._thread, None, None
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control (also behind /_standin/...) -------------------------------------------------

    def set_faults(
        self,
        *,
        latency_ms: float | None = None,
        error_rate: float | None = None,
        fail_ids: Iterable[Iterable[int]] | None = None,
    ) -> dict[str, Any]:
        """Change the given faults; ``fail_ids`` are inclusive ``(first, last)`` ID ranges."""
        self.faults.set(latency_ms=latency_ms, error_rate=error_rate, fail_ids=fail_ids)
        return self.stats()

    def heal(self) -> dict[str, Any]:
        """Stop injecting errors (latency stays: it is a property of the network, not a fault)."""
        return self.set_faults(error_rate=0.0, fail_ids=())

    def set_rate_limit(
        self,
        limit: int | None = None,
        window: float | None = None,
        *,
        reset: bool = False,
        graphql_limit: int | None = None,
        installation_limit: int | None = None,
    ) -> dict[str, Any]:
        """New budget per account (``graphql_limit``: GraphQL points; the window is shared;
        ``installation_limit``: an App installation's REST budget); ``reset`` starts a fresh
        window for everyone."""
        if graphql_limit is not None and graphql_limit < 0:
            raise ValueError(f"graphql_limit must be >= 0, got {graphql_limit}")
        installation_limit = _limit("installation_limit", installation_limit)
        self.rate_limiter.configure(limit, window, reset=reset)
        self.graphql_limiter.configure(graphql_limit, window, reset=reset)
        if installation_limit is not None:
            self.installation_limit = installation_limit
        return self.stats()

    def add_tokens(self, tokens: Mapping[str, str]) -> dict[str, Any]:
        """Register ``token -> login`` pairs; returns every registered login -> account id
        (never a token)."""
        return {"accounts": self.accounts.add_tokens(tokens)}

    def set_secondary_limits(
        self,
        *,
        minute: float = KEEP,
        secondary_in_flight: int | None = KEEP,
        rest_points_per_minute: int | None = KEEP,
        graphql_points_per_minute: int | None = KEEP,
        secondary_retry_after: bool = KEEP,
        secondary_status: int = KEEP,
        secondary_block: float | None = KEEP,
    ) -> dict[str, Any]:
        """Change the given secondary-limit settings (``None`` turns a limit off); returns them
        all. Blocks already running keep their end."""
        given = {
            "minute": minute,
            "secondary_in_flight": secondary_in_flight,
            "rest_points_per_minute": rest_points_per_minute,
            "graphql_points_per_minute": graphql_points_per_minute,
            "secondary_retry_after": secondary_retry_after,
            "secondary_status": secondary_status,
            "secondary_block": secondary_block,
        }
        return self.secondary.configure(**{k: v for k, v in given.items() if v is not KEEP})

    def refuse_next(self, account: str, retry_after: float | None = None) -> dict[str, Any]:
        """Refuse ``account``'s next API request with a secondary limit and block the account
        ``retry_after`` seconds (sent as ``Retry-After``), or ``secondary_block`` seconds (no
        header). ``account``: a login, ``installation:<id>`` or ``ip:<address>``."""
        return self.secondary.refuse_next(account, retry_after)

    def accounts_report(self) -> dict[str, Any]:
        """Per account (named by login, ``installation:<id>`` or ``ip:<address>``): requests
        answered by kind, refusals by limit, peak in flight, every arrival
        ``[time.time(), "rest" | "graphql", None | "primary" | "secondary"]`` and the blocks
        ``{"start", "end", "arrivals"}`` (``arrivals``: requests refused during it)."""
        return self.secondary.report()

    def reset_accounts(self) -> dict[str, Any]:
        """Forget the accounts' records, windows, blocks and pending refusals."""
        self.secondary.reset()
        return self.secondary.report()

    def add_app(
        self, app_id: int, public_key_pem: str | bytes, installation_ids: Iterable[int] = ()
    ) -> dict[str, Any]:
        """Register a GitHub App by its public key and install it (``installation_ids``)."""
        return self.apps.add_app(app_id, public_key_pem, installation_ids)

    def stats(self) -> dict[str, Any]:
        """Configuration and request counters of the API routes (admin calls are not counted)."""
        with self._stats_lock:
            by_status, by_route = dict(self._by_status), dict(self._by_route)
            peak = self._peak_in_flight
        return {
            "size": self.dataset.size,
            "seed": self.dataset.seed,
            **self.faults.state(),
            "rate_limit": self.rate_limiter.limit,
            "rate_window": self.rate_limiter.window,
            "graphql_limit": self.graphql_limiter.limit,
            "installation_limit": self.installation_limit,
            "secondary_limits": self.secondary.config(),
            "requests": {
                "total": sum(by_status.values()),
                "by_status": by_status,
                "by_route": by_route,
                "peak_in_flight": peak,  # API requests answered at the same time, at most
            },
        }

    def reset_stats(self) -> dict[str, Any]:
        with self._stats_lock:
            self._by_status.clear()
            self._by_route.clear()
            self._peak_in_flight = self._in_flight
        return self.stats()

    # -- answering ---------------------------------------------------------------------------

    def answer(self, request: Request) -> Reply:
        """The complete answer to one request; runs on the connection's own thread."""
        path = urlsplit(request.target).path
        if path.startswith("/_standin/"):
            return answer_admin(self, request)
        with self._stats_lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            reply = self._api(request)
        finally:
            with self._stats_lock:
                self._in_flight -= 1
        with self._stats_lock:
            self._by_status[str(reply.status)] += 1
            self._by_route[_route_name(path)] += 1
        return reply

    def _api(self, request: Request) -> Reply:
        """Identify the account, let the request through its secondary limits, answer it."""
        parts = urlsplit(request.target)
        identity = self.accounts.identify(request.headers.get("Authorization"), request.client_ip)
        if parts.path == "/app" or parts.path.startswith("/app/"):  # outside the budgets
            self.faults.delay()
            return self.apps.answer(
                request, parts.path, identity, rest_api.base_url(request, self.url)
            )
        graphql = parts.path == GRAPHQL_PATH and request.method == "POST"
        if identity.kind in ("jwt", "expired", "revoked"):
            self.faults.delay()
            return bad_credentials(graphql=graphql)
        admission = self.secondary.admit(identity.account, "graphql" if graphql else "rest")
        if admission.refused:  # uncharged: the primary budget is only shown
            self.faults.delay()
            limiter = self.graphql_limiter if graphql else self.rate_limiter
            limit = None if graphql else self._limit_of(identity)
            budget, _ = limiter.spend(identity.account, 0, limit=limit)
            status = self.secondary.config()["secondary_status"]
            return secondary_refusal(
                admission, budget, status, authenticated=identity.authenticated
            )
        try:
            return self._admitted(request, identity, admission)
        finally:
            self.secondary.release(admission)

    def _admitted(self, request: Request, identity: Identity, admission: Admission) -> Reply:
        self.faults.delay()
        if not request.headers.get("User-Agent"):
            return json_reply(
                403,
                {
                    "message": "Request forbidden by administrative rules. "
                    "Please make sure your request has a User-Agent header",
                    "documentation_url": USER_AGENT_DOCS,
                },
            )
        if self.faults.unavailable():
            return edge_error(503)
        parts = urlsplit(request.target)
        credential = request.headers.get("Authorization")
        who, limit = identity.account, self._limit_of(identity)
        if admission.kind == "graphql":
            return self._graphql(request, identity, admission)
        budget: Budget | None = None
        if parts.path == "/rate_limit":  # free, even when exhausted; its body is the budget
            budget, _ = self.rate_limiter.spend(who, 0, limit=limit)
            graphql, _ = self.graphql_limiter.spend(who, 0)
            status, payload, extra = 200, rate_limit_body(budget, graphql), {}
        elif parts.path == "/user":
            base = rest_api.base_url(request, self.url)
            status, payload = self.accounts.authenticated_user(identity, base)
            extra = {}
        else:
            base = rest_api.base_url(request, self.url)
            query = parse_qs(parts.query)
            status, payload, ids, extra = rest_api.resource(self.dataset, parts.path, query, base)
            if self.faults.fails(ids):
                return edge_error(502)
        body = json_body(payload)
        etag = rest_api.etag(credential or "anonymous", body) if status == 200 else None
        if_none_match = request.headers.get("If-None-Match")
        not_modified = etag is not None and rest_api.etag_matches(if_none_match, etag)
        if budget is None:
            budget, allowed = self.rate_limiter.spend(who, 0 if not_modified else 1, limit=limit)
            if not allowed:
                admission.primary_refused = True
                return rate_limited(budget, "user" if credential else request.client_ip)
        headers = api_headers(budget, authenticated=credential is not None) | extra
        if etag is not None:
            headers["ETag"] = etag
        if not_modified:
            return Reply(304, headers)
        return Reply(status, headers | {"Content-Type": "application/json; charset=utf-8"}, body)

    def _graphql(self, request: Request, identity: Identity, admission: Admission) -> Reply:
        """``POST /graphql``: validate and price the query, fail it if it names a failing ID,
        charge its points (RATE_LIMITED, still HTTP 200, when they do not fit), then run it.

        Anonymous requests are served (GitHub itself answers them 401), each IP its own budget.
        """
        who, authenticated = identity.account, identity.authenticated
        prepared = self.graphql.prepare(request.body)
        if not isinstance(prepared, Prepared):
            budget, _ = self.graphql_limiter.spend(who, 0)
            reply = json_reply(prepared.status, prepared.payload)
            if prepared.status == 200:
                reply.headers |= api_headers(budget, authenticated=authenticated, graphql=True)
            return reply
        if self.faults.fails(prepared.database_ids):
            return edge_error(502)
        budget, allowed = self.graphql_limiter.spend(who, prepared.cost, whole=True)
        headers = api_headers(budget, authenticated=authenticated, graphql=True)
        if not allowed:
            admission.primary_refused = True
            by = "user" if authenticated else request.client_ip
            payload: dict[str, Any] = {
                "data": None,
                "errors": [
                    {"type": "RATE_LIMITED", "message": f"API rate limit exceeded for {by}."}
                ],
            }
        else:
            state = RateLimitState(
                cost=prepared.cost,
                limit=budget.limit,
                remaining=budget.remaining,
                used=budget.used,
                reset=budget.reset,
                node_count=prepared.node_count,
            )
            payload = self.graphql.execute(prepared, state)
        reply = json_reply(200, payload)
        reply.headers |= headers
        return reply

    def _limit_of(self, identity: Identity) -> int | None:
        """The REST budget of an installation, when it has one of its own size (GraphQL
        points are the same for every account)."""
        return self.installation_limit if identity.kind == "installation" else None


def _limit(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be an integer >= 0 or null, got {value!r}")
    return value


def _route_name(path: str) -> str:
    if path == "/users":
        return "list"
    if rest_api.USER_PATH.fullmatch(path) or rest_api.ID_PATH.fullmatch(path):
        return "user"
    if path == GRAPHQL_PATH:
        return "graphql"
    if path == "/user":
        return "authenticated_user"
    if path == "/app" or path.startswith("/app/"):
        return "app"
    return "rate_limit" if path == "/rate_limit" else "other"
