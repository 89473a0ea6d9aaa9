"""Benchmark: the key schema on a Redis Cluster beside one Redis, and the merged summary.

The same users (``bench.users``: pages of 2,500 consecutive IDs as a crawl hands them to
``RedisStore.write_page``, in blocks of ``cluster_block`` IDs, ``schema.BLOCK`` by default) are
written to the bench's own Redis, then to real clusters of 1, 2 and 3 primaries
(``gh_assets_devtools.redis_cluster``), one cluster at a time, each stopped before the next starts
and the single Redis emptied before the first, so no server holds data or takes CPU while
another is measured. The store finds the cluster from one node's URL (``RedisStore.from_url``).

1. **Writes**: users/s through ``write_page``, one Redis vs 3 primaries (the 1- and 2-primary
   clusters are written once, to be read). On a cluster a page is more than its block's script:
   its members are read first (the script must declare every key it may delete), then its login
   entries are written (4,096 buckets, each its own slot: one HSET per bucket, pipelined per
   node) and then its registration (``gh:pages``), each on the node holding it. And where the
   users went: a block is one hash tag, so one slot, so 10 blocks fall on 3 primaries as their
   slots do, not evenly (blocks and users per primary, counted on each primary itself).
2. **The frame**: ``read_frame`` users/s, one Redis vs 1, 2 and 3 primaries (a cluster reads
   each primary in a thread of its own); every cluster's frame must equal one Redis's
   (``pd.testing.assert_frame_equal``, the read report in ``attrs`` aside).
3. **The summary**: ``summarize_pages`` the first time (every page's stored aggregates read
   from Redis and merged; no block's merge kept from before), again with nothing written since
   (every block's kept merge reused) and after one page is rewritten (its block merged again),
   vs ``summarize`` of the frame already in memory, and vs ``read_frame`` + ``summarize`` (a
   summary made from the frame, end to end), paired in each run. The merged
   summary must be identical (``gh_assets.aggregates.summary_differences``), on one Redis and
   on 3 primaries.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from redis.crc import key_slot

from bench.figures import BenchError, Row, Section, paired_ratios
from bench.servers import Context, flush
from bench.targets import missed
from bench.users import page_writes
from gh_assets.aggregates import summarize_pages, summary_differences
from gh_assets.storage import PageWrite, RedisStore
from gh_assets.summary import UserSummary, summarize
from gh_assets_devtools.redis_cluster import ClusterHandle, redis_cluster

PAGE_IDS = 2_500
PRIMARIES = (1, 2, 3)  # the clusters, started one at a time
WRITTEN = PRIMARIES[-1]  # the cluster whose writes and summary are measured ctx.runs times


def run(ctx: Context) -> Section:
    n, block = ctx.size.cluster_users, ctx.size.cluster_block
    section = Section(
        "cluster",
        f"Redis Cluster: {n:,} users on one Redis vs 1-3 primaries, and the merged summary",
        params={
            "users": n,
            "page_ids": PAGE_IDS,
            "block": block,
            "blocks": -(-n // block),
            "primaries": list(PRIMARIES),
            "cores": os.cpu_count(),
        },
    )
    pages = list(page_writes(1, n, PAGE_IDS))
    section.params["pages"] = len(pages)
    single = _single(ctx, pages)
    clusters = {p: _cluster(ctx, p, pages, single) for p in PRIMARIES}
    del pages

    for rows, measured, params in _tables(n, single, clusters):
        section.add_rows(rows, measured, n=n, pages=section.params["pages"], **params)
    section.details = {
        "histogram_entries": single["histogram_entries"],
        "spread": {str(p): found["spread"] for p, found in clusters.items()},
        "write_retries": {str(p): found["write_retries"] for p, found in clusters.items()},
    }
    _notes(section, ctx.size.name, single, clusters)
    return section


# -- one Redis -------------------------------------------------------------------------------


def _single(ctx: Context, pages: list[PageWrite]) -> dict[str, Any]:
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


def _cluster(
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
                _same_frame(frame, single["reference"], _nodes(primaries))
            del frame
        if primaries == WRITTEN:
            for _ in range(runs):
                started = time.perf_counter()
                merged = _cold_summary(store)
                found["merged"].append(time.perf_counter() - started)
                _check_summary(single["summary"], merged, _nodes(primaries))
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
    started = time.perf_counter()
    for page in pages:
        store.write_page(page)
    seconds = time.perf_counter() - started
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


# -- the table -------------------------------------------------------------------------------


def _rates(n: int, seconds: list[float]) -> list[float]:
    return [n / s for s in seconds]


def _medians_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The ratio of two sides' medians, measured in different runs (not paired)."""
    return statistics.median(numerators) / statistics.median(denominators)


