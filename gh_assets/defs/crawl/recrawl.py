"""Which pages to crawl again, and when: shared by the re-crawl sensor and schedule."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import dagster as dg

from gh_assets.defs.crawl.jobs import crawl_job
from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.lost_pages import missing_pages
from gh_assets.storage import RedisStore

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# A run holds its pages from creation (a sensor's fresh request) until it ends.
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.SUSPENDED,
]


def pages_in_flight(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Page ranges ``(first key, last key)`` of runs of ``github_users`` queued or running."""
    ranges = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        if USERS_KEY not in (run.asset_selection or ()) and run.job_name != crawl_job.name:
            continue
        tags = run.tags
        if PARTITION_TAG in tags:
            ranges.append((tags[PARTITION_TAG], tags[PARTITION_TAG]))
        elif RANGE_START_TAG in tags:
            ranges.append((tags[RANGE_START_TAG], tags[RANGE_END_TAG]))
    return ranges


def not_in_flight(pages: Iterable[str], in_flight: list[tuple[str, str]]) -> list[str]:
    """``pages`` without those a run already covers (page keys sort in ID order)."""
    return [page for page in pages if not any(a <= page <= b for a, b in in_flight)]


def choose_pages(
    deferred: Mapping[str, datetime],
    stale: Sequence[str],
    in_flight: list[tuple[str, str]],
    now: datetime,
    limit: int,
    missing: Sequence[str] = (),
) -> list[str]:
    """At most ``limit`` pages: first the ``missing`` ones (written, but Redis lacks them), then
    the deferred ones whose reset has passed, then ``stale`` (oldest first), less those still
    waiting for a reset; never one a run already covers."""
    ready = [page for page, due in deferred.items() if due <= now]
    waiting = set(deferred) - set(ready)  # however old or lost its data, it waits for its reset
    chosen = not_in_flight([page for page in missing if page not in waiting], in_flight)
    chosen += not_in_flight(ready, in_flight)
    fresh = [page for page in not_in_flight(stale, in_flight) if page not in deferred]
    return list(dict.fromkeys(chosen + fresh))[:limit]


class Due(NamedTuple):
    """What ``pages_due`` found: the pages to request, and how many due pages it passed over
    because a queued or running run already holds them."""

    pages: list[str]
    held: int


def pages_due(
    store: RedisStore,
    instance: dg.DagsterInstance,
    now: datetime,
    *,
    older_than: timedelta,
    limit: int,
) -> Due:
    """``choose_pages`` over what Redis and the instance hold now.

    Pages Dagster holds as materialized that Redis lacks, or whose write never completed
    (``missing_pages``), come first. Stale candidates are read oldest first, as many as the
    batch needs plus those the deferred pages and runs may hold; a run of several pages holds
    more than one, so while the batch is not full and Redis has more stale pages, four times as
    many are read again.
    """
    in_flight = pages_in_flight(instance)
    deferred = store.deferred_pages()
    missing = missing_pages(store, instance, USERS_KEY).pages
    count = limit + len(deferred) + len(in_flight)
    while True:
        stale = store.stale_pages(now - older_than, count)
        chosen = choose_pages(deferred, stale, in_flight, now, limit, missing)
        if len(chosen) >= limit or len(stale) < count:
            break
        count *= 4
    ready = {page for page, due in deferred.items() if due <= now}
    waiting = set(deferred) - ready
    candidates = ready | (set(stale) - set(deferred)) | (set(missing) - waiting)
    return Due(chosen, len(candidates) - len(not_in_flight(candidates, in_flight)))
