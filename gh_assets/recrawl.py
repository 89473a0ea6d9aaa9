"""Which pages to crawl again, and when: shared by the re-crawl sensor and schedule."""

from collections.abc import Iterable
from datetime import datetime, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from gh_assets.storage import RedisStore

USERS_ASSET = dg.AssetKey("github_users")
CRAWL_JOB = "crawl_github_users"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Created but not yet submitted (a sensor's fresh request), queued, starting or running. Dagster's
# IN_PROGRESS_RUN_STATUSES leaves out QUEUED and NOT_STARTED, which hold a page just as well.
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    *IN_PROGRESS_RUN_STATUSES,
]


def pages_in_flight(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Page ranges ``(first key, last key)`` of runs of ``github_users`` queued or running."""
    ranges = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        if USERS_ASSET not in (run.asset_selection or ()) and run.job_name != CRAWL_JOB:
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


def pages_due(
    store: RedisStore,
    instance: dg.DagsterInstance,
    now: datetime,
    *,
    older_than: timedelta,
    limit: int,
) -> list[str]:
    """Pages to run now, at most ``limit``: first those whose rate-limit reset has passed, then
    those last written before ``now - older_than``, oldest first; never one already running."""
    in_flight = pages_in_flight(instance)
    deferred = store.deferred_pages()
    chosen = not_in_flight([page for page, due in deferred.items() if due <= now], in_flight)
    chosen = chosen[:limit]
    # A page still waiting for its rate-limit reset is not stale, however old its data. Ask Redis
    # for enough candidates that skipping those and the running ones still fills the batch.
    stale = store.stale_pages(now - older_than, limit + len(deferred) + len(in_flight))
    for page in not_in_flight(stale, in_flight):
        if len(chosen) >= limit:
            break
        if page not in deferred:
            chosen.append(page)
    return chosen
