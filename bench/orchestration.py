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

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

from bench.figures import BenchError, Section
from bench.servers import Context, StandinAdmin, standin_process
from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.local.services import free_port
from gh_assets.storage import RedisStore

REPO = Path(__file__).resolve().parents[1]
PAGE_SIZE = 100
ORCHESTRATION_DB = 3
ASSET = "github_users"
SUCCESS = {"COMPLETED", "COMPLETED_SUCCESS"}
FAILED = {"COMPLETED_FAILED", "FAILED", "CANCELED", "CANCELING"}
SCRUBBED = ("REDIS_URL", "GITHUB_API_URL", "GITHUB_TOKEN", "DAGSTER_HOME", "GH_ASSETS_")
BACKFILL_TIMEOUT = 1200.0
DAEMON_CYCLE = 30.0  # dagster/_daemon/controller.py DEFAULT_DAEMON_INTERVAL_SECONDS

_ERROR = "__typename ... on Error { message }"
LAUNCH = f"""mutation Launch($params: LaunchBackfillParams!) {{
  launchPartitionBackfill(backfillParams: $params) {{
    ... on LaunchBackfillSuccess {{ backfillId }} {_ERROR}
  }}
}}"""
BACKFILL = f"""query Backfill($id: String!) {{
  partitionBackfillOrError(backfillId: $id) {{
    ... on PartitionBackfill {{ id status error {{ message }} }} {_ERROR}
  }}
}}"""
PARTITIONS = f"""query Partitions($path: [String!]!) {{
  assetNodeOrError(assetKey: {{path: $path}}) {{
    ... on AssetNode {{
      partitionKeys
      assetPartitionStatuses {{
        ... on DefaultPartitionStatuses {{ materializedPartitions failedPartitions }}
      }}
    }} {_ERROR}
  }}
}}"""
RUNS = f"""query Runs($filter: RunsFilter) {{
  runsOrError(filter: $filter, limit: 1000) {{
    ... on Runs {{ results {{ runId status creationTime startTime endTime }} }} {_ERROR}
  }}
}}"""
WORKSPACE = f"""query Workspace {{
  workspaceOrError {{
    ... on Workspace {{
      locationEntries {{ name loadStatus locationOrLoadError {{ __typename
        ... on PythonError {{ message }} }} }}
    }} {_ERROR}
  }}
}}"""


class GraphQL:
    """The few webserver GraphQL calls the bench needs, as the UI makes them."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/graphql"
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        resp = self.session.post(
            self.url, json={"query": text, "variables": variables}, timeout=120
        )
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise BenchError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    @staticmethod
    def member(result: dict[str, Any], expected: str) -> dict[str, Any]:
        if result.get("__typename") != expected:
            raise BenchError(f"expected {expected}, got {result}")
        return result

    def location_loaded(self) -> bool:
        data = self.member(self.query(WORKSPACE)["workspaceOrError"], "Workspace")
        for entry in data["locationEntries"]:
            loaded = entry.get("locationOrLoadError") or {}
            if loaded.get("__typename") == "PythonError":
                raise BenchError(f"code location failed to load: {loaded['message']}")
            if entry["loadStatus"] == "LOADED" and loaded:
                return True
        return False

    def partitions(self) -> dict[str, list[str]]:
        node = self.member(self.query(PARTITIONS, path=[ASSET])["assetNodeOrError"], "AssetNode")
        statuses = node.get("assetPartitionStatuses") or {}
        return {
            "keys": node.get("partitionKeys") or [],
            "materialized": statuses.get("materializedPartitions") or [],
            "failed": statuses.get("failedPartitions") or [],
        }

    def launch_backfill(self, keys: list[str]) -> str:
        params = {"assetSelection": [{"path": [ASSET]}], "partitionNames": keys}
        data = self.query(LAUNCH, params=params)["launchPartitionBackfill"]
        return self.member(data, "LaunchBackfillSuccess")["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        data = self.query(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        return self.member(data, "PartitionBackfill")

    def backfill_runs(self, backfill_id: str) -> list[dict[str, Any]]:
        run_filter = {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}
        data = self.member(self.query(RUNS, filter=run_filter)["runsOrError"], "Runs")
        return data["results"]


# -- the deployment ----------------------------------------------------------------------------


@dataclass
class Deployment:
    process: subprocess.Popen
    url: str
    log: Path
    groups: set[int] = field(default_factory=set)

    def remember_groups(self) -> None:
        """Process groups of everything under gh-assets (dagster dev runs in a group of its
        own), recorded while alive so they can be stopped even if gh-assets dies first."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    self.groups.add(os.getpgid(child.pid))

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(
        _pgid(p) == pgid and p.status() != psutil.STATUS_ZOMBIE for p in psutil.process_iter()
    )


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _stop(deployment: Deployment) -> None:
    """SIGTERM gh-assets (it stops dagster dev), escalate, then any group it left behind."""
    deployment.remember_groups()
    own = deployment.process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(own, signal.SIGTERM)
    try:
        deployment.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(own, signal.SIGKILL)
        deployment.process.wait(timeout=10)
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        alive = {g for g in deployment.groups | {own} if _group_alive(g)}
        if not alive:
            return
        for pgid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_group_alive(g) for g in alive):
            time.sleep(0.2)


