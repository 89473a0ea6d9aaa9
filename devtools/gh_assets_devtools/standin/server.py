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

This module is the server object: its lifecycle and its controls. The order in which an API
request is checked is ``api_answers``'s, the request counters ``request_counts``'s; what the
answers contain, the budgets, the faults, the accounts, the admin endpoints and the HTTP
plumbing each live in a module of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from gh_assets_devtools.standin.accounts import AccountRegistry
from gh_assets_devtools.standin.admin_endpoints import answer_admin
from gh_assets_devtools.standin.api_answers import answer_api
from gh_assets_devtools.standin.app_auth import GitHubApps
from gh_assets_devtools.standin.data import Dataset
from gh_assets_devtools.standin.faults import Faults
from gh_assets_devtools.standin.graphql_api import GraphQLApi
from gh_assets_devtools.standin.http_server import KeepAliveHTTPServer, Reply, Request
from gh_assets_devtools.standin.rate_limit import RateLimiter
from gh_assets_devtools.standin.request_counts import RequestCounts
from gh_assets_devtools.standin.secondary_limits import SecondaryLimits

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
        self.counts = RequestCounts()
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
        return {
            "size": self.dataset.size,
            "seed": self.dataset.seed,
            **self.faults.state(),
            "rate_limit": self.rate_limiter.limit,
            "rate_window": self.rate_limiter.window,
            "graphql_limit": self.graphql_limiter.limit,
            "installation_limit": self.installation_limit,
            "secondary_limits": self.secondary.config(),
            "requests": self.counts.report(),
        }

    def reset_stats(self) -> dict[str, Any]:
        self.counts.reset()
        return self.stats()

    # -- answering ---------------------------------------------------------------------------

    def answer(self, request: Request) -> Reply:
        """The complete answer to one request; runs on the connection's own thread."""
        path = urlsplit(request.target).path
        if path.startswith("/_standin/"):
            return answer_admin(self, request)
        self.counts.begin()
        try:
            reply = answer_api(self, request)
        finally:
            self.counts.end()
        self.counts.answered(reply.status, path)
        return reply


def _limit(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be an integer >= 0 or null, got {value!r}")
    return value
