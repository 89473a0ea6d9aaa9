"""Operating the crawl in-process: checks, rate-limit deferral, re-crawl sensor, schedules,
automation of the analysis assets."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from gh_assets.asset_storage import storage_resources
from gh_assets.crawl import crawl_page
from gh_assets.defs.analysis.frame import github_users_frame
from gh_assets.defs.analysis.summary import github_user_summary
from gh_assets.defs.crawl.jobs import crawl_job
from gh_assets.defs.crawl.recrawl import RANGE_END_TAG, RANGE_START_TAG
from gh_assets.defs.crawl.schedules import weekly_recrawl_schedule
from gh_assets.defs.crawl.sensors import crawl_sensors
from gh_assets.partitions import PageWindow, add_missing_pages
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.http_server import Reply, Request

from .conftest import KEYS, TEST_SETTINGS, github_users
from .dagster_runs import ASSETS, analyse, checks_of, crawl

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_page_checks_pass_on_a_crawled_page_and_catch_a_broken_one(
    instance, resources, store: RedisStore
) -> None:
    result = crawl(instance, resources, KEYS[0])
    assert result.success
    assert checks_of(result) == {
        "counters_valid": True,
        "users_accounted_for": True,
        "index_matches_hashes": True,
    }

    from gh_assets.defs.crawl.page_asset import audit_pages

    window = PageWindow.from_key(KEYS[0])
    victim = min(store.page_members(KEYS[0]))
    store.client.hset(store.user_key(victim), "followers", "-3")
    store.client.hset(store.page_key(KEYS[0]), "gone", "5")
    store.client.srem(store.page_key(KEYS[0], "users"), victim)
    graded = {r.check_name: r for r in audit_pages(store, [window])}
    assert not graded["users_accounted_for"].passed
    assert not graded["index_matches_hashes"].passed
    store.client.sadd(store.page_key(KEYS[0], "users"), victim)
    graded = {r.check_name: r for r in audit_pages(store, [window])}
    assert not graded["counters_valid"].passed
    assert str(victim) in graded["counters_valid"].metadata["invalid_users"].value


def test_a_failing_frame_check_blocks_the_frame_not_the_summary(
    instance, resources, store: RedisStore
) -> None:
    for key in KEYS:
        assert crawl(instance, resources, key).success
    healthy = analyse(instance, resources)
    assert healthy.success
    assert checks_of(healthy) == {
        "frame_ids_and_logins_unique": True,
        "frame_counters_complete": True,
        "frame_rows_match_pages": True,
        "frame_every_indexed_user_read": True,
        "materialized_pages_in_redis": True,
    }

    store.client.hincrby(store.page_key(KEYS[1]), "users", 1)  # pages now claim one user more
    blocked = analyse(instance, resources)
    assert not blocked.success
    assert checks_of(blocked)["frame_rows_match_pages"] is False
    materialized = {e.asset_key for e in blocked.get_asset_materialization_events()}
    # The summary merges the pages' aggregates and never reads the frame: the frame's checks
    # do not hold it back, and its numbers are the pages' own.
    assert materialized == {dg.AssetKey("github_users_frame"), github_user_summary.key}
    (summary,) = blocked.asset_materializations_for_node("github_user_summary")
    assert summary.metadata["accounts"].value == store.user_count()


def test_a_long_rate_limit_fails_the_page_and_defers_it(
    instance, resources, standin: StandinServer, store: RedisStore
) -> None:
    standin.set_rate_limit(limit=20, window=3600, reset=True)
    result = crawl(instance, resources, KEYS[0])

    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "rate limit" in message and "resets at" in message and "not written" in message
    assert store.page_members(KEYS[0]) == set()
    due = store.deferred_pages()[KEYS[0]]
    assert datetime.now(UTC) + timedelta(minutes=55) < due <= datetime.now(UTC) + timedelta(hours=1)

    standin.set_rate_limit(limit=5000, reset=True)
    store.defer_page(KEYS[0], datetime.now(UTC) - timedelta(seconds=1))  # the reset has passed
    context = dg.build_sensor_context(instance=instance, resources=redis_only(resources))
    requested = stale_pages_sensor(TEST_SETTINGS)(context)
    assert [r.partition_key for r in requested.run_requests] == [KEYS[0]]
    assert crawl(instance, resources, KEYS[0]).success
    assert store.deferred_pages() == {}


def test_a_rate_limit_in_a_multi_page_run_defers_the_failed_page_and_every_later_one(
    instance, resources, standin: StandinServer, store: RedisStore
) -> None:
    first = PageWindow.from_key(KEYS[0])
    for user in standin.dataset.users_between(first.first_id, first.last_id):
        standin.dataset.delete(user.id)  # page 0 costs one list request: it is surely written
    standin.set_rate_limit(limit=5, window=3600, reset=True)  # page 1 runs out of budget
    result = dg.materialize(
        ASSETS, selection=[github_users], instance=instance, resources=resources,
        raise_on_error=False,
        tags={RANGE_START_TAG: KEYS[0], RANGE_END_TAG: KEYS[-1]},  # one run of all 3 pages
    )  # fmt: skip

    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "rate limit" in message and f"Page {KEYS[1]} was not written" in message
    assert store.page_meta(KEYS[0])["users"] == "0"  # written, before page 1 failed
    assert set(store.deferred_pages()) == set(KEYS[1:])  # the failed page and every later one
    assert store.page_members(KEYS[1]) == store.page_members(KEYS[2]) == set()


class SpendsTheBudgetLate(StandinServer):
    """The stand-in, holding the first detail request for ``victim`` until ``ready()`` (or a
    minute), then answering it, and every request after, as GitHub does once the hour's budget
    is spent (403, remaining 0, the window's reset)."""

    def __init__(self, dataset: Dataset, victim: int, ready: Callable[[], bool]) -> None:
        super().__init__(dataset)
        self.victim, self.ready, self.held = victim, ready, threading.Event()

    def answer(self, request: Request) -> Reply:
        if urlsplit(request.target).path == f"/user/{self.victim}" and not self.held.is_set():
            self.held.set()
            deadline = time.monotonic() + 60
            while not self.ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.set_rate_limit(limit=0)
        return super().answer(request)


def test_a_page_written_beside_a_rate_limited_one_is_not_deferred(
    instance, resources, dataset: Dataset, store: RedisStore
) -> None:
    windows = [PageWindow.from_key(key) for key in KEYS]
    for user in dataset.users_between(windows[0].first_id, windows[0].last_id):
        dataset.delete(user.id)  # page 0 costs one list request: page 2 starts beside page 1
    victim = dataset.users_between(windows[1].first_id, windows[1].last_id)[-1].id
    page_2 = set(dataset.truth(windows[2].first_id, windows[2].last_id))
    with SpendsTheBudgetLate(dataset, victim, lambda: KEYS[2] in store.pages()) as server:
        github = GitHubResource(api_url=server.url, max_retries=1, max_rate_limit_wait=0)
        result = dg.materialize(
            ASSETS, selection=[github_users], instance=instance,
            resources=resources | {"github": github}, raise_on_error=False,
            tags={RANGE_START_TAG: KEYS[0], RANGE_END_TAG: KEYS[-1]},  # one run of all 3 pages
        )  # fmt: skip

    assert server.held.is_set() and not result.success
    (failure,) = result.get_step_failure_events()
    assert f"Page {KEYS[1]} was not written" in failure.step_failure_data.error.message
    assert store.page_members(KEYS[2]) == page_2  # written beside the failed page, whole
    assert set(store.deferred_pages()) == {KEYS[1]}  # so only the failed page waits for the reset
    assert store.page_members(KEYS[1]) == set()


CRAWL = dg.Definitions(
    assets=ASSETS,
    jobs=[crawl_job],
    # never used: no run starts
    resources={"github": GitHubResource(), "redis": RedisResource(), **storage_resources(None)},
).resolve_job_def(crawl_job.name)


def stale_pages_sensor(settings: Settings) -> dg.SensorDefinition:
    (sensor,) = [s for s in crawl_sensors(settings) if s.name == "stale_pages_sensor"]
    return sensor


def add_run(instance: dg.DagsterInstance, page: str, status: DagsterRunStatus) -> None:
    """A run of page ``page`` in ``status``, as the daemon would have created it."""
    instance.create_run_for_job(
        CRAWL, status=status, tags={"dagster/partition": page}, asset_selection={github_users.key}
    )


def redis_only(resources: dict) -> dict:
    """What the re-crawl sensor and schedule use: GitHubResource nests its budget's Redis, so a
    context holding it would open only in a ``with`` block."""
    return {"redis": resources["redis"]}


def age(store: RedisStore, page: str, days: float) -> None:
    """Pretend ``page`` was last written ``days`` ago."""
    when = datetime.now(UTC) - timedelta(days=days)
    store.client.zadd(store.pages_key, {page: when.timestamp()})


def test_stale_pages_sensor_requests_the_oldest_not_running_pages(
    instance, resources, store: RedisStore
) -> None:
    for key in KEYS:
        assert crawl(instance, resources, key).success
    sensor_context = dg.build_sensor_context(instance=instance, resources=redis_only(resources))
    sensor = stale_pages_sensor(Settings(recrawl_batch=2))  # a week: the default age
    assert isinstance(sensor(sensor_context), dg.SkipReason)  # all fresh

    age(store, KEYS[0], 9)
    age(store, KEYS[1], 30)
    age(store, KEYS[2], 8)
    requested = sensor(sensor_context)
    assert [r.partition_key for r in requested.run_requests] == [KEYS[1], KEYS[0]]

    add_run(instance, KEYS[1], DagsterRunStatus.STARTED)
    add_run(instance, KEYS[0], DagsterRunStatus.NOT_STARTED)
    add_run(instance, KEYS[2], DagsterRunStatus.FAILURE)  # finished: does not hold the page
    requested = sensor(sensor_context)
    assert [r.partition_key for r in requested.run_requests] == [KEYS[2]]

    # a page waiting for its rate-limit reset is not re-crawled early, however stale its data
    age(store, KEYS[2], 10)
    store.defer_page(KEYS[2], datetime.now(UTC) + timedelta(minutes=5))
    assert isinstance(sensor(sensor_context), dg.SkipReason)

    store.client.zrem(store.deferred_key, KEYS[2])
    assert [r.partition_key for r in sensor(sensor_context).run_requests] == [KEYS[2]]
    patient = stale_pages_sensor(Settings(recrawl_after=60 * 24 * 3600))
    assert isinstance(patient(sensor_context), dg.SkipReason)  # none is 60 days old


def test_stale_pages_sensor_looks_past_the_pages_a_queued_multi_page_run_holds(
    instance, resources, store: RedisStore
) -> None:
    pages = [PageWindow.number(k, 100).key for k in range(30)]
    add_missing_pages(instance, pages)
    for n, page in enumerate(pages):
        age(store, page, 30 - n / 100)  # all stale, oldest first in page order
    # One waiting run holds the 25 oldest pages (a backfill with GH_ASSETS_PAGES_PER_RUN=25).
    instance.create_run_for_job(
        CRAWL,
        status=DagsterRunStatus.NOT_STARTED,
        tags={RANGE_START_TAG: pages[0], RANGE_END_TAG: pages[24]},
        asset_selection={github_users.key},
    )
    sensor_context = dg.build_sensor_context(instance=instance, resources=redis_only(resources))
    requested = stale_pages_sensor(Settings(recrawl_batch=3))(sensor_context)
    assert [r.partition_key for r in requested.run_requests] == pages[25:28]

    store.client.zrem(store.pages_key, *pages[25:])  # only the queued run's pages are stale
    skipped = stale_pages_sensor(Settings(recrawl_batch=3))(sensor_context)
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == (
        "no page to request: 25 stale or due pages, every one already queued or running"
    )


def delete_data(store: RedisStore) -> None:
    """What FLUSHDB (or a restart without persistence) does to the crawl's keys."""
    keys = list(store.client.scan_iter(match=f"{store.prefix}*", count=1000))
    assert keys and store.client.delete(*keys) == len(keys)


def summary_evaluation(result: dg.ExecuteInProcessResult) -> tuple[dict, dg.AssetCheckEvaluation]:
    """The summary's metadata and its check ``materialized_pages_in_redis``."""
    (summary,) = result.asset_materializations_for_node("github_user_summary")
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "materialized_pages_in_redis"
    ]
    return summary.metadata, check


