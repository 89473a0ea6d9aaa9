"""The GitHub client reading GitHub's answers, replayed by a real HTTP server: every recorded
answer in the repository understood, pages followed through their Link headers and redirects
within the API (none out of it), ETags kept opaque and sent back weak.

No mocks of ``requests``: every test goes through sockets. Waits are recorded, never slept.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gh_assets.github import (
    GONE,
    NOT_MODIFIED,
    GitHubClient,
    GitHubHTTPError,
    ListedUser,
    MalformedResponseError,
    RateLimitError,
    UserDetail,
    ratelimit,
)
from gh_assets.user_fields import epoch_seconds
from gh_assets_tests import RECORDINGS
from gh_assets_tests.github_answers import CREATED, listed, next_link, user_body
from gh_assets_tests.replay_server import TOKEN, Replay, Reply

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
