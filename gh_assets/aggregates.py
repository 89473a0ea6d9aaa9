"""The summary at any scale: the pages' partial aggregates merged, never a user read.

Every page write also stores its page's aggregates (``gh:{b…}:page:{page}:agg`` and one value
histogram per counter, ``gh:{b…}:page:{page}:hist:{counter}``; see ``gh_assets.storage.schema``),
replaced with the page in the same atomic step. ``merge_pages`` reads them for every written page,
block by block, and adds them up; ``summarize_pages`` turns the result into the ``UserSummary`` that
``summarize`` computes on the full frame. The cost grows with the pages and with the distinct
values of the counters, not with the users; and each block's merge is kept
(``gh:{b…}:summary``, with the block's version, ``gh:{b…}:version``, which every page write moves),
so the next summary reads again only the blocks whose pages were written since.

What "the same" means, and why it holds (``summary_differences`` checks it;
``gh_assets_tests/test_aggregates.py`` proves it against pandas on crafted and crawled data, the
bench at 1,000,000 users):

- **identical**: counts, sums, min, max, the median, p90 and p99, ``by_type`` and
  ``top_followers``. Counters are integers, so the merged histograms are the exact distribution:
  the order statistics are exact, and ``quantile`` repeats numpy's linear interpolation (which
  pandas calls) operation for operation in float64, and the median pandas' mean of the middle
  two. ``by_type`` lists types by accounts, ties in order of first appearance in id order (the
  frame's order, and pandas' stable ``value_counts``): each page keeps the lowest id per type.
  The top accounts are within the union of each page's top ``PAGE_TOP``.
- **mean**: the exact total (Python integers) divided by the count, correctly rounded. pandas
  sums the column in float64, which is exact while the total is below 2**53 (then the two are
  equal); beyond that pandas rounds and we do not, so they agree to ``math.isclose(rel_tol=1e-12)``.
- **std** (sample, ddof=1): the square root of the exact variance, ``(n·Σx² - (Σx)²) / (n(n-1))``
  from the integer sums, correctly rounded. pandas computes it in two float64 passes (mean, then
  squared deviations, pairwise summed), so the two agree to ``math.isclose(rel_tol=1e-12)``, not
  bit for bit; pairwise summation keeps pandas' relative error near 1e-15 for any realistic
  count. (Where the spread is tiny beside values beyond 2**53, pandas cancels catastrophically
  and this one is the accurate value.)

Kept here, apart from ``gh_assets.summary`` (the frame's summary, which stays the reference): the
merge is a different algorithm over the stored aggregates, and the plots take its result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd

from gh_assets.aggregate_merge import Merger
from gh_assets.aggregate_totals import (
    AggregatesError,
    CounterTotals,
    MergedAggregates,
    TypeTotals,
)
from gh_assets.block_merges import cache_text, reusable
from gh_assets.storage import COUNTERS, RedisStore
from gh_assets.summary import UserSummary

__all__ = [
    "CLOSE_STATISTICS",
    "EXACT_STATISTICS",
    "REL_TOL",
    "AggregatesError",
    "CounterTotals",
    "MergedAggregates",
    "TypeTotals",
    "merge_pages",
    "summarize_pages",
    "summary_differences",
]

FIRST_FEW = 5
# What "the same summary" means (the module's docstring, ``summary_differences``).
EXACT_STATISTICS = ("count", "sum", "median", "p90", "p99", "max")
CLOSE_STATISTICS = ("mean", "std")
REL_TOL = 1e-12
EXACT_FLOAT_SUM = 2**53  # below it pandas' float64 sum of integers is exact: the means are equal


def summary_differences(expected: UserSummary, found: UserSummary) -> list[str]:
    """How ``found`` (``summarize_pages``) differs from ``expected`` (``summarize`` of the frame
    of the same users), by the module's definition of the same: the counters' dtypes and index,
    ``EXACT_STATISTICS``, ``by_type`` and ``top_followers`` identical; ``CLOSE_STATISTICS`` to
    ``math.isclose(rel_tol=REL_TOL)`` (both NaN counts as equal), the mean exactly where the
    counter's total is below 2**53. Empty when they are the same; one line per difference
    otherwise (pandas' own message for a table)."""
    found_dtypes = found.counters.dtypes.to_dict()
    expected_dtypes = expected.counters.dtypes.to_dict()
    differences = []
    if found_dtypes != expected_dtypes:
        differences.append(f"counters' dtypes {found_dtypes}, expected {expected_dtypes}")
    differences += _unequal(
        "counters' index",
        lambda: pd.testing.assert_index_equal(
            found.counters.index, expected.counters.index, exact=True
        ),
    )
    if differences:  # the statistics below are looked up by counter and column
        return differences
    exact = list(EXACT_STATISTICS)
    differences += _unequal(
        "counters",
        lambda: pd.testing.assert_frame_equal(
            found.counters[exact], expected.counters[exact], check_exact=True
        ),
    )
    for counter in COUNTERS:
        for statistic in CLOSE_STATISTICS:
            want = expected.counters.at[counter, statistic]
            got = found.counters.at[counter, statistic]
            if not (math.isnan(want) and math.isnan(got)) and not math.isclose(
                got, want, rel_tol=REL_TOL
            ):
                differences.append(f"{counter} {statistic}: {got!r}, expected {want!r}")
        stated = expected.counters.at  # count and sum as int64, not upcast with the floats
        want, got = stated[counter, "mean"], found.counters.at[counter, "mean"]
        if stated[counter, "count"] and stated[counter, "sum"] < EXACT_FLOAT_SUM and got != want:
            differences.append(f"{counter} mean: {got!r}, expected exactly {want!r}")
    for name in ("by_type", "top_followers", "per_year"):
        differences += _unequal(
            name,
            lambda name=name: pd.testing.assert_frame_equal(
                getattr(found, name), getattr(expected, name), check_exact=True
            ),
        )
    return differences


def _unequal(what: str, check: Callable[[], None]) -> list[str]:
    """``check``'s assertion as one line naming ``what``; nothing when it holds."""
    try:
        check()
    except AssertionError as error:
        return [f"{what}: {' '.join(str(error).split())}"]
    return []


def summarize_pages(store: RedisStore) -> UserSummary:
    """``summarize(store.read_frame())``, from the pages' aggregates (see the module)."""
    return merge_pages(store).summary()


def merge_pages(store: RedisStore, pages: Sequence[str] | None = None) -> MergedAggregates:
    """Add up the aggregates of ``pages`` (default: every written page), each page read whole as
    its last write left it. Refuses, in one line, pages that hold users but have no aggregates
    (written before they existed: crawl them again) or aggregates that disagree with the page's
    members.

    By default, block by block: a block's pages merged at its current version are reused as
    stored (``RedisStore.block_summaries``); a block whose version moved since (a page written
    or forgotten) is merged again from its pages and stored with the version it was read at,
    when no page of it changed during the read. So a summary reads every page once, and
    afterwards only the blocks of pages written since.
    """
    merged, missing = Merger(), []
    if pages is not None:
        _merge_pages(merged, store, pages, missing)
    else:
        blocks = store.blocks()
        for block, (version, stored) in zip(blocks, store.block_summaries(blocks), strict=True):
            reused = reusable(stored, version)
            if reused is not None:
                merged.absorb(reused)
                continue
            partial, gaps = Merger(), []
            _merge_pages(partial, store, store.block_pages(block), gaps)
            missing += gaps
            state = partial.state()
            if not gaps and store.block_version(block) == version:  # no write meanwhile
                store.store_block_summary(block, cache_text(version, state))
            merged.absorb(state)
    if missing:
        shown = ", ".join(missing[:FIRST_FEW]) + (" …" if len(missing) > FIRST_FEW else "")
        raise AggregatesError(
            f"{len(missing)} pages hold users but no aggregates ({shown}): written before the "
            "pages kept aggregates; crawl them again (unchanged users cost a free 304 each)"
        )
    return merged.result()


def _merge_pages(
    merged: Merger, store: RedisStore, pages: Sequence[str], missing: list[str]
) -> None:
    """Add ``pages``' stored aggregates to ``merged``; pages holding users without any go to
    ``missing``."""
    for stored in store.read_aggregates(pages):
        if not stored.agg:
            if stored.members:
                missing.append(stored.page)
            continue
        merged.add(store.aggregate_keys(stored.page), stored.agg, stored.histograms)
        if merged.last_users != stored.members:
            raise AggregatesError(
                f"page {stored.page}: its aggregates count {merged.last_users} users, its member "
                f"set {stored.members}; crawl it again"
            )
