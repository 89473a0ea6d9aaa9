"""The at-scale benchmark's steps, each timed: registering the pages (PostgreSQL, SQLite),
every page's bookkeeping in Redis, the UI's partition-status query, and a backfill of every page
from launch until its runs are queued.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.at_scale_deployment import AtScale
from bench.figures import BenchError
from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.partitions import PageWindow, add_missing_pages, github_pages
from gh_assets.storage import RedisStore
from gh_assets.storage.store import PageWrite
from gh_assets_devtools.dagster_graphql import BACKFILL_TAG, DagsterGraphQL

PAGES_PER_RUN = 25
# Dagster's switch: one ASSET_MATERIALIZATION_PLANNED event per run instead of one per page.
SUBSET_EVENTS = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def open_instance(home: Path, config: Mapping[str, Any]):
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return dg.DagsterInstance.from_config(str(home))


def timed_registration(instance, keys: list[str]) -> float:
    """``add_missing_pages`` of every key (chunks of 5,000): seconds."""
    instance.get_dynamic_partitions(github_pages.name)  # storage connected, schema checked
    started = time.perf_counter()
    added = add_missing_pages(instance, keys)
    seconds = time.perf_counter() - started
    if len(added) != len(keys):
        raise BenchError(f"registered {len(added)} of {len(keys)} pages")
    return seconds


def one_call(instance, keys: list[str]) -> tuple[float, str | None]:
    """One ``add_dynamic_partitions`` call of every key: seconds, and the error if it failed."""
    started = time.perf_counter()
    try:
        instance.add_dynamic_partitions(github_pages.name, keys)
    except Exception as error:  # SQLite: "too many SQL variables"
        return time.perf_counter() - started, f"{type(error).__name__}: {str(error)[:120]}"
    return time.perf_counter() - started, None


def write_bookkeeping(store: RedisStore, windows: list[PageWindow], crawled: datetime) -> float:
    """Every page's bookkeeping as a crawl of empty pages leaves it (``write_page``), the oldest
    first, all before ``crawled``: seconds."""
    started = time.perf_counter()
    for index, window in enumerate(windows):
        meta = {
            "first_id": str(window.first_id),
            "last_id": str(window.last_id),
            **dict.fromkeys(("listed", "users", "gone", "not_modified", "reused"), "0"),
            "requests": "1",
            "budget_wait": "0",
        }
        fetched_at = crawled - timedelta(seconds=len(windows) - index)
        store.write_page(PageWrite(window.key, [], [], meta, fetched_at))
    return time.perf_counter() - started


def partition_status(api: DagsterGraphQL, pages: int) -> tuple[float, int]:
    """The UI's partition-status query for github_users: seconds, and how many partitions it
    found materializing (every key must be there)."""
    started = time.perf_counter()
    found = api.partitions(USERS_KEY)
    seconds = time.perf_counter() - started
    if len(found["keys"]) != pages:
        raise BenchError(f"partition status: {len(found['keys'])} keys, expected {pages}")
    return seconds, len(found["materializing"])


@dataclass
class Submission:
    """A backfill of every page, from launch until every run is queued or the window ends."""

    backfill_id: str
    planned: str  # how Dagster records the runs' planned pages: "per page" or "one per run"
    expected: int  # runs the backfill needs
    runs: int  # runs created within the window
    queued: int  # of them, queued
    launch: float  # the launchPartitionBackfill mutation, s
    pickup: float  # daemon started -> first run created, s
    submit: float  # first run created -> last run created, s
    window: float  # how long the daemon was given, s
    created: list[float] = field(default_factory=list)  # each run's creation, epoch s, in order

    @property
    def thirds(self) -> tuple[float, float]:
        """Seconds per run over the first and the last third of the runs: equal when the cost
        per run does not grow as the backfill goes on (the projection's assumption)."""
        third = len(self.created) // 3
        if third < 2:
            return self.per_run, self.per_run
        first, last = self.created[: third + 1], self.created[-third - 1 :]
        return (first[-1] - first[0]) / third, (last[-1] - last[0]) / third

    @property
    def complete(self) -> bool:
        return self.runs >= self.expected

    @property
    def per_run(self) -> float:
        """Seconds the daemon takes to create and queue one run."""
        return self.submit / (self.runs - 1) if self.runs > 1 and self.submit > 0 else math.inf

    @property
    def seconds(self) -> float:
        """Launch -> every run queued: measured when complete, else projected at the rate."""
        if self.complete:
            return self.launch + self.pickup + self.submit
        return self.launch + self.pickup + (self.expected - 1) * self.per_run


def backfill(
    scale: AtScale, instance, pages: int, window: float, *, subset_events: bool = False
) -> Submission:
    """Launch a backfill of every page as the UI does (25 pages a run); start the daemon; wait
    until every run is queued, or ``window`` seconds; set an unfinished backfill aside.
    ``subset_events``: the daemon records each run's planned pages as one event
    (``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``) instead of one per page."""
    import dagster as dg

    expected = math.ceil(pages / PAGES_PER_RUN)
    sent = time.perf_counter()
    backfill_id = scale.api.launch_backfill(USERS_KEY)  # allPartitions, as the UI's "all"
    launch = time.perf_counter() - sent
    tagged = dg.RunsFilter(tags={BACKFILL_TAG: backfill_id})
    extra = {SUBSET_EVENTS: "true"} if subset_events else {}
    with scale.daemon(180, **extra):
        started = time.time()
        while time.time() - started < window:
            if instance.get_runs_count(tagged) >= expected:
                break
            time.sleep(min(2.0, window / 10))
    records = instance.get_run_records(tagged)
    created = sorted(r.create_timestamp.timestamp() for r in records) or [started]
    queued = instance.get_runs_count(
        dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}, statuses=[dg.DagsterRunStatus.QUEUED])
    )
    submission = Submission(
        backfill_id=backfill_id,
        planned="one per run" if subset_events else "per page",
        expected=expected,
        runs=len(records),
        queued=queued,
        launch=launch,
        pickup=created[0] - started,
        submit=created[-1] - created[0],
        window=window,
        created=created,
    )
    # The daemon may be stopped between creating a run and queueing it: one at most.
    if submission.runs > expected or queued < submission.runs - 1 or submission.runs < 2:
        raise BenchError(
            f"backfill {backfill_id}: {submission.runs} runs ({queued} queued) in "
            f"{window:.0f} s, expected 2 to {expected}, all queued"
        )
    if not submission.complete:
        set_aside(instance, backfill_id)
    return submission


def set_aside(instance, backfill_id: str) -> None:
    """Mark a backfill canceled in storage, keeping the runs it queued: the daemon submits no
    more of it (a cancel through the UI would cancel its queued runs too)."""
    from dagster._core.execution.backfill import BulkActionStatus

    found = instance.get_backfill(backfill_id)
    instance.update_backfill(found.with_status(BulkActionStatus.CANCELED))


def sqlite_home(tmp: Path) -> Path:
    home = tmp / "at-scale-sqlite"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home
