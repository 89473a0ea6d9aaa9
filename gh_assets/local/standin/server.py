"""A local HTTP stand-in for GitHub's REST users API, with faults and rate limits to steer.

It answers ``GET /users``, ``GET /users/{login}``, ``GET /user/{id}`` and ``GET /rate_limit`` the
way api.github.com does (bodies, ``Link`` paging, weak per-credential ETags, free 304s, primary
rate limit, the User-Agent rule), and ``POST /graphql`` with a subset of GitHub's GraphQL schema
(``graphql_api``) charged against a separate point budget, so the crawler can be demoed, tested
and benchmarked offline.
``/_standin/...`` admin endpoints let a test in another process inject faults, change the rate
limit, edit accounts and read counters; the same operations are methods of ``StandinServer``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from gh_assets.local.standin.data import Dataset, StandinUser, ground_truth
from gh_assets.local.standin.graphql_api import GraphQLApi, Prepared, RateLimitState, node_id

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
MAX_ADMIN_BODY = 1 << 20
API_VERSION = "2022-11-28"
GET_USER_DOCS = "https://docs.github.com/rest/users/users#get-a-user"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"
GRAPHQL_PATH = "/graphql"
USER_AGENT_DOCS = (
    "https://docs.github.com/rest/overview/resources-in-the-rest-api#user-agent-required"
)
HTML_ERRORS = {
    502: "<html><body><h1>502 Bad Gateway</h1>"
    "The server returned an invalid or incomplete response.</body></html>\n",
    503: "<html><body><h1>503 Service Unavailable</h1>"
    "No server is available to handle this request.</body></html>\n",
}
_USER_PATH = re.compile(r"/users/([A-Za-z0-9-]{1,39})")
_ID_PATH = re.compile(r"/user/([0-9]{1,18})")
_ADMIN_USER_PATH = re.compile(r"/_standin/users/([0-9]{1,18})")
_PROFILE = [
    f.name for f in fields(StandinUser) if f.name not in ("id", "login", "type", "site_admin")
]


@dataclass(frozen=True)
class Request:
    """What the stand-in needs from one HTTP request."""

    method: str
    target: str  # path and query as sent
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    client_ip: str
    body: bytes = b""


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Budget:
    """One credential's rate-limit window as the ``X-RateLimit-*`` headers report it."""

    limit: int
    used: int
    reset: int  # epoch seconds
    resource: str = "core"  # or "graphql": GitHub keeps a separate budget for each

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "X-RateLimit-Used": str(self.used),
            "X-RateLimit-Resource": self.resource,
        }


