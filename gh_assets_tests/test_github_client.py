"""The GitHub client against a real HTTP server replaying recorded and scripted GitHub answers.

No mocks of ``requests``: every test goes through sockets. Waits are recorded, never slept.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from gh_assets import github
from gh_assets.github import (
    GONE,
    NOT_MODIFIED,
    GitHubClient,
    GitHubError,
    GitHubHTTPError,
    ListedUser,
    MalformedResponseError,
    RateLimitError,
    UserDetail,
    concurrency,
    ratelimit,
    session,
    transport,
)
from gh_assets.github.credentials import digest
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.preflight import github_fault
from gh_assets.user_fields import epoch_seconds
from gh_assets_tests import RECORDINGS
from gh_assets_tests.replay_server import TOKEN, Replay, Reply, rate_limit_headers

RECORDED = sorted(p.name for p in RECORDINGS.glob("*.json"))
# Recorded headers the replay server must not repeat: framing and encoding belong to the new
# exchange (bodies are stored decoded), and http.server adds its own Date and Server.
NOT_REPLAYED = {
    "status",
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "connection",
    "date",
    "server",
}
ETAG64 = "cdcdd165941281cdc3948a0cdff00dcb40d91a0ba044e67272d5b433326e8f81"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make_client(replay: Replay, waits: list[float]) -> Iterator[Callable[..., GitHubClient]]:
    """Clients on the replay server whose sleeps are recorded in ``waits`` instead of slept."""
    clients: list[GitHubClient] = []

    def make(api_url: str | None = None, **kwargs: Any) -> GitHubClient:
        kwargs.setdefault("max_retries", 3)
        kwargs.setdefault("timeout", 5.0)
        client = GitHubClient(api_url or replay.url, **kwargs)
        client._sleep = waits.append
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


CREATED = 1200285215  # 2008-01-14T04:33:35Z, the created_at of user_body, as epoch seconds


def user_body(user_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": user_id,
        "login": f"user{user_id}",
        "type": "User",
        "public_repos": 1,
        "public_gists": 2,
        "followers": 3,
        "following": 4,
        "created_at": "2008-01-14T04:33:35Z",
    }
    return body | overrides


def listed(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "login": f"user{i}", "type": "User"} for i in ids]


def next_link(url: str) -> tuple[str, str]:
    return ("Link", f'<{url}>; rel="next", <{url.split("?")[0]}{{?since}}>; rel="first"')


# --- every recording -------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    return json.loads((RECORDINGS / name).read_text())


def recorded_reply(recording: dict[str, Any], base_url: str) -> Reply:
    """The recorded answer, its Link header pointed at the replay server."""
    response = recording["response"]
    headers = [
        (
            name,
            value.replace("https://api.github.com", base_url) if name.lower() == "link" else value,
        )
        for name, value in response["headers"]
        if name.lower() not in NOT_REPLAYED
    ]
    body = response["body"]
    return Reply(
        response["status"], body if body is not None else response["body_text"].encode(), headers
    )


def header(recording: dict[str, Any], name: str) -> str | None:
    values = [v for k, v in recording["response"]["headers"] if k.lower() == name.lower()]
    return values[0] if values else None


def opaque(etag: str | None) -> str | None:
    match = re.fullmatch(r'(?:W/)?"([^"]*)"', etag or "")
    return match.group(1) if match else None


@pytest.mark.unit
def test_the_recordings_are_in_the_repository() -> None:
    """A fresh clone replays every recording (none is skipped for a folder outside the repo)."""
    assert len(RECORDED) == 19 and RECORDED[0].startswith("01_list_users")
    assert len(list((RECORDINGS / "schemas").glob("*.jsonschema.json"))) == 7


@pytest.mark.integration
@pytest.mark.parametrize("name", RECORDED)
def test_every_recording_is_understood(
    name: str, replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    recording = load(name)
    reply = recorded_reply(recording, replay.url)
    status, body = reply.status, recording["response"]["body"]
    client = make_client(max_retries=2)

    if status == 200 and isinstance(body, list):
        replay.queue(reply)
        users = client.list_users(body[0]["id"], body[-1]["id"])
        assert users == [ListedUser(u["id"], u["login"], u["type"], u.get("node_id")) for u in body]
        assert replay.seen[0].path == f"/users?since={body[0]['id'] - 1}&per_page=100"
    elif status == 200:
        replay.queue(reply)
        user = client.get_user(body["id"])
        counters = ("public_repos", "public_gists", "followers", "following")
        assert user == UserDetail(
            body["id"],
            body["login"],
            body["type"],
            *(body[c] for c in counters),
            epoch_seconds(body["created_at"]),  # GitHub's "2008-01-14T04:33:35Z", kept as seconds
            etag=opaque(header(recording, "ETag")),
            etag_auth="anonymous",  # the credential that got the ETag: none here
        )
        assert user.etag and len(user.etag) in (32, 64)
        remaining = header(recording, "X-RateLimit-Remaining")
        assert client.stats.rate_limit_remaining == (int(remaining) if remaining else None)
    elif status == 304:
        replay.queue(reply)
        etag = opaque(recording["request"]["headers"]["If-None-Match"])
        assert client.get_user(1, etag) is NOT_MODIFIED
        assert replay.seen[0].headers["if-none-match"] == f'W/"{etag}"'
        assert (client.stats.not_modified, client.stats.rate_limit_remaining) == (
            1,
            int(header(recording, "X-RateLimit-Remaining") or 0),
        )
    elif status == 404:
        replay.queue(reply)
        assert client.get_user(1) is GONE
    elif status == 403 and header(recording, "Retry-After"):
        replay.queue(reply, Reply(200, user_body(1)))
        assert client.get_user(1) == UserDetail(1, "user1", "User", 1, 2, 3, 4, CREATED)
        assert waits == [float(header(recording, "Retry-After") or 0)]
    elif status == 403:
        assert header(recording, "X-RateLimit-Remaining") == "0"
        replay.queue(reply)
        with pytest.raises(RateLimitError) as raised:
            client.get_user(1)
        assert not raised.value.secondary and waits == []
        # Recorded before GitHub sent X-RateLimit-Reset: assume a whole hour's window.
        expected = datetime.now(UTC).timestamp() + ratelimit.PRIMARY_WINDOW
        assert raised.value.reset_at.timestamp() == pytest.approx(expected, abs=5)
        # With a reset two seconds ahead the client waits for it and retries instead.
        reset = ("X-RateLimit-Reset", str(int(time.time()) + 2))
        replay.queue(Reply(403, body, [*reply.headers, reset]), Reply(200, user_body(1)))
        assert isinstance(client.get_user(1), UserDetail)
        assert len(waits) == 1 and 1 <= waits[0] <= 3.5
    elif status == 503:
        replay.queue(reply, Reply(200, user_body(1)))
        assert isinstance(client.get_user(1), UserDetail)
        replay.queue(*[reply] * 3)
        with pytest.raises(GitHubHTTPError, match="giving up after 3 attempts") as raised:
            client.get_user(1)
        assert raised.value.status == 503 and len(waits) == 3
    else:
        pytest.fail(f"{name}: no expectation for status {status}")


@pytest.mark.integration
def test_recorded_pages_chain_through_their_link_headers(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    first, second = (
        load("01_list_users_first_page_2013.json"),
        load("02_list_users_since_135_2013.json"),
    )
    replay.queue(recorded_reply(first, replay.url), recorded_reply(second, replay.url))
    users = make_client().list_users(1, 200)
    bodies = first["response"]["body"] + second["response"]["body"]
    assert [(u.id, u.login) for u in users] == [
        (b["id"], b["login"]) for b in bodies if b["id"] <= 200
    ]
    assert [s.path for s in replay.seen] == ["/users?since=0&per_page=100", "/users?since=135"]
    assert [u.type for u in users] == [b["type"] for b in bodies if b["id"] <= 200]
    assert "Organization" in {u.type for u in users}


# --- paging ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_pages_follow_next_links_under_a_path_prefix(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    base = f"{replay.url}/api/v3"
    replay.queue(
        Reply(200, listed(5, 8), [next_link(f"{base}/users?per_page=100&since=8")]),
        Reply(200, listed(9, 12, 20), [next_link(f"{base}/users?per_page=100&since=20")]),
    )
    users = make_client(f"{base}/").list_users(4, 12)
    assert [u.id for u in users] == [5, 8, 9, 12]
    assert [s.path for s in replay.seen] == [
        "/api/v3/users?since=3&per_page=100",
        "/api/v3/users?per_page=100&since=8",
    ]


@pytest.mark.integration
def test_paging_stops_without_a_next_link_or_on_an_empty_page(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    client = make_client()
    replay.queue(Reply(200, listed(1, 2)))
    assert [u.id for u in client.list_users(1, 100)] == [1, 2]
    replay.queue(Reply(200, [], [next_link(f"{replay.url}/users?since=5")]))
    assert client.list_users(1, 100) == []
    assert client.list_users(10, 9) == []
    assert len(replay.seen) == 2


@pytest.mark.integration
def test_a_next_link_to_another_host_is_refused(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.queue(Reply(200, listed(1), [next_link("http://evil.example/users?since=1")]))
    with pytest.raises(MalformedResponseError, match=r"leaves the API: http://evil\.example"):
        make_client(token=TOKEN).list_users(1, 10)
    assert len(replay.seen) == 1


@pytest.mark.integration
def test_a_redirect_to_another_origin_is_refused(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    elsewhere = replay.url.replace("127.0.0.1", "localhost")  # this server under another name
    replay.queue(
        Reply(302, b"", [("Location", f"{elsewhere}/users?since=0&per_page=100")]),
        Reply(200, []),  # what following it would get: an empty page, emptying the stored one
    )
    with pytest.raises(MalformedResponseError) as raised:
        make_client(token=TOKEN).list_users(1, 10)
    assert str(raised.value) == (
        f"GET {replay.url}/users?since=0&per_page=100 -> 302: redirect leaves the API: "
        f"{elsewhere}/users?since=0&per_page=100"
    )
    assert len(replay.seen) == 1


@pytest.mark.integration
def test_a_redirect_within_the_api_is_followed(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.queue(
        Reply(301, b"", [("Location", "/moved/users?since=0&per_page=100")]),
        Reply(200, listed(1, 2)),
    )
    assert [u.id for u in make_client(token=TOKEN).list_users(1, 10)] == [1, 2]
    assert [s.path for s in replay.seen] == [
        "/users?since=0&per_page=100",
        "/moved/users?since=0&per_page=100",
    ]
    assert [s.headers["authorization"] for s in replay.seen] == [f"Bearer {TOKEN}"] * 2


@pytest.mark.integration
def test_a_frontier_probe_reports_the_real_status(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.queue(Reply(404, {"message": "Not Found"}))
    with pytest.raises(GitHubHTTPError) as raised:
        make_client().users_after(5)
    assert type(raised.value) is GitHubHTTPError and raised.value.status == 404
    assert str(raised.value) == (
        f"GET {replay.url}/users?since=5&per_page=100 -> 404: unexpected status for a users page"
    )


# --- retries ---------------------------------------------------------------------------------


@pytest.fixture
def top_of_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make full jitter pick its upper bound so the backoff curve is visible."""
    monkeypatch.setattr(transport.random, "uniform", lambda low, high: high)


