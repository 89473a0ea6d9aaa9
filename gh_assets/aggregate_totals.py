"""The pages' aggregates merged (``MergedAggregates``): each counter's exact sums and whole
distribution (``CounterTotals``), the accounts by type, the top accounts; and the
``UserSummary`` made of them, statistic by statistic as pandas computes it (``gh_assets.aggregates``
says how exactly)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import cached_property

import numpy as np
import pandas as pd

from gh_assets.storage import COUNTERS, frame_from_batches
from gh_assets.storage.schema import PAGE_TOP
from gh_assets.summary import TOP_N, UserSummary, summarize, year_table

assert TOP_N <= PAGE_TOP, "the pages' top lists must hold the summary's top accounts"

INT64_MAX = int(np.iinfo(np.int64).max)


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
    # per time of TIMES: (UTC years ascending, accounts per year), of the accounts having it
    years: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

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
        per_year = year_table(
            {name: dict(zip(*map(list, found), strict=True)) for name, found in self.years.items()}
        )
        return UserSummary(
            counters=counters, by_type=by_type, top_followers=top_followers, per_year=per_year
        )
