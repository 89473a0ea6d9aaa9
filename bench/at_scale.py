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
import math
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.figures import BenchError, Section
from bench.servers import Context, standin_process
from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.partitions import PageWindow, add_missing_pages, github_pages
from gh_assets.storage import RedisStore
from gh_assets.storage.store import PageWrite
from gh_assets_devtools import services
from gh_assets_devtools.dagster_graphql import BACKFILL_TAG, LOCATION, REPOSITORY, DagsterGraphQL
from gh_assets_devtools.deployment import _answers, clean_environment
from gh_assets_devtools.postgres import Postgres, postgres_server
from gh_assets_devtools.topology import instance_config

PAGE_WIDTH = 2_500  # IDs per page: 100,000 pages cover 250 M IDs, all of GitHub
PAGES_PER_RUN = 25
GITHUB_IDS = 250_000_000
REDIS_DB = 5
PREFIX = "scale:"
SENSORS = ("github_pages_sensor", "stale_pages_sensor", "refresh_analysis_sensor")
CRAWLED_AGO = timedelta(days=8)  # older than GH_ASSETS_RECRAWL_AFTER (a week): every page stale
TICK_TARGET, STATUS_TARGET, BACKFILL_TARGET = 5.0, 3.0, 600.0  # seconds (issue 13)
# Dagster's switch: one ASSET_MATERIALIZATION_PLANNED event per run instead of one per page.
SUBSET_EVENTS = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
# Page widths tried, in IDs: each divides 100,000, so a page lies in one block of the key schema.
WIDTHS = (2_500, 5_000, 10_000, 20_000, 25_000, 50_000, 100_000)
PER_RUN_CHOICES = (25, 50, 100, 200, 250, 500)  # pages per run tried
BIN = Path(sys.executable).parent

_TICKS = """
query Ticks($selector: SensorSelector!, $limit: Int) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: $limit) {
          tickId status timestamp endTimestamp runIds skipReason error { message }
        }
      }
    }
    ... on Error { message }
  }
}"""


@dataclass(frozen=True)
class Tick:
    sensor: str
    status: str
    started: float  # epoch seconds
    ended: float
    runs: int
    skip_reason: str | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def sensor_ticks(api: DagsterGraphQL, sensor: str, limit: int = 25) -> list[Tick]:
    """The sensor's finished ticks, newest first; a failed tick raises with its error."""
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "sensorName": sensor,
    }
    data = api.query(_TICKS, selector=selector, limit=limit)["sensorOrError"]
    if data["__typename"] != "Sensor":
        raise BenchError(f"{sensor}: {data}")
    ticks = []
    for row in data["sensorState"]["ticks"]:
        if row["status"] == "FAILURE":
            raise BenchError(f"{sensor}'s tick failed: {(row['error'] or {}).get('message')}")
        if row["status"] == "STARTED" or row["endTimestamp"] is None:
            continue
        ticks.append(
            Tick(
                sensor,
                row["status"],
                row["timestamp"],
                row["endTimestamp"],
                len(row["runIds"]),
                row["skipReason"],
            )
        )
    return ticks


# -- the deployment: PostgreSQL, a code server, the webserver and (when asked) the daemon --------


@dataclass
class AtScale:
    root: Path
    env: dict[str, str]
    api: DagsterGraphQL
    logs: Path
    daemons: int = 0

    @contextlib.contextmanager
    def daemon(self, timeout: float, **extra_env: str) -> Iterator[None]:
        """``dagster-daemon run`` on the instance (``extra_env`` added), until the block exits."""
        self.daemons += 1
        log = self.logs / f"daemon-{self.daemons}.log"
        with services.running(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            lambda: "following daemons" in services.log_text(log),
            log,
            timeout=timeout,
            env=self.env | extra_env,
            cwd=self.root,
            grace=30,
        ):
            yield

    def wait_ticks(self, since: float, count: int, timeout: float) -> dict[str, list[Tick]]:
        """Wait until each sensor has ``count`` ticks started after ``since``; those ticks."""

        def found() -> dict[str, list[Tick]] | None:
            ticks = {name: [t for t in sensor_ticks(self.api, name) if t.started > since]
                     for name in SENSORS}  # fmt: skip
            if all(len(found) >= count for found in ticks.values()):
                return {name: sorted(found, key=lambda t: t.started)[:count]
                        for name, found in ticks.items()}  # fmt: skip
            return None

        return services.wait_for(
            found,
            timeout=timeout,
            what=f"{count} tick(s) of each sensor",
            interval=1.0,
            state=lambda: {name: sensor_ticks(self.api, name)[:3] for name in SENSORS},
        )


def instance_yaml(postgres: Postgres) -> dict[str, Any]:
    """deploy/dagster.yaml on ``postgres``, with a run queue that queues and never launches."""
    config = instance_config()
    config["storage"] = postgres.instance_storage()
    config.pop("run_launcher", None)  # nothing is launched (no broker here): the default one
    config["concurrency"]["runs"]["max_concurrent_runs"] = 0  # queue every run, launch none
    return config


