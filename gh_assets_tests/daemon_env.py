"""The local deployment as the daemon scenarios (test_daemon.py) drive it: ``Env`` (the deployment,
its stand-in and its Redis store; the state a failure message shows, waits, backfills), pages
counted from 1, and the runs, stored users and page ages the scenarios read and set."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.dagster_graphql import SENSOR_TAG, DagsterGraphQL, Run
from gh_assets_devtools.deployment import Deployment
from gh_assets_devtools.standin import StandinAdmin
from gh_assets_devtools.standin.data import STORED_FIELDS

from .four_pages import PAGES

STALE_SENSOR = "stale_pages_sensor"
REFRESH_SENSOR = "refresh_analysis_sensor"
T = TypeVar("T")


def page(n: int) -> PageWindow:
    """Page ``n`` counted from 1."""
    return PAGES[n - 1]


@dataclass
class Env:
    deployment: Deployment
    standin: StandinAdmin
    store: RedisStore

    @property
    def api(self) -> DagsterGraphQL:
        return self.deployment.api

    def truth(self, window: PageWindow) -> dict[int, dict[str, str]]:
        return self.standin.truth(window.first_id, window.last_id)

    def deferred(self) -> dict[str, float]:
        """Page -> epoch when a rate-limited page may run again."""
        found = self.store.client.zrange(self.store.deferred_key, 0, -1, withscores=True)
        return {member.decode(): score for member, score in found}

    def state(self, **extra: object) -> dict[str, object]:
        """What a failure message shows: partitions, recent runs, the sensor, the log's tail."""
        seen: dict[str, object] = dict(extra)
        for name, read in (
            ("partitions", lambda: self.api.partitions(USERS_KEY)),
            ("runs", lambda: [r.brief() for r in self.api.runs(limit=20)]),
            (STALE_SENSOR, lambda: self.api.sensor(STALE_SENSOR)),
            ("deferred", self.deferred),
        ):
            try:
                seen[name] = read()
            except Exception as error:
                seen[name] = f"unreadable: {error!r}"
        seen["log_tail"] = self.deployment.log_tail(2500)
        return seen

    def wait_for(
        self, check: Callable[[], T | None], timeout: float, what: str, interval: float = 2.0
    ) -> T:
        return self.deployment.wait_for(
            check, timeout=timeout, what=what, interval=interval, state=self.state
        )

    def backfill(self, partitions: list[str] | None, timeout: float) -> tuple[str, str]:
        """A backfill of ``partitions`` of the pages (all when None), waited for: (id, status)."""
        backfill_id = self.api.launch_backfill(USERS_KEY, partitions)
        status = self.api.wait_backfill(
            backfill_id,
            timeout=timeout,
            interval=2,
            state=lambda: self.state(backfill=self.api.backfill(backfill_id)),
        )
        return backfill_id, status


def page_runs(env: Env, created_after: float) -> list[Run]:
    """Runs of pages created after a moment, whatever job they belong to (a sensor's run is
    ``crawl_job``'s, a backfill's the implicit asset job's)."""
    return [run for run in env.api.runs(created_after=created_after) if run.partition]


def refresh_runs(env: Env, created_after: float) -> list[Run]:
    """Runs of github_users_frame/github_user_summary the automation sensor requested."""
    return env.api.runs(tags={SENSOR_TAG: REFRESH_SENSOR}, created_after=created_after)


def stored(env: Env, user_ids: Iterable[int]) -> dict[int, dict[str, str | None]]:
    """The compared fields of the stored hashes of ``user_ids`` (absent users left out)."""
    found = env.store.read_users(user_ids)
    return {u: {k: found[u].get(k) for k in STORED_FIELDS} for u in found}


def make_stale(env: Env, *windows: PageWindow) -> None:
    """Make pages look last crawled two re-crawl periods ago (the sensor's view of age)."""
    old = time.time() - 2 * 3600
    env.store.client.zadd(env.store.pages_key, {w.key: old for w in windows})
