"""``Merger``: pages' stored aggregates (``:agg`` hashes and value histograms), or blocks' kept
merges, added up one at a time into a ``MergedAggregates``; its ``state`` is what a block's
merge keeps (``block_merges``)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from gh_assets.aggregate_totals import (
    INT64_MAX,
    AggregatesError,
    CounterTotals,
    MergedAggregates,
    TypeTotals,
)
from gh_assets.storage import COUNTERS
from gh_assets.storage.schema import HISTOGRAMS, TIMES
from gh_assets.summary import TOP_N

COMPACT_AT = 1 << 20  # histogram entries held before they are added up: memory ~ distinct values


class Merger:
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
        self.histograms = {name: _Histogram() for name in HISTOGRAMS}

    def add(
        self, keys: list[str], raw: dict[bytes, bytes], histograms: list[dict[bytes, bytes]]
    ) -> None:
        """One page: its ``:agg`` hash and histograms, read from ``keys`` (``aggregate_keys``)."""
        agg = {key.decode(): value.decode() for key, value in raw.items()}
        try:
            self._add(agg)
        except (KeyError, ValueError) as error:
            raise AggregatesError(f"{keys[0]}: unreadable aggregates ({error!r})") from None
        for name, key, histogram in zip(HISTOGRAMS, keys[1:], histograms, strict=True):
            self.histograms[name].add(key, histogram)

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
        histograms = {name: self.histograms[name].merged() for name in HISTOGRAMS}
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
            kept = state["hist"]
            for name in HISTOGRAMS:  # a merge kept before a time joined the registry lacks it
                found = kept.get(name, ([], [])) if name in TIMES else kept[name]
                self.histograms[name].extend(*found)
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
        years = {name: self.histograms[name].merged() for name in TIMES}
        return MergedAggregates(self.pages, self.accounts, counters, by_type, self.top, years)


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
