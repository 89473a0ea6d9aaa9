"""The shared budget on real paths when GitHub's answers or the budget's Redis misbehave (issue
19): answers without rate-limit headers and a reset already past by Redis's clock (through a real
proxy in front of the stand-in), the budget in a Redis of its own (GH_ASSETS_BUDGET_REDIS_URL),
and that Redis flushed mid-crawl. ``test_governor`` holds the same faults script by script.

Each fault test prints the requests sent while GitHub said remaining 0, or blocked (the closing
note's figure): ``pytest gh_assets_tests/test_budget_faults.py -s``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis

from gh_assets import preflight
from gh_assets.definitions import build_defs
from gh_assets.github import GitHubClient, GitHubError, RateLimitError
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.partitions import PageWindow, add_missing_pages
from gh_assets.resources import RedisResource
from gh_assets.settings import Settings
from gh_assets.storage import RedisStore
from gh_assets_devtools.services import redis_server, running, wait_for
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_tests.conftest import github_users
from gh_assets_tests.header_proxy import header_proxy, reset_at, strip_every

pytestmark = pytest.mark.integration

TRIES = 50


def budget(store: RedisStore, key_prefix: str) -> Governor:
    """The shared budget in the test's Redis, without pacing: only the primary budget binds."""
    return Governor(store.client, GovernorLimits(rest_points_per_minute=0), key_prefix)


@pytest.fixture
def primary_standin() -> Iterator[StandinServer]:
    """A stand-in whose primary budget is 10 requests an hour."""
    with StandinServer(Dataset(size=200, seed=3), rate_limit=10) as server:
        yield server


def refused(standin: StandinServer) -> int:
    """Requests the stand-in answered 403: each sent while it said remaining 0."""
    return standin.stats()["requests"]["by_status"].get("403", 0)


@pytest.mark.slow
def test_answers_without_headers_through_a_proxy_never_switch_the_budget_off(
    primary_standin: StandinServer, store: RedisStore, key_prefix: str
) -> None:
    gov = budget(store, key_prefix)
    with (
        header_proxy(primary_standin.url, strip_every(2)) as url,
        GitHubClient(url, governor=gov, max_rate_limit_wait=0, max_retries=0) as client,
    ):
        outcomes = [_get_user(client, user_id) for user_id in range(1, 31)]
    sent_into_the_limit = refused(primary_standin)
    print(f"\nheaders stripped from every 2nd answer: {outcomes.count('ok')} answered, "
          f"{sent_into_the_limit} sent while GitHub said remaining 0")  # fmt: skip
    assert outcomes.count("ok") == 10
    assert sent_into_the_limit == 0


@pytest.mark.slow
def test_a_reset_behind_redis_clock_through_a_proxy_sends_nothing_into_the_limit(
    primary_standin: StandinServer, store: RedisStore, key_prefix: str
) -> None:
    primary_standin.set_rate_limit(1, reset=True)  # after the first answer: remaining 0
    gov = budget(store, key_prefix)
    with (
        header_proxy(
            primary_standin.url, reset_at(lambda: float(store.client.time()[0]) - 1)
        ) as url,
        GitHubClient(url, governor=gov, max_rate_limit_wait=0, max_retries=0) as client,
    ):
        outcomes = [_get_user(client, user_id) for user_id in range(1, TRIES + 1)]
    sent_into_the_limit = refused(primary_standin)
    print(f"\nreset 1 s behind Redis's clock: {TRIES} calls, "
          f"{sent_into_the_limit} sent while GitHub said remaining 0")  # fmt: skip
    assert outcomes == ["ok"] + ["limited"] * (TRIES - 1)
    assert sent_into_the_limit == 0


def _get_user(client: GitHubClient, user_id: int) -> str:
    """What became of one call: answered, held back as rate limited, or failed otherwise (a
    403 whose headers the proxy stripped is no longer recognisable as a rate limit)."""
    try:
        client.get_user(user_id)
    except RateLimitError:
        return "limited"
    except GitHubError:
        return "failed"
    return "ok"


