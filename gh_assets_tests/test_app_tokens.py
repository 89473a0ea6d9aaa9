"""GitHub App installation tokens against a small scripted GitHub (real sockets, no mocks of
``requests``) on a fake clock: tokens cached, renewed and minted once for concurrent callers,
installations listed, and errors retried or refused in one line that shows no secret.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
import pytest

from gh_assets.github.errors import (
    CredentialRefusedError,
    GitHubHTTPError,
    GitHubUnreachableError,
    MalformedResponseError,
    RateLimitError,
)

from .github_app import APP_ID, USER_AGENT, FakeClock, Keys, assert_no_secrets, make_app
from .replay_server import Reply, Seen, rate_limit_headers

# -- a scripted GitHub (its replies and what it saw: replay_server) ----------------------------


@dataclass
class Scripted:
    """A server that answers ``route(method, path)`` and records every request."""

    route: Callable[[str, str], Reply]
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        handler.rfile.read(length)
        with self.lock:
            headers = {k.lower(): v for k, v in handler.headers.items()}
            self.seen.append(Seen(handler.command, handler.path, headers))
        reply = self.route(handler.command, handler.path)
        time.sleep(reply.delay)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        for name, value in reply.headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def count(self, method: str) -> int:
        with self.lock:
            return sum(1 for seen in self.seen if seen.method == method)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[str, str], Reply]], Scripted]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(route: Callable[[str, str], Reply]) -> Scripted:
        state = Scripted(route)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                state.answer(self)

            def do_POST(self) -> None:
                state.answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        servers.append((server, thread))
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        return state

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Minter:
    """Answers the access_tokens POST with ``ghs_<installation>_<n>``, an hour from ``clock``."""

    def __init__(self, clock: FakeClock, ttl: float = 3600, delay: float = 0.0) -> None:
        self.clock, self.ttl, self.delay = clock, ttl, delay
        self.minted = 0
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str) -> Reply:
        parts = path.split("/")  # ['', 'app', 'installations', ID, 'access_tokens']
        if method != "POST" or len(parts) != 5 or parts[4] != "access_tokens":
            return Reply(404, {"message": "Not Found"})
        with self.lock:
            self.minted += 1
            token = f"ghs_{parts[3]}_{self.minted:04d}xxxxxxxxxxxxxxxxxxxxxxxxxx"
        body = {"token": token, "expires_at": iso(self.clock() + self.ttl), "permissions": {}}
        return Reply(201, body, delay=self.delay)


# -- installation tokens, on a fake clock ------------------------------------------------------


@pytest.mark.integration
def test_token_is_cached_and_renewed_before_it_expires(
    keys: Keys, serve: Callable[..., Scripted]
) -> None:
    clock = FakeClock()
    minter = Minter(clock)
    github = serve(minter)
    app = make_app(github.url, keys, clock, renew_before=300)
    first = app.installation_token(7)
    assert first.startswith("ghs_7_0001")
    assert app.installation_token(7) == first
    clock.now += 3600 - 301  # 301 s left: still good
    assert app.installation_token(7) == first
    assert minter.minted == 1
    clock.now += 2  # 299 s left: renewed
    second = app.installation_token(7)
    assert second.startswith("ghs_7_0002")
    assert app.installation_token(7) == second
    # Each installation has a token of its own.
    assert app.installation_token(8).startswith("ghs_8_0003")
    assert app.installation_token(7) == second
    assert minter.minted == 3
    # A token GitHub refused is forgotten; a replaced one stays.
    app.forget_token(7, first)
    assert app.installation_token(7) == second
    app.forget_token(7, second)
    assert app.installation_token(7).startswith("ghs_7_0004")


@pytest.mark.integration
def test_token_requests_carry_the_jwt_and_github_headers(
    keys: Keys, serve: Callable[..., Scripted]
) -> None:
    clock = FakeClock(time.time())
    github = serve(Minter(clock))
    app = make_app(github.url, keys, clock)
    first = app.installation_token(99)
    app.forget_token(99, first)
    # Tokens are cached now: the App's requests still carry the JWT, never one of them.
    minted = [first, app.installation_token(99), app.installation_token(100)]
    paths = [f"/app/installations/{i}/access_tokens" for i in (99, 99, 100)]
    assert [(seen.method, seen.path) for seen in github.seen] == [("POST", p) for p in paths]
    for seen in github.seen:
        assert seen.headers["accept"] == "application/vnd.github+json"
        assert seen.headers["x-github-api-version"] == "2022-11-28"
        assert seen.headers["user-agent"] == USER_AGENT
        scheme, _, credential = seen.headers["authorization"].partition(" ")
        assert scheme == "Bearer" and credential not in minted
        assert pyjwt.decode(credential, keys.public, algorithms=["RS256"])["iss"] == APP_ID


@pytest.mark.integration
def test_concurrent_callers_share_one_mint(keys: Keys, serve: Callable[..., Scripted]) -> None:
    clock = FakeClock()
    minter = Minter(clock, delay=0.3)
    github = serve(minter)
    app = make_app(github.url, keys, clock)
    start = threading.Barrier(16)
    results: list[str] = []

    def call(installation_id: int) -> None:
        start.wait()
        results.append(app.installation_token(installation_id))

    threads = [threading.Thread(target=call, args=(1 + i % 2,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 16
    assert minter.minted == 2 == github.count("POST")  # one per installation
    assert len(set(results)) == 2


# -- installations -----------------------------------------------------------------------------


def installation(installation_id: int, suspended: bool = False) -> dict[str, Any]:
    return {
        "id": installation_id,
        "account": {"login": f"org{installation_id}", "id": installation_id * 10},
        "app_id": int(APP_ID),
        "target_type": "Organization",
        "suspended_at": "2024-01-01T00:00:00Z" if suspended else None,
    }


@pytest.mark.integration
def test_installation_ids_follow_next_links(keys: Keys, serve: Callable[..., Scripted]) -> None:
    pages: dict[str, Reply] = {}
    github = serve(lambda method, path: pages[path])
    nxt = f'<{github.url}/app/installations?per_page=100&page=2>; rel="next"'
    pages["/app/installations?per_page=100"] = Reply(
        200, [installation(11), installation(12, suspended=True)], (("Link", nxt),)
    )
    pages["/app/installations?per_page=100&page=2"] = Reply(200, [installation(13)])
    app = make_app(github.url, keys)
    assert app.installation_ids() == [11, 13]  # the suspended one cannot mint tokens
    assert [seen.path for seen in github.seen] == list(pages)
    assert all(s.headers["authorization"].startswith("Bearer ey") for s in github.seen)


@pytest.mark.integration
def test_installation_ids_stay_in_the_api_origin(
    keys: Keys, serve: Callable[..., Scripted]
) -> None:
    link = '<https://elsewhere.example.com/app/installations?page=2>; rel="next"'
    github = serve(lambda method, path: Reply(200, [installation(1)], (("Link", link),)))
    with pytest.raises(MalformedResponseError, match="Link rel=next leaves the API"):
        make_app(github.url, keys).installation_ids()
    assert len(github.seen) == 1


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "problem"),
    [({"installations": []}, "expected a JSON array"), ([{"id": "7"}], "positive integer id")],
)
def test_installation_ids_refuse_malformed_pages(
    keys: Keys, serve: Callable[..., Scripted], body: Any, problem: str
) -> None:
    github = serve(lambda method, path: Reply(200, body))
    with pytest.raises(MalformedResponseError, match=problem) as refused:
        make_app(github.url, keys).installation_ids()
    assert str(refused.value).startswith(f"GET {github.url}/app/installations?per_page=100 -> 200")


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_401_names_the_app_id_and_key_and_is_not_retried(
    keys: Keys, serve: Callable[..., Scripted]
) -> None:
    github = serve(
        lambda method, path: Reply(401, {"message": "A JSON web token could not be decoded"})
    )
    waits: list[float] = []
    app = make_app(github.url, keys, waits=waits)
    with pytest.raises(CredentialRefusedError) as refused:
        app.installation_token(5)
    assert refused.value.which == "GITHUB_APP_ID/GITHUB_APP_PRIVATE_KEY"
    message = str(refused.value)
    assert message.startswith(f"POST {github.url}/app/installations/5/access_tokens -> 401: ")
    assert "A JSON web token could not be decoded" in message
    assert "App id (424242, GITHUB_APP_ID) or the private key (GITHUB_APP_PRIVATE_KEY)" in message
    assert_no_secrets(message, app.jwt(), keys.pkcs1)
    assert refused.value.status == 401 and refused.value.method == "POST"
    assert len(github.seen) == 1 and waits == []


@pytest.mark.integration
def test_server_errors_are_retried_briefly(keys: Keys, serve: Callable[..., Scripted]) -> None:
    clock = FakeClock()
    minter = Minter(clock)
    failures = [Reply(502, b"<html>bad gateway</html>"), Reply(500, {"message": "oops"})]
    github = serve(lambda method, path: failures.pop(0) if failures else minter(method, path))
    waits: list[float] = []
    app = make_app(github.url, keys, clock, waits=waits)
    assert app.installation_token(3).startswith("ghs_3_")
    assert len(github.seen) == 3 and len(waits) == 2 and all(0 <= w <= 4 for w in waits)


@pytest.mark.integration
def test_retries_end_with_one_line_error(keys: Keys, serve: Callable[..., Scripted]) -> None:
    github = serve(lambda method, path: Reply(503, b"<html>\nunavailable\n</html>"))
    waits: list[float] = []
    with pytest.raises(GitHubHTTPError) as refused:
        make_app(github.url, keys, waits=waits).installation_ids()
    assert str(refused.value) == (
        f"GET {github.url}/app/installations?per_page=100 -> 503: "
        "giving up after 4 attempts: server error 503 Service Unavailable"
    )
    assert len(waits) == 3


@pytest.mark.integration
def test_unreachable_api(keys: Keys) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = make_app(f"http://127.0.0.1:{port}", keys)
    with pytest.raises(GitHubUnreachableError) as refused:
        app.installation_token(1)
    assert refused.value.reason == "connection refused"
    assert "giving up after 4 attempts" in str(refused.value)
    assert_no_secrets(str(refused.value), app.jwt(), keys.pkcs1)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("reply", "problem", "attempts"),
    [
        (Reply(201, {"expires_at": "2030-01-01T00:00:00Z"}), "no usable 'token'", 1),
        (Reply(201, {"token": "ghs_abcdefgh12345678", "expires_at": "soon"}), "'soon'", 1),
        (Reply(201, {"token": "ghs_abcdefgh12345678"}), "'expires_at' is not an ISO 8601", 1),
        # A body that is not JSON may be a proxy's cut-off answer: the transport retries it.
        (Reply(201, b"ghs_abcdefgh12345678"), "4 attempts: 201 answer whose body is not JSON", 4),
        (
            Reply(302, b"", (("Location", "https://elsewhere.example.com/x?token=sekrit123"),)),
            "redirect leaves the API",
            1,
        ),
    ],
)
def test_malformed_token_answers_show_no_token(
    keys: Keys, serve: Callable[..., Scripted], reply: Reply, problem: str, attempts: int
) -> None:
    github = serve(lambda method, path: reply)
    with pytest.raises((MalformedResponseError, GitHubHTTPError)) as refused:
        make_app(github.url, keys).installation_token(2)
    message = str(refused.value)
    assert problem in message
    assert message.startswith(f"POST {github.url}/app/installations/2/access_tokens -> ")
    assert_no_secrets(message, "ghs_abcdefgh12345678", "sekrit123", keys.pkcs1)
    assert len(github.seen) == attempts


@pytest.mark.integration
def test_rate_limited_app_raises_rate_limit_error(
    keys: Keys, serve: Callable[..., Scripted]
) -> None:
    reset, headers = rate_limit_headers(0, 1800)
    github = serve(lambda method, path: Reply(403, {"message": "API rate limit exceeded"}, headers))
    with pytest.raises(RateLimitError) as limited:
        make_app(github.url, keys).installation_ids()
    assert limited.value.reset_at.timestamp() == reset and not limited.value.secondary