def test_pages_lost_with_the_datas_redis_are_named_and_crawled_again(
    instance, resources, store: RedisStore
) -> None:
    for key in KEYS[:2]:
        assert crawl(instance, resources, key).success
    delete_data(store)  # mid-crawl: Dagster still holds pages 0 and 1 as materialized
    assert crawl(instance, resources, KEYS[2]).success
    assert instance.get_materialized_partitions(github_users.key) == set(KEYS)

    metadata, check = summary_evaluation(analyse(instance, resources))
    assert not check.passed
    assert f"2 materialized in Dagster but not in Redis ({KEYS[0]}, {KEYS[1]})" in check.description
    assert metadata["pages_missing"].value == 2
    assert metadata["pages_missing_keys"].value == f"{KEYS[0]}, {KEYS[1]}"
    assert metadata["accounts"].value == store.user_count()  # page 2's users only

    context = dg.build_sensor_context(instance=instance, resources=redis_only(resources))
    requested = stale_pages_sensor(TEST_SETTINGS)(context)
    assert [r.partition_key for r in requested.run_requests] == KEYS[:2]
    for key in KEYS[:2]:
        assert crawl(instance, resources, key).success
    metadata, check = summary_evaluation(analyse(instance, resources))
    assert check.passed and metadata["pages_missing"].value == 0
    assert isinstance(stale_pages_sensor(TEST_SETTINGS)(context), dg.SkipReason)