class RateLimiter:
    """GitHub's primary limit: ``limit`` calls (or GraphQL points) per fixed window from a
    credential's first call."""

    def __init__(self, limit: int, window: float, resource: str = "core") -> None:
        self.resource = resource
        self._lock = threading.Lock()
        self._windows: dict[str, list[float]] = {}  # credential -> [window start, used]
        self.configure(limit, window, reset=True)

    def configure(self, limit: int | None, window: float | None, *, reset: bool) -> None:
        with self._lock:
            if limit is not None:
                if limit < 0:
                    raise ValueError(f"limit must be >= 0, got {limit}")
                self.limit = limit
            if window is not None:
                if window <= 0:
                    raise ValueError(f"window must be > 0, got {window}")
                self.window = window
            if reset:
                self._windows.clear()

    def spend(self, who: str, cost: int, *, whole: bool = False) -> tuple[Budget, bool]:
        """Charge ``cost`` if the budget is not exhausted (``whole``: if all of ``cost`` fits,
        as for a GraphQL query's points); (budget after, whether allowed)."""
        now = time.time()
        with self._lock:
            state = self._windows.get(who)
            if state is None or now >= state[0] + self.window:
                state = self._windows[who] = [now, 0]
            allowed = state[1] + cost <= self.limit if whole else state[1] < self.limit
            if allowed:
                state[1] += cost
            reset = int(state[0] + self.window)
            return Budget(self.limit, int(state[1]), reset, self.resource), allowed


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
        self._errors = random.Random(seed)  # its own stream: faults never shift the data
        self._stats_lock = threading.Lock()
        self._by_status: Counter[str] = Counter()
        self._by_route: Counter[str] = Counter()
        self._in_flight = self._peak_in_flight = 0  # API requests being answered, and the most
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.latency_ms, self.error_rate = 0.0, 0.0
        self.fail_ids: tuple[tuple[int, int], ...] = ()
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
        self._httpd = _HTTPServer((self.host, self.port), self)
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
        if latency_ms is not None and not 0 <= latency_ms <= 600_000:
            raise ValueError(f"latency_ms must be in [0, 600000], got {latency_ms}")
        if error_rate is not None and not 0 <= error_rate <= 1:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        ranges = None if fail_ids is None else tuple(_id_range(r) for r in fail_ids)
        if latency_ms is not None:
            self.latency_ms = float(latency_ms)
        if error_rate is not None:
            self.error_rate = float(error_rate)
        if ranges is not None:
            self.fail_ids = ranges
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
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "fail_ids": [list(r) for r in self.fail_ids],
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
            return self._admin(request)
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
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)  # no lock is held: concurrent clients overlap
        if not request.headers.get("User-Agent"):
            return _json_reply(
                403,
                {
                    "message": "Request forbidden by administrative rules. "
                    "Please make sure your request has a User-Agent header",
                    "documentation_url": USER_AGENT_DOCS,
                },
            )
        if self.error_rate and self._errors.random() < self.error_rate:
            return _html_reply(503)
        parts = urlsplit(request.target)
        credential = request.headers.get("Authorization")
        who = credential or f"ip:{request.client_ip}"
        if parts.path == GRAPHQL_PATH and request.method == "POST":
            return self._graphql(request, who, authenticated=credential is not None)
        budget: Budget | None = None
        if parts.path == "/rate_limit":  # free, even when exhausted; its body is the budget
            budget, _ = self.rate_limiter.spend(who, 0)
            graphql, _ = self.graphql_limiter.spend(who, 0)
            status, payload, extra = 200, _rate_limit_body(budget, graphql), {}
        else:
            base = _base_url(request, self.url)
            status, payload, ids, extra = self._resource(parts.path, parse_qs(parts.query), base)
            if any(a <= i <= b for i in ids for a, b in self.fail_ids):
                return _html_reply(502)
        body = _json(payload)
        etag = _etag(credential or "anonymous", body) if status == 200 else None
        not_modified = etag is not None and _matches(request.headers.get("If-None-Match"), etag)
        if budget is None:
            budget, allowed = self.rate_limiter.spend(who, 0 if not_modified else 1)
            if not allowed:
                return _rate_limited(budget, "user" if credential else request.client_ip)
        headers = _api_headers(budget, authenticated=credential is not None) | extra
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
            reply = _json_reply(prepared.status, prepared.payload)
            if prepared.status == 200:
                reply.headers |= _api_headers(budget, authenticated=authenticated, graphql=True)
            return reply
        if any(a <= i <= b for i in prepared.database_ids for a, b in self.fail_ids):
            return _html_reply(502)
        budget, allowed = self.graphql_limiter.spend(who, prepared.cost, whole=True)
        headers = _api_headers(budget, authenticated=authenticated, graphql=True)
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
        reply = _json_reply(200, payload)
        reply.headers |= headers
        return reply

    def _resource(
        self, path: str, query: dict[str, list[str]], base: str
    ) -> tuple[int, Any, list[int], dict[str, str]]:
        """(status, JSON payload, IDs that fail it, extra headers) for an API path."""
        if path == "/users":
            since = _int_param(query, "since", 0)
            per_page = _int_param(query, "per_page", DEFAULT_PER_PAGE)
            per_page = min(per_page, MAX_PER_PAGE) if per_page > 0 else DEFAULT_PER_PAGE
            users = self.dataset.users_after(since, per_page + 1)  # one more: is there a next?
            page = users[:per_page]
            links = [f'<{base}/users{{?since}}>; rel="first"']
            if len(users) > per_page:
                echoed = f"per_page={per_page}&" if "per_page" in query else ""
                links.insert(0, f'<{base}/users?{echoed}since={page[-1].id}>; rel="next"')
            items = [simple_user(u, base) for u in page]
            # A list page counts as showing the ID after its cursor: a failing ID range breaks the
            # pages that start in it and the users in it, not a neighbour page that merely
            # reaches into it (crawl windows stay independent, as a failed page should be).
            return 200, items, [since + 1], {"Link": ", ".join(links)}
        if match := _USER_PATH.fullmatch(path):
            user = self.dataset.by_login(match[1])
        elif match := _ID_PATH.fullmatch(path):
            user = self.dataset.user(int(match[1]))
        else:
            return 404, _not_found("https://docs.github.com/rest"), [], {}
        if user is None:
            return 404, _not_found(GET_USER_DOCS), [], {}
        return 200, public_user(user, base), [user.id], {}

    def _admin(self, request: Request) -> Reply:
        """JSON control endpoints: free of rate limit, latency and faults."""
        parts = urlsplit(request.target)
        path, method = parts.path, request.method
        try:
            data = json.loads(request.body) if request.body.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            if (method, path) == ("GET", "/_standin/state"):
                return _json_reply(200, self.stats())
            if (method, path) == ("POST", "/_standin/faults"):
                return _json_reply(200, self.set_faults(**data))
            if (method, path) == ("POST", "/_standin/heal"):
                return _json_reply(200, self.heal())
            if (method, path) == ("POST", "/_standin/rate-limit"):
                limit, window = data.get("limit"), data.get("window")
                reset = bool(data.get("reset", False))
                graphql_limit = data.get("graphql_limit")
                state = self.set_rate_limit(limit, window, reset=reset, graphql_limit=graphql_limit)
                return _json_reply(200, state)
            if (method, path) == ("POST", "/_standin/reset-stats"):
                return _json_reply(200, self.reset_stats())
            if (method, path) == ("GET", "/_standin/users"):
                query = parse_qs(parts.query)
                first = _int_param(query, "first", 1)
                last = _int_param(query, "last", self.dataset.size)
                users = self.dataset.users_between(first, last)
                return _json_reply(200, [ground_truth(u) for u in users])
            if match := _ADMIN_USER_PATH.fullmatch(path):
                user_id = int(match[1])
                if method == "POST":
                    return _json_reply(200, ground_truth(self.dataset.update(user_id, **data)))
                if method == "DELETE":
                    self.dataset.delete(user_id)
                    return _json_reply(200, {"deleted": user_id})
        except KeyError as exc:
            return _json_reply(404, {"message": str(exc.args[0] if exc.args else exc)})
        except (TypeError, ValueError) as exc:
            return _json_reply(400, {"message": str(exc)})
        return _json_reply(404, {"message": f"no admin endpoint {method} {path}"})


