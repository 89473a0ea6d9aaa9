"""GitHub App authentication (``gh_assets.github.app_auth``).

First without the stand-in: the key loader, the JWT's claims, and token caching on a fake clock
against a small scripted HTTP server (real sockets, no mocks of ``requests``). Then end to end
against the stand-in's App endpoints: installations listed, tokens minted, used and renewed.
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
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gh_assets.github.app_auth import GitHubApp, load_private_key
from gh_assets.github.errors import (
    CredentialRefusedError,
    GitHubConfigError,
    GitHubHTTPError,
    GitHubUnreachableError,
    MalformedResponseError,
    RateLimitError,
)
from gh_assets_devtools.standin import Dataset, StandinServer

from .replay_server import Reply, Seen, rate_limit_headers

APP_ID = "424242"
USER_AGENT = "gh-assets-tests/1 (app auth)"
T0 = 1_800_000_000.0  # the fake clock's start


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    pkcs1: str  # "BEGIN RSA PRIVATE KEY", as GitHub issues App keys
    pkcs8: str
    public: str
    other: str  # another RSA key: one the App does not have


def _pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def keys() -> Keys:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Keys(
        pkcs1=_pem(key, serialization.PrivateFormat.TraditionalOpenSSL),
        pkcs8=_pem(key, serialization.PrivateFormat.PKCS8),
        public=public.decode(),
        other=_pem(other, serialization.PrivateFormat.TraditionalOpenSSL),
    )


def key_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM: none of them may appear in any message."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def assert_no_secrets(text: str, *secrets: str) -> None:
    assert "\n" not in text, text
    for secret in filter(None, secrets):
        for piece in key_body_lines(secret) if "-----BEGIN" in secret else [secret]:
            assert piece not in text, f"a secret leaked into: {text}"


# -- load_private_key --------------------------------------------------------------------------


@pytest.mark.unit
def test_load_private_key_from_text(keys: Keys) -> None:
    assert load_private_key(keys.pkcs1) == keys.pkcs1
    assert load_private_key(keys.pkcs8) == keys.pkcs8
    assert load_private_key(f"\n  {keys.pkcs1}\n\n") == keys.pkcs1
    # One line with literal \n, as .env files and CI secrets often hold it.
    assert load_private_key(keys.pkcs1.strip().replace("\n", "\\n")) == keys.pkcs1


@pytest.mark.unit
def test_load_private_key_from_a_file(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "my-app.2024-01-01.private-key.pem"
    path.write_text(keys.pkcs1)
    assert load_private_key(str(path)) == keys.pkcs1
    assert load_private_key(f"  {path}\n") == keys.pkcs1


@pytest.mark.unit
@pytest.mark.parametrize(
    "case",
    ["empty", "garbage", "body_only", "truncated", "public", "ec", "encrypted", "missing"],
)
def test_load_private_key_refusals_quote_no_key(keys: Keys, case: str, tmp_path: Path) -> None:
    body = "\n".join(key_body_lines(keys.pkcs1))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    values = {
        "empty": "   ",
        "garbage": "not-a-key-at-all",
        "body_only": body,  # the key without its BEGIN/END lines
        "truncated": keys.pkcs1[: len(keys.pkcs1) // 2],
        "public": keys.public,
        "ec": ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "encrypted": rsa.generate_private_key(65537, 2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
        .decode(),
        "missing": str(tmp_path / "nowhere.pem"),
    }
    with pytest.raises(GitHubConfigError) as refused:
        load_private_key(values[case])
    message = str(refused.value)
    assert message.startswith("GITHUB_APP_PRIVATE_KEY"), message
    assert_no_secrets(message, keys.pkcs1, keys.public, values[case] if case != "missing" else "")
    chained = refused.value.__cause__ or (
        None if refused.value.__suppress_context__ else refused.value.__context__
    )
    assert chained is None  # a chained exception could carry the value
    expected = {
        "empty": "GITHUB_APP_PRIVATE_KEY is empty",
        "garbage": "not a PEM private key nor a readable file (read as a path: No such file",
        "body_only": "not a PEM private key nor a readable file",
        "truncated": "not a PEM private key nor a readable file",
        "public": "GITHUB_APP_PRIVATE_KEY: a public key; the App signs with its private key",
        "ec": "GITHUB_APP_PRIVATE_KEY: an EC key, not RSA (GitHub App keys are RSA)",
        "encrypted": "GITHUB_APP_PRIVATE_KEY: the key is encrypted with a passphrase",
        "missing": "(read as a path: No such file or directory)",
    }
    assert expected[case] in message


@pytest.mark.unit
def test_load_private_key_refuses_a_file_that_is_no_key(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(GitHubConfigError, match=r"notes\.txt'\): not a PEM RSA private key$"):
        load_private_key(str(path))
    with pytest.raises(GitHubConfigError, match=r"read as a path: Is a directory"):
        load_private_key(str(tmp_path))


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


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A plain client, to use the tokens the App mints."""
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        yield session


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


def make_app(
    url: str,
    keys: Keys,
    clock: Callable[[], float] = time.time,
    *,
    waits: list[float] | None = None,
    pem: str | None = None,
    **kwargs: Any,
) -> GitHubApp:
    app = GitHubApp(
        APP_ID, pem or keys.pkcs1, url, clock=clock, timeout=5, user_agent=USER_AGENT, **kwargs
    )
    app._http._sleep = (waits if waits is not None else []).append
    return app


