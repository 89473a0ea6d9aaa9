"""The local Redis Cluster (gh_assets_devtools.redis_cluster) on real servers.

Tests of cluster support lean on it (ASK/MOVED while slots move, scripts per slot, a REDIS_URL
naming any one node), so it must itself be right: formed, resharded for real, and always stopped.
One cluster serves the module; each test writes under a hash tag of its own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from gh_assets_devtools import services
from gh_assets_devtools.redis_cluster import (
    SLOTS,
    ClusterHandle,
    Node,
    cluster_info,
    redis_cluster,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as handle:
        yield handle


@pytest.fixture
def client(cluster: ClusterHandle) -> Iterator[RedisCluster]:
    client = cluster.client(decode_responses=True)
    yield client
    client.close()


def tag() -> str:
    return uuid.uuid4().hex[:10]


def other_node(cluster: ClusterHandle, node: Node) -> Node:
    return next(other for other in cluster.nodes if other != node)


def gone(pid: int) -> bool:
    return not services.group_alive(pid) and not Path(f"/proc/{pid}").exists()


def test_forms_three_primaries_with_full_coverage(cluster: ClusterHandle) -> None:
    assert len(cluster.nodes) == 3
    assert len({node.node_id for node in cluster.nodes}) == 3
    for node in cluster.nodes:
        with node.redis() as plain:
            info = cluster_info(plain)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == str(SLOTS)
        assert info["cluster_known_nodes"] == info["cluster_size"] == "3"
    owners = cluster.slot_map()
    assert len(owners) == SLOTS
    assert set(owners.values()) == set(cluster.nodes)


def test_hash_tags_spread_keys_over_nodes(cluster: ClusterHandle, client: RedisCluster) -> None:
    prefix = tag()
    keys = [f"{{{prefix}-{index}}}:user" for index in range(30)]
    for key in keys:
        client.set(key, key)
    holders = set()
    for node in cluster.nodes:
        with node.redis(decode_responses=True) as plain:
            if list(plain.scan_iter(match=f"{{{prefix}-*", count=1000)):
                holders.add(node)
    assert len(holders) >= 2
    assert sum(cluster.keys_per_node().values()) >= len(keys)
    assert [client.get(key) for key in keys] == keys


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_client_starts_from_any_nodes_url(cluster: ClusterHandle, index: int) -> None:
    node = cluster.nodes[index]
    client = RedisCluster.from_url(node.url, decode_responses=True)
    try:
        assert {(n.host, n.port) for n in client.get_nodes()} == {
            (n.host, n.port) for n in cluster.nodes
        }
        keys = [f"{{{tag()}}}:from-{index}" for _ in range(10)]
        for key in keys:
            client.set(key, "x")
        assert client.mget_nonatomic(keys) == ["x"] * len(keys)
    finally:
        client.close()


def test_move_slots_moves_keys_to_another_node(
    cluster: ClusterHandle, client: RedisCluster
) -> None:
    prefix = tag()
    keys = [f"{{{prefix}}}:{index}" for index in range(250)]  # more than one MIGRATE batch
    for key in keys:
        client.set(key, key)
    slot = client.keyslot(keys[0])
    source = cluster.slot_owner(slot)
    target = other_node(cluster, source)

    cluster.move_slots([slot], target)

    for node in cluster.nodes:  # every node agrees, not just the one asked
        assert cluster.slot_map(node)[slot] == target
    with source.redis() as plain:
        assert plain.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    with target.redis() as plain:
        assert plain.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys)
    assert [client.get(key) for key in keys] == keys  # the old map: MOVED, then the new one


def redirections(node: Node) -> int:
    """How many ASK and MOVED replies ``node`` has sent (INFO errorstats counts them)."""
    with node.redis() as plain:
        stats = plain.info("errorstats")
    return sum(stats.get(f"errorstat_{kind}", {}).get("count", 0) for kind in ("ASK", "MOVED"))


def test_writes_and_reads_go_on_while_a_slot_moves(
    cluster: ClusterHandle, client: RedisCluster
) -> None:
    prefix = tag()
    pipe = client.pipeline()
    for index in range(2000):  # 20 MIGRATE batches: a window for ASK, not a guarantee of one
        pipe.set(f"{{{prefix}}}:{index}", index)
    pipe.execute()
    slot = client.keyslot(f"{{{prefix}}}:0")
    source = cluster.slot_owner(slot)
    redirected = redirections(source)
    stop, errors, written = threading.Event(), [], []

    def write() -> None:
        writer = cluster.client(decode_responses=True)
        try:
            index = 2000
            while not stop.is_set():
                key = f"{{{prefix}}}:{index}"
                writer.set(key, index)
                assert writer.get(f"{{{prefix}}}:{index % 2000}") == str(index % 2000)
                written.append(key)
                index += 1
        except Exception as error:  # reported by the test below
            errors.append(error)
        finally:
            writer.close()

    def wait_for_writes(count: int) -> None:
        services.wait_for(
            lambda: len(written) >= count or errors, timeout=10, what="writes", interval=0.01
        )

    thread = threading.Thread(target=write)
    thread.start()
    try:
        wait_for_writes(10)
        cluster.move_slots([slot], other_node(cluster, source))
        wait_for_writes(len(written) + 10)  # the writer's map is stale now: MOVED at least
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors
    assert redirections(source) > redirected
    with source.redis() as plain:
        assert plain.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    assert client.mget_nonatomic(written) == [key.rsplit(":", 1)[1] for key in written]


def test_a_script_runs_over_the_keys_of_one_hash_tag(
    cluster: ClusterHandle, client: RedisCluster
) -> None:
    prefix = tag()
    keys = [f"{{{prefix}}}:a", f"{{{prefix}}}:b"]
    script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[1])"

    assert client.eval(script, 2, *keys, 5) == 5
    assert client.eval(script, 2, *keys, 2) == 7
    with cluster.slot_owner(client.keyslot(keys[0])).redis(decode_responses=True) as owner:
        assert owner.mget(keys) == ["2", "7"]  # on the owner itself, not through redirections
    with pytest.raises(RedisClusterException, match="same key slot"):
        client.eval(script, 2, keys[0], f"{{{tag()}}}:b", 1)


def test_every_server_stops_on_exit(tmp_path: Path) -> None:
    with redis_cluster(tmp_path, primaries=2) as handle:
        pids = handle.pids
        assert not any(gone(pid) for pid in pids)
    assert all(gone(pid) for pid in pids)


def test_every_server_stops_when_the_body_raises(tmp_path: Path) -> None:
    pids: tuple[int, ...] = ()
    with pytest.raises(RuntimeError, match="the body failed"), redis_cluster(tmp_path) as handle:
        pids = handle.pids
        raise RuntimeError("the body failed")
    assert len(pids) == 3
    assert all(gone(pid) for pid in pids)
