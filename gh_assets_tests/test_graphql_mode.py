"""GraphQL detail mode: one query per 100 users, over real HTTP against the stand-in's GraphQL.

Both modes must store the same hashes; GraphQL must cost what it should (in requests and in
points), send the arguments that make its counts mean what REST's mean, and fall back to REST for
what it cannot answer. Rate limits and faults: test_graphql_faults.py; the stand-in's GraphQL:
test_standin_graphql.py; configuration: test_graphql_config.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from graphql import parse, print_ast

from gh_assets.crawl import crawl_page
from gh_assets.github import GRAPHQL_BATCH, GitHubClient, ListedUser
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.graphql_schema import node_id

from .graphql_crawled import WIDE, WINDOW, hashes, post_graphql, routes, stable, truth


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