# -- the JWT -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_jwt_claims_verify_with_the_public_key(keys: Keys) -> None:
    clock = FakeClock(time.time())
    app = make_app("https://api.github.com", keys, clock)
    token = app.jwt()
    assert pyjwt.get_unverified_header(token)["alg"] == "RS256"
    claims = pyjwt.decode(token, keys.public, algorithms=["RS256"], issuer=APP_ID)
    now = int(clock.now)
    assert claims == {"iat": now - 60, "exp": now + 540, "iss": APP_ID}
    assert claims["exp"] - claims["iat"] <= 600  # GitHub's limit: ten minutes
    with pytest.raises(pyjwt.InvalidSignatureError):
        other_public = serialization.load_pem_private_key(keys.other.encode(), None).public_key()
        pyjwt.decode(token, other_public, algorithms=["RS256"])  # type: ignore[arg-type]


@pytest.mark.unit
def test_jwt_is_cached_until_a_minute_is_left(keys: Keys) -> None:
    clock = FakeClock()
    app = make_app("https://api.github.com", keys, clock)
    first = app.jwt()
    clock.now += 479  # 61 s left
    assert app.jwt() == first
    clock.now += 2  # 59 s left
    second = app.jwt()
    assert second != first
    unchecked = {"verify_exp": False, "verify_iat": False}  # the fake clock is in the future
    claims = pyjwt.decode(second, keys.public, algorithms=["RS256"], options=unchecked)
    assert claims["iat"] == int(clock.now) - 60 and claims["exp"] == int(clock.now) + 540


@pytest.mark.unit
def test_repr_identity_and_config_errors(keys: Keys) -> None:
    app = make_app("https://ghe.example.com/api/v3/", keys)
    assert repr(app) == "GitHubApp(app_id='424242', api_url='https://ghe.example.com/api/v3')"
    assert app.identity(17) == "installation:17"
    with pytest.raises(GitHubConfigError, match="GITHUB_APP_ID"):
        GitHubApp("42 42", keys.pkcs1, "https://api.github.com")
    with pytest.raises(GitHubConfigError, match="expected an http"):
        GitHubApp(APP_ID, keys.pkcs1, "ftp://example.com")
    with pytest.raises(GitHubConfigError, match="carries a user and password") as refused:
        GitHubApp(APP_ID, keys.pkcs1, "https://me:hunter2@api.github.com")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(GitHubConfigError) as refused:
        GitHubApp(APP_ID, keys.pkcs1[:300], "https://api.github.com")
    assert_no_secrets(str(refused.value), keys.pkcs1)


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


# -- end to end, against the stand-in ----------------------------------------------------------

INSTALLATIONS = range(101, 251)  # 150: two pages of /app/installations
INSTALLATION_LIMIT = 1234  # tells an installation's budget from the stand-in's default one


@pytest.fixture
def standin_apps(keys: Keys) -> Iterator[StandinServer]:
    with StandinServer(
        Dataset(size=200, seed=7),
        apps={int(APP_ID): keys.public},
        installations={i: int(APP_ID) for i in INSTALLATIONS},
        installation_limit=INSTALLATION_LIMIT,
    ) as server:
        yield server


def users_page(session: requests.Session, url: str, token: str) -> requests.Response:
    return session.get(
        f"{url}/users?since=0", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


@pytest.mark.integration
def test_standin_lists_installations_and_mints_working_tokens(
    keys: Keys, session: requests.Session, standin_apps: StandinServer
) -> None:
    app = GitHubApp(APP_ID, keys.pkcs1, standin_apps.url)
    assert app.installation_ids() == list(INSTALLATIONS)
    first, second = app.installation_token(101), app.installation_token(250)
    assert first != second
    assert app.installation_token(101) == first  # cached: an hour to go
    for token in (first, second):
        page = users_page(session, standin_apps.url, token)
        assert page.status_code == 200 and len(page.json()) > 0
        assert page.headers["X-RateLimit-Limit"] == str(INSTALLATION_LIMIT)
    # Each installation is a rate-limit identity of its own, named as app.identity names it.
    report = standin_apps.accounts_report()
    assert {app.identity(101), app.identity(250)} <= set(report)


@pytest.mark.integration
@pytest.mark.slow
def test_standin_token_is_renewed_before_it_expires(
    keys: Keys, session: requests.Session, dataset: Dataset
) -> None:
    ttl = 3.0  # GitHub's expires_at is in whole seconds (rounded down): 2 to 3 s left at first
    with StandinServer(
        dataset,
        apps={int(APP_ID): keys.public},
        installations={7: int(APP_ID)},
        installation_token_ttl=ttl,
    ) as standin:
        app = GitHubApp(APP_ID, keys.pkcs1, standin.url, renew_before=1.0)
        first = app.installation_token(7)
        assert app.installation_token(7) == first
        assert users_page(session, standin.url, first).status_code == 200
        time.sleep(2.1)  # under a second left: renewed
        second = app.installation_token(7)
        assert second != first
        time.sleep(1.0)  # the first one has expired; the second has not
        assert users_page(session, standin.url, first).status_code == 401
        assert users_page(session, standin.url, second).status_code == 200
        assert app.installation_token(7) == second


@pytest.mark.integration
def test_standin_refuses_a_wrong_key_in_one_line_without_secrets(
    keys: Keys, standin_apps: StandinServer
) -> None:
    app = GitHubApp(APP_ID, keys.other, standin_apps.url)
    app._http._sleep = pytest.fail  # a 401 is not retried
    for call in (app.installation_ids, lambda: app.installation_token(101)):
        with pytest.raises(CredentialRefusedError) as refused:
            call()
        message = str(refused.value)
        assert refused.value.status == 401
        refusal = "-> 401: A JSON web token could not be decoded: GitHub refused the App's JWT"
        assert refusal in message
        assert "GITHUB_APP_ID" in message and "GITHUB_APP_PRIVATE_KEY" in message
        assert_no_secrets(message, app.jwt(), keys.other, keys.pkcs1)
    assert standin_apps.stats()["requests"]["by_status"] == {"401": 2}
