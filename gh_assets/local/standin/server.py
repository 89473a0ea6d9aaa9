"""A local HTTP stand-in for GitHub's REST users API, with faults and rate limits to steer.

It answers ``GET /users``, ``GET /users/{login}``, ``GET /user/{id}`` and ``GET /rate_limit`` the
way api.github.com does (bodies, ``Link`` paging, weak per-credential ETags, free 304s, primary
rate limit, the User-Agent rule), and ``POST /graphql`` with a subset of GitHub's GraphQL schema
(``graphql_api``) charged against a separate point budget, so the crawler can be demoed, tested
and benchmarked offline.
``/_standin/...`` admin endpoints let a test in another process inject faults, change the rate
limit, edit accounts and read counters; the same operations are methods of ``StandinServer``.

This module is the server object and the order in which an API request is checked, failed,
charged and answered; what the answers contain, the budgets, the faults, the admin endpoints and
the HTTP plumbing each live in a module of their own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from gh_assets.local.standin import rest_api
from gh_assets.local.standin.admin_endpoints import answer_admin
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

GRAPHQL_PATH = "/graphql"
USER_AGENT_DOCS = (
    "https://docs.github.com/rest/overview/resources-in-the-rest-api#user-agent-required"
)


class StandinServer:
    """The stand-in on a background thread; ``start()``/``stop()`` or use it as a context manager.

    Faults and the rate limit can be changed while it runs, from this process (methods) or any
    other (admin endpoints); both share one implementation and are thread-safe.
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
    ) -> None:
        self.dataset = dataset if dataset is not None else Dataset(seed=seed)
        self.host, self.port, self.verbose = host, port, verbose
        self.rate_limiter = RateLimiter(rate_limit, rate_window)
        self.graphql_limiter = RateLimiter(graphql_limit, rate_window, "graphql")  # points
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
    ) -> dict[str, Any]:
        """New budget per credential (``graphql_limit``: GraphQL points; the window is shared);
        ``reset`` starts a fresh window for everyone."""
        if graphql_limit is not None and graphql_limit < 0:
            raise ValueError(f"graphql_limit must be >= 0, got {graphql_limit}")
        self.rate_limiter.configure(limit, window, reset=reset)
        self.graphql_limiter.configure(graphql_limit, window, reset=reset)
        return self.stats()

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
        who = credential or f"ip:{request.client_ip}"
        if parts.path == GRAPHQL_PATH and request.method == "POST":
            return self._graphql(request, who, authenticated=credential is not None)
        budget: Budget | None = None
        if parts.path == "/rate_limit":  # free, even when exhausted; its body is the budget
            budget, _ = self.rate_limiter.spend(who, 0)
            graphql, _ = self.graphql_limiter.spend(who, 0)
            status, payload, extra = 200, rate_limit_body(budget, graphql), {}
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
            budget, allowed = self.rate_limiter.spend(who, 0 if not_modified else 1)
            if not allowed:
                return rate_limited(budget, "user" if credential else request.client_ip)
        headers = api_headers(budget, authenticated=credential is not None) | extra
        if etag is not None:
            headers["ETag"] = etag
        if not_modified:
            return Reply(304, headers)
        return Reply(status, headers | {"Content-Type": "application/json; charset=utf-8"}, body)

    def _graphql(self, request: Request, who: str, *, authenticated: bool) -> Reply:
        """``POST /graphql``: validate and price the query, fail it if it names a failing ID,
        charge its points (RATE_LIMITED, still HTTP 200, when they do not fit), then run it.

        Anonymous requests are served (GitHub itself answers them 401), each IP its own budget.
        """
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


def _route_name(path: str) -> str:
    if path == "/users":
        return "list"
    if rest_api.USER_PATH.fullmatch(path) or rest_api.ID_PATH.fullmatch(path):
        return "user"
    if path == GRAPHQL_PATH:
        return "graphql"
    return "rate_limit" if path == "/rate_limit" else "other"
