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

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import cached_property

import numpy as np
import pandas as pd

from gh_assets.block_merges import cache_text, reusable
from gh_assets.storage import COUNTERS, RedisStore, frame_from_batches
from gh_assets.storage.schema import PAGE_TOP
from gh_assets.summary import TOP_N, UserSummary, summarize

assert TOP_N <= PAGE_TOP, "the pages' top lists must hold the summary's top accounts"

INT64_MAX = int(np.iinfo(np.int64).max)
COMPACT_AT = 1 << 20  # histogram entries held before they are added up: memory ~ distinct values
FIRST_FEW = 5
# What "the same summary" means (the module's docstring, ``summary_differences``).
EXACT_STATISTICS = ("count", "sum", "median", "p90", "p99", "max")
CLOSE_STATISTICS = ("mean", "std")
REL_TOL = 1e-12
EXACT_FLOAT_SUM = 2**53  # below it pandas' float64 sum of integers is exact: the means are equal


class AggregatesError(ValueError):
    """The stored aggregates cannot give the summary (missing, or not what the pages hold)."""


@dataclass(frozen=True)
class CounterTotals:
    """One counter over every account: exact sums and its whole distribution."""

    count: int
    total: int
    squares: int  # sum of squares
    low: int | None  # min (None without accounts)
    high: int | None  # max
    values: np.ndarray  # distinct values, ascending (int64)
    accounts: np.ndarray  # accounts having each value (int64)

    def value_at(self, rank: int) -> int:
        """The ``rank``-th smallest value (0-based), as in the sorted column."""
        return int(self.values[np.searchsorted(self._cumulative, rank, side="right")])

    def quantile(self, q: float) -> float:
        """numpy's ``quantile(method="linear")`` (pandas' ``quantile``), step by step in float64."""
        n = self.count
        virtual = (n - 1) * q
        if virtual >= n - 1:
            return float(self.value_at(n - 1))
        previous = math.floor(virtual)
        gamma = virtual - previous
        low, high = self.value_at(previous), self.value_at(previous + 1)
        difference = float(high - low)
        if gamma >= 0.5:  # numpy's _lerp: the nearer end, for monotonicity
            return float(high) - difference * (1 - gamma)
        return float(low) + difference * gamma

    def median(self) -> float:
        """pandas' median: the middle value, or the mean of the middle two, in float64."""
        n = self.count
        return (float(self.value_at((n - 1) // 2)) + float(self.value_at(n // 2))) / 2

    def mean(self) -> float:
        return self.total / self.count  # int / int: correctly rounded

    def std(self) -> float:
        """Sample standard deviation (ddof=1) from the exact sums, correctly rounded."""
        n = self.count
        if n < 2:
            return math.nan
        numerator, denominator = n * self.squares - self.total * self.total, n * (n - 1)
        with localcontext() as context:
            context.prec = 60
            return float((Decimal(numerator) / Decimal(denominator)).sqrt())

    @cached_property
    def _cumulative(self) -> np.ndarray:
        return np.cumsum(self.accounts)


@dataclass(frozen=True)
class TypeTotals:
    """The accounts of one type: how many, the lowest id, and each counter's sum."""

    accounts: int
    first_id: int
    sums: dict[str, int]

    def mean(self, counter: str) -> float:
        return self.sums[counter] / self.accounts


@dataclass(frozen=True)
class MergedAggregates:
    """Every page's aggregates added up: what the summary and its plots are made of."""

    pages: int
    accounts: int
    counters: dict[str, CounterTotals]  # COUNTERS order
    by_type: dict[str, TypeTotals]  # by accounts, ties by first appearance (lowest id)
    top: list[tuple[int, str, str, int]] = field(default_factory=list)  # id, login, type, followers

    def type_accounts(self, kind: str) -> int:
        found = self.by_type.get(kind)
        return found.accounts if found else 0

    def summary(self) -> UserSummary:
        """The ``UserSummary`` that ``summarize`` gives on a frame of the same users."""
        if self.accounts == 0:
            return summarize(frame_from_batches([]))  # pandas' own empty result, dtypes and all
        for counter, totals in self.counters.items():
            if totals.total > INT64_MAX:
                raise AggregatesError(
                    f"{counter}: the sum over every account, {totals.total}, exceeds int64"
                )
        index = pd.Index(list(COUNTERS))
        rows = [self.counters[counter] for counter in COUNTERS]

        def column(values: Iterable[float | int], dtype: str) -> pd.Series:
            return pd.Series(list(values), index=index, dtype=dtype)

        counters = pd.DataFrame(
            {
                "count": column((t.count for t in rows), "int64"),
                "sum": column((t.total for t in rows), "int64"),
                "mean": column((t.mean() for t in rows), "float64"),
                "median": column((t.median() for t in rows), "float64"),
                "std": column((t.std() for t in rows), "float64"),
                "p90": column((t.quantile(0.90) for t in rows), "float64"),
                "p99": column((t.quantile(0.99) for t in rows), "float64"),
                "max": column((t.high for t in rows), "int64"),
            }
        )
        accounts = pd.Series(
            [kind.accounts for kind in self.by_type.values()],
            index=pd.Index(list(self.by_type), name="type"),
            name="accounts",
            dtype="int64",
        )
        by_type = accounts.to_frame().assign(share=accounts / max(self.accounts, 1))
        kinds = sorted(self.by_type)
        ids, logins, types, followers = zip(*self.top[:TOP_N], strict=True)
        top_followers = pd.DataFrame(
            {
                "id": np.array(ids, dtype=np.int64),
                "login": pd.array(list(logins), dtype="str"),
                "type": pd.Categorical(list(types), categories=kinds),
                "followers": np.array(followers, dtype=np.int64),
            }
        )
        return UserSummary(counters=counters, by_type=by_type, top_followers=top_followers)


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
    for name in ("by_type", "top_followers"):
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
    merged, missing = _Merger(), []
    if pages is not None:
        _merge_pages(merged, store, pages, missing)
    else:
        blocks = store.blocks()
        for block, (version, stored) in zip(blocks, store.block_summaries(blocks), strict=True):
            reused = reusable(stored, version)
            if reused is not None:
                merged.absorb(reused)
                continue
            partial, gaps = _Merger(), []
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
    merged: _Merger, store: RedisStore, pages: Sequence[str], missing: list[str]
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


class _Merger:
    """Pages' aggregates added up one at a time; histograms compacted as they grow."""

    def __init__(self) -> None:
        self.pages = 0
        self.accounts = 0
        self.last_users = 0
        self.count = dict.fromkeys(COUNTERS, 0)
        self.total = dict.fromkeys(COUNTERS, 0)
        self.squares = dict.fromkeys(COUNTERS, 0)
        self.low: dict[str, int] = {}
        self.high: dict[str, int] = {}
        self.kinds: dict[str, list[int]] = {}  # type -> [accounts, first id]
        self.type_sums: dict[tuple[str, str], int] = {}
        self.top: list[tuple[int, str, str, int]] = []
        self.histograms = {counter: _Histogram() for counter in COUNTERS}

    def add(
        self, keys: list[str], raw: dict[bytes, bytes], histograms: list[dict[bytes, bytes]]
    ) -> None:
        """One page: its ``:agg`` hash and histograms, read from ``keys`` (``aggregate_keys``)."""
        agg = {key.decode(): value.decode() for key, value in raw.items()}
        try:
            self._add(agg)
        except (KeyError, ValueError) as error:
            raise AggregatesError(f"{keys[0]}: unreadable aggregates ({error!r})") from None
        for counter, key, histogram in zip(COUNTERS, keys[1:], histograms, strict=True):
            self.histograms[counter].add(key, histogram)

    def _add(self, agg: dict[str, str]) -> None:
        """One page's ``:agg`` hash, as the ``state`` of a merge of that page alone."""
        self.last_users = int(agg["users"])
        kinds = [name.removeprefix("type:") for name in agg if name.startswith("type:")]
        self._add_totals(
            {
                "pages": 1,
                "accounts": self.last_users,
                "count": {c: int(agg[f"{c}:count"]) for c in COUNTERS},
                "total": {c: agg[f"{c}:sum"] for c in COUNTERS},
                "squares": {c: agg[f"{c}:sumsq"] for c in COUNTERS},
                "low": {c: int(agg[f"{c}:min"]) for c in COUNTERS},
                "high": {c: int(agg[f"{c}:max"]) for c in COUNTERS},
                "kinds": {k: [int(agg[f"type:{k}"]), int(agg[f"first:{k}"])] for k in kinds},
                "type_sums": [
                    [c, name.removeprefix(f"{c}:sum:"), value]
                    for c in COUNTERS
                    for name, value in agg.items()
                    if name.startswith(f"{c}:sum:")
                ],
                "top": json.loads(agg["top"]),
            }
        )

    def state(self) -> dict:
        """Everything added so far, as JSON-ready values (``absorb`` adds it to another)."""
        histograms = {c: self.histograms[c].merged() for c in COUNTERS}
        return {
            "pages": self.pages,
            "accounts": self.accounts,
            "count": self.count,
            "total": {c: str(v) for c, v in self.total.items()},  # beyond int64: exact text
            "squares": {c: str(v) for c, v in self.squares.items()},
            "low": self.low,
            "high": self.high,
            "kinds": self.kinds,
            "type_sums": [[c, kind, str(v)] for (c, kind), v in self.type_sums.items()],
            "top": self.top,
            "hist": {c: [v.tolist(), a.tolist()] for c, (v, a) in histograms.items()},
        }

    def absorb(self, state: dict) -> None:
        """Add what ``state`` (another merge's ``state()``) holds, as if its pages were added."""
        try:
            for counter in COUNTERS:
                self.histograms[counter].extend(*state["hist"][counter])
            self._add_totals(state)
        except (KeyError, TypeError, ValueError) as error:
            raise AggregatesError(f"a block's stored summary is unreadable ({error!r})") from None

    def _add_totals(self, state: dict) -> None:
        """Everything of ``state`` but its histograms (the one rule for a page and a block)."""
        self.pages += state["pages"]
        self.accounts += state["accounts"]
        for counter in COUNTERS:
            self.count[counter] += state["count"][counter]
            self.total[counter] += int(state["total"][counter])
            self.squares[counter] += int(state["squares"][counter])
            if counter in state["low"]:
                low, high = state["low"][counter], state["high"][counter]
                self.low[counter] = min(self.low.get(counter, low), low)
                self.high[counter] = max(self.high.get(counter, high), high)
        for kind, (accounts, first) in state["kinds"].items():
            known = self.kinds.setdefault(kind, [0, first])
            known[0] += accounts
            known[1] = min(known[1], first)
        for counter, kind, value in state["type_sums"]:
            self.type_sums[counter, kind] = self.type_sums.get((counter, kind), 0) + int(value)
        top = [(int(i), login, kind, int(f)) for i, login, kind, f in state["top"]]
        self.top = sorted([*self.top, *top], key=lambda a: (-a[3], a[0]))[:TOP_N]

    def result(self) -> MergedAggregates:
        counters = {}
        for counter in COUNTERS:
            values, accounts = self.histograms[counter].merged()
            if int(accounts.sum()) != self.count[counter] or self.count[counter] != self.accounts:
                raise AggregatesError(
                    f"{counter}: the pages' histograms hold {int(accounts.sum())} accounts, "
                    f"their counts {self.count[counter]}, their users {self.accounts}"
                )
            counters[counter] = CounterTotals(
                count=self.count[counter],
                total=self.total[counter],
                squares=self.squares[counter],
                low=self.low.get(counter),
                high=self.high.get(counter),
                values=values,
                accounts=accounts,
            )
        # pandas' value_counts: by accounts, ties in order of first appearance (ascending ids).
        order = sorted(self.kinds, key=lambda kind: (-self.kinds[kind][0], self.kinds[kind][1]))
        by_type = {
            kind: TypeTotals(
                accounts=self.kinds[kind][0],
                first_id=self.kinds[kind][1],
                sums={c: self.type_sums.get((c, kind), 0) for c in COUNTERS},
            )
            for kind in order
        }
        return MergedAggregates(self.pages, self.accounts, counters, by_type, self.top)


class _Histogram:
    """value -> accounts, added up from the pages' histograms with numpy (exact int64)."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = [np.empty(0, np.int64)]
        self.accounts: list[np.ndarray] = [np.empty(0, np.int64)]
        self.pending = 0

    def add(self, where: str, stored: dict[bytes, bytes]) -> None:
        if not stored:
            return
        self.values.append(_int64(stored.keys(), where))
        self.accounts.append(_int64(stored.values(), where))
        self.pending += len(stored)
        if self.pending >= COMPACT_AT:
            self.merged()

    def extend(self, values: list[int], accounts: list[int]) -> None:
        """Add a merged histogram (``merged()`` of another), distinct values ascending."""
        if values:
            self.values.append(np.array(values, dtype=np.int64))
            self.accounts.append(np.array(accounts, dtype=np.int64))
            self.pending += len(values)
            if self.pending >= COMPACT_AT:
                self.merged()

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct values ascending, accounts per value), kept as the only part from now on."""
        values, accounts = np.concatenate(self.values), np.concatenate(self.accounts)
        order = np.argsort(values, kind="stable")
        values, accounts = values[order], accounts[order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else []
        values = values[starts]
        accounts = np.add.reduceat(accounts, starts) if len(values) else accounts
        self.values, self.accounts, self.pending = [values], [accounts], 0
        return values, accounts


def _int64(raw: Iterable[bytes], where: str) -> np.ndarray:
    """Decimal strings as int64, refusing any that is not one (as the frame read does)."""
    items = list(raw)
    try:
        parsed = np.array(items).astype(np.int64)
    except (ValueError, OverflowError):
        bad = next((x for x in items if not (x.isdigit() and int(x) <= INT64_MAX)), items[0])
        raise AggregatesError(f"{where} holds {bad!r}, not an int64 count or value") from None
    if (parsed < 0).any():
        raise AggregatesError(f"{where} holds a negative number")
    return parsed
