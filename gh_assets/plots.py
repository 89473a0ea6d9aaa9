"""The summary's plots as PNG bytes, for the Dagster UI: readable at a glance, log scales where
the data is heavy-tailed (a few accounts have most of the followers)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from gh_assets.storage import COUNTERS

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


def follower_distribution(frame: pd.DataFrame) -> bytes:
    """Followers per account on log-log axes: the heavy tail is the story of this data."""
    followers = frame["followers"].to_numpy()
    with _figure() as (figure, axes):
        axes.hist(followers, bins=_log_bins(followers), color=COLOR)
        axes.set_xscale("symlog", linthresh=1)
        axes.set_yscale("log")
        axes.set_xlabel("followers")
        axes.set_ylabel("accounts")
        axes.set_title(f"Follower distribution of {len(followers):,} accounts")
        return _png(figure)


def repos_vs_followers(frame: pd.DataFrame) -> bytes:
    """Public repositories against followers, one hexagon per cell, both axes log(1 + x)."""
    with _figure() as (figure, axes):
        cells = axes.hexbin(
            frame["public_repos"].to_numpy() + 1,
            frame["followers"].to_numpy() + 1,
            xscale="log",
            yscale="log",
            bins="log",
            gridsize=30,
            mincnt=1,
            cmap="Blues",
        )
        figure.colorbar(cells, ax=axes, label="accounts")
        axes.set_xlabel("public repositories + 1")
        axes.set_ylabel("followers + 1")
        axes.set_title("Repositories vs followers")
        return _png(figure)


def users_vs_organizations(frame: pd.DataFrame) -> bytes:
    """Accounts by type, and each type's median counters side by side."""
    kinds = frame["type"].astype(str)
    with _figure(ncols=2) as (figure, (left, right)):
        counts = kinds.value_counts().sort_index()
        left.bar(counts.index, counts.to_numpy(), color=COLOR)
        left.set_yscale("log")
        left.set_ylabel("accounts")
        left.set_title("Accounts by type")
        medians = frame.groupby(kinds)[list(COUNTERS)].median()
        width = 0.8 / max(len(medians), 1)
        positions = np.arange(len(COUNTERS))
        for offset, (kind, row) in enumerate(medians.iterrows()):
            right.bar(positions + offset * width, row.to_numpy(), width, label=str(kind))
        right.set_xticks(positions + width * (len(medians) - 1) / 2, list(COUNTERS), rotation=20)
        right.set_ylabel("median")
        right.set_title("Median counters by type")
        right.legend()
        return _png(figure)


PLOTS: dict[str, Callable[[pd.DataFrame], bytes]] = {
    "follower_distribution": follower_distribution,
    "repos_vs_followers": repos_vs_followers,
    "users_vs_organizations": users_vs_organizations,
}
