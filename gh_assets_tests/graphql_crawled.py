"""What the GraphQL detail mode's tests share: the windows they crawl, the stored hashes held
against the stand-in's truth with the fields that differ by mode (ETags, fetch time) left out, the
routes the stand-in counted, and a raw POST to the stand-in's GraphQL."""

from __future__ import annotations

from typing import Any

import requests

from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer

WIDE = PageWindow(1, 400)  # four list pages' worth, with organizations and missing IDs
WINDOW = PageWindow(101, 200)
VOLATILE = ("etag", "etag_auth", "fetched_at")
TOKEN = "ghp" + "_graphqlTESTtoken0123456789abcdefABCD"  # assembled: no token-shaped literal


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
