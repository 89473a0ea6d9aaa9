"""Benchmark: orchestration at scale, 100,000 pages on an instance in PostgreSQL.

A whole-GitHub crawl is about 250 million IDs: 100,000 pages of 2,500 IDs, Dagster's advised
ceiling of partitions per asset. On a throwaway PostgreSQL server (``initdb``, as the topology
test starts it: ``gh_assets_devtools.postgres.postgres_server``) with the scale-out instance
(``deploy/dagster.yaml``), the bench measures what grows with the pages:

1. **Registering** the pages as dynamic partitions of ``github_pages``: ``add_missing_pages``
   (chunks of 5,000, as ``gh-assets demo`` and the pages sensor add them), each run into a fresh
   database; one ``add_dynamic_partitions`` call of every key; and, for comparison, both on
   SQLite (the local instance), where one call of ~36k keys fails on some builds.
2. **One tick of each sensor** (``github_pages_sensor``, ``stale_pages_sensor``,
   ``refresh_analysis_sensor``) with every page registered and Redis holding every page's
   bookkeeping (written by ``RedisStore.write_page``, no crawl; every page last crawled over a
   week ago, so the stale-pages sensor has work), ticked by ``dagster-daemon`` against the code
   server; the tick's own start and end (what the UI shows) are the figure. Measured idle, and
   again once the backfills below have queued their runs.
3. **The partition-status query** the UI makes for ``github_users`` (``assetNodeOrError``
   with ``partitionKeys`` and ``assetPartitionStatuses``) against ``dagster-webserver`` on that
   instance, idle and with the backfills' runs queued (their pages "materializing").
4. **Launching a backfill of every page**, 25 pages per run (``GH_ASSETS_PAGES_PER_RUN``), as
   the UI does (``launchPartitionBackfill``), until every run is queued. Nothing executes:
   the instance keeps Dagster's ``QueuedRunCoordinator`` with ``max_concurrent_runs: 0`` ("0
   to stop any runs from launching"), so the backfill daemon creates and queues every run and
   the queue launches none; this is the backfill daemon's submission alone. The daemon is
   started right after the launch (its backfill loop iterates at start, then every 30 s), so
   "pickup" is its start-up here, at most 30 s in a running deployment. The daemon gets the
   target's 10 minutes (``at_scale_backfill_window``); what it has not queued by then is
   projected at its rate, and the backfill is set aside with its queued runs kept. The same
   backfill then runs for a shorter window with Dagster's switch that records one planned event
   per run instead of one per page, which splits the daemon's cost into per run and per page;
   from both, the notes give the page widths and pages per run that keep a whole-GitHub crawl
   within the targets.

The sizes: ``default`` 100,000 pages (~15 minutes); ``tiny`` 2,000 pages and windows of seconds
(the same steps in under a minute).
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.at_scale_deployment import deployment, instance_yaml
from bench.at_scale_figures import add_figures
from bench.at_scale_steps import (
    PAGES_PER_RUN,
    backfill,
    one_call,
    open_instance,
    partition_status,
    sqlite_home,
    timed_registration,
    write_bookkeeping,
)
from bench.figures import Section
from bench.servers import Context, standin_process
from gh_assets.partitions import PageWindow, github_pages
from gh_assets.storage import RedisStore
from gh_assets_devtools.deployment import clean_environment
from gh_assets_devtools.postgres import postgres_server

PAGE_WIDTH = 2_500  # IDs per page: 100,000 pages cover 250 M IDs, all of GitHub
REDIS_DB = 5
PREFIX = "scale:"
CRAWLED_AGO = timedelta(days=8)  # older than GH_ASSETS_RECRAWL_AFTER (a week): every page stale


def run(ctx: Context) -> Section:
    import dagster as dg

    size = ctx.size
    pages = size.at_scale_pages
    interval = size.at_scale_sensor_interval
    timeout = 180.0
    section = Section(
        "at_scale",
        f"Orchestration at scale: {pages:,} pages of {PAGE_WIDTH:,} IDs, instance on PostgreSQL",
    )
    windows = [PageWindow.number(k, PAGE_WIDTH) for k in range(pages)]
    keys = [w.key for w in windows]
    section.params = {
        "pages": pages,
        "page_width": PAGE_WIDTH,
        "ids": pages * PAGE_WIDTH,
        "pages_per_run": PAGES_PER_RUN,
        "sensor_interval_s": interval,
        "backfill_window_s": size.at_scale_backfill_window,
        "subset_events_window_s": size.at_scale_probe_window,
        "instance": "deploy/dagster.yaml on a throwaway PostgreSQL; QueuedRunCoordinator with "
        "max_concurrent_runs 0 (queues every run, launches none); DefaultRunLauncher",
    }
    m: dict[str, Any] = {"pages": pages}
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(postgres_server(ctx.tmp / "at-scale-logs"))
        section.params["postgres"] = postgres.query("SHOW server_version")[0][0]

        # 1. registering the pages: each run into a fresh database; the first one is kept
        home = ctx.tmp / "at-scale-home"
        instance = stack.enter_context(open_instance(home, instance_yaml(postgres)))
        m["register"] = [timed_registration(instance, keys)]
        for index in range(1, ctx.runs):
            fresh = postgres.create_database(f"register_{index}")
            with open_instance(ctx.tmp / f"at-scale-db-{index}", instance_yaml(fresh)) as other:
                m["register"].append(timed_registration(other, keys))
            postgres.drop_database(fresh.database)
        fresh = postgres.create_database("one_call")
        with open_instance(ctx.tmp / "at-scale-db-one-call", instance_yaml(fresh)) as other:
            other.get_dynamic_partitions(github_pages.name)
            m["one_call"] = one_call(other, keys)
        postgres.drop_database(fresh.database)
        with dg.DagsterInstance.from_config(str(sqlite_home(ctx.tmp))) as sqlite:
            m["sqlite_chunked"] = timed_registration(sqlite, keys)
            m["sqlite_one_call"] = one_call(sqlite, [f"{key}-one-call" for key in keys])
        started = time.perf_counter()
        for _ in range(ctx.runs):
            instance.get_dynamic_partitions(github_pages.name)
        m["read_keys"] = (time.perf_counter() - started) / ctx.runs

        # Redis: every page's bookkeeping, every page last crawled over a week ago
        store = RedisStore.from_url(ctx.redis_db(REDIS_DB), PREFIX)
        stack.callback(store.client.close)
        m["bookkeeping"] = write_bookkeeping(store, windows, datetime.now(UTC) - CRAWLED_AGO)

        standin = stack.enter_context(standin_process(ctx.tmp / "at-scale-standin", size=1000))
        env = clean_environment(
            DAGSTER_HOME=home,
            REDIS_URL=ctx.redis_db(REDIS_DB),
            GITHUB_API_URL=standin,
            GH_ASSETS_KEY_PREFIX=PREFIX,
            GH_ASSETS_PAGE_SIZE=PAGE_WIDTH,
            GH_ASSETS_PAGES=pages,
            GH_ASSETS_MAX_PAGES=max(pages, 100_000),
            GH_ASSETS_PAGES_PER_RUN=PAGES_PER_RUN,
            GH_ASSETS_SENSOR_INTERVAL=interval,
            GH_ASSETS_ASSET_STORAGE=ctx.tmp / "at-scale-storage",
            PYTHONUNBUFFERED=1,
        )
        scale = stack.enter_context(deployment(ctx.tmp / "at-scale", env, timeout))
        # 3. the partition status, nothing in flight
        m["status_idle"] = [partition_status(scale.api, pages)[0] for _ in range(ctx.runs)]
        # 2. sensor ticks: the daemon ticks each sensor at its start, then every interval
        since = time.time()
        with scale.daemon(timeout):
            m["ticks_idle"] = scale.wait_ticks(since, ctx.runs, timeout + interval * ctx.runs)
        # 4. a backfill of every page, 25 pages per run; then again with one planned event per
        # run instead of one per page (Dagster's switch), for the cost per page
        m["backfill"] = backfill(scale, instance, pages, size.at_scale_backfill_window)
        m["subset"] = backfill(
            scale, instance, pages, size.at_scale_probe_window, subset_events=True
        )
        # 2 and 3 again, with the backfills' runs queued
        since = time.time()
        with scale.daemon(timeout):
            m["ticks_queued"] = scale.wait_ticks(since, 1, timeout + 2 * interval)
        m["status_queued"] = [partition_status(scale.api, pages) for _ in range(ctx.runs)]
        m["queued_runs"] = instance.get_runs_count(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
        )
    add_figures(section, m)
    return section
