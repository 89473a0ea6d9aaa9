"""The cluster benchmark's measurements: writes, frame reads and summaries on the bench's own
Redis and on each cluster (started for it alone), with the checks that every cluster stored and
read what one Redis did and merged the same summary (``bench.cluster`` makes the table of them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from redis.crc import key_slot

from bench.figures import BenchError
from bench.servers import Context, flush
from bench.users import write_pages
from gh_assets.aggregates import summarize_pages, summary_differences
from gh_assets.storage import PageWrite, RedisStore
from gh_assets.summary import UserSummary, summarize
from gh_assets_devtools.redis_cluster import ClusterHandle, redis_cluster

PRIMARIES = (1, 2, 3)  # the clusters, started one at a time
WRITTEN = PRIMARIES[-1]  # the cluster whose writes and summary are measured ctx.runs times


def nodes(primaries: int) -> str:
    """A cluster as labels and messages name it: "1 primary", "3 primaries"."""
    return f"{primaries} primar{'y' if primaries == 1 else 'ies'}"


# -- one Redis -------------------------------------------------------------------------------


def measure_single(ctx: Context, pages: list[PageWrite]) -> dict[str, Any]:
    """Writes, frame reads and both summaries on the bench's own Redis (emptied after), in
    seconds; with the frame and the summary every cluster's are compared with."""
    n = ctx.size.cluster_users
    store = RedisStore.from_url(ctx.redis_url, block=ctx.size.cluster_block)
    found: dict[str, Any] = {
        "writes": [], "reads": [], "frame": [], "merged": [], "agg": [], "warm": [], "one_page": []
    }  # fmt: skip
    try:
        _warm_up(store, pages[0])
        for _ in range(ctx.runs):
            flush(store.client)
            found["writes"].append(_write(store, pages, n))
        for _ in range(ctx.runs):
            started = time.perf_counter()
            frame = store.read_frame()
            read = time.perf_counter()
            expected = summarize(frame)
            summarized = time.perf_counter()
            merged = _cold_summary(store)
            found["merged"].append(time.perf_counter() - summarized)
            found["reads"].append(read - started)
            found["frame"].append(summarized - read)
            _check_summary(expected, merged, "one Redis")
            started = time.perf_counter()
            merged = summarize_pages(store)
            found["warm"].append(time.perf_counter() - started)
            _check_summary(expected, merged, "one Redis, unchanged")
            store.write_page(pages[len(pages) // 2])  # a re-crawl of one page, unchanged
            started = time.perf_counter()
            merged = summarize_pages(store)
            found["one_page"].append(time.perf_counter() - started)
            _check_summary(expected, merged, "one Redis, one page rewritten")
            started = time.perf_counter()
            aggregates = list(store.read_aggregates())
            found["agg"].append(time.perf_counter() - started)
        _check_rows(frame, n)
        found["reference"], found["summary"] = frame, expected
        found["histogram_entries"] = sum(len(h) for a in aggregates for h in a.histograms)
    finally:
        flush(store.client)
        store.close()
    return found


def _cold_summary(store: RedisStore) -> UserSummary:
    """``summarize_pages`` with no block's merge kept from before: every page's aggregates read."""
    for block in store.blocks():
        store.client.delete(store.block_summary_key(block))
    return summarize_pages(store)


def _warm_up(store: RedisStore, page: PageWrite) -> None:
    """One page written, read and summarised both ways, then flushed: what is imported or
    loaded on first use is not in the first run's figures."""
    flush(store.client)
    store.write_page(page)
    summarize(store.read_frame())
    summarize_pages(store)
    flush(store.client)


# -- clusters --------------------------------------------------------------------------------


def measure_cluster(
    ctx: Context, primaries: int, pages: list[PageWrite], single: dict[str, Any]
) -> dict[str, Any]:
    """A cluster of ``primaries``, started for this alone and stopped on return (failure
    included): the users written (``ctx.runs`` times on the ``WRITTEN`` cluster, else once),
    their spread, the frame read ``ctx.runs`` times and compared with one Redis's, and on the
    ``WRITTEN`` cluster the merged summary, in seconds."""
    n, runs = ctx.size.cluster_users, ctx.runs
    found: dict[str, Any] = {"writes": [], "reads": [], "merged": []}
    folder = ctx.tmp / f"cluster-{primaries}"
    with redis_cluster(folder, primaries=primaries) as cluster, _store(cluster, ctx) as store:
        if not store.cluster:
            raise BenchError(f"{cluster.url}: RedisStore.from_url did not find cluster mode")
        for _ in range(runs if primaries == WRITTEN else 1):
            for node in cluster.nodes:
                with node.redis() as client:
                    flush(client)
            found["writes"].append(_write(store, pages, n))
        found["write_retries"] = store.write_retries
        found["spread"] = _spread(cluster, store)
        for run in range(runs):
            started = time.perf_counter()
            frame = store.read_frame()
            found["reads"].append(time.perf_counter() - started)
            if run == 0:
                _same_frame(frame, single["reference"], nodes(primaries))
            del frame
        if primaries == WRITTEN:
            for _ in range(runs):
                started = time.perf_counter()
                merged = _cold_summary(store)
                found["merged"].append(time.perf_counter() - started)
                _check_summary(single["summary"], merged, nodes(primaries))
    return found


@contextmanager
def _store(cluster: ClusterHandle, ctx: Context) -> Iterator[RedisStore]:
    """A store on the cluster from its first node's URL alone, as ``REDIS_URL`` names one."""
    store = RedisStore.from_url(cluster.url, block=ctx.size.cluster_block)
    try:
        yield store
    finally:
        store.close()


def _spread(cluster: ClusterHandle, store: RedisStore) -> list[dict[str, int]]:
    """Blocks, users (``ZCARD`` of the blocks' id indexes) and keys (``DBSIZE``: login buckets
    and the global keys too) on each primary, in the cluster's order, each asked of the primary
    that owns the slot, with a plain client (a key elsewhere would be refused, not redirected)."""
    owners = cluster.slot_map()
    spread = {node: {"blocks": 0, "users": 0, "keys": 0} for node in cluster.nodes}
    for block in store.blocks():
        key = store.ids_key(block)
        node = owners[key_slot(key.encode())]
        with node.redis() as client:
            spread[node]["users"] += int(client.zcard(key))
        spread[node]["blocks"] += 1
    for node, keys in cluster.keys_per_node().items():
        spread[node]["keys"] = keys
    return list(spread.values())


# -- measurements and checks -----------------------------------------------------------------


def _write(store: RedisStore, pages: list[PageWrite], n: int) -> float:
    """Seconds to write every page through ``write_page``; all ``n`` users must be stored."""
    seconds = write_pages(store, pages)
    if store.user_count() != n:
        raise BenchError(f"{store!r}: {store.user_count()} users stored, {n} written")
    return seconds


def _check_rows(frame: pd.DataFrame, n: int) -> None:
    ids = frame["id"]
    if len(frame) != n or not ids.is_monotonic_increasing or (ids.min(), ids.max()) != (1, n):
        raise BenchError(f"one Redis: read_frame gave {len(frame)} rows, {n} users expected")


def _same_frame(found: pd.DataFrame, expected: pd.DataFrame, where: str) -> None:
    """The cluster's frame equals one Redis's (``attrs``, the read report, aside)."""
    found, expected = found.copy(deep=False), expected.copy(deep=False)
    found.attrs, expected.attrs = {}, {}
    try:
        pd.testing.assert_frame_equal(found, expected)
    except AssertionError as error:
        message = " ".join(str(error).split())
        raise BenchError(f"{where}: the frame differs from one Redis's: {message}") from None


def _check_summary(expected: UserSummary, merged: UserSummary, where: str) -> None:
    differences = summary_differences(expected, merged)
    if differences:
        raise BenchError(
            f"{where}: summarize_pages differs from summarize(frame): {'; '.join(differences)}"
        )
