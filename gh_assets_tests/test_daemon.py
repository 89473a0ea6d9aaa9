"""The real local deployment, driven as a person drives it: through the webserver's GraphQL API.

One deployment per module (``gh-assets dev``: webserver + daemon, on the tests' Redis under a key
prefix of its own, crawling the stand-in as a separate process) serves four scenarios: a backfill
with a failing page, its re-execution from failure, the stale-page sensor re-crawling with ETags,
and a rate limit that defers a page until its reset. Each scenario gets the state it needs from a
fixture, so it also passes alone (``-k``). Pages are named 1..4 here as a person counts them:
page n holds IDs (n-1)*100+1 .. n*100. ``Env``, what the scenarios drive, is in daemon_env.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests

from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.partitions import PageWindow
from gh_assets_devtools.dagster_graphql import Run

from .daemon_env import STALE_SENSOR, Env, make_stale, page, page_runs, refresh_runs, stored
from .four_pages import KEYS, PAGES, STANDIN_SIZE, four_pages_deployed

pytestmark = pytest.mark.e2e

PAGE_RETRIES = 1  # the failing page is retried once (not twice, the default): a faster test


# -- the deployment and the state each scenario starts from ----------------------------------


@pytest.fixture(scope="module")
def env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with four_pages_deployed(
        tmp_path_factory.mktemp("daemon"),
        redis_url,
        GH_ASSETS_RECRAWL_BATCH=10,
        GH_ASSETS_PAGE_RETRIES=PAGE_RETRIES,
        GH_ASSETS_MAX_RATE_LIMIT_WAIT=2,
    ) as found:
        yield Env(found.deployment, found.standin, found.store)


@dataclass(frozen=True)
class FailedBackfill:
    backfill_id: str
    status: str
    started: float
    runs: list[Run]


@pytest.fixture(scope="module")
def failed_backfill(env: Env) -> FailedBackfill:
    """A backfill of every page while one user of page 3 answers 502 on every request; the
    fault is healed once the backfill is over."""
    p3 = page(3)
    # Not the first ID after page 3's cursor: its list request succeeds, the detail fails.
    victim = next(user_id for user_id in sorted(env.truth(p3)) if user_id > p3.first_id)
    env.standin.set_faults(fail_ids=[(victim, victim)])
    started = time.time()
    try:
        backfill_id, status = env.backfill(None, timeout=300)
    finally:
        env.standin.heal()
    return FailedBackfill(backfill_id, status, started, env.api.backfill_runs(backfill_id))


@pytest.fixture
def every_page_stored(env: Env) -> None:
    """Every page materialized: a backfill of those that are not (a scenario run alone)."""
    missing = sorted(set(KEYS) - set(env.api.partitions(USERS_KEY)["materialized"]))
    if missing:
        _, status = env.backfill(missing, timeout=300)
        assert status == "COMPLETED_SUCCESS", env.state(status=status)


# -- helpers ---------------------------------------------------------------------------------


def assert_page_matches_truth(env: Env, window: PageWindow) -> dict[int, dict[str, str]]:
    """Redis holds exactly the stand-in's users of ``window``, every compared field."""
    truth = env.truth(window)
    assert env.store.page_members(window.key) == set(truth), window.key
    assert env.store.ids_between(window.first_id, window.last_id) == set(truth), window.key
    found = stored(env, truth)
    mismatched = {u: (found.get(u), want) for u, want in truth.items() if found.get(u) != want}
    assert not mismatched, f"{window.key}: stored != stand-in for {mismatched}"
    meta = env.store.page_meta(window.key)
    assert (meta["listed"], meta["users"], meta["gone"]) == (str(len(truth)), str(len(truth)), "0")
    return truth


def assert_page_absent(env: Env, window: PageWindow) -> None:
    assert env.store.page_members(window.key) == set()
    assert env.store.ids_between(window.first_id, window.last_id) == set()
    assert env.store.page_meta(window.key) == {}
    assert env.store.client.zscore(env.store.pages_key, window.key) is None


def spend(url: str, count: int, user_id: int = 1) -> requests.Response:
    """Spend ``count`` calls of the anonymous budget from this machine's IP, as any other
    anonymous client on it would (``GET /user/{id}`` without ETag); the last answer."""
    with requests.Session() as session:
        for _ in range(count):
            resp = session.get(f"{url}/user/{user_id}", timeout=30)
            assert resp.status_code == 200, f"GET /user/{user_id} -> {resp.status_code}"
    return resp


# -- scenarios -------------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_1_backfill_with_a_failing_page(env: Env, failed_backfill: FailedBackfill) -> None:
    p3 = page(3)
    assert failed_backfill.status == "COMPLETED_FAILED", env.state(status=failed_backfill.status)
    parts = env.api.partitions(USERS_KEY)
    assert parts["failed"] == [p3.key], parts
    assert parts["materialized"] == [page(n).key for n in (1, 2, 4)], parts
    runs = failed_backfill.runs
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
    seconds = time.time() - failed_backfill.started
    print(f"\nscenario 1: backfill {failed_backfill.backfill_id} done {seconds:.0f} s after launch")