# -- representations -------------------------------------------------------------------------


def simple_user(user: StandinUser, base: str) -> dict[str, Any]:
    """GitHub's ``simple-user``, as listed by ``GET /users``; API URLs point at ``base``."""
    api = f"{base}/users/{user.login}"
    return {
        "login": user.login,
        "id": user.id,
        "node_id": node_id(user),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{user.login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": user.type,
        "user_view_type": "public",
        "site_admin": user.site_admin,
    }


def public_user(user: StandinUser, base: str) -> dict[str, Any]:
    """GitHub's ``public-user``, as ``GET /users/{login}`` and ``GET /user/{id}`` answer."""
    return simple_user(user, base) | {name: getattr(user, name) for name in _PROFILE}


# -- helpers ---------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 100+ clients connecting at once must not hit SYN retries

    def __init__(self, address: tuple[str, int], standin: StandinServer) -> None:
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the FQDN, which stalls without DNS.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            if self._closing:
                _hang_up(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Keep-alive connections would otherwise outlive the server on their daemon threads."""
        with self._connections_lock:
            self._closing = True
            for connection in self._connections:
                _hang_up(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer is routine; only real failures get a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    wbufsize = 1 << 16  # headers and body leave in one send; handle_one_request flushes
    disable_nagle_algorithm = True  # bodies beyond the buffer still go out at once
    timeout = 300  # drop idle keep-alive connections eventually
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.opened(self.connection)

    def finish(self) -> None:
        self.server.closed(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_ADMIN_BODY:
            self.send_error(400 if length < 0 else 413)
            return
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(self.command, self.path, self.headers, self.client_address[0], body)
        reply = self.server.standin.answer(request)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status != 304:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def version_string(self) -> str:
        return "GitHubStandin/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin.verbose:
            super().log_message(format, *args)


def _hang_up(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client may have closed it already
        connection.shutdown(socket.SHUT_RDWR)


def _route_name(path: str) -> str:
    if path == "/users":
        return "list"
    if _USER_PATH.fullmatch(path) or _ID_PATH.fullmatch(path):
        return "user"
    if path == GRAPHQL_PATH:
        return "graphql"
    return "rate_limit" if path == "/rate_limit" else "other"


def _api_headers(budget: Budget, *, authenticated: bool, graphql: bool = False) -> dict[str, str]:
    return {
        "X-GitHub-Media-Type": "github.v4; format=json" if graphql else "github.v3; format=json",
        "x-github-api-version-selected": API_VERSION,
        **budget.headers(),
        "Cache-Control": f"{'private' if authenticated else 'public'}, max-age=60, s-maxage=60",
        "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
    }


def _rate_limited(budget: Budget, who: str) -> Reply:
    """The primary-limit 403; ``who`` is an IP or "user", never the credential."""
    body = {
        "message": f"API rate limit exceeded for {who}. (But here's the good news: "
        "Authenticated requests get a higher rate limit. "
        "Check out the documentation for more details.)",
        "documentation_url": RATE_LIMIT_DOCS,
    }
    reply = _json_reply(403, body)
    reply.headers |= _api_headers(budget, authenticated=who == "user")
    return reply


def _rate_limit_body(budget: Budget, graphql: Budget) -> dict[str, Any]:
    """``rate-limit-overview``; search is not served here, so its budget is always untouched."""
    core, points = (
        {"limit": b.limit, "used": b.used, "remaining": b.remaining, "reset": b.reset}
        for b in (budget, graphql)
    )
    search = {"limit": 30, "used": 0, "remaining": 30, "reset": int(time.time()) + 60}
    return {"resources": {"core": core, "search": search, "graphql": points}, "rate": core}


def _not_found(documentation_url: str) -> dict[str, str]:
    return {"message": "Not Found", "documentation_url": documentation_url, "status": "404"}


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, {"Content-Type": "application/json; charset=utf-8"}, _json(payload))


def _html_reply(status: int) -> Reply:
    """An edge error as GitHub's proxies send it: HTML, no rate-limit headers (recording 17)."""
    return Reply(status, {"Content-Type": "text/html"}, HTML_ERRORS[status].encode())


def _etag(credential: str, body: bytes) -> str:
    """Weak ETag over credential and body: GitHub's ETags are only valid for who fetched them."""
    digest = hashlib.sha256(credential.encode() + b"\n" + body).hexdigest()
    return f'W/"{digest}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110): ``W/"x"`` matches ``"x"``; a list or ``*`` is accepted."""
    if not if_none_match:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


def _base_url(request: Request, fallback: str) -> str:
    host = request.headers.get("Host")
    return f"http://{host}" if host else fallback


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    """GitHub ignores a parameter that is not an integer."""
    try:
        return int(query[name][0])
    except (KeyError, ValueError):
        return default


def _id_range(value: Iterable[int]) -> tuple[int, int]:
    first, last = (int(v) for v in value)
    if first > last:
        raise ValueError(f"empty ID range {first}-{last}")
    return first, last
