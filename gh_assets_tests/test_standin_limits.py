"""The stand-in's secondary limits over real HTTP, per account: points per rolling minute (REST
and GraphQL apart), requests in flight, blocks that grow while the account keeps sending, and a
refusal provoked on demand.

Minutes here last one or two seconds and the limits are tiny, so each test takes seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import requests

from gh_assets_devtools.standin import StandinAdmin, StandinServer

from .standin_accounts import (
    RATE_LIMIT_QUERY,
    TOK_A,
    TOK_B,
    TOK_C,
    TOKENS,
    assert_secondary,
    auth,
    remaining,
)
from .standin_fixtures import UA
from .standin_fixtures import http as http
from .standin_fixtures import start as start

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.parametrize(("retry_after", "status"), [(True, 403), (False, 429)])
def test_over_the_rest_points_of_a_minute_is_a_secondary_refusal_not_charged(
    start: Callable[..., StandinServer], http: requests.Session, retry_after: bool, status: int
) -> None:
    server = start(
        tokens=TOKENS,
        minute=1.0,
        rest_points_per_minute=3,
        secondary_retry_after=retry_after,
        secondary_status=status,
    )
    url = f"{server.url}/user/1"
    assert [remaining(http.get(url, headers=auth(TOK_A))) for _ in range(3)] == [4999, 4998, 4997]
    refused = http.get(url, headers=auth(TOK_B))  # the same account
    assert_secondary(refused, status, "1" if retry_after else None)
    assert refused.headers["X-RateLimit-Remaining"] == "4997"  # not 0: the primary is fine
    assert refused.headers["X-RateLimit-Used"] == "3"
    assert refused.headers["X-RateLimit-Resource"] == "core"
    assert http.get(url, headers=auth(TOK_C)).status_code == 200  # bob is not limited
    assert_secondary(  # /rate_limit is free on primary, not on secondary
        http.get(f"{server.url}/rate_limit", headers=auth(TOK_A)),
        status,
        "1" if retry_after else None,
    )

    time.sleep(1.1)  # the block (one minute) ends a minute after the last refused request
    again = http.get(url, headers=auth(TOK_A))
    assert again.status_code == 200 and remaining(again) == 4996  # refusals were not charged
    alice = server.accounts_report()["alice"]
    assert alice["requests"]["rest"] == 4 and alice["secondary_refusals"] == 2
    assert [a[2] for a in alice["arrivals"]] == [None] * 3 + ["secondary"] * 2 + [None]
    (block,) = alice["blocks"]
    assert block["start"] == alice["arrivals"][3][0] and block["arrivals"] == 1
    assert block["end"] == pytest.approx(alice["arrivals"][4][0] + 1.0)


@pytest.mark.slow
def test_the_block_grows_while_the_account_keeps_sending_and_ends_after(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS, minute=1.0, rest_points_per_minute=2, secondary_block=0.6)
    url = f"{server.url}/user/1"
    assert [http.get(url, headers=auth(TOK_A)).status_code for _ in range(2)] == [200, 200]
    first = http.get(url, headers=auth(TOK_A))
    assert_secondary(first, 403, "1")  # ceil(0.6)
    sent_until = time.time() + 1.3  # well past the 0.6 s the first refusal alone would block
    while time.time() < sent_until:
        time.sleep(0.2)
        assert_secondary(http.get(url, headers=auth(TOK_A)), 403, "1")
    time.sleep(0.7)
    assert http.get(url, headers=auth(TOK_A)).status_code == 200

    alice = server.accounts_report()["alice"]
    refused = [a[0] for a in alice["arrivals"] if a[2] == "secondary"]
    (block,) = alice["blocks"]
    assert block == {
        "start": refused[0],
        "end": pytest.approx(refused[-1] + 0.6),
        "arrivals": len(refused) - 1,
    }
    assert block["end"] - block["start"] > 1.3
    assert alice["arrivals"][-1][0] >= block["end"] and alice["arrivals"][-1][2] is None


def test_304s_count_on_the_secondary_window(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS, minute=2.0, rest_points_per_minute=3)
    url = f"{server.url}/user/1"
    first = http.get(url, headers=auth(TOK_A))
    conditional = auth(TOK_A) | {"If-None-Match": first.headers["ETag"]}
    for _ in range(2):
        resp = http.get(url, headers=conditional)
        assert resp.status_code == 304 and remaining(resp) == 4999  # free on primary
    assert_secondary(http.get(url, headers=conditional), 403, "2")
    alice = server.accounts_report()["alice"]
    assert alice["requests"]["rest"] == 3 and alice["secondary_refusals"] == 1


@pytest.mark.slow
def test_more_requests_in_flight_than_allowed_are_refused(
    start: Callable[..., StandinServer],
) -> None:
    server = start(
        tokens=TOKENS, latency_ms=600, minute=1.0, secondary_in_flight=2, secondary_block=0.3
    )
    barrier = threading.Barrier(6)
    statuses: dict[str, list[int]] = {"alice": [], "bob": []}

    def get(token: str, login: str) -> None:
        with requests.Session() as session:
            session.headers["User-Agent"] = UA
            barrier.wait()
            resp = session.get(f"{server.url}/user/1", headers=auth(token))
            statuses[login].append(resp.status_code)

    threads = [threading.Thread(target=get, args=(TOK_A, "alice")) for _ in range(5)]
    threads.append(threading.Thread(target=get, args=(TOK_C, "bob")))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses["alice"]) == [200, 200, 403, 403, 403]
    assert statuses["bob"] == [200]  # in flight per account
    report = server.accounts_report()
    assert report["alice"]["peak_in_flight"] == 2 and report["alice"]["in_flight"] == 0
    assert report["alice"]["secondary_refusals"] == 3
    assert report["alice"]["requests"] == {"rest": 2, "graphql": 0}
    assert report["bob"]["peak_in_flight"] == 1
    time.sleep(0.35)
    with requests.Session() as session:
        resp = session.get(f"{server.url}/user/1", headers=auth(TOK_B) | {"User-Agent": UA})
        assert resp.status_code == 200


def test_graphql_has_a_window_of_its_own(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(
        tokens=TOKENS,
        minute=2.0,
        rest_points_per_minute=2,
        graphql_points_per_minute=3,
        secondary_block=0.5,
    )
    graphql = f"{server.url}/graphql"
    assert [
        http.get(f"{server.url}/user/1", headers=auth(TOK_A)).status_code for _ in range(2)
    ] == [
        200,
        200,
    ]
    answers = [http.post(graphql, data=RATE_LIMIT_QUERY, headers=auth(TOK_B)) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]  # REST points do not count here
    assert [r.json()["data"]["rateLimit"]["remaining"] for r in answers] == [4999, 4998, 4997]
    refused = http.post(graphql, data=RATE_LIMIT_QUERY, headers=auth(TOK_A))
    assert_secondary(refused, 403, "1")
    assert refused.headers["X-RateLimit-Resource"] == "graphql"
    assert refused.headers["X-RateLimit-Remaining"] == "4997"
    assert refused.headers["X-GitHub-Media-Type"] == "github.v4; format=json"
    time.sleep(0.6)
    answer = http.post(graphql, data=RATE_LIMIT_QUERY, headers=auth(TOK_A))  # window: still 3
    assert_secondary(answer, 403, "1")
    alice = server.accounts_report()["alice"]
    assert alice["requests"] == {"rest": 2, "graphql": 3}
    assert [a[1] for a in alice["arrivals"]] == ["rest"] * 2 + ["graphql"] * 5
    assert len(alice["blocks"]) == 2


@pytest.mark.slow
def test_admitted_requests_never_exceed_the_limit_in_any_rolling_minute(
    start: Callable[..., StandinServer],
) -> None:
    """Four threads sending as fast as they may (each pauses 0.3 s after a refusal): the record
    shows every half-open window ``[s, s + minute)`` with at most the limit of answered
    requests, and every request that arrived inside a block refused."""
    minute, limit = 0.5, 5
    server = start(tokens=TOKENS, minute=minute, rest_points_per_minute=limit, secondary_block=0.2)
    stop_at = time.time() + 2.0

    def hammer() -> None:
        with requests.Session() as session:
            session.headers["User-Agent"] = UA
            while time.time() < stop_at:
                if session.get(f"{server.url}/user/1", headers=auth(TOK_A)).status_code != 200:
                    time.sleep(0.3)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alice = server.accounts_report()["alice"]
    answered = [at for at, _, refused in alice["arrivals"] if refused is None]
    assert answered == sorted(answered)
    for i, first in enumerate(answered):
        assert sum(first <= at < first + minute for at in answered[i:]) <= limit
    assert len(answered) >= 2 * limit and len(alice["blocks"]) >= 2
    assert alice["secondary_refusals"] == len(alice["arrivals"]) - len(answered)
    for at, _, refused in alice["arrivals"]:
        inside = any(b["start"] < at < b["end"] for b in alice["blocks"])
        assert refused == "secondary" or not inside


def test_refuse_next_provokes_one_refusal_on_demand(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS, minute=1.0, secondary_block=0.3)
    url = f"{server.url}/user/1"
    with StandinAdmin(server.url) as admin:
        assert admin.refuse_next("alice", retry_after=0.5) == {"account": "alice", "pending": 1}
        server.refuse_next("bob")
    assert_secondary(http.get(url, headers=auth(TOK_B)), 403, "1")
    assert_secondary(http.get(url, headers=auth(TOK_C)), 403, None)  # no retry_after: no header
    assert http.get(url).status_code == 200  # others are not limited
    time.sleep(0.55)
    assert http.get(url, headers=auth(TOK_A)).status_code == 200
    assert http.get(url, headers=auth(TOK_C)).status_code == 200
    blocks = {name: r["blocks"] for name, r in server.accounts_report().items()}
    assert blocks["alice"][0]["end"] - blocks["alice"][0]["start"] == pytest.approx(0.5)
    assert blocks["bob"][0]["end"] - blocks["bob"][0]["start"] == pytest.approx(0.3)
