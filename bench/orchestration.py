"""Benchmark 5: orchestration, a backfill of pages through the real daemon, to all green.

For each policy (``GH_ASSETS_PAGES_PER_RUN``: 1 = one run per page; 10 = the multi-page policy,
read by the asset at code-location load) the bench starts ``gh-assets dev`` (dagster-webserver
and dagster-daemon, as native processes, on a fresh instance with the project's dagster.yaml),
waits for ``github_pages_sensor`` to register the pages, then launches a backfill of every page
through the webserver's GraphQL API (as the UI does) and measures the seconds until the backfill
has completed successfully and every page is materialized. The stand-in has zero latency, so the
time is Dagster's; the pure crawl time of the same pages (``crawl_pages`` in this process, as
one multi-page run crawls them) is measured too and subtracted for the overhead per page.

The backfill daemon iterates every 30 s, so where a launch falls in that cycle matters: launches
are spread evenly over it (a wait of 30 x (i + 1/2) / n s before the i-th of n backfills), and
"launch -> first run created" is reported beside the total.

``GH_ASSETS_SENSOR_INTERVAL`` is set to an hour: each sensor ticks once at start (registering the
pages) and then stays out of the way, so the figure is the backfill's alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.figures import BenchError, Row, Section
from bench.servers import Context, standin_process
from gh_assets.crawl import crawl_pages
from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.dagster_graphql import SUCCESSFUL_BACKFILL, Run
from gh_assets_devtools.deployment import Deployment, clean_environment, running_deployment
from gh_assets_devtools.standin import StandinAdmin

PAGE_SIZE = 100
ORCHESTRATION_DB = 3
SENSOR_INTERVAL = 3600
BACKFILL_TIMEOUT = 1200.0
DAEMON_CYCLE = 30.0  # the backfill daemon's interval (dagster-daemon's default)


@dataclass
class Backfill:
    seconds: float
    runs: list[Run]
    launched_at: float  # epoch seconds, like the runs' times
    done_at: float

    @property
    def pickup(self) -> float:
        """Launch -> the first run created: the backfill daemon's next iteration."""
        return min(r.created for r in self.runs) - self.launched_at

    @property
    def tail(self) -> float:
        """The last run ended -> all green seen: the daemon's iteration that closes it."""
        return self.done_at - max(r.ended or 0 for r in self.runs)


def run_backfill(deployment: Deployment, keys: list[str]) -> Backfill:
    """A backfill of ``keys``, launched as the UI does, timed until every page is green."""
    api = deployment.api
    started = time.perf_counter()
    launched_at = time.time()
    backfill_id = api.launch_backfill(USERS_KEY, keys)
    # Light polling: the webserver shares the 2 cores with the runs.
    status = api.wait_backfill(backfill_id, timeout=BACKFILL_TIMEOUT, interval=1.0)
    if status not in SUCCESSFUL_BACKFILL:
        raise BenchError(f"backfill {backfill_id} ended {status}:\n{deployment.log_tail(3000)}")

    def all_green() -> bool:
        partitions = api.partitions(USERS_KEY)
        return set(partitions["materialized"]) >= set(keys) and not partitions["failed"]

    deployment.wait_for(all_green, timeout=60, what=f"backfill {backfill_id}'s pages to be green")
    seconds, done_at = time.perf_counter() - started, time.time()
    runs = api.backfill_runs(backfill_id)
    if not runs or any(not r.ended for r in runs):
        raise BenchError(f"backfill {backfill_id}: runs without an end: {runs}")
    return Backfill(seconds, runs, launched_at, done_at)


def pure_crawl_seconds(api_url: str, redis_url: str, windows: list[PageWindow]) -> float:
    """The same pages crawled by ``crawl_pages`` in this process: the work without Dagster."""
    store = RedisStore.from_url(redis_url, "pure:")
    try:
        with GitHubClient(api_url) as client:
            started = time.perf_counter()
            for _ in crawl_pages(client, store, windows):
                pass
            return time.perf_counter() - started
    finally:
        _delete_prefix(store)
        store.client.close()