@pytest.mark.slow
def test_the_budget_kept_in_its_own_redis_named_by_gh_assets_budget_redis_url(
    standin: StandinServer, redis_url: str, key_prefix: str, tmp_path: Path, monkeypatch
) -> None:
    with redis_server(tmp_path / "budget", persist=False) as budget_url:
        environ = {
            "GITHUB_API_URL": standin.url,
            "REDIS_URL": redis_url,
            "GH_ASSETS_BUDGET_REDIS_URL": budget_url,
            "GH_ASSETS_KEY_PREFIX": key_prefix,
        }
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        settings = Settings.from_env()
        github = build_defs(settings).resources["github"]
        assert github.budget_redis.url == dg.EnvVar("GH_ASSETS_BUDGET_REDIS_URL")
        page = PageWindow.number(0, 100).key
        with dg.instance_for_test() as instance:
            add_missing_pages(instance, [page])
            result = dg.materialize(
                [github_users],
                partition_key=page,
                instance=instance,
                resources={"github": github, "redis": RedisResource.from_settings(settings)},
            )
        assert result.success
        with redis.Redis.from_url(budget_url) as budget, redis.Redis.from_url(redis_url) as data:
            governed = f"{key_prefix}{{governor}}:*"
            assert list(budget.scan_iter(match=governed))  # the budget is kept there
            assert not list(data.scan_iter(match=governed))  # and not beside the data
            assert list(data.scan_iter(match=f"{key_prefix}*"))  # which is here


def test_the_preflight_names_a_budget_redis_that_does_not_answer(
    standin: StandinServer, redis_url: str, tmp_path: Path
) -> None:
    socket_url = f"unix://{tmp_path}/budget.sock"
    settings = Settings(api_url=standin.url, redis_url=redis_url, budget_redis_url=socket_url)
    with pytest.raises(preflight.PreflightError) as refused:
        preflight.check(settings)
    assert str(refused.value) == (
        f"GH_ASSETS_BUDGET_REDIS_URL='{socket_url}': nothing answers there (no such socket file)"
    )


@pytest.mark.slow
def test_a_flushed_budget_mid_crawl_draws_no_secondary_refusal(
    redis_url: str, key_prefix: str, store: RedisStore, tmp_path: Path
) -> None:
    """GitHub still counts the last minute when the budget's Redis loses its keys: pacing goes
    on past the slots already granted, at half rate for a minute, and nothing is refused."""
    minute, rate = 1.0, 90  # GitHub's minute, shortened; the crawl keeps to 90 of 100
    limits = {"minute": minute, "rest_points_per_minute": rate, "lease_seconds": 2.0}
    limits["horizon_minutes"] = 0.25  # slots granted up to 22 requests ahead
    windows = [PageWindow.number(k, 100) for k in range(10)]
    with (
        StandinServer(
            Dataset(size=2_000, seed=5),
            tokens={"tok-alice": "alice"},
            minute=minute,
            rest_points_per_minute=100,
            secondary_in_flight=20,
        ) as standin,
        redis_server(tmp_path / "budget", persist=False) as budget_url,
    ):
        result = tmp_path / "crawl.json"
        command = [
            sys.executable, "-m", "gh_assets_tests.crawl_process",
            "--api-url", standin.url, "--token", "tok-alice",
            "--redis-url", redis_url, "--budget-redis-url", budget_url, "--prefix", key_prefix,
            "--pages", ",".join(w.key for w in windows),
            "--limits", json.dumps(limits), "--result", str(result),
        ]  # fmt: skip
        with running(command, lambda: True, tmp_path / "crawl.log") as process:
            wait_for(
                lambda: standin.stats()["requests"]["total"] >= 250 or process.poll() is not None,
                timeout=60,
                what="the crawl to send 250 requests",
                interval=0.05,
            )
            with redis.Redis.from_url(budget_url) as budget:
                budget.flushdb()  # mid-crawl, as a restart without persistence would
            wait_for(lambda: process.poll() is not None, timeout=120, what="the crawl to end")
        alice = standin.accounts_report()["alice"]
    outcome = json.loads(result.read_text())
    print(f"\nFLUSHDB of the budget mid-crawl: {alice['secondary_refusals']} requests sent while "
          f"GitHub blocked the account, of {len(alice['arrivals'])}")  # fmt: skip
    assert outcome["pages"] == [w.key for w in windows], outcome.get("error")
    assert alice["secondary_refusals"] == 0
    assert store.page_members(windows[-1].key)
