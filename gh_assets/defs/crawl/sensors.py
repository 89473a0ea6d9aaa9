"""The crawl's sensors: register pages (and new ones as GitHub grows), and re-crawl pages that are
stale, lost from Redis or past their rate-limit reset."""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from gh_assets.defs.crawl.jobs import crawl_job
from gh_assets.defs.crawl.recrawl import pages_due
from gh_assets.frontier import FrontierError, newest_user
from gh_assets.github import GitHubError
from gh_assets.partitions import (
    PageWindow,
    default_page_keys,
    github_pages,
    overlap_message,
    overlaps,
    pages_up_to,
)
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings, at_load

ADD_CHUNK = 5_000  # page keys per dynamic-partitions request


@dg.definitions
def sensors() -> dg.Definitions:
    return dg.Definitions(sensors=crawl_sensors(at_load()))


def crawl_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The sensors that launch ``crawl_job``, ticking every ``settings.sensor_interval`` s."""
    return [_pages_sensor(settings), _stale_pages_sensor(settings)]


def _crawl_sensor(
    settings: Settings, name: str, description: str
) -> Callable[[Callable[..., Any]], dg.SensorDefinition]:
    """``@dg.sensor`` for a sensor that launches ``crawl_job``: on from the start, ticking every
    ``settings.sensor_interval`` seconds like the analysis sensor."""
    return dg.sensor(
        name=name,
        job=crawl_job,
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )


def _pages_sensor(settings: Settings) -> dg.SensorDefinition:
    @_crawl_sensor(
        settings,
        "github_pages_sensor",
        (
            "Registers the pages GH_ASSETS_PAGES x GH_ASSETS_PAGE_SIZE asks for (ready to "
            "backfill), and every GH_ASSETS_FRONTIER_INTERVAL seconds searches GET /users beyond "
            "the last page for the newest user: when GitHub has grown, it adds every page up to "
            "it (within GH_ASSETS_MAX_PAGES) and crawls them."
        ),
    )
    def github_pages_sensor(
        context: dg.SensorEvaluationContext, github: GitHubResource
    ) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {"probed_at": 0}
        known = set(context.instance.get_dynamic_partitions(github_pages.name))
        added = [key for key in default_page_keys(settings) if key not in known]
        clashes = overlaps(known, added)
        if clashes:  # a changed page width: say so each tick, add no page counting users twice
            context.log.warning(
                f"{overlap_message(*next(iter(clashes.items())))} "
                f"({len(clashes)} of the configured pages left out)"
            )
            added = [key for key in added if key not in clashes]
        # Pages growth added on earlier ticks exist now: crawl them, a batch at a time while few
        # crawls wait in the queue (a first probe of GitHub adds ~100,000 pages at once).
        room = settings.recrawl_batch - _waiting_runs(context.instance)
        keys, cursor["pending"] = _take_pending(cursor.get("pending"), room, known)
        runs = [dg.RunRequest(partition_key=key) for key in keys]
        if (
            time.time() - cursor["probed_at"] >= settings.frontier_interval
            and not cursor["pending"]
        ):
            cursor["probed_at"] = time.time()
            frontier = max(
                (PageWindow.from_key(key).last_id for key in known | set(added)), default=0
            )
            grown = _grown_pages(context, github, settings, frontier, len(known) + len(added))
            added += grown
            if grown:
                first, last = PageWindow.from_key(grown[0]), PageWindow.from_key(grown[-1])
                cursor["pending"] = [first.first_id, last.first_id, first.width]
        return dg.SensorResult(
            run_requests=runs,
            # In chunks, as add_missing_pages does: SQLite refuses too many keys in one query.
            dynamic_partitions_requests=[
                github_pages.build_add_request(added[start : start + ADD_CHUNK])
                for start in range(0, len(added), ADD_CHUNK)
            ],
            cursor=json.dumps(cursor),
        )

    return github_pages_sensor


def _waiting_runs(instance: dg.DagsterInstance) -> int:
    """Runs not started yet, of any job: a backfill's page runs are not ``crawl_job``'s."""
    waiting = [
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.STARTING,
    ]
    return instance.get_runs_count(dg.RunsFilter(statuses=waiting))


def _take_pending(pending: Any, room: int, known: set[str]) -> tuple[list[str], list[int]]:
    """Up to ``room`` keys of the pending pages ``[first_id, last_first_id, width]`` (a cursor
    from before holds a list of keys: taken as they are), and what is left."""
    if not pending:
        return [], []
    if isinstance(pending[0], str):  # the cursor of an earlier release
        return [key for key in pending if key in known], []
    first, last, width = pending
    keys: list[str] = []
    while first <= last and len(keys) < room:
        key = PageWindow(first, first + width - 1).key
        if key not in known:  # not registered yet (or forgotten since): try again next tick
            break
        keys.append(key)
        first += width
    return keys, [first, last, width] if first <= last else []


def _grown_pages(
    context: dg.SensorEvaluationContext,
    github: GitHubResource,
    settings: Settings,
    frontier: int,
    registered: int,
) -> list[str]:
    """Pages to add after ``frontier``, every one up to GitHub's newest user within the cap."""
    room = settings.max_pages - registered
    # The search need not look past the first ID of the last page there is room for.
    stop_at = frontier + max(room - 1, 0) * settings.page_size + 1
    try:
        with github.get_client() as client:
            newest = newest_user(client, frontier, stop_at=stop_at)
    except (GitHubError, FrontierError) as error:
        context.log.warning(f"frontier probe failed, trying again next time: {error}")
        return []
    if newest.id is None:
        context.log.info(f"frontier: no user after ID {frontier} ({newest.requests} request)")
        return []
    context.log.info(
        f"frontier: newest user ID {'at least ' if not newest.exact else ''}{newest.id} "
        f"after ID {frontier}, found in {newest.requests} requests"
    )
    grown = pages_up_to(frontier, newest.id, settings.page_size, room)
    if not grown:
        context.log.warning(
            f"GitHub has users beyond ID {frontier} but the crawl is at GH_ASSETS_MAX_PAGES "
            f"({settings.max_pages}); raise it or GH_ASSETS_PAGE_SIZE to follow them"
        )
    return grown


