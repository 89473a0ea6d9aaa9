"""The stand-in's users crawled into a store in blocks of ``BLOCK`` IDs, which spread them over a
three-primary cluster's shards, and a plain client of each primary: shared by the cluster's
store and replica tests."""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import StandinServer

BLOCK = 200
WINDOWS = [PageWindow.number(k, 100) for k in range(10)]  # the stand-in's IDs 1-1000


def primaries(store: RedisStore) -> list[redis.Redis]:
    """A plain client of each primary (the client itself on a single Redis)."""
    client = store.client
    if not isinstance(client, RedisCluster):
        return [client]
    return [client.get_redis_connection(node) for node in client.get_primaries()]


def crawl_all(store: RedisStore, standin: StandinServer) -> None:
    with GitHubClient(standin.url) as github:
        assert len(list(crawl_pages(github, store, WINDOWS))) == len(WINDOWS)