def test_a_page_whose_first_write_never_completed_is_named_and_crawled_again(
    instance, resources, store: RedisStore
) -> None:
    assert crawl(instance, resources, KEYS[0]).success
    with resources["github"].get_client() as client:
        crawl_page(client, store, PageWindow.from_key(KEYS[1]))
    # A cluster's write of a new page crashed between its script and its registration.
    store.client.zrem(store.pages_key, KEYS[1])

    metadata, check = summary_evaluation(analyse(instance, resources))
    assert not check.passed
    assert f"1 whose write never completed ({KEYS[1]})" in check.description
    assert metadata["pages_missing_keys"].value == KEYS[1]
    context = dg.build_sensor_context(instance=instance, resources=redis_only(resources))
    requested = stale_pages_sensor(TEST_SETTINGS)(context)
    assert [r.partition_key for r in requested.run_requests] == [KEYS[1]]


def test_schedules(instance, resources, store: RedisStore) -> None:
    for key in KEYS:
        assert crawl(instance, resources, key).success
    age(store, KEYS[2], 1)
    weekly = weekly_recrawl_schedule(Settings(recrawl_batch=2))
    # The next tick after the pages were written (a fixed date would age out of the test).
    when = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0) + timedelta(days=1)
    # Entered, so that it lets go of the instance it holds: left open, the instance's state
    # storage stays Dagster's current one after the instance is gone, and a later load fails.
    with dg.build_schedule_context(
        instance=instance, resources=redis_only(resources), scheduled_execution_time=when
    ) as context:
        requests = weekly(context)
    assert [r.partition_key for r in requests] == [KEYS[2], KEYS[0]]
    assert requests[0].run_key == f"{KEYS[2]}@{when:%Y-%m-%d}T03:00"


def test_analysis_refreshes_once_per_batch_of_page_runs(instance, resources) -> None:
    defs = dg.Definitions(assets=ASSETS, resources=resources)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert tick.total_requested == 0  # nothing crawled yet: nothing to refresh

    assert crawl(instance, resources, KEYS[0]).success
    add_run(instance, KEYS[1], DagsterRunStatus.STARTED)  # the batch is still going
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.total_requested == 0

    for run in instance.get_runs(dg.RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        instance.report_run_canceled(run)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.get_num_requested(github_users_frame.key) == 1
    assert tick.get_num_requested(github_user_summary.key) == 1
    assert analyse(instance, resources).success

    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.total_requested == 0  # handled: no refresh until pages change again
