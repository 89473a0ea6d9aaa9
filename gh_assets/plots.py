"""The summary's plots as PNG bytes, for the Dagster UI: readable at a glance, log scales where
the data is heavy-tailed (a few accounts have most of the followers). They are drawn from the
pages' merged aggregates (``gh_assets.aggregates``), never from the users themselves."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from gh_assets.aggregates import CounterTotals, MergedAggregates
from gh_assets.storage import COUNTERS
from gh_assets.storage.schema import TIMES

SIZE = (7, 4)  # inches, at 100 dpi: 700x400 pixels
COLOR = "#4c72b0"


@contextmanager
def _figure(ncols: int = 1) -> Iterator[tuple[Any, Any]]:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, ncols, figsize=SIZE, dpi=100)
    try:
        yield figure, axes
    finally:
        plt.close(figure)


def _png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _log_bins(values: np.ndarray, count: int = 40) -> np.ndarray:
    """0, then ``count`` bins evenly spaced on a log scale up to the largest value."""
    top = max(int(values.max(initial=0)), 1)
    return np.unique(np.concatenate([[0], np.logspace(0, np.log10(top + 1), count)]).round())


def _distribution(totals: CounterTotals, label: str, title: str) -> bytes:
    """Accounts per value of one counter on log-log axes, from its merged histogram."""
    with _figure() as (figure, axes):
        axes.hist(
            totals.values, bins=_log_bins(totals.values), weights=totals.accounts, color=COLOR
        )
        axes.set_xscale("symlog", linthresh=1)
        if totals.count:  # nothing to scale in an empty store
            axes.set_yscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("accounts")
        axes.set_title(f"{title} of {totals.count:,} accounts")
        return _png(figure)


def follower_distribution(merged: MergedAggregates) -> bytes:
    """Followers per account on log-log axes: the heavy tail is the story of this data."""
    return _distribution(merged.counters["followers"], "followers", "Follower distribution")


def repos_distribution(merged: MergedAggregates) -> bytes:
    """Public repositories per account on log-log axes."""
    totals = merged.counters["public_repos"]
    return _distribution(totals, "public repositories", "Public repositories")


def users_vs_organizations(merged: MergedAggregates) -> bytes:
    """Accounts by type, and each type's mean counters side by side."""
    kinds = sorted(merged.by_type)
    with _figure(ncols=2) as (figure, (left, right)):
        left.bar(kinds, [merged.by_type[kind].accounts for kind in kinds], color=COLOR)
        if kinds:
            left.set_yscale("log")
        left.set_ylabel("accounts")
        left.set_title("Accounts by type")
        width = 0.8 / max(len(kinds), 1)
        positions = np.arange(len(COUNTERS))
        for offset, kind in enumerate(kinds):
            means = [merged.by_type[kind].mean(counter) for counter in COUNTERS]
            right.bar(positions + offset * width, means, width, label=kind)
        right.set_xticks(positions + width * (len(kinds) - 1) / 2, list(COUNTERS), rotation=20)
        right.set_ylabel("mean")
        right.set_title("Mean counters by type")
        if kinds:
            right.legend()
        return _png(figure)


def per_year(name: str) -> Callable[[MergedAggregates], bytes]:
    """Accounts per UTC year of the time ``name`` (e.g. ``created_at``: accounts created)."""

    def plot(merged: MergedAggregates) -> bytes:
        years, accounts = merged.years.get(name, (np.empty(0, np.int64), np.empty(0, np.int64)))
        with _figure() as (figure, axes):
            axes.bar(years, accounts, color=COLOR)
            axes.set_xlabel(f"year ({name}, UTC)")
            axes.set_ylabel("accounts")
            axes.set_title(f"Accounts per year of {name}: {int(accounts.sum()):,} accounts")
            return _png(figure)

    return plot


PLOTS: dict[str, Callable[[MergedAggregates], bytes]] = {
    "follower_distribution": follower_distribution,
    "repos_distribution": repos_distribution,
    "users_vs_organizations": users_vs_organizations,
    **{f"{name}_per_year": per_year(name) for name in TIMES},
}
