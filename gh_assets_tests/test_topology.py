"""The scale-out deployment (docker-compose.yml, deploy/) with native processes: the instance on
PostgreSQL, runs as Celery tasks on two workers, each Dagster process a host of its own
(devtools/gh_assets_devtools/topology.py). Driven over GraphQL as a person drives the UI."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Iterator

import pytest

from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.partitions import PageWindow
from gh_assets_devtools.dagster_graphql import SENSOR_TAG, Run
from gh_assets_devtools.services import wait_for
from gh_assets_devtools.standin import StandinAdmin
from gh_assets_devtools.topology import CELERY_TASK_TAG, Topology, running_topology
from gh_assets_devtools.topology_probes import (
    crawl_in_process,
    last_materialization,
    launch_assets,
    redis_snapshot,
)

from .backfills import backfill_succeeds

pytestmark = pytest.mark.e2e

PAGE_SIZE = 100
PAGES = [PageWindow.number(k, PAGE_SIZE).key for k in range(7)]
BACKFILLED, LAST = PAGES[:6], PAGES[6]  # the 7th page is crawled while a worker is killed
MAX_RUNTIME = 30  # run_monitoring.max_runtime_seconds here (deploy/dagster.yaml: an hour)
WORKERS = {"worker-a", "worker-b"}


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    settings = {
        "GH_ASSETS_PAGE_SIZE": PAGE_SIZE,
        "GH_ASSETS_PAGES": len(PAGES),
        "GH_ASSETS_SENSOR_INTERVAL": 5,
        "GH_ASSETS_RECRAWL_AFTER": 3600,
        "GH_ASSETS_RATE_MINUTE": 1,
        "GH_ASSETS_PAGE_RETRIES": 0,
    }
    overrides = {"run_monitoring": {"max_runtime_seconds": MAX_RUNTIME, "poll_interval_seconds": 2}}
    with running_topology(
        tmp_path_factory.mktemp("topology"),
        settings,
        workers=sorted(WORKERS),
        pool_limit=1,
        instance_overrides=overrides,
        standin_size=len(PAGES) * PAGE_SIZE,  # no frontier growth beyond the registered pages
    ) as found:
        yield found


def state(topology: Topology, **extra: object) -> dict[str, object]:
    seen: dict[str, object] = dict(extra)
    try:
        seen["runs"] = [run.brief() for run in topology.api.runs(limit=30)]
        seen["partitions"] = topology.api.partitions(USERS_KEY)
    except Exception as error:
        seen["api"] = repr(error)
    seen["alive"] = {name: topology.alive(name) for name in topology.processes}
    seen["logs"] = topology.log_tails(1500)
    return seen


def wait(topology: Topology, check, timeout: float, what: str, interval: float = 1.0):
    return wait_for(
        check, timeout=timeout, what=what, interval=interval, state=lambda: state(topology)
    )


def finished(api, run_id: str, created_after: float) -> Run | None:
    run = next((r for r in api.runs(created_after=created_after - 1) if r.run_id == run_id), None)
    return run if run and run.status in ("SUCCESS", "FAILURE", "CANCELED") else None


def worker_of(topology: Topology, run: Run) -> str | None:
    return topology.task_worker(run.tags[CELERY_TASK_TAG])


@pytest.mark.timeout(480)
def test_1_backfill_runs_on_both_workers_one_page_at_a_time(topology: Topology) -> None:
    api = topology.api
    started = time.time()
    wait(
        topology,
        lambda: set(PAGES) <= set(api.partitions(USERS_KEY)["keys"]),
        60,
        "github_pages_sensor to register the pages",
    )
    topology_state = functools.partial(state, topology)
    runs = backfill_succeeds(api, USERS_KEY, BACKFILLED, timeout=240, state=topology_state)
    # Each run was one Celery task; the result backend says which worker ran it.
    results = {run.run_id: topology.task_result(run.tags[CELERY_TASK_TAG]) for run in runs}
    assert all(meta and meta["status"] == "SUCCESS" for meta in results.values()), results
    ran_on = {run.partition: worker_of(topology, run) for run in runs}
    assert set(ran_on.values()) == WORKERS, ran_on
    # The github_api pool at 1: no two page runs in progress at once, whatever the host.
    spans = sorted((run.started, run.ended) for run in runs)
    assert all(s and e for s, e in spans), spans
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert not overlaps, overlaps

    # Runs and events are in PostgreSQL; no host keeps a SQLite file.
    ids = [run.run_id for run in runs]
    [(stored_runs,)] = topology.postgres.query(
        "SELECT count(*) FROM runs WHERE run_id = ANY(%s)", ids
    )
    assert stored_runs == len(ids)
    events = dict(
        topology.postgres.query(
            "SELECT run_id, count(*) FROM event_logs WHERE run_id = ANY(%s) GROUP BY run_id", ids
        )
    )
    assert set(events) == set(ids) and min(events.values()) > 10, events

    # The analysis refreshes on its own after the batch, on a worker, through shared storage.
    batch_end = max(run.ended for run in runs)

    def analysis() -> Run | None:
        found = api.runs(tags={SENSOR_TAG: "refresh_analysis_sensor"}, created_after=batch_end)
        return next((run for run in found if run.status == "SUCCESS"), None)

    refresh = wait(topology, analysis, 120, "the analysis to refresh after the backfill", 2)
    assert worker_of(topology, refresh) in WORKERS
    frame = last_materialization(api, ["github_users_frame"])
    summary = last_materialization(api, ["github_user_summary"])
    assert frame and summary and frame["run_id"] == summary["run_id"] == refresh.run_id
    assert frame["path"] == str(topology.storage / "github_users_frame.parquet"), frame
    assert (topology.storage / "github_user_summary" / "counters.parquet").exists()
    # The summary alone, on the worker that did not write the frame: it reads the other host's
    # file from the shared storage (idle workers take runs in turn, so the second try at most).
    writer = worker_of(topology, refresh)
    for _ in range(3):
        launched, run_id = time.time(), launch_assets(api, ["github_user_summary"])
        done = functools.partial(finished, api, run_id, launched)
        alone = wait(topology, done, 90, "the summary alone")
        assert alone.status == "SUCCESS", alone.brief()
        if worker_of(topology, alone) != writer:
            break
    assert worker_of(topology, alone) in WORKERS - {writer}, (writer, alone.brief())
    for host in topology.hosts.values():
        assert not list(host.root.rglob("*.parquet")), host.name
        assert not host.sqlite_files(), host.name

    # Redis holds what a crawl on one machine stores, field by field.
    crawl_in_process(topology.standin_url, topology.data_url, "single:", BACKFILLED, PAGE_SIZE)
    deployed, single = (
        redis_snapshot(topology.data_url, "gh:"),
        redis_snapshot(topology.data_url, "single:"),
    )
    differs = {k: v for k, v in single.items() if deployed.get(k) != v}
    assert not differs, f"the deployment's Redis differs from one machine's: {differs}"
    users = {k for k in deployed if ":user:" in k}
    assert users == {k for k in single if ":user:" in k} and len(users) > 6 * 50
    print(
        f"\ntopology: 6 pages on {sorted(set(ran_on.values()))}, the analysis on {writer}, "
        f"the summary alone on {worker_of(topology, alone)}, in {time.time() - started:.0f} s"
    )


@pytest.mark.timeout(300)
def test_2_a_killed_worker_s_page_is_finished_by_the_other(topology: Topology) -> None:
    api = topology.api
    started = time.time()
    with StandinAdmin(topology.standin_url) as standin:
        standin.set_faults(latency_ms=1500)  # a page run now lasts several seconds
        standin.reset_stats()
        try:
            api.launch_backfill(USERS_KEY, [LAST])

            def in_flight() -> tuple[Run, str] | None:
                runs = [r for r in api.runs(created_after=started) if r.partition == LAST]
                run = runs[0] if runs else None
                if not run or run.status != "STARTED" or CELERY_TASK_TAG not in run.tags:
                    return None
                host = worker_of(topology, run)
                calls = standin.stats()["requests"]["by_status"]
                return (run, host) if host and sum(calls.values()) >= 1 else None

            run, victim = wait(topology, in_flight, 90, f"{LAST}'s run to call GitHub", 0.3)
            topology.kill(victim)
            killed_at = time.time()
        finally:
            standin.set_faults(latency_ms=0)
    (survivor,) = WORKERS - {victim}

    def materialized() -> Run | None:
        runs = [r for r in api.runs(created_after=started) if r.partition == LAST]
        return next((r for r in runs if r.status == "SUCCESS"), None)

    retry = wait(topology, materialized, MAX_RUNTIME + 120, f"{LAST} to be materialized again")
    runs = [r for r in api.runs(created_after=started) if r.partition == LAST]
    assert [r.status for r in runs] == ["FAILURE", "SUCCESS"], [r.brief() for r in runs]
    assert runs[0].run_id == run.run_id
    assert retry.tags.get("dagster/parent_run_id") == run.run_id, retry.tags
    assert worker_of(topology, retry) == survivor
    messages = api.run_error_messages(run.run_id)
    assert any("maximum runtime" in m for m in messages), messages
    assert LAST in api.partitions(USERS_KEY)["materialized"]

    crawl_in_process(topology.standin_url, topology.data_url, "single:", [LAST], PAGE_SIZE)
    deployed = redis_snapshot(topology.data_url, "gh:")
    single = redis_snapshot(topology.data_url, "single:")
    differs = {k: v for k, v in single.items() if deployed.get(k) != v}
    assert not differs, f"the deployment's Redis differs from one machine's: {differs}"
    print(
        f"\ntopology: {victim} killed mid-run; {LAST} done by {survivor} "
        f"{retry.ended - killed_at:.0f} s later, with no action"
    )
