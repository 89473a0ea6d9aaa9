"""Pages Dagster holds as materialized that Redis does not hold (lost with the data's Redis: a
``FLUSHDB``, a restart without persistence), and pages whose write began but never completed:
the summary and the frame miss their users, so a check and the summary name them, and
``stale_pages_sensor`` crawls them again."""

from __future__ import annotations

from typing import NamedTuple

import dagster as dg

from gh_assets.partitions import github_pages
from gh_assets.storage import RedisStore
from gh_assets.storage.registration import unregistered, write_begun

SHOWN = 20  # page keys a one-line message names


class MissingPages(NamedTuple):
    """Registered pages that ``gh:pages`` lacks although they were written, in ID order."""

    lost: list[str]  # materialized in Dagster
    unfinished: list[str]  # not materialized: a write began (its block's page set holds it)

    @property
    def pages(self) -> list[str]:
        return sorted({*self.lost, *self.unfinished})

    def describe(self) -> str:
        """One line: how many of each, naming the first ``SHOWN``."""
        parts = [
            f"{len(pages)} {what} ({_first(pages)})"
            for pages, what in (
                (self.lost, "materialized in Dagster but not in Redis"),
                (self.unfinished, "whose write never completed"),
            )
            if pages
        ]
        if not parts:
            return "every page Dagster holds as materialized is in Redis"
        return f"pages missing: {'; '.join(parts)}; stale_pages_sensor crawls them again"


def missing_pages(
    store: RedisStore, instance: dg.DagsterInstance, users_key: dg.AssetKey
) -> MissingPages:
    """The registered pages of ``users_key`` (the page asset) that ``gh:pages`` lacks and that
    Dagster holds as materialized, or whose write began in Redis. A page never crawled is
    neither: it waits for its backfill."""
    absent = unregistered(store, sorted(instance.get_dynamic_partitions(github_pages.name)))
    materialized = instance.get_materialized_partitions(users_key) if absent else set()
    lost = [page for page in absent if page in materialized]
    unfinished = write_begun(store, [page for page in absent if page not in materialized])
    return MissingPages(lost, unfinished)


def _first(pages: list[str]) -> str:
    more = len(pages) - SHOWN
    return ", ".join(pages[:SHOWN]) + (f", … ({more} more)" if more > 0 else "")