def _stale_pages_sensor(settings: Settings) -> dg.SensorDefinition:
    @_crawl_sensor(
        settings,
        "stale_pages_sensor",
        (
            "Re-crawls the pages Redis lost or never finished writing (materialized in "
            "Dagster, absent from gh:pages), the pages last written more than "
            "GH_ASSETS_RECRAWL_AFTER seconds ago, oldest first, GH_ASSETS_RECRAWL_BATCH per "
            "tick, and pages whose rate-limit reset has passed; never a page whose run is "
            "queued or running. Unchanged users cost no rate limit (304)."
        ),
    )
    def stale_pages_sensor(
        context: dg.SensorEvaluationContext, redis: RedisResource
    ) -> dg.SensorResult | dg.SkipReason:
        known = set(context.instance.get_dynamic_partitions(github_pages.name))
        due = pages_due(
            redis.get_store(),
            context.instance,
            datetime.now(UTC),
            older_than=timedelta(seconds=settings.recrawl_after),
            limit=settings.recrawl_batch,
        )
        pages = [page for page in due.pages if page in known]
        if not pages and due.held:
            return dg.SkipReason(
                f"no page to request: {due.held} stale or due pages, every one already queued "
                "or running"
            )
        if not pages:
            return dg.SkipReason(
                f"no page missing from Redis, older than {settings.recrawl_after} s or past "
                "its rate-limit reset"
            )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(partition_key=page, tags={"gh_assets/trigger": "recrawl"})
                for page in pages
            ]
        )

    return stale_pages_sensor