def _delete_prefix(store: RedisStore) -> None:
    keys = list(store.client.scan_iter(match=f"{store.prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        store.client.delete(*keys[start : start + 1000])


def run(ctx: Context) -> Section:
    from bench.sizes import TINY_ORCHESTRATION_PAGES

    size = ctx.size
    pages = size.orchestration_pages
    if pages is None and "orchestration" in ctx.only:
        pages = TINY_ORCHESTRATION_PAGES
    section = Section("orchestration", "Orchestration: a backfill through the daemon")
    if pages is None:
        section.skipped = (
            f"{size.name} size (a deployment takes a minute to start; "
            "--only orchestration runs a 2-page version)"
        )
        return section
    policies = size.orchestration_policies
    section.title = (
        f"Orchestration: backfill of {pages} pages through dagster-daemon, zero-latency stand-in"
    )
    section.params = {
        "pages": pages,
        "page_size": PAGE_SIZE,
        "pages_per_run": list(policies),
        "deployment": "gh-assets dev (dagster-webserver + dagster-daemon), "
        "devtools/gh_assets_devtools/dagster.yaml",
        "sensor_interval_s": SENSOR_INTERVAL,
    }
    windows = [PageWindow.number(k, PAGE_SIZE) for k in range(pages)]
    keys = [w.key for w in windows]
    redis_url = ctx.redis_db(ORCHESTRATION_DB)
    results: dict[int, list[Backfill]] = {}
    with standin_process(ctx.tmp / "standin-orch", size=pages * PAGE_SIZE) as standin_url:
        with StandinAdmin(standin_url) as admin:
            expected = len(admin.users(1, pages * PAGE_SIZE))
        pure = [pure_crawl_seconds(standin_url, redis_url, windows) for _ in range(ctx.runs)]
        for per_run in policies:
            home = ctx.tmp / f"orchestration-{per_run}"
            store = RedisStore.from_url(redis_url, f"orch{per_run}:")
            env = clean_environment(
                DAGSTER_HOME=home / "dagster_home",
                GH_ASSETS_DATA_DIR=home / "data",
                REDIS_URL=redis_url,
                GITHUB_API_URL=standin_url,
                GH_ASSETS_KEY_PREFIX=store.prefix,
                GH_ASSETS_PAGE_SIZE=PAGE_SIZE,
                GH_ASSETS_PAGES=pages,
                GH_ASSETS_PAGES_PER_RUN=per_run,
                GH_ASSETS_SENSOR_INTERVAL=SENSOR_INTERVAL,
                GH_ASSETS_RATE_MINUTE=1,  # GitHub's minute, shortened: the budget never binds
            )
            with running_deployment(home / "logs", env) as deployment, store.client:
                deployment.wait_for_partitions(USERS_KEY, keys, timeout=180)
                # One backfill of one page per run is itself an average over its runs (50 at
                # the default size) and takes minutes: measured once.
                count = 1 if per_run == 1 else ctx.runs
                for index in range(count):
                    _delete_prefix(store)
                    time.sleep(DAEMON_CYCLE * (index + 0.5) / count)  # spread over its cycle
                    backfill = run_backfill(deployment, keys)
                    stored, total = store.user_count(), store.page_user_total()
                    if stored != expected or total != expected:
                        raise BenchError(
                            f"backfill with {per_run} page(s)/run stored {stored} users "
                            f"({total} by page bookkeeping), the stand-in has {expected}"
                        )
                    results.setdefault(per_run, []).append(backfill)
    _figures(section, results, pages, pure)
    return section


@dataclass
class Policy:
    """The backfills of one ``GH_ASSETS_PAGES_PER_RUN`` value, and the crawl time they include."""

    backfills: list[Backfill]
    pages: int
    work: float  # seconds of crawling per page, without Dagster

    def each(self, value: Callable[[Backfill], float]) -> list[float]:
        return [value(b) for b in self.backfills]

    def median_over_runs(self, value: Callable[[Run], float | None]) -> float | None:
        """The median over every run of every backfill (None: no run has the value)."""
        found = [v for b in self.backfills for r in b.runs if (v := value(r)) is not None]
        return statistics.median(found) if found else None


def _run_seconds(run: Run) -> float | None:
    return run.ended - run.started if run.ended and run.started else None


def _queue_seconds(run: Run) -> float | None:
    return run.started - run.created if run.started else None


PURE_ROW = Row(
    "pure_crawl_per_page",
    "the same pages by crawl_pages in-process (no Dagster)",
    "s/page",
    lambda m: [p / m["pages"] for p in m["pure"]],
    digits=3,
)
POLICY_ROWS = (
    Row(
        "{name}.seconds",
        "{per_run} page(s)/run ({runs} runs): launch -> all green",
        "s",
        lambda m: m.each(lambda b: b.seconds),
    ),
    Row(
        "{name}.overhead_per_page",
        "{per_run} page(s)/run: overhead per page (wall/page - crawl/page)",
        "s/page",
        lambda m: m.each(lambda b: b.seconds / m.pages - m.work),
        digits=2,
    ),
    Row(
        "{name}.run_seconds",
        "{per_run} page(s)/run: one run, start -> end (median of all runs)",
        "s",
        lambda m: m.median_over_runs(_run_seconds),
        digits=2,
    ),
    Row(
        "{name}.queue_seconds",
        "{per_run} page(s)/run: one run, created -> started (median of all runs)",
        "s",
        lambda m: m.median_over_runs(_queue_seconds),
        digits=2,
    ),
    Row(
        "{name}.pickup_seconds",
        "{per_run} page(s)/run: launch -> first run created (daemon)",
        "s",
        lambda m: m.each(lambda b: b.pickup),
    ),
    Row(
        "{name}.tail_seconds",
        "{per_run} page(s)/run: last run ended -> all green seen",
        "s",
        lambda m: m.each(lambda b: b.tail),
    ),
)


def _fixed_cost(pair: tuple[Policy, Policy]) -> list[float]:
    """Seconds per extra run: one page per run against a policy with fewer runs."""
    single, other = pair
    base = statistics.median(single.each(lambda b: b.seconds))
    extra = len(single.backfills[0].runs) - len(other.backfills[0].runs)
    return other.each(lambda b: (base - b.seconds) / extra)


FIXED_COST_ROW = Row(
    "fixed_cost_per_run",
    "Dagster's wall cost per extra run ({runs_single} vs {runs_other} runs)",
    "s/run",
    _fixed_cost,
    digits=2,
)


def _figures(
    section: Section, results: dict[int, list[Backfill]], pages: int, pure: list[float]
) -> None:
    work = statistics.median(pure) / pages
    section.add_rows([PURE_ROW], {"pure": pure, "pages": pages})
    policies = {per_run: Policy(results[per_run], pages, work) for per_run in sorted(results)}
    for per_run, policy in policies.items():
        runs = len(policy.backfills[0].runs)
        section.add_rows(POLICY_ROWS, policy, name=_name(per_run), per_run=per_run, runs=runs)
        section.details[f"backfills_{per_run}_pages_per_run"] = [
            {"seconds": round(b.seconds, 2), "runs": len(b.runs)} for b in policy.backfills
        ]
    if len(policies) < 2 or 1 not in policies:
        return
    single, other = policies[1], policies[sorted(policies)[1]]
    runs_single, runs_other = len(single.backfills[0].runs), len(other.backfills[0].runs)
    if runs_single > runs_other:
        section.add_rows(
            [FIXED_COST_ROW], (single, other), runs_single=runs_single, runs_other=runs_other
        )
    run_seconds = section.figure("single.run_seconds")
    if run_seconds:
        section.notes.append(
            f"One page per run: a run takes {run_seconds.median:.1f} s from start to end for "
            f"{work:.2f} s of crawling; the rest is the run's process start, code load, "
            f"resources, asset checks and event writes. At most 2 page runs go at once "
            f"(pool github_api, default_limit 2), so wall ~ runs x run time / 2, plus the "
            f"backfill daemon's 30 s iteration (dagster/_daemon/backfill.py: "
            f"DEFAULT_DAEMON_INTERVAL_SECONDS) before the first run and after the last."
        )


def _name(per_run: int) -> str:
    return "single" if per_run == 1 else f"multi{per_run}"