@pytest.mark.integration
@pytest.mark.usefixtures("top_of_jitter")
@pytest.mark.parametrize(
    "failure",
    [
        Reply(500, {"message": "Server Error"}),
        Reply(502, b"<html>Bad Gateway</html>"),
        Reply(503, b""),
        Reply(drop=True),
        Reply(200, b"<html>not json</html>"),
    ],
    ids=["500", "502", "503", "reset", "non-json-200"],
)
def test_transient_failures_are_retried_with_growing_backoff(
    failure: Reply, replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    client = make_client(max_retries=4, backoff_base=0.5, backoff_max=3.0)
    replay.queue(*[failure] * 3, Reply(200, user_body(7)))
    assert client.get_user(7) == UserDetail(7, "user7", "User", 1, 2, 3, 4, CREATED)
    assert waits == [0.5, 1.0, 2.0]
    assert (client.stats.requests, client.stats.retries) == (4, 3)

    replay.queue(*[failure] * 5)
    with pytest.raises(GitHubHTTPError, match="giving up after 5 attempts") as raised:
        client.get_user(7)
    assert waits[3:] == [0.5, 1.0, 2.0, 3.0]  # capped at backoff_max
    assert f"{replay.url}/user/7" in str(raised.value)
    assert len(replay.seen) == 9


@pytest.mark.integration
def test_timeouts_are_retried_then_reported(
    replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    client = make_client(timeout=0.2, max_retries=2)
    replay.queue(*[Reply(200, user_body(1), delay=0.5)] * 3)
    with pytest.raises(GitHubHTTPError, match=r"giving up after 3 attempts.*Timeout") as raised:
        client.get_user(1)
    assert raised.value.status is None and "no response" in str(raised.value)
    assert len(waits) == 2 and client.stats.requests == 3


@pytest.mark.integration
def test_jitter_stays_within_the_exponential_bound(
    replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    client = make_client(max_retries=6, backoff_base=1.0, backoff_max=10.0)
    replay.queue(*[Reply(502)] * 7)
    with pytest.raises(GitHubHTTPError):
        client.get_user(1)
    assert all(0 <= w <= min(10.0, 2**i) for i, w in enumerate(waits)) and len(waits) == 6


# --- rate limits -----------------------------------------------------------------------------


def limited(status: int, message: str, *headers: tuple[str, str]) -> Reply:
    return Reply(status, {"message": message}, headers)


@pytest.mark.integration
def test_429_with_retry_after_waits_that_long(
    replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    client = make_client()
    replay.queue(limited(429, "Too Many Requests", ("Retry-After", "7")), Reply(200, user_body(1)))
    assert isinstance(client.get_user(1), UserDetail)
    assert waits == [7.0]
    assert (client.stats.requests, client.stats.retries) == (2, 1)


@pytest.mark.integration
def test_exhausted_primary_budget_waits_for_a_near_reset(
    replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    _, headers = rate_limit_headers(0, 2)
    replay.queue(limited(403, "API rate limit exceeded", *headers), Reply(200, user_body(1)))
    client = make_client()
    assert isinstance(client.get_user(1), UserDetail)
    assert len(waits) == 1 and 1 <= waits[0] <= 3.5
    assert client.stats.rate_limit_remaining is None  # the 200 carried no rate-limit headers


@pytest.mark.integration
@pytest.mark.parametrize("status", [403, 429])
def test_a_distant_reset_raises_at_once(
    status: int, replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    reset, headers = rate_limit_headers(0, 7200)
    replay.queue(limited(status, "API rate limit exceeded for user ID 1.", *headers))
    client = make_client()
    started = time.monotonic()
    with pytest.raises(RateLimitError) as raised:
        client.get_user(1)
    assert time.monotonic() - started < 2 and waits == [] and len(replay.seen) == 1
    error = raised.value
    assert error.reset_at == datetime.fromtimestamp(reset, UTC)
    assert not error.secondary and error.status == status
    assert f"resets at {error.reset_at:%Y-%m-%dT%H:%M:%SZ}" in str(error)
    assert "(primary)" in str(error) and "in 120 min" in str(error)
    assert (client.stats.rate_limit_remaining, client.stats.rate_limit_reset) == (0, error.reset_at)


@pytest.mark.integration
def test_secondary_limit_without_retry_after_waits_a_minute_doubling(
    replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    message = "You have exceeded a secondary rate limit. Please wait a few minutes."
    replay.queue(*[limited(403, message)] * 3, Reply(200, user_body(1)))
    assert isinstance(make_client(max_rate_limit_wait=1000).get_user(1), UserDetail)
    assert waits == [60.0, 120.0, 240.0]

    replay.queue(limited(429, "slow down"), limited(429, "slow down"))
    with pytest.raises(RateLimitError, match=r"\(secondary\)") as raised:
        make_client().get_user(1)  # the second wait, 120 s, is over max_rate_limit_wait
    assert raised.value.secondary and waits[3:] == [60.0]


@pytest.mark.integration
def test_rate_limit_waits_are_bounded(
    replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    replay.queue(*[limited(403, "abuse", ("Retry-After", "1"))] * 10)
    with pytest.raises(RateLimitError):
        make_client().get_user(1)
    assert waits == [1.0] * transport.MAX_RATE_LIMIT_WAITS


@pytest.mark.integration
def test_a_plain_403_is_forbidden_not_limited(
    replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    replay.queue(limited(403, "Resource not accessible by integration"))
    with pytest.raises(GitHubHTTPError, match="Resource not accessible") as raised:
        make_client().get_user(1)
    assert type(raised.value) is GitHubHTTPError and raised.value.status == 403
    assert waits == [] and len(replay.seen) == 1


@pytest.mark.integration
def test_rate_limit_headers_are_tracked(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    reset, headers = rate_limit_headers(4999, 600)
    replay.queue(Reply(200, user_body(1), headers), Reply(404, {"message": "Not Found"}))
    client = make_client()
    client.get_user(1)
    assert client.stats.rate_limit_remaining == 4999
    assert client.stats.rate_limit_reset == datetime.fromtimestamp(reset, UTC)
    assert client.get_user(2) is GONE
    assert (client.stats.rate_limit_remaining, client.stats.rate_limit_reset) == (None, None)


# --- malformed answers -----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "page",
    [
        {"message": "not a list"},
        [1, 2],
        [{"login": "a", "type": "User"}],
        [{"id": "1", "login": "a", "type": "User"}],
        [{"id": True, "login": "a", "type": "User"}],
        [{"id": 1, "login": None, "type": "User"}],
        [{"id": 1, "login": "a"}],
        listed(3, 2),
    ],
    ids=[
        "object",
        "numbers",
        "no-id",
        "string-id",
        "bool-id",
        "null-login",
        "no-type",
        "unordered",
    ],
)
def test_malformed_pages_are_refused_without_retry(
    page: Any, replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    replay.queue(Reply(200, page))
    with pytest.raises(MalformedResponseError) as raised:
        make_client().list_users(1, 100)
    assert f"{replay.url}/users?since=0&per_page=100" in str(raised.value)
    assert raised.value.status == 200 and len(replay.seen) == 1 and waits == []


@pytest.mark.integration
@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in user_body(1).items() if k != "followers"},
        user_body(1, public_repos=-1),
        user_body(1, following="4"),
        user_body(1, public_gists=True),
        user_body(1, followers=10**12),
        user_body(1, followers=3.0),
        user_body(2),
        [user_body(1)],
    ],
    ids=["missing", "negative", "string", "bool", "absurd", "float", "other-user", "list"],
)
def test_malformed_users_are_refused_without_retry(
    body: Any, replay: Replay, make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    replay.queue(Reply(200, body))
    with pytest.raises(MalformedResponseError, match=f"GET {replay.url}/user/1 -> 200"):
        make_client().get_user(1)
    assert len(replay.seen) == 1 and waits == []


@pytest.fixture
def body_limit_1000(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies above 1,000 bytes (decoded) refused: a limit a test can reach."""
    monkeypatch.setattr(session, "MAX_BODY_BYTES", 1000)


@pytest.mark.integration
@pytest.mark.usefixtures("body_limit_1000")
def test_oversized_bodies_are_refused(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.queue(Reply(200, user_body(1, bio="x" * 2000)))
    with pytest.raises(MalformedResponseError, match="larger than 1000 bytes"):
        make_client().get_user(1)
    assert len(replay.seen) == 1


@pytest.mark.integration
@pytest.mark.usefixtures("body_limit_1000")
def test_gzip_bodies_are_measured_decompressed(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    gzipped = [("Content-Encoding", "gzip")]
    small = gzip.compress(json.dumps(user_body(1)).encode())
    bomb = gzip.compress(json.dumps(user_body(1, bio="x" * 50_000)).encode())
    assert len(bomb) < 1000
    replay.queue(Reply(200, small, gzipped), Reply(200, bomb, gzipped))
    client = make_client()
    assert isinstance(client.get_user(1), UserDetail)
    with pytest.raises(MalformedResponseError, match="larger than 1000 bytes"):
        client.get_user(1)


@pytest.mark.integration
def test_organizations_and_old_bodies_without_node_id_parse(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.queue(Reply(200, [{"id": 9, "login": "org", "type": "Organization", "node_id": "X"}]))
    replay.queue(Reply(200, listed(3)))
    client = make_client()
    assert client.list_users(9, 9) == [ListedUser(9, "org", "Organization", "X")]
    assert client.list_users(3, 3) == [ListedUser(3, "user3", "User", None)]


# --- conditional requests --------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("etag_header", "expected"),
    [
        (f'W/"{ETAG64}"', ETAG64),
        ('"ded215d39a497c6d2de00dd5e5a5deb6"', "ded215d39a497c6d2de00dd5e5a5deb6"),
    ],
    ids=["weak", "strong"],
)
def test_etags_are_kept_opaque_and_sent_back_weak(
    etag_header: str,
    expected: str,
    replay: Replay,
    make_client: Callable[..., GitHubClient],
) -> None:
    client = make_client()
    replay.queue(Reply(200, user_body(1), [("ETag", etag_header)]), Reply(304))
    user = client.get_user(1)
    assert isinstance(user, UserDetail) and user.etag == expected
    assert client.get_user(1, user.etag) is NOT_MODIFIED
    assert "if-none-match" not in replay.seen[0].headers
    assert replay.seen[1].headers["if-none-match"] == f'W/"{expected}"'
    assert (client.stats.requests, client.stats.not_modified) == (2, 1)


@pytest.mark.integration
def test_a_user_without_etag_has_none(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.queue(Reply(200, user_body(1)))
    assert make_client().get_user(1) == UserDetail(
        1, "user1", "User", 1, 2, 3, 4, CREATED, etag=None
    )


# --- concurrency -----------------------------------------------------------------------------


def by_id(path: str) -> int:
    match = re.fullmatch(r"/user/(\d+)", path)
    assert match, path
    return int(match.group(1))


@pytest.mark.integration
def test_get_users_keeps_at_most_max_concurrency_in_flight(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.route = lambda path: (
        Reply(304, delay=0.05)
        if by_id(path) % 4 == 0
        else Reply(200, user_body(by_id(path)), delay=0.05)
    )
    client = make_client(max_concurrency=3)
    answers = client.get_users([(i, "e" if i % 4 == 0 else None) for i in range(1, 16)])
    assert sorted(answers) == list(range(1, 16))
    assert all(answers[i] is NOT_MODIFIED for i in (4, 8, 12))
    assert all(isinstance(answers[i], UserDetail) and answers[i].id == i for i in (1, 2, 15))
    assert 1 < replay.peak <= 3
    assert (client.stats.requests, client.stats.not_modified) == (15, 3)
    assert client.get_users([]) == {}


@pytest.mark.integration
def test_get_users_stops_at_the_first_error(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.route = lambda path: (
        Reply(401, {"message": "Bad credentials"})
        if by_id(path) == 5
        else Reply(200, user_body(by_id(path)), delay=0.2)
    )
    with pytest.raises(GitHubHTTPError, match="Bad credentials") as raised:
        make_client(max_concurrency=3).get_users([(i, None) for i in range(1, 31)])
    assert raised.value.status == 401
    assert len(replay.seen) < 12  # the rest were cancelled before they started


@pytest.mark.integration
def test_max_concurrency_bounds_the_whole_client_across_threads(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.route = lambda path: (
        Reply(200, listed(1, 2), delay=0.05)
        if path.startswith("/users")
        else Reply(200, user_body(by_id(path)), delay=0.05)
    )
    client = make_client(max_concurrency=3)
    calls = [lambda: client.list_users(1, 2)] + [
        lambda first=first: client.get_users([(i, None) for i in range(first, first + 6)])
        for first in (1, 11, 21)
    ]
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replay.seen) == client.stats.requests == 19
    assert replay.peak == 3  # 4 callers with 3 to 6 requests each, never more than 3 at once


@pytest.mark.unit
def test_a_freed_slot_goes_to_the_lowest_rank_then_the_longest_waiting() -> None:
    slots = concurrency._Slots(1)
    slots.__enter__()  # the only slot is taken
    order: list[str] = []

    def take(name: str, rank: int) -> None:
        with github.request_rank(rank), slots:
            order.append(name)

    threads = []
    for name, rank in (("late-2", 2), ("first-1", 1), ("second-1", 1), ("only-0", 0)):
        threads.append(threading.Thread(target=take, args=(name, rank)))
        threads[-1].start()
        while len(slots._waiting) < len(threads):  # queued, in this order
            time.sleep(0.001)
    slots.__exit__(None, None, None)
    for thread in threads:
        thread.join()
    assert order == ["only-0", "first-1", "second-1", "late-2"]
    with pytest.raises(ValueError, match="released more often"):
        slots.__exit__(None, None, None)


@pytest.mark.integration
def test_a_backoff_sleep_holds_no_request_slot(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.route = lambda path: Reply(502) if by_id(path) == 1 else Reply(200, user_body(2))
    client = make_client(max_concurrency=1, max_retries=1)
    during: list[Any] = []

    def sleep(seconds: float) -> None:  # another thread's request goes through meanwhile
        other = threading.Thread(target=lambda: during.append(client.get_user(2)), daemon=True)
        other.start()
        other.join(10)
        assert not other.is_alive(), "the sleeping request kept the only slot"

    client._sleep = sleep
    with pytest.raises(GitHubHTTPError, match="giving up after 2 attempts"):
        client.get_user(1)
    assert [d.id for d in during] == [2]


@pytest.mark.integration
def test_a_request_tally_counts_its_own_requests_and_retries_in_worker_threads(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    failed: set[int] = set()

    def route(path: str) -> Reply:
        user_id = by_id(path)
        if user_id % 3 == 0 and user_id not in failed:  # every third user needs one retry
            failed.add(user_id)
            return Reply(502)
        return Reply(200, user_body(user_id), delay=0.02)

    replay.route = route
    client = make_client(max_concurrency=4)
    tallies: dict[int, int] = {}

    def batch(first: int) -> None:
        with github.request_tally() as tally:
            client.get_users([(i, None) for i in range(first, first + 9)])
        tallies[first] = tally.requests

    threads = [threading.Thread(target=batch, args=(first,)) for first in (1, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tallies == {1: 12, 10: 12}  # 9 users, 3 of them twice
    assert client.stats.requests == len(replay.seen) == 24


# --- headers and secrets ---------------------------------------------------------------------


@pytest.mark.integration
def test_required_headers_are_sent(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    replay.queue(Reply(200, user_body(1)), Reply(200, user_body(1)))
    make_client(token=TOKEN).get_user(1)
    make_client(user_agent="tests/1").get_user(1)
    with_token, anonymous = (s.headers for s in replay.seen)
    assert with_token["authorization"] == f"Bearer {TOKEN}"
    assert with_token["accept"] == "application/vnd.github+json"
    assert with_token["x-github-api-version"] == "2022-11-28"
    assert with_token["user-agent"].startswith("gh-assets/")
    assert "authorization" not in anonymous and anonymous["user-agent"] == "tests/1"


@pytest.mark.integration
def test_the_token_never_leaks(
    replay: Replay,
    make_client: Callable[..., GitHubClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(token=TOKEN, max_retries=1)
    far = str(int(time.time()) + 7200)
    replay.queue(
        Reply(200, {"message": "not a list"}),
        limited(
            403,
            "API rate limit exceeded",
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", far),
        ),
        limited(403, f"token Bearer {TOKEN} lacks a scope"),  # a server echoing the credential
        limited(401, "Bad credentials"),
        Reply(502),
        Reply(502),
        Reply(drop=True),
        Reply(drop=True),
        Reply(200, listed(1), [next_link(f"{replay.url}/users?since=1&access_token=hunter2")]),
        Reply(200, "not a page"),
    )
    errors: list[GitHubError] = []
    for call in (
        lambda: client.list_users(1, 10),
        lambda: client.get_user(1),
        lambda: client.get_user(1),
        lambda: client.get_user(1),
        lambda: client.get_user(1),
        lambda: client.get_user(1),
        lambda: client.list_users(1, 10),
    ):
        with pytest.raises(GitHubError) as raised:
            call()
        errors.append(raised.value)
    kinds = {type(e) for e in errors}
    assert kinds == {MalformedResponseError, RateLimitError, GitHubHTTPError}
    assert "access_token=***" in str(errors[-1]) and "hunter2" not in str(errors[-1])
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in replay.seen)
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [r.getMessage() for r in caplog.records] + [repr(client), repr(client.stats)]
    assert caplog.records and not [t for t in texts if "SECRET" in t]
    assert (
        repr(client)
        == f"GitHubClient(api_url='{replay.url}', authenticated=True, max_concurrency=32)"
    )


@pytest.mark.integration
def test_a_netrc_entry_for_the_api_host_is_never_sent(
    replay: Replay,
    make_client: Callable[..., GitHubClient],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login octo password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))  # requests reads it as it would ~/.netrc
    replay.queue(Reply(200, listed(5)), Reply(200, listed(6)))
    assert [u.id for u in make_client(token="tok-123").list_users(4, 5)] == [5]
    assert [u.id for u in make_client().list_users(5, 6)] == [6]
    assert [s.headers.get("authorization") for s in replay.seen] == ["Bearer tok-123", None]


@pytest.mark.unit
def test_urls_in_messages_lose_their_credentials() -> None:
    assert (
        transport.safe_url("https://user:pw@ghe.example/api/v3/users?since=5&client_secret=s#x")
        == "https://ghe.example/api/v3/users?since=5&client_secret=***"
    )
    assert "pw" not in repr(GitHubClient("https://user:pw@ghe.example/api/v3"))


@pytest.mark.integration
def test_a_user_and_password_in_the_api_url_go_with_every_request_to_the_api(
    replay: Replay, make_client: Callable[..., GitHubClient]
) -> None:
    host = replay.url.split("://")[1]
    client = make_client(f"http://octo:hunter2@{host}/api/v3")
    replay.queue(
        Reply(200, listed(5, 8), [next_link(f"{replay.url}/api/v3/users?per_page=100&since=8")]),
        Reply(200, listed(9)),
        Reply(401, {"message": "Bad credentials for hunter2"}),  # a server echoing it
    )
    assert [u.id for u in client.list_users(5, 12)] == [5, 8, 9]  # the next link has no password
    basic = "Basic " + base64.b64encode(b"octo:hunter2").decode()
    assert [s.headers.get("authorization") for s in replay.seen] == [basic, basic]
    with pytest.raises(GitHubHTTPError) as raised:
        client.get_user(1)
    assert str(raised.value) == f"GET {replay.url}/api/v3/user/1 -> 401: Bad credentials for ***"
    assert repr(client) == (
        f"GitHubClient(api_url='{replay.url}/api/v3', authenticated=True, max_concurrency=32)"
    )
    with pytest.raises(github.GitHubConfigError, match="carries a user and password"):
        GitHubClient(f"http://octo:hunter2@{host}", TOKEN)
    ids = {GitHubClient(f"http://{who}@{host}")._credentials[0].digest for who in ("a:1", "b:2")}
    assert len(ids) == 2 and all(i.startswith("sha256:") for i in ids)


@pytest.mark.integration
def test_an_unreachable_api_is_named_in_a_few_words(
    make_client: Callable[..., GitHubClient], waits: list[float]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(github.GitHubUnreachableError) as raised:
        make_client(dead, max_retries=1).get_user(1)
    assert (raised.value.reason, raised.value.status, len(waits)) == ("connection refused", None, 1)
    assert str(raised.value) == (
        f"GET {dead}/user/1 -> no response: giving up after 2 attempts: "
        "ConnectionError: connection refused"
    )


@pytest.mark.integration
@pytest.mark.slow
def test_a_refused_token_of_several_is_named_by_number_and_digest(
    replay: Replay, redis_url: str, key_prefix: str
) -> None:
    def route(path: str) -> Reply:
        token = replay.seen[-1].headers.get("authorization", "")
        if path == "/user":
            if token.endswith("second"):
                return Reply(401, {"message": "Bad credentials"})
            return Reply(200, {"login": "octo", "id": 5})
        return Reply(200, user_body(1))

    replay.route = route
    governor = Governor(redis.Redis.from_url(redis_url), GovernorLimits(), key_prefix)
    with (
        GitHubClient(replay.url, "first,second", governor=governor) as client,
        pytest.raises(github.CredentialRefusedError) as raised,
    ):
        client.get_user(1)
    assert raised.value.which == f"GITHUB_TOKEN #2 ({digest('second')})"
    fault = github_fault(raised.value, replay.url, "first,second")
    assert fault == f"GITHUB_TOKEN #2 ({digest('second')}): GitHub refused it (401 Bad credentials)"
    assert "second" not in str(raised.value).replace(digest("second"), "")
