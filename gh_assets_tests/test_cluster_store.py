"""The key schema on a real Redis Cluster (three primaries, ``gh_assets_devtools.redis_cluster``),
``REDIS_URL`` naming one of its nodes and nothing else configured: a crawl of the stand-in stores
what it stores on one Redis, field by field, its blocks spread over every shard; a resharding in
the middle of a crawl loses nothing; the frame and the merged summary equal one Redis's.

Blocks of 200 IDs (``RedisStore(block=...)``) put the stand-in's 1,000 IDs in five blocks, whose
hash tags ``{b0}`` .. ``{b4}`` fall on all three primaries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from gh_assets import preflight
from gh_assets.aggregates import merge_pages, summarize_pages
from gh_assets.asset_storage import storage_resources
from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient
from gh_assets.page_audit import page_findings
from gh_assets.partitions import PageWindow, add_missing_pages
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.storage import READ_REPORT, PageWrite, RedisStore
from gh_assets.storage.schema import CRAWL_TIME_FIELDS, HISTORY_KEYS
from gh_assets_devtools import services
from gh_assets_devtools.redis_cluster import ClusterHandle, redis_cluster
from gh_assets_devtools.standin import Dataset, StandinServer

from .cluster_crawl import BLOCK, WINDOWS, crawl_all, primaries
from .dagster_runs import analyse, checks_of, crawl
from .page_writes import WHEN, user

# about 40 s: a cluster, stand-ins and slow slot moves
pytestmark = [pytest.mark.integration, pytest.mark.slow]
VOLATILE = frozenset(field.encode() for field in CRAWL_TIME_FIELDS)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as handle:
        yield handle


@pytest.fixture
def cluster_store(cluster: ClusterHandle, key_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(cluster.nodes[-1].url, key_prefix, block=BLOCK)  # any node
    yield store
    for client in primaries(store):
        keys = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
        for key in keys:
            client.delete(key)
    store.close()


@pytest.fixture
def single_store(redis_url: str, key_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, key_prefix, block=BLOCK)
    yield store
    store.close()


def contents(store: RedisStore) -> dict[str, object]:
    """Every key under the store's prefix, read on each primary, with its value comparable
    across crawls (the blocks' HISTORY_KEYS left out): hashes without VOLATILE fields, sets and
    sorted sets as member sets (the scores are ids or times), strings as they are."""
    found: dict[str, object] = {}
    for client in primaries(store):
        for raw in client.scan_iter(match=f"{store.prefix}*", count=1000):
            if raw.decode().rsplit(":", 1)[-1] in HISTORY_KEYS:
                continue
            kind = client.type(raw)
            value: object
            if kind == b"hash":
                value = {k: v for k, v in client.hgetall(raw).items() if k not in VOLATILE}
            elif kind == b"set":
                value = client.smembers(raw)
            elif kind == b"zset":
                value = set(client.zrange(raw, 0, -1))
            else:
                value = client.get(raw)
            assert raw.decode() not in found, f"{raw!r} on two primaries"
            found[raw.decode()] = value
    return found


def shards_holding_users(store: RedisStore) -> int:
    return sum(
        1
        for client in primaries(store)
        if next(client.scan_iter(match=f"{store.prefix}{{b*}}:user:*", count=1000), None)
    )


def assert_same_frames(cluster_store: RedisStore, single_store: RedisStore) -> pd.DataFrame:
    """The frame and the merged summary of both stores are equal (but each crawl's times)."""
    on_cluster, on_one = cluster_store.read_frame(batch=33), single_store.read_frame(batch=33)
    pd.testing.assert_frame_equal(
        on_cluster.drop(columns="fetched_at"), on_one.drop(columns="fetched_at")
    )
    assert on_cluster.attrs[READ_REPORT] == on_one.attrs[READ_REPORT]
    assert on_cluster.attrs[READ_REPORT]["pages_users"] == len(on_cluster)
    expected, found = summarize_pages(single_store), summarize_pages(cluster_store)
    for table in ("counters", "by_type", "top_followers"):
        pd.testing.assert_frame_equal(getattr(found, table), getattr(expected, table))
    assert merge_pages(cluster_store).accounts == len(on_cluster)
    return on_cluster


def redirections(cluster: ClusterHandle) -> int:
    """ASK, MOVED and TRYAGAIN replies every node has sent (INFO errorstats)."""
    total = 0
    for node in cluster.nodes:
        with node.redis() as plain:
            stats = plain.info("errorstats")
        kinds = ("ASK", "MOVED", "TRYAGAIN")
        total += sum(stats.get(f"errorstat_{kind}", {}).get("count", 0) for kind in kinds)
    return total


def test_a_crawl_stores_on_a_cluster_what_it_stores_on_one_redis(
    cluster: ClusterHandle,
    cluster_store: RedisStore,
    single_store: RedisStore,
    standin: StandinServer,
    dataset: Dataset,
) -> None:
    assert cluster_store.cluster and not single_store.cluster
    crawl_all(cluster_store, standin)
    crawl_all(single_store, standin)

    assert contents(cluster_store) == contents(single_store)
    assert shards_holding_users(cluster_store) == 3
    frame = assert_same_frames(cluster_store, single_store)
    assert frame["id"].tolist() == sorted(u.id for u in dataset.all_users())
    sha = cluster_store._write_page.sha
    for client in primaries(cluster_store):  # loaded on every primary (redis-py on NOSCRIPT)
        assert client.script_exists(sha) == [True]

    # Lookups and reads that go to one block's or one bucket's node, from any node's URL.
    user = dataset.all_users()[500]
    for node in cluster.nodes:
        store = RedisStore.from_url(node.url, cluster_store.prefix, block=BLOCK)
        try:
            assert store.user_id_for_login(user.login.upper()) == user.id
            assert store.read_users([user.id])[user.id]["login"] == user.login
            assert store.user_count() == len(frame)
        finally:
            store.close()


def test_a_resharding_during_a_crawl_loses_nothing(
    cluster: ClusterHandle,
    cluster_store: RedisStore,
    single_store: RedisStore,
    dataset: Dataset,
) -> None:
    # A stand-in slow enough that pages are written all through the slow moves below.
    with StandinServer(dataset, latency_ms=5) as standin:
        crawl_all(cluster_store, standin)
        for _ in range(2):  # the single Redis: a crawl and a re-crawl (304s), as the cluster
            crawl_all(single_store, standin)
        blocks = [cluster_store.block_tag(b) for b in range(5)]
        slots = [cluster_store.client.keyslot(tag + "ids") for tag in blocks]
        owners = cluster.slot_map()
        before, errors, passes = redirections(cluster), [], []
        stop = threading.Event()

        def recrawl() -> None:
            try:
                while not stop.is_set() or not passes:
                    crawl_all(cluster_store, standin)
                    passes.append(1)
            except Exception as error:  # reported below
                errors.append(error)

        crawler = threading.Thread(target=recrawl)
        crawler.start()
        try:
            for slot in slots:  # every block to the next primary, one key per MIGRATE
                target = cluster.nodes[(cluster.nodes.index(owners[slot]) + 1) % 3]
                cluster.move_slots([slot], target, batch=1, pause=0.002)
        finally:
            stop.set()
            crawler.join(timeout=120)
    assert not crawler.is_alive()
    assert not errors, errors
    moved = cluster.slot_map()
    assert all(moved[slot] != owners[slot] for slot in slots)
    assert redirections(cluster) > before  # the writes met the moves (ASK, TRYAGAIN, MOVED)
    assert contents(cluster_store) == contents(single_store)
    assert shards_holding_users(cluster_store) >= 2
    assert_same_frames(cluster_store, single_store)


def test_a_page_write_into_a_slot_being_moved_waits_until_the_move_is_over(
    cluster: ClusterHandle, cluster_store: RedisStore, standin: StandinServer, dataset: Dataset
) -> None:
    crawl_all(cluster_store, standin)
    window = WINDOWS[4]  # block 2
    slot = cluster_store.client.keyslot(cluster_store.ids_key(2))
    source = cluster.slot_owner(slot)
    target = cluster.nodes[(cluster.nodes.index(source) + 1) % 3]
    # Slow: about 4 s with the slot half moved, when every write into it is refused (TRYAGAIN:
    # a page's script has keys on both sides, or keys it creates).
    mover = threading.Thread(
        target=cluster.move_slots, args=([slot], target), kwargs={"batch": 10, "pause": 0.25}
    )
    mover.start()
    try:
        with source.redis() as plain:
            services.wait_for(
                lambda: f"[{slot}->-".encode() in plain.execute_command("CLUSTER", "NODES"),
                timeout=10,
                what="the slot to be migrating",
                interval=0.01,
            )
        with GitHubClient(standin.url) as github:
            (report,) = crawl_pages(github, cluster_store, [window])
    finally:
        mover.join(timeout=60)
    assert not mover.is_alive()
    assert cluster.slot_owner(slot) == target
    assert cluster_store.write_retries >= 1  # refused while the slot moved, then written
    assert report.written == len(dataset.users_between(window.first_id, window.last_id))
    assert page_findings(cluster_store, WINDOWS) == {
        "counters_valid": {},
        "users_accounted_for": {},
        "index_matches_hashes": {},
    }


def test_a_frame_read_while_a_slot_moves_starts_over_and_misses_nothing(
    cluster: ClusterHandle, cluster_store: RedisStore, standin: StandinServer
) -> None:
    crawl_all(cluster_store, standin)
    expected = cluster_store.read_frame()
    slot = cluster_store.client.keyslot(cluster_store.ids_key(3))
    target = cluster.nodes[(cluster.nodes.index(cluster.slot_owner(slot)) + 1) % 3]
    # Slow, as above: the block stays half moved for seconds, and reads keep starting.
    mover = threading.Thread(
        target=cluster.move_slots, args=([slot], target), kwargs={"batch": 5, "pause": 0.1}
    )
    frames = []
    mover.start()
    try:
        while mover.is_alive() or not frames:
            frames.append(cluster_store.read_frame(batch=33))
    finally:
        mover.join(timeout=60)
    assert not mover.is_alive()
    assert cluster.slot_owner(slot) == target
    assert cluster_store.read_retries >= 1  # a read met the move, and started over
    for frame in frames:
        pd.testing.assert_frame_equal(frame, expected)
        assert frame.attrs[READ_REPORT] == expected.attrs[READ_REPORT]


def meta(users: int, gone: int) -> dict[str, str]:
    return {"listed": str(users + gone), "users": str(users), "gone": str(gone)}


def test_a_page_write_cut_short_by_a_slot_move_is_rewritten_whole(
    cluster: ClusterHandle, cluster_store: RedisStore
) -> None:
    window = PageWindow(1, 100)
    first = PageWrite(window.key, [user(1), user(2), user(3)], [9], meta(3, 1), WHEN)
    cluster_store.write_page(first)
    # Every key the write declares exists (else the source answers ASK before the script runs).
    cluster_store.stage_answers(window.key, {1: user(1)})
    cluster_store.client.sadd(cluster_store.unpaged_key(0), 99_999)  # a kept user elsewhere
    slot = cluster_store.client.keyslot(cluster_store.ids_key(0))
    source = cluster.slot_owner(slot)
    target = cluster.nodes[(cluster.nodes.index(source) + 1) % 3]
    with source.redis() as src, target.redis() as dst:  # the slot starts moving, no key moved
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
    second = PageWrite(window.key, [user(1), user(2, "renamed")], [3], meta(2, 1), WHEN)
    writer = threading.Thread(target=cluster_store.write_page, args=(second,))
    writer.start()
    try:
        # The script ran on the source, deleted a key, could not write it back ("non local
        # key"): the page is half written until the retry after the move.
        services.wait_for(lambda: cluster_store.write_retries >= 1, timeout=10, what="a retry")
    finally:
        cluster.move_slots([slot], target)
        writer.join(timeout=60)
    assert not writer.is_alive()
    assert cluster.slot_owner(slot) == target
    assert cluster_store.page_members(window.key) == {1, 2}
    assert cluster_store.read_users([1, 2, 3])[2]["login"] == "renamed"
    assert set(cluster_store.read_users([1, 2, 3])) == {1, 2}
    assert cluster_store.ids_between(1, 100) == {1, 2}
    assert cluster_store.user_id_for_login("renamed") == 2
    assert page_findings(cluster_store, [window]) == {
        "counters_valid": {},
        "users_accounted_for": {},
        "index_matches_hashes": {},
    }


@pytest.mark.parametrize("where", ["single_store", "cluster_store"])
def test_an_older_crawl_writing_last_writes_nothing(where: str, request: pytest.FixtureRequest):
    from gh_assets.storage.crawl_order import crawl_started  # new with the ordering of crawls

    store: RedisStore = request.getfixturevalue(where)
    window = PageWindow(1, 100)
    newer = crawl_started(store, window.key)  # Redis's clock, on the node of the page's block
    later = WHEN + timedelta(hours=1)
    kept = PageWrite(window.key, [user(1), user(2, "newer")], [], meta(2, 0), later, newer)
    assert store.write_page(kept)
    old = PageWrite(window.key, [user(1), user(3)], [2], meta(2, 1), WHEN, newer - 1_000_000)
    assert not store.write_page(old)  # started a second earlier, finishing last

    assert store.page_members(window.key) == store.ids_between(1, 100) == {1, 2}
    assert store.user_id_for_login("newer") == 2 and store.read_users([3]) == {}
    assert store.page_gone(window.key) == set()
    assert store.page_meta(window.key)["started"] == str(newer)
    assert store.pages_fetched_at() == {window.key: later}  # gh:pages never moves back
    assert store.write_page(kept)  # the same crawl's write tried again is accepted


def test_users_kept_by_forgetting_their_page_are_claimed_on_a_cluster(
    cluster_store: RedisStore,
) -> None:
    narrow, wide = PageWindow(1, 100).key, PageWindow(1, 200).key
    cluster_store.write_page(PageWrite(narrow, [user(1), user(2)], [], {"users": "2"}, WHEN))
    cluster_store.forget_pages([narrow])
    cluster_store.write_page(PageWrite(wide, [user(1)], [], {"users": "1"}, WHEN))
    assert cluster_store.ids_between(1, 200) == cluster_store.page_members(wide) == {1}
    assert cluster_store.read_users([2]) == {}


def test_the_assets_run_on_a_cluster_named_by_any_node(
    cluster: ClusterHandle, key_prefix: str, standin: StandinServer, tmp_path: Path
) -> None:
    url = cluster.nodes[1].url
    preflight.check_redis(url, prefix=key_prefix, block=BLOCK)
    resources = {
        "github": GitHubResource(
            api_url=standin.url,
            max_retries=1,
            budget_redis=RedisResource(url=url, key_prefix=key_prefix),
        ),
        "redis": RedisResource(url=url, key_prefix=key_prefix, block=BLOCK),
        **storage_resources(str(tmp_path / "storage")),
    }
    keys = [window.key for window in WINDOWS[1:3]]  # blocks 0 and 1: two primaries
    store = RedisStore.from_url(url, key_prefix, block=BLOCK)
    try:
        with dg.instance_for_test() as instance:
            add_missing_pages(instance, keys)
            for key in keys:
                result = crawl(instance, resources, key)
                assert result.success and set(checks_of(result).values()) == {True}
            result = analyse(instance, resources)
            assert result.success and set(checks_of(result).values()) == {True}
        frame = result.output_for_node("github_users_frame")
        assert len(frame) == store.page_user_total() == store.user_count() > 100
        assert shards_holding_users(store) == 2
        summary = result.output_for_node("github_user_summary")
        assert summary.counters.at["followers", "count"] == len(frame)
    finally:
        for client in primaries(store):
            for found in list(client.scan_iter(match=f"{key_prefix}*", count=1000)):
                client.delete(found)
        store.close()
