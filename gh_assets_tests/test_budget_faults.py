"""The shared budget on real paths when GitHub's answers or the budget's Redis misbehave (issue
19): answers without rate-limit headers, a reset already past by Redis's clock (both through a
real proxy in front of the stand-in). ``test_governor`` holds the same faults script by script.

Each test prints the requests sent while GitHub said remaining 0 (the closing note's figure):
``pytest gh_assets_tests/test_budget_faults.py -s``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gh_assets.github import GitHubClient, GitHubError, RateLimitError
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.local.standin import Dataset, StandinServer
from gh_assets.storage import RedisStore
from gh_assets_tests.header_proxy import header_proxy, reset_at, strip_every

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
