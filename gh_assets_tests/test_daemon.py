"""The real local deployment, driven as a person drives it: through the webserver's GraphQL API.

One module-scoped deployment (``gh-assets dev``: webserver + daemon, on the tests' Redis under a
key prefix of its own, crawling the stand-in as a separate process) serves four scenarios that run
in order and build on each other: a backfill with a failing page, its re-execution from failure,
the stale-page sensor re-crawling with ETags, and a rate limit that defers a page until its reset.
Pages are named 1..4 here as a person counts them: page n holds IDs (n-1)*100+1 .. n*100.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import redis

from gh_assets.partitions import PageWindow
from gh_assets.local.services import free_port, standin_server
from gh_assets.storage import COUNTERS, RedisStore

from .daemon import (
    TERMINAL_BACKFILL,
    Deployment,
    GraphQL,
    Run,
    Standin,
    running_deployment,
    wait_for,
)

PAGE_SIZE = 100
PAGE_COUNT = 4
PAGES = [PageWindow.number(k, PAGE_SIZE) for k in range(PAGE_COUNT)]
KEYS = [page.key for page in PAGES]
SENSOR_INTERVAL = 5
MAX_RATE_LIMIT_WAIT = 2
PAGE_RETRIES = 1  # the failing page is retried once (not twice, the default): a faster test
STANDIN_SIZE = PAGE_COUNT * PAGE_SIZE  # nothing beyond the crawl: no frontier growth
FIELDS = ("id", "login", "type", *COUNTERS)
REFRESH_SENSOR = "refresh_analysis_sensor"

# The environment a person's shell would not carry into this deployment.
SCRUBBED = ("REDIS_URL", "GITHUB_API_URL", "GITHUB_TOKEN", "DAGSTER_HOME", "GH_ASSETS_")


def page(n: int) -> PageWindow:
    """Page ``n`` counted from 1."""
    return PAGES[n - 1]


@dataclass
class Env:
    deployment: Deployment
    api: GraphQL
    standin: Standin
    store: RedisStore
    prefix: str
    backfills: list[str] = field(default_factory=list)  # launched by the scenarios, in order
    pages_done_at: float = 0.0  # when scenario 2 had every page stored

    def truth(self, window: PageWindow) -> dict[int, dict[str, str]]:
        """The stand-in's users of a page, as Redis must hold them (strings, like hashes)."""
        return {
            row["id"]: {name: str(row[name]) for name in FIELDS}
            for row in self.standin.users(window.first_id, window.last_id)
        }

    def deferred(self) -> dict[str, float]:
        """``{p}deferred``: page -> epoch when a rate-limited page may run again."""
        found = self.store.client.zrange(f"{self.prefix}deferred", 0, -1, withscores=True)
        return {member.decode(): score for member, score in found}

    def state(self, **extra: object) -> dict[str, object]:
        """What a failure message shows: partitions, recent runs, sensors, the log's tail."""
        seen: dict[str, object] = dict(extra)
        for name, read in (
            ("partitions", self.api.partitions),
            ("runs", lambda: [r.brief() for r in self.api.runs(limit=20)]),
            ("stale_pages_sensor", lambda: self.api.sensor("stale_pages_sensor")),
            ("deferred", self.deferred),
        ):
            try:
                seen[name] = read()
            except Exception as error:
                seen[name] = f"unreadable: {error!r}"
        seen["log_tail"] = self.deployment.log_tail(2500)
        return seen


# -- the deployment --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("daemon")
    prefix = f"daemon-{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(redis_url)
    try:
        with standin_server(tmp / "standin", size=STANDIN_SIZE) as standin_url:
            environ = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
            environ |= {
                "DAGSTER_HOME": str(tmp / "dagster_home"),
                "REDIS_URL": redis_url,
                "GITHUB_API_URL": standin_url,
                "GH_ASSETS_KEY_PREFIX": prefix,
                "GH_ASSETS_PAGE_SIZE": str(PAGE_SIZE),
                "GH_ASSETS_PAGES": str(PAGE_COUNT),
                "GH_ASSETS_SENSOR_INTERVAL": str(SENSOR_INTERVAL),
                "GH_ASSETS_RECRAWL_AFTER": "3600",
                "GH_ASSETS_RECRAWL_BATCH": "10",
                "GH_ASSETS_PAGE_RETRIES": str(PAGE_RETRIES),
                "GH_ASSETS_MAX_RATE_LIMIT_WAIT": str(MAX_RATE_LIMIT_WAIT),
            }
            with running_deployment(tmp / "logs", environ, port=free_port()) as deployment:
                api = GraphQL(deployment.url)
                standin = Standin(standin_url)
                store = RedisStore.from_url(redis_url, prefix)
                env = Env(deployment, api, standin, store, prefix)
                try:
                    wait_for(
                        api.location_loaded,
                        timeout=120,
                        what="the code location to load",
                        state=lambda: deployment.log_tail(3000),
                    )
                    # github_pages_sensor registers the pages on its first tick.
                    wait_for(
                        lambda: len(api.partitions()["keys"]) == PAGE_COUNT,
                        timeout=120,
                        what=f"github_pages_sensor to register {PAGE_COUNT} pages",
                        state=env.state,
                        interval=2,
                    )
                    assert api.partitions()["keys"] == KEYS
                    yield env
                finally:
                    api.close()
                    standin.close()
                    store.client.close()
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


