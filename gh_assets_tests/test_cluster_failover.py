"""A page write whose primary dies (issue 19, item 14), on a real cluster of three primaries with
a replica each: the write waits for the replica to take over and finishes there, saying once,
with the node, that it waits for a failover, instead of failing the page in silence."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.redis_cluster import redis_cluster
from gh_assets_devtools.standin import Dataset, StandinServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BLOCK = 200
WINDOWS = [PageWindow.number(k, 100) for k in range(2)]
LOGGER = "gh_assets.storage.failover"


def test_a_page_write_waits_for_a_failover_and_says_so_once_with_the_node(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        redis_cluster(tmp_path / "cluster", replicas=True) as cluster,
        StandinServer(Dataset(size=BLOCK, seed=7)) as standin,
    ):
        store = RedisStore.from_url(cluster.url, block=BLOCK)
        with GitHubClient(standin.url) as github:
            first = list(crawl_pages(github, store, WINDOWS))
        cluster.wait_for_replicas()
        page = WINDOWS[0].key
        owner = store.client.get_node_from_key(store.ids_key(0))  # page's block: IDs 1-200
        victim = cluster.node_at(owner.host, owner.port)
        replica = cluster.replicas[cluster.nodes.index(victim)]  # each primary's, in order
        write_page = store.write_page

        def primary_dies_as_the_write_starts(write):  # its users are read; its write is next
            os.kill(victim.pid, signal.SIGKILL)
            return write_page(write)

        monkeypatch.setattr(store, "write_page", primary_dies_as_the_write_starts)
        with caplog.at_level(logging.WARNING, logger=LOGGER), GitHubClient(standin.url) as github:
            (report,) = crawl_pages(github, store, WINDOWS[:1])
        monkeypatch.undo()

        assert report.superseded_by is None
        assert report.written == report.listed == first[0].listed > 0
        messages = [record.getMessage() for record in caplog.records if record.name == LOGGER]
        assert len(messages) == 1, messages
        assert messages[0].startswith(
            f"page {page}: Redis Cluster node {owner.name} does not answer (Error 111 connecting "
        ), messages
        assert messages[0].endswith("; the write waits up to 30 s for a failover to its replica")
        assert store.client.get_node_from_key(store.ids_key(0)).port == replica.port
        assert len(store.page_members(page)) == report.listed  # written on the promoted replica
        store.close()
