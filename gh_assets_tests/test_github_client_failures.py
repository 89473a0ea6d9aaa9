"""The GitHub client when GitHub fails, over a real HTTP server: transient failures and timeouts
retried with a growing backoff, rate limits waited for or raised at once, malformed and
oversized answers refused without retry, an unreachable API named in a few words.

No mocks of ``requests``: every test goes through sockets. Waits are recorded, never slept.
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gh_assets import github
from gh_assets.github import GitHubClient, session, transport
from gh_assets.github.errors import GitHubHTTPError, MalformedResponseError, RateLimitError
from gh_assets.github.models import GONE, ListedUser, UserDetail
from gh_assets_tests.github_answers import CREATED, limited, listed, user_body
from gh_assets_tests.replay_server import Replay, Reply, rate_limit_headers

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


# --- rate limits -----------------------------------------------------------------------------


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