# -- helpers ---------------------------------------------------------------------------------


def wait_backfill(env: Env, backfill_id: str, timeout: float) -> str:
    return wait_for(
        lambda: (status := env.api.backfill_status(backfill_id)) in TERMINAL_BACKFILL and status,
        timeout=timeout,
        what=f"backfill {backfill_id} to finish",
        state=lambda: env.state(backfill=env.api.backfill(backfill_id)),
        interval=2,
    )


def page_runs(env: Env, created_after: float) -> list[Run]:
    """Runs of ``github_users`` pages created after a moment, whatever job they belong to
    (a sensor's run is ``crawl_github_users``, a backfill's the implicit asset job)."""
    return [run for run in env.api.runs(created_after=created_after) if run.partition]


def refresh_runs(env: Env, created_after: float) -> list[Run]:
    """Runs of github_users_frame/github_user_summary the automation sensor requested."""
    return env.api.runs(tags={"dagster/sensor_name": REFRESH_SENSOR}, created_after=created_after)


def assert_page_matches_truth(env: Env, window: PageWindow) -> dict[int, dict[str, str]]:
    """Redis holds exactly the stand-in's users of ``window``, every field that is compared."""
    truth = env.truth(window)
    assert env.store.page_members(window.key) == set(truth), window.key
    assert stored_ids(env, window) == set(truth), window.key
    stored = env.store.read_users(truth)
    assert set(stored) == set(truth), window.key
    mismatched = {
        user_id: (
            {k: stored[user_id].get(k) for k in FIELDS},
            want,
        )
        for user_id, want in truth.items()
        if {k: stored[user_id].get(k) for k in FIELDS} != want
    }
    assert not mismatched, f"{window.key}: stored != stand-in for {mismatched}"
    meta = env.store.page_meta(window.key)
    assert (meta["listed"], meta["users"], meta["gone"]) == (str(len(truth)), str(len(truth)), "0")
    return truth


def assert_page_matches_truth_before_change(
    env: Env, window: PageWindow, before: dict[int, dict[str, str]]
) -> None:
    """A page whose run failed still holds what it held before (nothing half-written)."""
    stored = env.store.read_users(before)
    assert {u: {k: stored[u].get(k) for k in FIELDS} for u in stored} == before
    assert env.store.page_members(window.key) == set(before)


def stored_ids(env: Env, window: PageWindow) -> set[int]:
    """Stored user ids in a page's ID window, from the ``{p}ids`` index."""
    found = env.store.client.zrangebyscore(env.store.ids_key, window.first_id, window.last_id)
    return {int(user_id) for user_id in found}


def assert_page_absent(env: Env, window: PageWindow) -> None:
    assert env.store.page_members(window.key) == set()
    assert stored_ids(env, window) == set()
    assert env.store.page_meta(window.key) == {}
    assert env.store.client.zscore(env.store.pages_key, window.key) is None


def make_stale(env: Env, *windows: PageWindow) -> None:
    """Make pages look last crawled two re-crawl periods ago (the sensor's view of age)."""
    old = time.time() - 2 * 3600
    env.store.client.zadd(env.store.pages_key, {w.key: old for w in windows})


