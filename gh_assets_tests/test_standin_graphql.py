"""The stand-in's GraphQL, over real HTTP: its answers to the crawl's query validate against its
schema (SDL) and cost GitHub's points on a budget apart from REST's; queries the schema does not
allow, and bodies that are not JSON, are refused as GitHub refuses them.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from graphql import build_schema, graphql_sync, parse, validate

from gh_assets.github import USER_COUNTS_QUERY, GitHubClient
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.graphql_schema import SDL, node_id

from .graphql_crawled import TOKEN, post_graphql

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