@contextlib.contextmanager
def deployment(log_dir: Path, env: dict[str, str]) -> Iterator[Deployment]:
    """``gh-assets dev`` on a free port until ``/server_info`` answers; always stopped."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = log_dir / "gh-assets-dev.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("gh-assets")), "dev", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    found = Deployment(process, f"http://127.0.0.1:{port}", log, {process.pid})
    try:
        _wait(lambda: _answers(f"{found.url}/server_info"), 180, "the webserver", found)
        found.remember_groups()
        yield found
    finally:
        _stop(found)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _wait(check, timeout: float, what: str, found: Deployment, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        found.remember_groups()
        if found.process.poll() is not None:
            raise BenchError(f"gh-assets dev exited while waiting for {what}:\n{found.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}:\n{found.tail()}")
        time.sleep(interval)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Backfill:
    seconds: float
    runs: list[dict[str, Any]]
    launched_at: float  # epoch seconds, like the run records' times
    done_at: float

    @property
    def pickup(self) -> float:
        """Launch -> the first run created: the backfill daemon's next iteration."""
        return min(r["creationTime"] for r in self.runs) - self.launched_at

    @property
    def tail(self) -> float:
        """The last run ended -> all green seen: the daemon's iteration that closes it."""
        return self.done_at - max(r["endTime"] for r in self.runs)


def run_backfill(api: GraphQL, keys: list[str], found: Deployment) -> Backfill:
    started = time.perf_counter()
    launched_at = time.time()
    backfill_id = api.launch_backfill(keys)
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    while True:
        status = api.backfill(backfill_id)
        if status["status"] in FAILED:
            raise BenchError(f"backfill {backfill_id} ended {status}:\n{found.tail()}")
        if status["status"] in SUCCESS:
            partitions = api.partitions()
            if set(partitions["materialized"]) >= set(keys) and not partitions["failed"]:
                seconds = time.perf_counter() - started
                done_at = time.time()
                break
        if time.monotonic() > deadline:
            raise BenchError(f"backfill {backfill_id} not done in {BACKFILL_TIMEOUT:.0f} s")
        found.remember_groups()
        time.sleep(1.0)  # light polling: the webserver shares the 2 cores with the runs
    runs = api.backfill_runs(backfill_id)
    if not runs or any(not r["endTime"] for r in runs):
        raise BenchError(f"backfill {backfill_id}: runs without an end: {runs}")
    return Backfill(seconds, runs, launched_at, done_at)


def pure_crawl_seconds(api_url: str, redis_url: str, windows: list[PageWindow]) -> float:
    """The same pages crawled by ``crawl_pages`` in this process: the work without Dagster."""
    store = RedisStore.from_url(redis_url, "pure:")
    try:
        with GitHubClient(api_url) as client:
            started = time.perf_counter()
            for _ in crawl_pages(client, store, windows, "anonymous"):
                pass
            return time.perf_counter() - started
    finally:
        keys = list(store.client.scan_iter(match="pure:*", count=1000))
        if keys:
            store.client.delete(*keys)
        store.client.close()