# -- scenarios -------------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_1_backfill_with_a_failing_page(env: Env) -> None:
    p3 = page(3)
    p3_users = sorted(env.truth(p3))
    # A user of page 3 that is not the first ID after its cursor: the list page succeeds,
    # that user's detail request fails with 502 on every retry.
    victim = next(user_id for user_id in p3_users if user_id > p3.first_id)
    env.standin.fail_ids((victim, victim))
    started = time.time()

    backfill_id = env.api.launch_backfill()
    env.backfills.append(backfill_id)
    status = wait_backfill(env, backfill_id, timeout=300)

    assert status in ("COMPLETED_FAILED", "COMPLETED"), env.state(status=status)
    parts = env.api.partitions()
    assert parts["failed"] == [p3.key], parts
    assert parts["materialized"] == [page(n).key for n in (1, 2, 4)], parts
    runs = env.api.runs(tags={"dagster/backfill": backfill_id})
    assert sorted((run.partition, run.status) for run in runs) == [
        (page(1).key, "SUCCESS"),
        (page(2).key, "SUCCESS"),
        (p3.key, "FAILURE"),
        (page(4).key, "SUCCESS"),
    ], [run.brief() for run in runs]
    failure = next(run for run in runs if run.status == "FAILURE")
    messages = env.api.run_error_messages(failure.run_id)
    assert any("502" in message for message in messages), messages
    # The transient fault was retried by the page's RetryPolicy (GH_ASSETS_PAGE_RETRIES) first.
    kinds = [event["__typename"] for event in env.api.run_events(failure.run_id)]
    assert kinds.count("ExecutionStepUpForRetryEvent") == PAGE_RETRIES, kinds

    for n in (1, 2, 4):
        assert_page_matches_truth(env, page(n))
    assert_page_absent(env, p3)
    assert env.store.user_count() == sum(len(env.truth(page(n))) for n in (1, 2, 4))
    print(f"\nscenario 1: backfill {backfill_id} {status} in {time.time() - started:.0f} s")


@pytest.mark.timeout(300)
def test_2_reexecute_from_failure_runs_only_the_failed_page(env: Env) -> None:
    env.standin.heal()
    assert env.backfills, "scenario 1 launched no backfill"
    parent = env.backfills[0]
    started = time.time()

    backfill_id = env.api.reexecute_backfill(parent, "FROM_FAILURE")
    assert backfill_id != parent
    status = wait_backfill(env, backfill_id, timeout=240)

    assert status == "COMPLETED_SUCCESS", env.state(status=status)
    runs = env.api.runs(tags={"dagster/backfill": backfill_id})
    assert [(run.partition, run.status) for run in runs] == [(page(3).key, "SUCCESS")], [
        run.brief() for run in runs
    ]
    parts = env.api.partitions()
    assert parts["materialized"] == KEYS, parts
    assert parts["failed"] == [], parts

    total = 0
    for window in PAGES:
        total += len(assert_page_matches_truth(env, window))
    truth_all = env.standin.users(1, PAGE_COUNT * PAGE_SIZE)
    assert total == len(truth_all)
    assert env.store.user_count() == len(truth_all)
    user_keys = list(env.store.client.scan_iter(match=f"{env.prefix}user:*", count=1000))
    assert len(user_keys) == len(truth_all)
    assert set(env.store.pages_fetched_at()) == set(KEYS)
    # The analysis was not refreshed while scenario 1's page runs were still in progress.
    first_runs = env.api.runs(tags={"dagster/backfill": parent})
    batch_start = min(run.created for run in first_runs)
    batch_end = max(run.ended or time.time() for run in first_runs)
    during = [run.brief() for run in refresh_runs(env, batch_start) if run.created < batch_end]
    assert during == [], f"the analysis refreshed mid-batch: {during}"
    env.pages_done_at = max(run.ended or time.time() for run in runs)
    print(f"\nscenario 2: re-execution {backfill_id} {status} in {time.time() - started:.0f} s")


@pytest.mark.timeout(300)
def test_3_stale_pages_are_recrawled_with_etags(env: Env) -> None:
    p1, p2 = page(1), page(2)
    truth1, truth2 = env.truth(p1), env.truth(p2)
    changed = {sorted(truth1)[3]: 0, sorted(truth1)[40]: 0, sorted(truth2)[10]: 0}
    for user_id in changed:
        old = int((truth1 | truth2)[user_id]["followers"])
        changed[user_id] = old + 1000 + user_id
        env.standin.update_user(user_id, followers=changed[user_id])
    env.standin.reset_stats()
    mark = time.time()
    make_stale(env, p1, p2)

    def both_succeeded() -> list[Run] | None:
        runs = page_runs(env, mark)
        done = {run.partition for run in runs if run.status == "SUCCESS"}
        return runs if {p1.key, p2.key} <= done else None

    wait_for(
        both_succeeded,
        timeout=180,
        what="stale_pages_sensor to re-crawl pages 1 and 2",
        state=env.state,
        interval=2,
    )
    finished = time.time()
    # A later tick of the sensor must not request anything else.
    wait_for(
        lambda: any(
            tick["timestamp"] > finished and tick["status"] in ("SKIPPED", "SUCCESS")
            for tick in env.api.sensor("stale_pages_sensor")["sensorState"]["ticks"]
        ),
        timeout=60,
        what="a tick of stale_pages_sensor after the re-crawl",
        state=env.state,
    )
    runs = page_runs(env, mark)
    assert sorted(run.partition for run in runs) == [p1.key, p2.key], [r.brief() for r in runs]
    assert all(run.status == "SUCCESS" for run in runs), [r.brief() for r in runs]

    for user_id, followers in changed.items():
        assert env.store.read_users([user_id])[user_id]["followers"] == str(followers)
    for n in range(1, PAGE_COUNT + 1):
        assert_page_matches_truth(env, page(n))
    unchanged = len(truth1) + len(truth2) - len(changed)
    by_status = env.standin.state()["requests"]["by_status"]
    assert by_status.get("304") == unchanged, by_status
    assert set(by_status) <= {"200", "304"}, by_status
    not_modified = {w.key: int(env.store.page_meta(w.key)["not_modified"]) for w in (p1, p2)}
    assert not_modified == {
        p1.key: len(truth1) - sum(1 for u in changed if u in truth1),
        p2.key: len(truth2) - sum(1 for u in changed if u in truth2),
    }
    fetched = env.store.pages_fetched_at()
    assert all(fetched[w.key] >= datetime.fromtimestamp(int(mark), UTC) for w in (p1, p2))
    print(f"\nscenario 3: pages 1 and 2 re-crawled in {finished - mark:.0f} s")


