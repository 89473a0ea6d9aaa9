"""What the GitHub client sends, to a real HTTP server: at most ``max_concurrency`` requests at
once across threads, a freed slot to the lowest rank, each caller's own tally; the required
headers, and credentials that go only to the API and never into a message, log or repr.

No mocks of ``requests``: every test goes through sockets. Waits are recorded, never slept.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from gh_assets import github
from gh_assets.github import (
    NOT_MODIFIED,
    GitHubClient,
    GitHubError,
    GitHubHTTPError,
    MalformedResponseError,
    RateLimitError,
    UserDetail,
    concurrency,
    transport,
)
from gh_assets.github.credentials import digest
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.preflight import github_fault
from gh_assets_tests.github_answers import limited, listed, next_link, user_body
from gh_assets_tests.replay_server import TOKEN, Replay, Reply

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
