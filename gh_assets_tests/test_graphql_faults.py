"""GraphQL detail mode under rate limits, faults and malformed answers, over real HTTP against the
stand-in's GraphQL: met the way the REST path meets them (a near reset waited for, a distant one
raised, a 502 retried), and answers the schema does not allow refused without retry.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from gh_assets.crawl import crawl_page
from gh_assets.github import (
    GitHubClient,
    GitHubHTTPError,
    ListedUser,
    MalformedResponseError,
    RateLimitError,
)
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer

from .graphql_crawled import WIDE, WINDOW, hashes, post_graphql, routes, stable, truth

# -- rate limits and faults --------------------------------------------------------------------


@pytest.mark.integration
def test_graphql_rate_limited_with_http_200_waits_for_a_near_reset(
    standin: StandinServer, dataset: Dataset, store: RedisStore
) -> None:
    standin.set_rate_limit(window=30, reset=True, graphql_limit=4)  # one 100-user query
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        standin.set_rate_limit(reset=True, graphql_limit=5000)  # the window "passes"

    # One request at a time, so exactly one query meets the spent budget.
    with GitHubClient(standin.url, detail_mode="graphql", max_concurrency=1) as client:
        client._sleep = sleep
        crawl_page(client, store, WIDE)
        assert client.stats.retries == 1
    assert len(waits) == 1 and 1 < waits[0] <= 32
    assert stable(hashes(store, WIDE)) == truth(dataset, WIDE)
    assert standin.stats()["requests"]["by_route"]["graphql"] == 4  # three queries, one again


@pytest.mark.integration
def test_graphql_rate_limited_with_a_distant_reset_raises(
    standin: StandinServer, gql: GitHubClient, store: RedisStore
) -> None:
    start = time.time()
    answer = requests.post(  # through the admin endpoint, as another process would
        f"{standin.url}/_standin/rate-limit", json={"graphql_limit": 0, "reset": True}, timeout=10
    )
    assert answer.json()["graphql_limit"] == 0
    denied = post_graphql(standin, "{ rateLimit { remaining } }")
    assert denied.status_code == 200
    assert denied.json() == {
        "data": None,
        "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for 127.0.0.1."}],
    }
    assert denied.headers["X-RateLimit-Resource"] == "graphql"
    assert denied.headers["X-RateLimit-Remaining"] == "0"
    assert denied.headers["X-RateLimit-Limit"] == "0"

    waits: list[float] = []
    gql._sleep = waits.append
    with pytest.raises(RateLimitError) as raised:
        crawl_page(gql, store, WINDOW)
    error = raised.value
    assert waits == [] and not error.secondary and error.status == 200
    assert abs(error.reset_at.timestamp() - (start + 3600)) < 5
    assert str(error).startswith(f"POST {standin.url}/graphql -> 200: GitHub rate limit")
    assert store.page_meta(WINDOW.key) == {}  # nothing written


@pytest.mark.integration
def test_a_rate_limit_reset_in_the_answer_is_preferred(
    standin: StandinServer, gql: GitHubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset = datetime(2031, 1, 1, tzinfo=UTC)
    limited = {
        "data": {"rateLimit": {"cost": 1, "remaining": 0, "resetAt": "2031-01-01T00:00:00Z"}},
        "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}],
    }
    monkeypatch.setattr(standin.graphql, "execute", lambda *_: limited)
    user = ListedUser(1, "x", "User", "MDQ6VXNlcjE=")
    with pytest.raises(RateLimitError) as raised:
        gql.get_details([user], {})
    assert raised.value.reset_at == reset and raised.value.method == "POST"


@pytest.mark.integration
def test_a_502_on_graphql_is_retried(
    standin: StandinServer, dataset: Dataset, store: RedisStore
) -> None:
    accounts = dataset.users_between(WINDOW.first_id, WINDOW.last_id)
    member = [u for u in accounts if u.type == "User"][-1].id  # named by the GraphQL query

    class FailsAfterListing(GitHubClient):
        def list_users(self, first_id: int, last_id: int) -> list[ListedUser]:
            listed = super().list_users(first_id, last_id)
            standin.set_faults(fail_ids=[(member, member)])  # the query naming it: 502
            return listed

    waits: list[float] = []
    with FailsAfterListing(standin.url, detail_mode="graphql", backoff_base=0.01) as client:
        client._sleep = lambda seconds: (waits.append(seconds), standin.heal())
        crawl_page(client, store, WINDOW)
        assert client.stats.retries == len(waits) == 1
    assert stable(hashes(store, WINDOW)) == truth(dataset, WINDOW)
    assert standin.stats()["requests"]["by_status"].get("502") == 1
    assert routes(standin)["graphql"] == 2  # the 502 and its retry

    with GitHubClient(standin.url, detail_mode="graphql", max_retries=1) as client:
        client._sleep = lambda _: None
        listed = client.list_users(member, member)
        standin.set_faults(fail_ids=[(member, member)])
        with pytest.raises(GitHubHTTPError, match=r"POST .*/graphql -> 502: giving up after 2"):
            client.get_details(listed, {})


@pytest.mark.integration
def test_latency_and_error_rate_apply_to_graphql(standin: StandinServer) -> None:
    standin.set_faults(error_rate=1.0)
    assert post_graphql(standin, "{ rateLimit { cost } }").status_code == 503
    standin.set_faults(error_rate=0.0, latency_ms=120)
    started = time.monotonic()
    assert post_graphql(standin, "{ rateLimit { cost } }").status_code == 200
    assert time.monotonic() - started >= 0.12


# -- malformed answers -------------------------------------------------------------------------


def node_answer(**overrides: Any) -> dict[str, Any]:
    node = {
        "__typename": "User",
        "databaseId": 1,
        "login": "x",
        "followers": {"totalCount": 1},
        "following": {"totalCount": 2},
        "gists": {"totalCount": 3},
        "repositories": {"totalCount": 4},
    }
    return {"data": {"nodes": [node | overrides]}}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        (node_answer(followers={"totalCount": -1}), MalformedResponseError, "followers"),
        (node_answer(gists={"totalCount": 10**9}), MalformedResponseError, "gists"),
        (node_answer(repositories={"totalCount": "4"}), MalformedResponseError, "repositories"),
        (node_answer(following={"totalCount": True}), MalformedResponseError, "following"),
        (node_answer(following=None), MalformedResponseError, "following"),
        (node_answer(databaseId="1"), MalformedResponseError, "databaseId"),
        (node_answer(__typename=None), MalformedResponseError, "__typename"),
        ({"data": {"nodes": []}}, MalformedResponseError, "1 entries"),
        ({"data": None}, MalformedResponseError, "neither data nor errors"),
        ([1, 2], MalformedResponseError, "GraphQL response object"),
        # Refusals the same query would meet again: permanent (assets.py does not retry them).
        (
            {"data": None, "errors": [{"type": "FORBIDDEN", "message": "Resource not accessible"}]},
            MalformedResponseError,
            "GraphQL errors: Resource not accessible \\(FORBIDDEN\\)",
        ),
        (
            {"errors": [{"message": "Field 'x' doesn't exist", "extensions": {"code": "undef"}}]},
            MalformedResponseError,
            "Field 'x' doesn't exist",
        ),
        # GitHub's timeouts come as untyped errors: worth a later retry of the page.
        (
            {"data": None, "errors": [{"message": "Something went wrong while executing"}]},
            GitHubHTTPError,
            "POST .*/graphql -> 200: GraphQL errors: Something went wrong",
        ),
        (
            node_answer() | {"errors": [{"message": "Something went wrong", "path": ["nodes"]}]},
            GitHubHTTPError,
            "Something went wrong \\(at nodes\\)",
        ),
    ],
)
def test_malformed_graphql_answers_are_refused_without_retry(
    standin: StandinServer,
    gql: GitHubClient,
    monkeypatch: pytest.MonkeyPatch,
    payload: Any,
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.setattr(standin.graphql, "execute", lambda *_: payload)
    with pytest.raises(error, match=message) as raised:
        gql.get_details([ListedUser(1, "x", "User", "MDQ6VXNlcjE=")], {})
    assert type(raised.value) is error
    assert gql.stats.requests == 1