@pytest.mark.timeout(600)
def test_2_reexecute_from_failure_runs_only_the_failed_page(
    env: Env, failed_backfill: FailedBackfill
) -> None:
    parent = failed_backfill.backfill_id
    started = time.time()

    backfill_id = env.api.reexecute_backfill(parent, "FROM_FAILURE")
    assert backfill_id != parent
    status = env.api.wait_backfill(
        backfill_id, timeout=240, interval=2, state=lambda: env.state(parent=parent)
    )

    assert status == "COMPLETED_SUCCESS", env.state(status=status)
    runs = env.api.backfill_runs(backfill_id)
    assert [(run.partition, run.status) for run in runs] == [(page(3).key, "SUCCESS")], [
        run.brief() for run in runs
    ]
    parts = env.api.partitions(USERS_KEY)
    assert parts["materialized"] == KEYS, parts
    assert parts["failed"] == [], parts

    for window in PAGES:
        assert_page_matches_truth(env, window)
    truth_all = env.standin.users(1, STANDIN_SIZE)
    assert env.store.user_count() == len(truth_all)
    assert env.store.page_user_total() == len(truth_all)
    every_user = f"{env.store.prefix}{{b*}}:user:*"  # every block's user hashes
    user_keys = list(env.store.client.scan_iter(match=every_user, count=1000))
    assert len(user_keys) == len(truth_all)
    assert set(env.store.pages_fetched_at()) == set(KEYS)
    # The analysis was not refreshed while the first backfill's page runs were in progress.
    batch_start = min(run.created for run in failed_backfill.runs)
    batch_end = max(run.ended or time.time() for run in failed_backfill.runs)
    during = [run.brief() for run in refresh_runs(env, batch_start) if run.created < batch_end]
    assert during == [], f"the analysis refreshed mid-batch: {during}"
    print(f"\nscenario 2: re-execution {backfill_id} {status} in {time.time() - started:.0f} s")


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("every_page_stored")
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

    env.wait_for(both_succeeded, timeout=180, what="stale_pages_sensor to re-crawl pages 1 and 2")
    finished = time.time()
    # A later tick of the sensor must not request anything else.
    env.wait_for(
        lambda: any(
            tick["timestamp"] > finished and tick["status"] in ("SKIPPED", "SUCCESS")
            for tick in env.api.sensor(STALE_SENSOR)["sensorState"]["ticks"]
        ),
        timeout=60,
        what="a tick of stale_pages_sensor after the re-crawl",
        interval=1,
    )
    runs = page_runs(env, mark)
    assert sorted(run.partition for run in runs) == [p1.key, p2.key], [r.brief() for r in runs]
    assert all(run.status == "SUCCESS" for run in runs), [r.brief() for r in runs]

    for user_id, followers in changed.items():
        assert env.store.read_users([user_id])[user_id]["followers"] == str(followers)
    for window in PAGES:
        assert_page_matches_truth(env, window)
    unchanged = len(truth1) + len(truth2) - len(changed)
    by_status = env.standin.stats()["requests"]["by_status"]
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


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("every_page_stored")
def test_4_rate_limit_defers_the_page_until_the_reset(env: Env) -> None:
    p4 = page(4)
    truth = assert_page_matches_truth(env, p4)
    # A page run ends after its checks; the analysis may start as soon as the page is written.
    last_page_change = env.api.last_materialized(USERS_KEY)
    assert last_page_change is not None
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
        env.standin.set_rate_limit(limit, window, reset=True)
        last = spend(env.standin.url, limit - 2)
        reset = int(last.headers["X-RateLimit-Reset"])
        assert int(last.headers["X-RateLimit-Remaining"]) == 2
        make_stale(env, p4)

        failed = env.wait_for(
            lambda: [
                r for r in page_runs(env, mark) if r.partition == p4.key and r.status == "FAILURE"
            ],
            timeout=window - 5,
            what="page 4's run to fail on the rate limit",
            interval=0.5,
        )[0]
        failed_at = failed.ended or time.time()
        assert failed_at < reset, "the run failed only after the reset: it did not fail fast"
        assert env.standin.stats()["requests"]["by_status"].get("403", 0) >= 1
        messages = env.api.run_error_messages(failed.run_id)
        reset_text = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert any("rate limit" in m.lower() and reset_text in m for m in messages), messages
        due = env.deferred().get(p4.key)
        assert due is not None and due >= reset, (due, reset)
        # Nothing half-written: the page holds what it held before the failed run.
        assert stored(env, truth) == truth
        assert env.store.page_members(p4.key) == set(truth)

        # No action from here on: the sensor re-runs the page once the budget has reset.
        def succeeded() -> Run | None:
            runs = [r for r in page_runs(env, mark) if r.partition == p4.key]
            return next((r for r in runs if r.status == "SUCCESS"), None)

        success = env.wait_for(
            succeeded,
            timeout=window + 120,
            what="the sensor to re-run page 4 after the rate limit's reset",
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
        # The analysis catches up with the pages with no action either (the automation waits
        # while any page run is in progress, and its daemon ticks on its own cadence).
        env.wait_for(
            lambda: [r for r in refresh_runs(env, last_page_change) if r.status == "SUCCESS"],
            timeout=180,
            what="the analysis to be refreshed after the pages changed",
            interval=2,
        )
        by_status = env.standin.stats()["requests"]["by_status"]
        print(
            f"\nscenario 4: failed {failed_at - mark:.0f} s after the page went stale, reset at "
            f"+{reset - mark:.0f} s, re-crawled at +{time.time() - mark:.0f} s; {by_status}"
        )
    finally:
        env.standin.set_rate_limit(5000, 3600, reset=True)