@pytest.mark.timeout(420)
def test_4_rate_limit_defers_the_page_until_the_reset(env: Env) -> None:
    p4 = page(4)
    truth = env.truth(p4)
    # Some users change, so the re-crawl must really fetch them (the rest answer 304).
    changed = sorted(truth)[::8]
    for user_id in changed:
        env.standin.update_user(user_id, following=int(truth[user_id]["following"]) + 7)
    page_requests = int(env.store.page_meta(p4.key)["requests"])
    limit = page_requests // 2 + 3  # a bit more than half of a page's requests
    # Long enough that the run surely calls GitHub before the reset, even on a loaded machine
    # (the sensor's tick, the queue and the run's process start come first).
    window = 90
    assert 1 + len(changed) < limit  # the re-crawl alone fits in a fresh window
    env.standin.reset_stats()
    mark = time.time()
    try:
        # Another anonymous client on this machine spends all but two calls of a fresh window of
        # the IP's shared budget before the page's run starts: its list call and its first changed
        # user take those, and the budget runs out mid-crawl. (Spending first, then making the
        # page stale, leaves no race between this client and the run.)
        env.standin.rate_limit(limit, window, reset=True)
        last = env.standin.spend(limit - 2)
        reset = int(last.headers["X-RateLimit-Reset"])
        assert int(last.headers["X-RateLimit-Remaining"]) == 2
        make_stale(env, p4)

        failed = wait_for(
            lambda: [
                r for r in page_runs(env, mark) if r.partition == p4.key and r.status == "FAILURE"
            ],
            timeout=window - 5,
            what="page 4's run to fail on the rate limit",
            state=env.state,
            interval=0.5,
        )[0]
        failed_at = failed.ended or time.time()
        assert failed_at < reset, "the run failed only after the reset: it did not fail fast"
        assert env.standin.state()["requests"]["by_status"].get("403", 0) >= 1
        messages = env.api.run_error_messages(failed.run_id)
        reset_text = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert any("rate limit" in m.lower() and reset_text in m for m in messages), messages
        due = env.deferred().get(p4.key)
        assert due is not None and due >= reset, (due, reset)
        assert_page_matches_truth_before_change(env, p4, truth)

        # No action from here on: the sensor re-runs the page once the budget has reset.
        def succeeded() -> Run | None:
            runs = [r for r in page_runs(env, mark) if r.partition == p4.key]
            return next((r for r in runs if r.status == "SUCCESS"), None)

        success = wait_for(
            succeeded,
            timeout=window + 120,
            what="the sensor to re-run page 4 after the rate limit's reset",
            state=lambda: env.state(reset=reset, now=time.time()),
            interval=1,
        )
        runs = [r for r in page_runs(env, mark) if r.partition == p4.key]
        assert [r.status for r in runs] == ["FAILURE", "SUCCESS"], [r.brief() for r in runs]
        assert success.created >= reset, (success.brief(), reset)
        assert_page_matches_truth(env, p4)
        for user_id in changed:
            assert env.store.read_users([user_id])[user_id]["following"] == str(
                int(truth[user_id]["following"]) + 7
            )
        assert p4.key not in env.deferred()
        # By now the analysis has caught up with scenario 2's complete set of pages.
        refreshed = [r for r in refresh_runs(env, env.pages_done_at) if r.status == "SUCCESS"]
        assert refreshed, env.state()
        by_status = env.standin.state()["requests"]["by_status"]
        print(
            f"\nscenario 4: failed {failed_at - mark:.0f} s after the page went stale, reset at "
            f"+{reset - mark:.0f} s, re-crawled at +{time.time() - mark:.0f} s; {by_status}"
        )
    finally:
        env.standin.rate_limit(5000, 3600, reset=True)
