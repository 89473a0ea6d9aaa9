"""The frame read from replicas (``GH_ASSETS_FRAME_FROM_REPLICAS``) on a real cluster of three
primaries with a replica each: the rows equal the primaries' and the primaries serve none of the
read; a replica cut off from its primary is passed over for it; the page checks never read a
replica. Counted with each server's ``INFO commandstats``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from gh_assets.asset_storage import storage_resources
from gh_assets.defs.analysis.frame import github_users_frame
from gh_assets.defs.analysis.frame_checks import frame_checks
from gh_assets.page_audit import page_findings
from gh_assets.resources import RedisResource
from gh_assets.storage import READ_REPORT, RedisStore
from gh_assets_devtools import services
from gh_assets_devtools.redis_cluster import ClusterHandle, Node, redis_cluster
from gh_assets_devtools.standin import Dataset, StandinServer

from .cluster_crawl import BLOCK, WINDOWS, crawl_all, primaries
from .conftest import STANDIN_SEED, STANDIN_SIZE
from .dagster_runs import checks_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]
READS = ("hmget", "hgetall", "zrange", "zcard", "smembers", "scard", "evalsha", "eval", "hget")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    with redis_cluster(tmp_path_factory.mktemp("replicated"), replicas=True) as handle:
        yield handle


@pytest.fixture(scope="module")
def store(cluster: ClusterHandle) -> Iterator[RedisStore]:
    """The stand-in's users crawled into the cluster, copied to every replica."""
    crawled = RedisStore.from_url(cluster.replicas[0].url, block=BLOCK)  # a replica's URL works
    with StandinServer(Dataset(size=STANDIN_SIZE, seed=STANDIN_SEED)) as standin:
        crawl_all(crawled, standin)
    cluster.wait_for_replicas()
    yield crawled
    crawled.close()


def reads(node: Node) -> int:
    """Data reads ``node`` has served since its statistics were last reset."""
    with node.redis() as client:
        stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in READS)


def block_list_reads(cluster: ClusterHandle, store: RedisStore) -> list[int]:
    """Per primary, the reads of the list of blocks a frame read makes: 1 on its owner."""
    owner = cluster.slot_owner(store.client.keyslot(store.blocks_key))
    return [int(node == owner) for node in cluster.nodes]


def reset_stats(cluster: ClusterHandle) -> None:
    for node in (*cluster.nodes, *cluster.replicas):
        with node.redis() as client:
            client.config_resetstat()


def test_the_frame_reads_every_shard_from_its_replica(
    cluster: ClusterHandle, store: RedisStore
) -> None:
    on_primaries = store.read_frame(batch=33)
    reset_stats(cluster)
    on_replicas = store.read_frame(batch=33, from_replicas=True)
    pd.testing.assert_frame_equal(on_replicas, on_primaries)
    users = len(list(Dataset(size=STANDIN_SIZE, seed=STANDIN_SEED).all_users()))
    assert len(on_replicas) == on_replicas.attrs[READ_REPORT]["pages_users"] == users
    shards = len(primaries(store))
    assert shards == 3 and on_replicas.attrs[READ_REPORT]["replica_shards"] == shards
    assert on_primaries.attrs[READ_REPORT]["replica_shards"] == 0
    # The primaries answered one command: the list of blocks (gh:blocks), which says what to read.
    assert [reads(node) for node in cluster.nodes] == block_list_reads(cluster, store)
    assert all(reads(node) > 10 for node in cluster.replicas)


def test_a_replica_cut_off_from_its_primary_is_passed_over(
    cluster: ClusterHandle, store: RedisStore
) -> None:
    expected = store.read_frame()
    cut, primary = cluster.replicas[0], cluster.nodes[0]
    with cut.redis() as client:
        # The replica authenticates as a user its primary does not have: its link stays down.
        client.config_set("masteruser", "nobody")
        client.config_set("masterauth", "wrong")
        client.client_kill_filter(_type="master")
        try:
            services.wait_for(
                lambda: client.info("replication")["master_link_status"] == "down",
                timeout=10,
                what="the replica's link to go down",
            )
            reset_stats(cluster)
            found = store.read_frame(from_replicas=True)
            pd.testing.assert_frame_equal(found, expected)
            assert found.attrs[READ_REPORT]["replica_shards"] == 2
            assert reads(primary) > 10 and reads(cut) == 0  # INFO is not a read
            assert [reads(node) for node in cluster.nodes[1:]] == block_list_reads(cluster, store)[
                1:
            ]
        finally:
            client.config_set("masteruser", "")
            client.config_set("masterauth", "")
    services.wait_for(
        lambda: cut.redis().info("replication")["master_link_status"] == "up",
        timeout=30,
        what="the replica's link to come back",
    )


def test_the_page_checks_never_read_a_replica(cluster: ClusterHandle, store: RedisStore) -> None:
    reset_stats(cluster)
    findings = page_findings(store, WINDOWS)
    assert findings == {"counters_valid": {}, "users_accounted_for": {}, "index_matches_hashes": {}}
    assert [reads(node) for node in cluster.replicas] == [0, 0, 0]
    assert sum(reads(node) for node in cluster.nodes) > len(WINDOWS)


def test_the_frame_asset_reads_replicas_where_configured(
    cluster: ClusterHandle, store: RedisStore, tmp_path: Path
) -> None:
    url = cluster.nodes[2].url
    resources = {
        "redis": RedisResource(url=url, block=BLOCK, frame_from_replicas=True),
        **storage_resources(str(tmp_path / "storage")),
    }
    expected = store.read_frame()
    reset_stats(cluster)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [github_users_frame, *frame_checks], instance=instance, resources=resources
        )
    assert set(checks_of(result).values()) == {True}
    frame = result.output_for_node("github_users_frame")
    pd.testing.assert_frame_equal(frame, expected)
    [materialization] = result.asset_materializations_for_node("github_users_frame")
    assert materialization.metadata["read_replica_shards"].value == 3
    assert [reads(node) for node in cluster.nodes] == block_list_reads(cluster, store)