@contextlib.contextmanager
def deployment(root: Path, env: Mapping[str, str], timeout: float) -> Iterator[AtScale]:
    """The code server and the webserver on the instance ``env`` names, from ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    code_port, web_port = services.free_port(), services.free_port()
    workspace = {
        "load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": code_port, "location_name": LOCATION}}
        ]
    }
    (root / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    url = f"http://127.0.0.1:{web_port}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            services.running(
                [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1",
                 "-p", str(code_port), "-m", "gh_assets.definitions",
                 "--location-name", LOCATION],
                lambda: services.port_open(code_port),
                logs / "code-server.log",
                timeout=timeout, env=env, cwd=root, grace=20,
            )
        )  # fmt: skip
        stack.enter_context(
            services.running(
                [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                 "-w", "workspace.yaml"],
                lambda: _answers(f"{url}/server_info"),
                logs / "webserver.log",
                timeout=timeout, env=env, cwd=root, grace=20,
            )
        )  # fmt: skip
        api = stack.enter_context(DagsterGraphQL(url, timeout=600))
        services.wait_for(api.location_loaded, timeout=timeout, what="the code location")
        yield AtScale(root, dict(env), api, logs)


# -- the steps ---------------------------------------------------------------------------------


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


def _sqlite_home(tmp: Path) -> Path:
    home = tmp / "at-scale-sqlite"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


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
        with dg.DagsterInstance.from_config(str(_sqlite_home(ctx.tmp))) as sqlite:
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
    _figures(section, m)
    return section


def _figures(section: Section, m: Mapping[str, Any]) -> None:
    pages = m["pages"]
    n = f"{pages:,}"
    section.add("register.seconds", f"register {n} pages: add_missing_pages (chunks of 5,000)",
                "s", m["register"])  # fmt: skip
    one_seconds, one_error = m["one_call"]
    if one_error is None:
        section.add("register.one_call_seconds", f"register {n} pages: one call", "s",
                    one_seconds)  # fmt: skip
    else:
        section.notes.append(f"One call of {n} keys on PostgreSQL failed: {one_error}")
    section.add("register.sqlite_seconds", f"register {n} pages on SQLite (chunks of 5,000)",
                "s", m["sqlite_chunked"])  # fmt: skip
    sqlite_seconds, sqlite_error = m["sqlite_one_call"]
    section.notes.append(
        f"One add_dynamic_partitions call of {n} keys on SQLite {sqlite3.sqlite_version} "
        f"(its variable limit depends on the build: chunks are safe everywhere): "
        + (f"fails after {sqlite_seconds:.1f} s ({sqlite_error})" if sqlite_error
           else f"succeeded in {sqlite_seconds:.1f} s")
    )  # fmt: skip
    section.add("read_keys.seconds", f"read the {n} keys back (get_dynamic_partitions)", "s",
                m["read_keys"], digits=2)  # fmt: skip
    section.details["bookkeeping_write_seconds"] = round(m["bookkeeping"], 2)

    for name in SENSORS:
        section.add(f"tick.{name}", f"one tick of {name}", "s",
                    [t.seconds for t in m["ticks_idle"][name]], digits=2)  # fmt: skip
    section.add("status.seconds", "partition status of github_users (the UI's query)", "s",
                m["status_idle"], digits=2)  # fmt: skip

    b: Submission = m["backfill"]
    what = f"backfill of {n} pages, {PAGES_PER_RUN}/run ({b.expected:,} runs)"
    section.add("backfill.launch_seconds", f"{what}: launchPartitionBackfill", "s", b.launch,
                digits=2)  # fmt: skip
    section.add("backfill.pickup_seconds", f"{what}: daemon start -> first run", "s", b.pickup)
    section.add("backfill.run_seconds", f"{what}: daemon's seconds per run created", "s",
                b.per_run, digits=3)  # fmt: skip
    section.add("backfill.runs_in_window", f"{what}: runs queued in {b.window:.0f} s", "runs",
                b.runs, digits=0)  # fmt: skip
    label = "launch -> all runs queued" if b.complete else "launch -> all queued (projected)"
    section.add("backfill.seconds", f"{what}: {label}", "s", b.seconds)
    c: Submission = m["subset"]
    section.add("subset.run_seconds",
                f"the same, one planned event per run ({SUBSET_EVENTS}): s per run",
                "s", c.per_run, digits=3)  # fmt: skip
    label = "launch -> all runs queued" if c.complete else "launch -> all queued (projected)"
    section.add("subset.seconds", f"the same, one planned event per run: {label}", "s",
                c.seconds)  # fmt: skip
    for name, found in (("backfill", b), ("subset", c)):
        section.details[name] = {
            "backfill_id": found.backfill_id, "planned_events": found.planned,
            "runs_needed": found.expected, "runs_created": found.runs,
            "runs_queued": found.queued, "complete": found.complete, "window_s": found.window,
            "submit_s": round(found.submit, 2),
            "seconds_per_run_first_and_last_third": [round(x, 3) for x in found.thirds],
        }  # fmt: skip

    queued_runs = m["queued_runs"]
    materializing = statistics.median(found for _, found in m["status_queued"])
    state = f"{queued_runs:,} runs queued, {materializing:,.0f} pages materializing"
    for name in SENSORS:
        section.add(f"tick_queued.{name}", f"one tick of {name}, {state}", "s",
                    [t.seconds for t in m["ticks_queued"][name]], digits=2)  # fmt: skip
    section.add("status_queued.seconds", f"partition status, {state}", "s",
                [seconds for seconds, _ in m["status_queued"]], digits=2)  # fmt: skip
    section.details["ticks"] = {
        phase: {
            name: [{"seconds": round(t.seconds, 3), "status": t.status, "runs": t.runs,
                    "skip_reason": t.skip_reason} for t in ticks]
            for name, ticks in m[phase].items()
        }
        for phase in ("ticks_idle", "ticks_queued")
    }  # fmt: skip
    _advice(section, m)


def submission_seconds(pages: int, per_run: int, run_cost: float, page_cost: float) -> float:
    """Seconds the backfill daemon takes to queue ``pages`` pages, ``per_run`` a run."""
    return math.ceil(pages / per_run) * run_cost + pages * page_cost


def _advice(section: Section, m: Mapping[str, Any]) -> None:
    """Notes: where Dagster is the limit, and the page widths and pages per run that keep a
    whole-GitHub crawl within the targets."""
    pages = m["pages"]
    b, c = m["backfill"], m["subset"]
    # Per run, the same fixed work either way; per page, one planned event (stored over a
    # connection of its own) that Dagster's switch folds into one per run.
    run_cost = min(c.per_run, b.per_run)
    page_cost = max(0.0, b.per_run - run_cost) / (PAGES_PER_RUN - 1)
    early, late = b.thirds
    section.details["model"] = {"run_cost_s": run_cost, "page_cost_s": page_cost}
    section.notes.append(
        f"Dagster is the limit of the backfill, not the project's code: its daemon creates and "
        f"queues a run of {PAGES_PER_RUN} pages in {b.per_run:.2f} s ({early:.2f} s in the "
        f"first third of the runs, {late:.2f} s in the last), {run_cost:.2f} s per run and "
        f"{page_cost * 1000:.0f} ms per page. Per run it resolves the run's page range by "
        f"reading every registered page key ({m['read_keys']:.2f} s for {pages:,}), once for "
        f"the asset and again for each of its checks' planned events; per page it stores one "
        f"ASSET_MATERIALIZATION_PLANNED event, and each statement opens a PostgreSQL "
        f"connection of its own (dagster-postgres pools none outside the webserver). "
        f"{SUBSET_EVENTS}=true on the daemon stores one planned event per run instead "
        f"({c.per_run:.2f} s a run), but then, says Dagster's source "
        f"(dagster/_core/storage/event_log/base.py), a failed run's pages are not marked failed."
    )
    tick = max(section.figure(f"{phase}.{sensor}").median
               for phase in ("tick", "tick_queued") for sensor in SENSORS)  # fmt: skip
    status = max(section.figure(key).median for key in ("status.seconds", "status_queued.seconds"))
    section.notes.append(
        f"At {pages:,} pages the slowest sensor tick took {tick:.2f} s (target 5 s) and the "
        f"partition status {status:.2f} s (3 s)."
    )
    # Fewer registered pages make a run cheaper (fewer keys to read): the cost per run measured
    # here bounds it from above for any crawl of at most as many pages.
    within = tick <= TICK_TARGET and status <= STATUS_TARGET
    if not within:
        section.notes.append(
            f"The sensor ticks or the partition status miss their targets at {pages:,} pages: "
            f"a whole-GitHub crawl needs fewer, wider pages than measured here."
        )
    plans = []
    for subset in (False, True):
        for width in WIDTHS:
            crawl = math.ceil(GITHUB_IDS / width)
            if crawl > pages or not within:
                continue
            cost = 0.0 if subset else page_cost
            per_run = next((k for k in PER_RUN_CHOICES if submission_seconds(
                crawl, k, run_cost, cost) <= BACKFILL_TARGET), None)  # fmt: skip
            if per_run is not None:
                seconds = submission_seconds(crawl, per_run, run_cost, cost)
                plans.append((subset, width, crawl, per_run, seconds))
    section.details["plans"] = [
        {"subset_events": s, "page_width": w, "pages": p, "pages_per_run": k, "queue_s_at_most": q}
        for s, w, p, k, q in plans
    ]
    for subset in (False, True):
        found = [plan for plan in plans if plan[0] is subset][:3]
        how = f"with {SUBSET_EVENTS}=true" if subset else "as configured (a planned event a page)"
        if not found:
            section.notes.append(f"Whole GitHub {how}: no page width of the ones tried fits.")
            continue
        options = "; ".join(
            f"GH_ASSETS_PAGE_SIZE={width} ({crawl:,} pages) with GH_ASSETS_PAGES_PER_RUN>={per} "
            f"(<= {seconds:.0f} s)"
            for _, width, crawl, per, seconds in found
        )
        section.notes.append(
            f"Whole GitHub ({GITHUB_IDS / 1e6:.0f} M IDs) {how}, every run queued within 10 "
            f"minutes (an upper bound from these costs): {options}."
        )
