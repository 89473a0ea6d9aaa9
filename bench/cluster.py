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
from collections.abc import Iterator
from typing import Any

from bench.cluster_measurements import PRIMARIES, WRITTEN, measure_cluster, measure_single, nodes
from bench.figures import Row, Section, paired_ratios
from bench.servers import Context
from bench.targets import missed
from bench.users import page_writes

PAGE_IDS = 2_500


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
    single = measure_single(ctx, pages)
    clusters = {p: measure_cluster(ctx, p, pages, single) for p in PRIMARIES}
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
        yield (CLUSTER_WRITE_ROW,), writes[p], {"primaries": p, "nodes": nodes(p), "once": once}
    yield (WRITE_RATIO_ROW,), (writes[WRITTEN], single_writes), {"nodes": nodes(WRITTEN)}
    spread = clusters[WRITTEN]["spread"]
    blocks = sum(s["blocks"] for s in spread)
    yield SPREAD_ROWS, spread, {"nodes": nodes(WRITTEN), "blocks": blocks}
    reads = _rates(n, single["reads"])
    yield (SINGLE_READ_ROW,), reads, {}
    for p in PRIMARIES:
        measured = (_rates(n, clusters[p]["reads"]), reads)
        yield CLUSTER_READ_ROWS, measured, {"primaries": p, "nodes": nodes(p)}
    summary = {
        "merged": single["merged"],
        "warm": single["warm"],
        "one_page": single["one_page"],
        "agg": single["agg"],
        "frame": single["frame"],
        "end_to_end": [r + f for r, f in zip(single["reads"], single["frame"], strict=True)],
        "cluster_merged": clusters[WRITTEN]["merged"],
    }
    yield SUMMARY_ROWS, summary, {"nodes": nodes(WRITTEN)}


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
        f"{nodes(p)}: "
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
