"""GraphQL detail mode: one query per 100 users, over real HTTP against the stand-in's GraphQL.

Both modes must store the same hashes; GraphQL must cost what it should (in requests and in
points), send the arguments that make its counts mean what REST's mean, fall back to REST for what
it cannot answer, and meet rate limits and faults the way the REST path does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
from graphql import build_schema, graphql_sync, parse, print_ast, validate

from gh_assets.asset_storage import storage_resources
from gh_assets.crawl import crawl_page
from gh_assets.github import (
    GRAPHQL_BATCH,
    USER_COUNTS_QUERY,
    GitHubClient,
    GitHubConfigError,
    GitHubHTTPError,
    ListedUser,
    MalformedResponseError,
    RateLimitError,
    graphql_endpoint,
)
from gh_assets.partitions import PageWindow, add_missing_pages
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.graphql_schema import SDL, node_id

from .conftest import github_users

WIDE = PageWindow(1, 400)  # four list pages' worth, with organizations and missing IDs
WINDOW = PageWindow(101, 200)
VOLATILE = ("etag", "etag_auth", "fetched_at")
TOKEN = "ghp" + "_graphqlTESTtoken0123456789abcdefABCD"  # assembled: no token-shaped literal


@pytest.fixture
def gql(standin: StandinServer) -> Iterator[GitHubClient]:
    with GitHubClient(
        standin.url, detail_mode="graphql", backoff_base=0.01, backoff_max=0.05
    ) as github:
        yield github


@pytest.fixture
def crawl_queries(
    standin: StandinServer, gql: GitHubClient, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> Callable[[PageWindow], list[dict[str, Any]]]:
    """Crawl a window in GraphQL mode: the JSON body of every GraphQL request the stand-in got."""
    bodies: list[dict[str, Any]] = []
    prepare = standin.graphql.prepare

    def recording(body: bytes) -> Any:
        bodies.append(json.loads(body))
        return prepare(body)

    def crawl(window: PageWindow) -> list[dict[str, Any]]:
        bodies.clear()
        crawl_page(gql, store, window)
        return list(bodies)

    monkeypatch.setattr(standin.graphql, "prepare", recording)
    return crawl


def truth(dataset: Dataset, window: PageWindow) -> dict[int, dict[str, str]]:
    return dataset.truth(window.first_id, window.last_id)


def hashes(store: RedisStore, window: PageWindow) -> dict[int, dict[str, str]]:
    return store.read_users(store.page_members(window.key))


def stable(users: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    return {i: {k: v for k, v in h.items() if k not in VOLATILE} for i, h in users.items()}


def routes(standin: StandinServer) -> dict[str, int]:
    return standin.stats()["requests"]["by_route"]


def post_graphql(
    standin: StandinServer, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> requests.Response:
    return requests.post(
        f"{standin.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"User-Agent": "gh-assets-tests"} | (headers or {}),
        timeout=10,
    )


def batches(users: int) -> list[int]:
    """The sizes of the GraphQL queries that ``users`` listed users take."""
    return [GRAPHQL_BATCH] * (users // GRAPHQL_BATCH) + (
        [users % GRAPHQL_BATCH] if users % GRAPHQL_BATCH else []
    )


def listing_requests(standin: StandinServer, window: PageWindow) -> int:
    """What listing ``window`` costs (the same in both modes), measured then forgotten."""
    with GitHubClient(standin.url) as lister:
        lister.list_users(window.first_id, window.last_id)
        count = lister.stats.requests
    standin.reset_stats()
    return count


# -- the same data, far fewer requests --------------------------------------------------------


@pytest.mark.integration
def test_both_modes_write_identical_hashes(
    standin: StandinServer,
    dataset: Dataset,
    client: GitHubClient,
    gql: GitHubClient,
    store: RedisStore,
    redis_url: str,
    key_prefix: str,
) -> None:
    expected = truth(dataset, WIDE)
    organizations = {i for i, u in expected.items() if u["type"] == "Organization"}
    assert organizations and len(expected) < WIDE.last_id  # orgs, and IDs that do not exist
    list_requests = listing_requests(standin, WIDE)

    rest = crawl_page(client, store, WIDE)
    graphql_store = RedisStore.from_url(redis_url, key_prefix + "graphql:")  # cleaned with it
    try:
        graphql = crawl_page(gql, graphql_store, WIDE)
        by_rest, by_graphql = hashes(store, WIDE), hashes(graphql_store, WIDE)
        meta = graphql_store.page_meta(WIDE.key)
    finally:
        graphql_store.client.close()

    assert stable(by_graphql) == stable(by_rest) == expected
    assert all("etag" in h and "etag_auth" in h for h in by_rest.values())
    # GraphQL answers carry no ETag; organizations still come from REST, with theirs.
    assert {i for i, h in by_graphql.items() if "etag" in h} == organizations
    assert rest.requests == list_requests + len(expected)
    users = len(expected) - len(organizations)
    assert graphql.requests == list_requests + math.ceil(users / 100) + len(organizations)
    assert gql.stats.requests == graphql.requests
    assert (graphql.listed, graphql.written, graphql.gone) == (len(expected), len(expected), 0)
    assert meta["requests"] == str(graphql.requests)


@pytest.mark.integration
def test_graphql_needs_under_three_hundredths_of_a_request_per_user(
    standin: StandinServer, dataset: Dataset, gql: GitHubClient, store: RedisStore
) -> None:
    # The stand-in makes 4% of accounts organizations, and each costs a REST request; this page
    # set keeps one, so what is measured is the batching itself.
    pages = [PageWindow(1, 500), PageWindow(501, 1000)]
    accounts = [u for w in pages for u in dataset.users_between(w.first_id, w.last_id)]
    organizations = [u for u in accounts if u.type == "Organization"]
    assert len(organizations) > 10 and organizations[0].id <= pages[0].last_id
    for org in organizations[1:]:
        dataset.update(org.id, type="User")
    list_requests = sum(listing_requests(standin, w) for w in pages)

    reports = [crawl_page(gql, store, w) for w in pages]

    users = [len(truth(dataset, pages[0])) - 1, len(truth(dataset, pages[1]))]
    queries = [size for n in users for size in batches(n)]
    expected = list_requests + len(queries) + 1  # + the organization, through REST
    assert sum(r.requests for r in reports) == gql.stats.requests == expected
    assert gql.stats.requests / len(accounts) <= 0.03
    assert routes(standin) == {"list": list_requests, "graphql": len(queries), "user": 1}
    for window in pages:
        assert stable(hashes(store, window)) == truth(dataset, window)
    # About 4 points per 100 users (four totalCount connections), as GitHub prices it.
    points = sum(max(1, math.floor(4 * n / 100 + 0.5)) for n in queries)
    assert gql.stats.graphql_points == points
    budget = requests.get(f"{standin.url}/rate_limit", headers={"User-Agent": "t"}, timeout=10)
    assert budget.json()["resources"]["graphql"]["used"] == gql.stats.graphql_points
    assert gql.stats.graphql_remaining is not None


@pytest.mark.integration
def test_more_than_100_users_are_chunked(
    standin: StandinServer,
    dataset: Dataset,
    gql: GitHubClient,
    crawl_queries: Callable[[PageWindow], list[dict[str, Any]]],
) -> None:
    users = [u for u in dataset.users_between(1, 1000) if u.type == "User"]
    sent_queries = crawl_queries(PageWindow(1, 1000))
    sizes = sorted((len(q["variables"]["ids"]) for q in sent_queries), reverse=True)
    assert sizes == batches(len(users)) and len(sizes) > 1
    sent = sorted(i for q in sent_queries for i in q["variables"]["ids"])
    assert sent == sorted(node_id(u) for u in users)  # each once, organizations not at all

    with pytest.raises(ValueError, match="at most 100"):
        gql._graphql_counts([ListedUser(u.id, u.login, u.type, node_id(u)) for u in users[:101]])
    refused = post_graphql(
        standin,
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        ids=[node_id(u) for u in users[:101]],
    )
    assert refused.status_code == 200
    assert refused.json() == {
        "data": None,
        "errors": [
            {
                "type": "ARGUMENT_LIMIT",
                "path": ["nodes"],
                "locations": [{"line": 1, "column": 23}],
                "message": "You may not provide more than 100 node ids; you provided 101.",
            }
        ],
    }


# -- what the query asks, and what GraphQL cannot answer ---------------------------------------


@pytest.mark.integration
def test_owner_affiliations_are_sent_and_change_the_count(
    standin: StandinServer,
    dataset: Dataset,
    store: RedisStore,
    crawl_queries: Callable[[PageWindow], list[dict[str, Any]]],
) -> None:
    sent_queries = crawl_queries(WINDOW)
    assert stable(hashes(store, WINDOW)) == truth(dataset, WINDOW)
    arguments = {
        (field.name.value, arg.name.value): print_ast(arg.value)
        for field in _fields(parse(sent_queries[0]["query"]))
        for arg in field.arguments
    }
    assert arguments == {
        ("nodes", "ids"): "$ids",
        ("gists", "privacy"): "PUBLIC",
        ("repositories", "privacy"): "PUBLIC",
        ("repositories", "ownerAffiliations"): "[OWNER]",
    }

    # Without ownerAffiliations (or privacy) the stand-in, like GitHub, counts something else.
    people = [u for u in dataset.users_between(WINDOW.first_id, WINDOW.last_id) if u.type == "User"]
    answer = post_graphql(
        standin,
        """query($ids: [ID!]!) { nodes(ids: $ids) { ... on User { databaseId
            owned: repositories(privacy: PUBLIC, ownerAffiliations: [OWNER]) { totalCount }
            default: repositories(privacy: PUBLIC) { totalCount }
            public: gists(privacy: PUBLIC) { totalCount }
            all: gists { totalCount } } } }""",
        ids=[node_id(u) for u in people],
    ).json()
    assert "errors" not in answer
    for user, node in zip(people, answer["data"]["nodes"], strict=True):
        assert node["databaseId"] == user.id
        assert node["owned"]["totalCount"] == user.public_repos
        assert node["default"]["totalCount"] > user.public_repos  # collaborations added
        assert node["public"]["totalCount"] == user.public_gists
        assert node["all"]["totalCount"] > user.public_gists  # secret gists added


def _fields(document: Any) -> Iterator[Any]:
    """Every field node of a parsed document."""
    stack = list(document.definitions)
    while stack:
        node = stack.pop()
        selection_set = getattr(node, "selection_set", None)
        if getattr(node, "kind", "") == "field":
            yield node
        if selection_set is not None:
            stack.extend(selection_set.selections)


@pytest.mark.integration
def test_what_graphql_cannot_answer_comes_from_rest(
    standin: StandinServer, dataset: Dataset, store: RedisStore
) -> None:
    accounts = dataset.users_between(WINDOW.first_id, WINDOW.last_id)
    organizations = [u.id for u in accounts if u.type == "Organization"]
    people = [u for u in accounts if u.type == "User"]
    assert organizations
    no_node_id, renamed = people[0].id, people[1].id
    disguised = organizations[0]  # listed as a User: GraphQL answers an Organization

    class Stale(GitHubClient):
        def list_users(self, first_id: int, last_id: int) -> list[ListedUser]:
            listed = []
            for user in super().list_users(first_id, last_id):
                if user.id == no_node_id:  # as a pre-2018 server lists it
                    user = ListedUser(user.id, user.login, user.type)
                elif user.id == disguised:
                    user = ListedUser(user.id, user.login, "User", user.node_id)
                listed.append(user)
            dataset.update(renamed, login="renamed-after-listing")  # GraphQL's login differs
            return listed

    with Stale(standin.url, detail_mode="graphql") as client:
        report = crawl_page(client, store, WINDOW)

    assert stable(hashes(store, WINDOW)) == truth(dataset, WINDOW)
    assert store.user_id_for_login("renamed-after-listing") == renamed
    rest = {*organizations, no_node_id, renamed}
    assert {i for i, h in hashes(store, WINDOW).items() if "etag" in h} == rest
    assert routes(standin) == {"list": 1, "graphql": 1, "user": len(rest)}
    assert report.requests == 2 + len(rest)


@pytest.mark.integration
def test_a_node_deleted_after_listing_is_recorded_gone(
    standin: StandinServer, dataset: Dataset, store: RedisStore
) -> None:
    accounts = dataset.users_between(WINDOW.first_id, WINDOW.last_id)
    victim = [u for u in accounts if u.type == "User"][3]
    organizations = sum(u.type == "Organization" for u in accounts)

    class DeletesAfterListing(GitHubClient):
        def list_users(self, first_id: int, last_id: int) -> list[ListedUser]:
            listed = super().list_users(first_id, last_id)
            dataset.delete(victim.id)  # GraphQL answers a null node, REST a 404
            return listed

    with DeletesAfterListing(standin.url, detail_mode="graphql") as client:
        report = crawl_page(client, store, WINDOW)

    assert report.gone == 1
    assert store.page_gone(WINDOW.key) == {victim.id}
    assert stable(hashes(store, WINDOW)) == truth(dataset, WINDOW)
    assert routes(standin) == {"list": 1, "graphql": 1, "user": organizations + 1}

    answer = post_graphql(
        standin, "query($id: ID!) { nodes(ids: [$id]) { id } }", id=node_id(victim)
    )
    assert answer.json() == {
        "data": {"nodes": [None]},
        "errors": [
            {
                "type": "NOT_FOUND",
                "path": ["nodes", 0],
                "locations": [{"line": 1, "column": 19}],
                "message": f"Could not resolve to a node with the global id of '{node_id(victim)}'",
            }
        ],
    }


@pytest.mark.integration
def test_a_recrawl_in_graphql_mode_drops_the_rest_etags(
    client: GitHubClient, gql: GitHubClient, store: RedisStore, dataset: Dataset
) -> None:
    crawl_page(client, store, WINDOW)
    before = hashes(store, WINDOW)
    report = crawl_page(gql, store, WINDOW)
    after = hashes(store, WINDOW)
    organizations = {i for i, h in after.items() if h["type"] == "Organization"}
    assert report.not_modified == len(organizations)  # REST fallbacks still revalidate
    assert {i for i, h in after.items() if "etag" in h} == organizations
    assert stable(after) == stable(before) == truth(dataset, WINDOW)


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


# -- the stand-in's GraphQL --------------------------------------------------------------------


def replay_through_schema(query: str, variables: dict[str, Any], data: Any) -> Any:
    """Execute ``query`` over the answer's own ``data`` with the schema's types and no
    resolvers: any value the schema does not allow (a wrong type, a null in a non-null field,
    an unknown ``__typename``) becomes an error."""
    result = graphql_sync(build_schema(SDL), query, root_value=data, variable_values=variables)
    assert result.errors is None, result.errors
    return result.data


@pytest.mark.integration
def test_the_answers_validate_against_the_schema(
    standin: StandinServer, dataset: Dataset, gql: GitHubClient
) -> None:
    schema = build_schema(SDL)
    assert validate(schema, parse(USER_COUNTS_QUERY)) == []
    accounts = dataset.users_between(1, 200)[:100]
    ids = [node_id(u) for u in accounts]
    answer = post_graphql(standin, USER_COUNTS_QUERY, {"Authorization": f"bearer {TOKEN}"}, ids=ids)
    assert answer.status_code == 200 and answer.headers["X-RateLimit-Resource"] == "graphql"
    body = answer.json()
    assert "errors" not in body
    assert replay_through_schema(USER_COUNTS_QUERY, {"ids": ids}, body["data"]) == body["data"]
    kinds = {n["__typename"] for n in body["data"]["nodes"]}
    assert kinds == {"User", "Organization"}
    assert body["data"]["rateLimit"]["cost"] == 4  # 100 parents x 4 connections / 100
    assert body["data"]["rateLimit"]["remaining"] == 4996
    assert answer.headers["X-RateLimit-Remaining"] == "4996"
    assert answer.headers["X-RateLimit-Used"] == "4"

    rate = requests.get(
        f"{standin.url}/rate_limit",
        headers={"User-Agent": "t", "Authorization": f"bearer {TOKEN}"},
        timeout=10,
    ).json()
    assert rate["resources"]["graphql"]["used"] == 4
    assert rate["resources"]["core"]["used"] == 0  # separate budgets

    single = post_graphql(
        standin,
        """query($id: ID!, $login: String!) {
             node(id: $id) { __typename id ... on Organization { databaseId login name } }
             user(login: $login) { id databaseId login name createdAt updatedAt }
             rateLimit { cost limit remaining resetAt used nodeCount } }""",
        id=ids[0],
        login=accounts[0].login.upper(),
    ).json()
    assert single["data"]["node"]["id"] == ids[0]
    assert single["data"]["user"]["databaseId"] == accounts[0].id
    assert single["data"]["rateLimit"]["cost"] == 1 and single["data"]["rateLimit"]["nodeCount"]
    assert standin.stats()["requests"]["by_route"] == {"graphql": 2, "rate_limit": 1}


@pytest.mark.integration
def test_the_schema_refuses_followers_on_an_organization(standin: StandinServer) -> None:
    answer = post_graphql(
        standin,
        "query($ids: [ID!]!) {\n"
        "  nodes(ids: $ids) { ... on Organization { followers { totalCount } } } }",
        ids=[],
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "errors": [
            {
                "locations": [{"line": 2, "column": 44}],
                "message": "Field 'followers' doesn't exist on type 'Organization'",
                "extensions": {
                    "code": "undefinedField",
                    "typeName": "Organization",
                    "fieldName": "followers",
                },
            }
        ]
    }
    assert (
        post_graphql(standin, "{ nodes { id } }")
        .json()["errors"][0]["message"]
        .startswith("Field 'nodes' argument 'ids'")
    )
    broken = requests.post(
        f"{standin.url}/graphql", data=b"{", headers={"User-Agent": "t"}, timeout=10
    )
    assert broken.status_code == 400 and broken.json()["message"] == "Problems parsing JSON"


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.unit
def test_the_graphql_endpoint_follows_the_api_url() -> None:
    assert graphql_endpoint("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_endpoint("https://api.github.com/") == "https://api.github.com/graphql"
    assert graphql_endpoint("https://ghe.example/api/v3") == "https://ghe.example/api/graphql"
    assert graphql_endpoint("http://127.0.0.1:8080") == "http://127.0.0.1:8080/graphql"
    assert graphql_endpoint("http://proxy/github/") == "http://proxy/github/graphql"
    custom = GitHubClient("http://127.0.0.1:1", graphql_url="http://127.0.0.1:2/gql")
    assert custom.graphql_url == "http://127.0.0.1:2/gql"
    assert custom.detail_mode == "rest"


@pytest.mark.unit
@pytest.mark.parametrize("api_url", ["https://api.github.com", "https://ghe.example/api/v3"])
def test_anonymous_graphql_against_github_is_a_configuration_error(api_url: str) -> None:
    with pytest.raises(GitHubConfigError, match="needs a token"):
        GitHubClient(api_url, detail_mode="graphql")
    with GitHubClient(api_url, TOKEN, detail_mode="graphql") as client:
        assert client.detail_mode == "graphql"
        assert TOKEN not in repr(client)
    GitHubClient(api_url).close()  # REST stays anonymous-friendly
    with pytest.raises(GitHubConfigError, match="detail_mode must be one of rest, graphql"):
        GitHubClient(api_url, TOKEN, detail_mode="soap")  # type: ignore[arg-type]


@pytest.mark.unit
def test_the_resource_passes_the_mode_on() -> None:
    resource = GitHubResource(api_url="http://127.0.0.1:1", detail_mode="graphql")
    with resource.get_client() as client:
        assert (client.detail_mode, client.graphql_url) == ("graphql", "http://127.0.0.1:1/graphql")
    with GitHubResource().get_client() as client:
        assert client.detail_mode == "rest"
    with pytest.raises(ValueError, match="detail_mode"):
        GitHubResource(detail_mode="soap")


@pytest.mark.integration
@pytest.mark.slow
def test_the_asset_crawls_in_the_mode_the_settings_name(
    standin: StandinServer,
    dataset: Dataset,
    store: RedisStore,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    settings = Settings.from_env(
        {"GH_ASSETS_DETAIL_MODE": "graphql", "GITHUB_API_URL": standin.url}
    )
    resources = {
        "github": GitHubResource.from_settings(settings),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
        **storage_resources(str(tmp_path / "storage")),
    }
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, [WINDOW.key])
        result = dg.materialize(
            [github_users], partition_key=WINDOW.key, instance=instance, resources=resources
        )
    assert result.success
    assert routes(standin)["graphql"] == 1
    assert stable(hashes(store, WINDOW)) == truth(dataset, WINDOW)