def _tables(
    n: int, single: dict[str, Any], clusters: dict[int, dict[str, Any]]
) -> Iterator[tuple[tuple[Row, ...], Any, dict[str, Any]]]:
    """(rows, what they are measured from, their label's parameters), in the table's order."""
    writes = {p: _rates(n, found["writes"]) for p, found in clusters.items()}
    single_writes = _rates(n, single["writes"])
    yield (SINGLE_WRITE_ROW,), single_writes, {}
    for p in PRIMARIES:
        once = "" if p == WRITTEN else " (written once, to be read)"
        yield (CLUSTER_WRITE_ROW,), writes[p], {"primaries": p, "nodes": _nodes(p), "once": once}
    yield (WRITE_RATIO_ROW,), (writes[WRITTEN], single_writes), {"nodes": _nodes(WRITTEN)}
    spread = clusters[WRITTEN]["spread"]
    blocks = sum(s["blocks"] for s in spread)
    yield SPREAD_ROWS, spread, {"nodes": _nodes(WRITTEN), "blocks": blocks}
    reads = _rates(n, single["reads"])
    yield (SINGLE_READ_ROW,), reads, {}
    for p in PRIMARIES:
        measured = (_rates(n, clusters[p]["reads"]), reads)
        yield CLUSTER_READ_ROWS, measured, {"primaries": p, "nodes": _nodes(p)}
    summary = {
        "merged": single["merged"],
        "warm": single["warm"],
        "one_page": single["one_page"],
        "agg": single["agg"],
        "frame": single["frame"],
        "end_to_end": [r + f for r, f in zip(single["reads"], single["frame"], strict=True)],
        "cluster_merged": clusters[WRITTEN]["merged"],
    }
    yield SUMMARY_ROWS, summary, {"nodes": _nodes(WRITTEN)}


def _nodes(primaries: int) -> str:
    return f"{primaries} primar{'y' if primaries == 1 else 'ies'}"


SINGLE_WRITE_ROW = Row(
    "writes.single.users_per_s",
    "write_page, pages of 2,500 IDs, one Redis: users/s",
    "users/s",
    lambda rates: rates,
    digits=0,
)
CLUSTER_WRITE_ROW = Row(
    "writes.cluster{primaries}.users_per_s",
    "write_page, pages of 2,500 IDs, {nodes}{once}: users/s",
    "users/s",
    lambda rates: rates,
    digits=0,
)
WRITE_RATIO_ROW = Row(
    "writes.cluster_vs_single",
    "write_page: {nodes} / one Redis (medians)",
    "x",
    lambda m: _medians_ratio(*m),
    digits=2,
)
SPREAD_ROWS = (
    Row(
        "spread.primaries_with_users",
        "{blocks} blocks on {nodes}: primaries holding users",
        "primaries",
        lambda spread: sum(1 for s in spread if s["users"]),
        digits=0,
    ),
    Row(
        "spread.blocks_fewest",
        "{blocks} blocks on {nodes}: blocks on the emptiest primary",
        "blocks",
        lambda spread: min(s["blocks"] for s in spread),
        digits=0,
    ),
    Row(
        "spread.blocks_most",
        "{blocks} blocks on {nodes}: blocks on the fullest primary",
        "blocks",
        lambda spread: max(s["blocks"] for s in spread),
        digits=0,
    ),
    Row(
        "spread.users_most_share",
        "{blocks} blocks on {nodes}: users on the fullest primary",
        "%",
        lambda spread: 100 * max(s["users"] for s in spread) / sum(s["users"] for s in spread),
    ),
)
SINGLE_READ_ROW = Row(
    "reads.single.users_per_s",
    "read_frame, one Redis: users/s",
    "users/s",
    lambda rates: rates,
    digits=0,
)
CLUSTER_READ_ROWS = (
    Row(
        "reads.cluster{primaries}.users_per_s",
        "read_frame, {nodes}: users/s",
        "users/s",
        lambda m: m[0],
        digits=0,
    ),
    Row(
        "reads.cluster{primaries}_vs_single",
        "read_frame: {nodes} / one Redis (medians)",
        "x",
        lambda m: _medians_ratio(*m),
        digits=2,
    ),
)
SUMMARY_ROWS = (
    Row(
        "summary.merged_s",
        "summarize_pages, first: {pages:,} pages' aggregates read from one Redis and merged",
        "s",
        lambda m: m["merged"],
        digits=3,
    ),
    Row(
        "summary.unchanged_s",
        "summarize_pages again, no page written since: every block's merge reused",
        "s",
        lambda m: m["warm"],
        digits=4,
    ),
    Row(
        "summary.one_page_s",
        "summarize_pages after one page rewritten: its block merged again, the others reused",
        "s",
        lambda m: m["one_page"],
        digits=4,
    ),
    Row(
        "summary.read_aggregates_s",
        "summarize_pages: of which reading the aggregates (read_aggregates alone)",
        "s",
        lambda m: m["agg"],
        digits=3,
    ),
    Row(
        "summary.frame_s",
        "summarize(frame), the {n:,}-row frame in memory",
        "s",
        lambda m: m["frame"],
        digits=3,
    ),
    Row(
        "summary.end_to_end_s",
        "read_frame + summarize(frame), {n:,} users",
        "s",
        lambda m: m["end_to_end"],
        digits=3,
    ),
    Row(
        "summary.speedup",
        "summarize(frame) / summarize_pages (paired runs)",
        "x",
        lambda m: paired_ratios(m["frame"], m["merged"]),
    ),
    Row(
        "summary.speedup_unchanged",
        "summarize(frame) / summarize_pages with no page written since (paired runs)",
        "x",
        lambda m: paired_ratios(m["frame"], m["warm"]),
    ),
    Row(
        "summary.speedup_one_page",
        "summarize(frame) / summarize_pages after one page rewritten (paired runs)",
        "x",
        lambda m: paired_ratios(m["frame"], m["one_page"]),
    ),
    Row(
        "summary.speedup_end_to_end",
        "(read_frame + summarize) / summarize_pages (paired runs)",
        "x",
        lambda m: paired_ratios(m["end_to_end"], m["merged"]),
    ),
    Row(
        "summary.cluster_merged_s",
        "summarize_pages on {nodes}",
        "s",
        lambda m: m["cluster_merged"],
        digits=3,
    ),
    # Every merged summary was compared (a difference raises): 1 says they all were identical.
    Row(
        "summary.identical",
        "merged summary identical to summarize(frame) (one Redis, {nodes})",
        "1=yes",
        lambda m: 1.0,
        digits=0,
    ),
)