def _delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


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
        "deployment": "gh-assets dev (dagster-webserver + dagster-daemon), gh_assets/dagster.yaml",
        "sensor_interval_s": 3600,
    }
    windows = [PageWindow.number(k, PAGE_SIZE) for k in range(pages)]
    keys = [w.key for w in windows]
    redis_url = ctx.redis_db(ORCHESTRATION_DB)
    results: dict[int, list[Backfill]] = {}
    with standin_process(ctx.tmp / "standin-orch", size=pages * PAGE_SIZE) as standin_url:
        admin = StandinAdmin(standin_url)
        try:
            expected = len(admin.users(1, pages * PAGE_SIZE))
        finally:
            admin.close()
        pure = [pure_crawl_seconds(standin_url, redis_url, windows) for _ in range(ctx.runs)]
        for per_run in policies:
            prefix = f"orch{per_run}:"
            home = ctx.tmp / f"orchestration-{per_run}"
            env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
            env |= {
                "DAGSTER_HOME": str(home / "dagster_home"),
                "GH_ASSETS_DATA_DIR": str(home / "data"),
                "REDIS_URL": redis_url,
                "GITHUB_API_URL": standin_url,
                "GH_ASSETS_KEY_PREFIX": prefix,
                "GH_ASSETS_PAGE_SIZE": str(PAGE_SIZE),
                "GH_ASSETS_PAGES": str(pages),
                "GH_ASSETS_PAGES_PER_RUN": str(per_run),
                "GH_ASSETS_SENSOR_INTERVAL": "3600",
            }
            with deployment(home / "logs", env) as found:
                api = GraphQL(found.url)
                try:
                    _wait(api.location_loaded, 180, "the code location to load", found)
                    _wait(
                        lambda api=api: set(api.partitions()["keys"]) >= set(keys),
                        180,
                        f"github_pages_sensor to register {pages} pages",
                        found,
                    )
                    # One backfill of one page per run is itself an average over its runs
                    # (50 at the default size) and takes minutes: measured once.
                    count = 1 if per_run == 1 else ctx.runs
                    for index in range(count):
                        _delete_prefix(redis_url, prefix)
                        # A person launches at any moment of the backfill daemon's 30 s cycle;
                        # launching right after the previous backfill was seen done would always
                        # land just after an iteration. Launches are spread over the cycle.
                        time.sleep(DAEMON_CYCLE * (index + 0.5) / count)
                        backfill = run_backfill(api, keys, found)
                        store = RedisStore.from_url(redis_url, prefix)
                        stored, total = store.user_count(), store.page_user_total()
                        store.client.close()
                        if stored != expected or total != expected:
                            raise BenchError(
                                f"backfill with {per_run} page(s)/run stored {stored} users "
                                f"({total} by page bookkeeping), the stand-in has {expected}"
                            )
                        results.setdefault(per_run, []).append(backfill)
                finally:
                    api.close()
        _figures(section, results, pages, pure)
    return section


def _figures(
    section: Section, results: dict[int, list[Backfill]], pages: int, pure: list[float]
) -> None:
    work = statistics.median(pure) / pages
    section.add(
        "pure_crawl_per_page",
        "the same pages by crawl_pages in-process (no Dagster)",
        "s/page",
        [p / pages for p in pure],
        digits=3,
    )
    policies = sorted(results)
    for per_run in policies:
        name = _name(per_run)
        backfills = results[per_run]
        runs = [len(b.runs) for b in backfills]
        section.add(
            f"{name}.seconds",
            f"{per_run} page(s)/run ({runs[0]} runs): launch -> all green",
            "s",
            [b.seconds for b in backfills],
        )
        section.add(
            f"{name}.overhead_per_page",
            f"{per_run} page(s)/run: overhead per page (wall/page - crawl/page)",
            "s/page",
            [b.seconds / pages - work for b in backfills],
            digits=2,
        )
        durations = [
            r["endTime"] - r["startTime"] for b in backfills for r in b.runs if r["endTime"]
        ]
        delays = [
            r["startTime"] - r["creationTime"] for b in backfills for r in b.runs if r["startTime"]
        ]
        if durations:
            section.add(
                f"{name}.run_seconds",
                f"{per_run} page(s)/run: one run, start -> end (median of all runs)",
                "s",
                statistics.median(durations),
                digits=2,
            )
        if delays:
            section.add(
                f"{name}.queue_seconds",
                f"{per_run} page(s)/run: one run, created -> started (median of all runs)",
                "s",
                statistics.median(delays),
                digits=2,
            )
        section.add(
            f"{name}.pickup_seconds",
            f"{per_run} page(s)/run: launch -> first run created (daemon)",
            "s",
            [b.pickup for b in backfills],
        )
        section.add(
            f"{name}.tail_seconds",
            f"{per_run} page(s)/run: last run ended -> all green seen",
            "s",
            [b.tail for b in backfills],
        )
        section.details[f"backfills_{per_run}_pages_per_run"] = [
            {"seconds": round(b.seconds, 2), "runs": len(b.runs)} for b in backfills
        ]
    if len(policies) >= 2 and policies[0] == 1:
        single = results[1]
        other = policies[1]
        runs_single, runs_other = len(single[0].runs), len(results[other][0].runs)
        if runs_single > runs_other:
            base = statistics.median(b.seconds for b in single)
            section.add(
                "fixed_cost_per_run",
                f"Dagster's wall cost per extra run ({runs_single} vs {runs_other} runs)",
                "s/run",
                [(base - b.seconds) / (runs_single - runs_other) for b in results[other]],
                digits=2,
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
