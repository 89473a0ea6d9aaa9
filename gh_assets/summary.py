"""Summary statistics of the users frame (its plots are in ``gh_assets.plots``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from gh_assets.storage import COUNTERS
from gh_assets.storage.schema import TIMES

STATISTICS = ("count", "sum", "mean", "median", "std", "p90", "p99", "max")
TOP_N = 10


@dataclass(frozen=True)
class UserSummary:
    """Statistics of each counter, accounts by type, the most followed accounts, and accounts per
    UTC year of each time (``user_fields``: a column per time, e.g. accounts created)."""

    counters: pd.DataFrame  # index: counter; columns: STATISTICS
    by_type: pd.DataFrame  # index: type; columns: accounts, share
    top_followers: pd.DataFrame  # TOP_N rows: id, login, type, followers
    per_year: pd.DataFrame  # index: year; columns: TIMES (accounts, int64)

    # What it is stored as (asset_storage): a file per table.
    TABLES = ("counters", "by_type", "top_followers", "per_year")

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in self.TABLES}

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame]) -> UserSummary:
        return cls(**{name: tables[name] for name in cls.TABLES})

    def render(self) -> str:
        """Plain-text tables for a terminal."""
        with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 120):
            return "\n\n".join(
                [
                    f"Counters over {int(self.counters['count'].iloc[0]):,} accounts:\n"
                    f"{self.counters.to_string()}",
                    f"Accounts by type:\n{self.by_type.to_string()}",
                    f"Top {TOP_N} by followers:\n{self.top_followers.to_string(index=False)}",
                ]
            )


def summarize(frame: pd.DataFrame) -> UserSummary:
    """Summary statistics (``std`` is the sample standard deviation, percentiles interpolate)."""
    values = frame[list(COUNTERS)]
    counters = pd.DataFrame(
        {
            "count": values.count(),
            "sum": values.sum(),
            "mean": values.mean(),
            "median": values.median(),
            "std": values.std(),
            "p90": values.quantile(0.90),
            "p99": values.quantile(0.99),
            "max": values.max(),
        }
    )
    accounts = frame["type"].astype(str).value_counts().rename("accounts")
    by_type = accounts.to_frame().assign(share=accounts / max(len(frame), 1))
    by_type.index.name = "type"
    top_followers = (
        frame.sort_values(["followers", "id"], ascending=[False, True])
        .head(TOP_N)[["id", "login", "type", "followers"]]
        .reset_index(drop=True)
    )
    per_year = year_table(
        {
            name: frame[name].dt.year.dropna().astype("int64").value_counts().to_dict()
            for name in TIMES
        }
    )
    return UserSummary(
        counters=counters, by_type=by_type, top_followers=top_followers, per_year=per_year
    )


def year_table(counts: dict[str, dict[int, int]]) -> pd.DataFrame:
    """Accounts per UTC year, a column per time (0 where a year has none), years ascending: the
    one construction both ``summarize`` and the merged aggregates use."""
    years = sorted({int(year) for found in counts.values() for year in found})
    return pd.DataFrame(
        {name: [int(counts[name].get(year, 0)) for year in years] for name in TIMES},
        index=pd.Index(years, dtype="int64", name="year"),
        dtype="int64",
    )