def _notes(
    section: Section, size: str, single: dict[str, Any], clusters: dict[int, dict[str, Any]]
) -> None:
    """Where the blocks went, what the 2 cores mean for the reads, and why the merged summary
    misses its target when it does."""
    spreads = "; ".join(
        f"{_nodes(p)}: "
        + " / ".join(f"{s['blocks']} ({s['users']:,} users)" for s in found["spread"])
        for p, found in clusters.items()
    )
    section.notes.append(
        f"Blocks per primary (users): {spreads}. A block's keys share one hash tag, so one "
        "slot: a block lies whole on one primary, and a few blocks spread as their slots fall, "
        "not evenly. Every primary also holds some of the 4,096 login buckets (DBSIZE in "
        "cluster.details.spread)."
    )
    section.notes.append(
        f"This machine has {os.cpu_count()} cores: the primaries, the bench's client and its "
        "read threads (one per primary) share them, so read_frame from more primaries cannot "
        "run faster here than those cores allow; the figures are the cost of the cluster's read "
        "path (per-primary groups and threads, the rows put back in id order), not the scaling "
        "of primaries on machines of their own."
    )
    params = section.params
    if missed(section, "summary.speedup", size):
        merged = statistics.median(single["merged"])
        agg = statistics.median(single["agg"])
        frame = statistics.median(single["frame"])
        section.notes.append(
            f"The first summarize_pages misses 100x: it reads {params['pages']:,} pages' "
            f"aggregates ({single['histogram_entries']:,} histogram entries) in "
            f"{agg * 1e3:.0f} ms and merges them in the rest of its {merged * 1e3:.0f} ms "
            f"({merged / params['pages'] * 1e6:.0f} us per page), while summarize(frame) takes "
            f"{frame / params['users'] * 1e9:.0f} ns per user. Both grow with the users (the "
            f"merge with the pages, one per {PAGE_IDS:,} IDs), so that ratio stays about the "
            "same at any size. It keeps each block's merge, so the next summaries read only the "
            "blocks of pages written since: the unchanged and one-page rows. Against a summary "
            "made from what Redis holds the frame's way (read_frame + summarize), the speedup "
            "is the speedup_end_to_end row."
        )
