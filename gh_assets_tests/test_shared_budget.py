"""The shared rate budget across real processes: several crawls, one identity's limits, kept.

Each crawl is its own process (``crawl_process``) sharing the budget through a real Redis; the
stand-in, over real HTTP, enforces GitHub's limits on a minute of one second and records what
reached it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient, RateLimitError
from gh_assets.github.app_auth import GitHubApp
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.services import running, wait_for
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_tests.crawled import stored, truth
from gh_assets_tests.pacing import most_in_window

pytestmark = pytest.mark.e2e

MINUTE = 1.0  # GitHub's minute, shortened
GITHUB_RATE = 100  # what the stand-in allows per minute (GitHub: 900)
RATE = 90  # what the crawl keeps to (GitHub: 870 of 900)
TOKENS = {"tok-alice-1": "alice", "tok-alice-2": "alice", "tok-bob": "bob"}
LIMITS = {"minute": MINUTE, "rest_points_per_minute": RATE, "lease_seconds": 2.0}


@dataclass
class Crawl:
    """One crawling process and where its result will be."""

    process: Any
    result: Path

    def outcome(self, timeout: float = 120) -> dict[str, Any]:
        wait_for(lambda: self.process.poll() is not None, timeout=timeout, what="a crawl to end")
        assert self.process.returncode == 0
        return json.loads(self.result.read_text())


@pytest.fixture
def limited_standin() -> Iterator[StandinServer]:
    with StandinServer(
        Dataset(size=2_000, seed=5),
        tokens=TOKENS,
        minute=MINUTE,
        rest_points_per_minute=GITHUB_RATE,
        secondary_in_flight=20,
    ) as server:
        yield server


def pages(*numbers: int) -> list[PageWindow]:
    return [PageWindow.number(k, 100) for k in numbers]


@contextmanager
def start(
    tmp_path: Path,
    name: str,
    standin: StandinServer,
    token: str,
    windows: list[PageWindow],
    redis_url: str,
    prefix: str,
    **limits: float,
) -> Iterator[Crawl]:
    result = tmp_path / f"{name}.json"
    command = [
        sys.executable, "-m", "gh_assets_tests.crawl_process",
        "--api-url", standin.url,
        "--token", token,
        "--redis-url", redis_url,
        "--prefix", prefix,
        "--pages", ",".join(w.key for w in windows),
        "--limits", json.dumps(LIMITS | limits),
        "--result", str(result),
    ]  # fmt: skip
    with running(command, lambda: True, tmp_path / f"{name}.log") as process:
        yield Crawl(process, result)


def test_four_processes_two_tokens_of_one_account_keep_its_limits(
    limited_standin: StandinServer, redis_url: str, key_prefix: str, store: RedisStore, tmp_path
) -> None:
    plan = {f"crawl{n}": pages(2 * n, 2 * n + 1) for n in range(4)}
    crawls = []
    with ExitStack() as stack:
        for n, (name, windows) in enumerate(plan.items()):
            token = "tok-alice-1" if n % 2 else "tok-alice-2"
            crawls.append(
                stack.enter_context(
                    start(tmp_path, name, limited_standin, token, windows, redis_url, key_prefix)
                )
            )
        outcomes = [crawl.outcome() for crawl in crawls]
    for (name, windows), outcome in zip(plan.items(), outcomes, strict=True):
        assert outcome["pages"] == [w.key for w in windows], (name, outcome.get("error"))
    every = [w for windows in plan.values() for w in windows]
    assert stored(store, *every) == truth(limited_standin.dataset, *every)

    alice = limited_standin.accounts_report()["alice"]
    assert (alice["secondary_refusals"], alice["primary_refusals"]) == (0, 0)
    slots = sorted(s for outcome in outcomes for s in outcome["slots"])
    assert most_in_window(slots, MINUTE) <= RATE  # the governor's promise, by Redis's clock
    sustained = (len(slots) - 1) / (slots[-1] - slots[0]) * MINUTE
    assert sustained >= 0.9 * RATE, f"{sustained:.1f} requests per minute of {RATE}"
    arrivals = [a[0] for a in alice["arrivals"]]
    # Every request had a slot, the account lookups (GET /user) too: those under the token's own
    # name (a block recorded for it holds them), one per token, or one per process when two
    # processes of one token start together and both find no remembered account yet.
    assert len(arrivals) == len(slots)
    assert alice["peak_in_flight"] <= 20


def test_a_process_killed_mid_page_gives_its_leases_back_and_its_page_re_runs(
    limited_standin: StandinServer, redis_url: str, key_prefix: str, store: RedisStore, tmp_path
) -> None:
    limited_standin.set_faults(latency_ms=40)  # requests overlap: the victim holds leases
    limits = {"max_in_flight": 6}
    victim_pages, other_pages = pages(0, 1, 2), pages(3, 4, 5, 6)
    connection = redis.Redis.from_url(redis_url)
    governor = Governor(connection, GovernorLimits(**(LIMITS | limits)), key_prefix)
    alice = f"user:{account_id(limited_standin, 'tok-alice-1')}"
    leases_key = governor.keys(alice)[1]
    with (
        start(tmp_path, "victim", limited_standin, "tok-alice-1", victim_pages, redis_url,
              key_prefix, **limits) as victim,
        start(tmp_path, "other", limited_standin, "tok-alice-2", other_pages, redis_url,
              key_prefix, **limits) as other,
    ):  # fmt: skip
        wait_for(
            lambda: store.page_members(victim_pages[0].key),
            timeout=60,
            what="the victim's first page",
        )
        os.killpg(victim.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        held = connection.zcard(leases_key)
        finished = other.outcome()
        other_done = time.monotonic()
    assert finished["pages"] == [w.key for w in other_pages]  # the others went on
    assert held >= 1  # the victim died holding leases ...
    grants = [
        governor.acquire([alice], "core", max_wait=LIMITS["lease_seconds"] + 1.0)
        for _ in range(limits["max_in_flight"])
    ]
    # ... and every slot is free again once they expire (or the other crawl ended, if later).
    back_by = max(killed_at + LIMITS["lease_seconds"], other_done) + 1.0
    assert len(grants) == limits["max_in_flight"] and time.monotonic() <= back_by
    assert not store.page_members(victim_pages[-1].key)  # its last page was never written

    with GitHubClient(limited_standin.url, "tok-alice-1", governor=governor) as client:
        list(crawl_pages(client, store, victim_pages))  # the page re-run
    every = victim_pages + other_pages
    assert stored(store, *every) == truth(limited_standin.dataset, *every)
    assert limited_standin.accounts_report()["alice"]["secondary_refusals"] == 0


def account_id(standin: StandinServer, token: str) -> int:
    """The account id the stand-in gives ``token``'s login (``GET /user``)."""
    answer = requests.get(
        f"{standin.url}/user",
        headers={"Authorization": f"Bearer {token}", "User-Agent": "test"},
        timeout=5,
    )
    return int(answer.json()["id"])


@pytest.mark.parametrize("retry_after", [1.5, None])
def test_a_secondary_limit_answer_to_one_process_holds_back_every_process(
    retry_after: float | None,
    limited_standin: StandinServer,
    redis_url: str,
    key_prefix: str,
    store: RedisStore,
    tmp_path: Path,
) -> None:
    first, second = pages(0, 1, 2, 3, 4), pages(5, 6, 7, 8, 9)
    with (
        start(tmp_path, "a", limited_standin, "tok-alice-1", first, redis_url, key_prefix) as a,
        start(tmp_path, "b", limited_standin, "tok-alice-2", second, redis_url, key_prefix) as b,
    ):
        wait_for(lambda: store.page_members(first[0].key), timeout=60, what="a first page")
        limited_standin.refuse_next("alice", retry_after=retry_after)
        outcomes = [a.outcome(), b.outcome()]
    assert [o["pages"] for o in outcomes] == [[w.key for w in ws] for ws in (first, second)]
    assert stored(store, *first, *second) == truth(limited_standin.dataset, *first, *second)
    alice = limited_standin.accounts_report()["alice"]
    block = alice["blocks"][0]
    length = block["end"] - block["start"]
    assert length >= (retry_after or MINUTE) * 0.95
    # Requests already on their way when the refusal left are not the governor's to stop.
    grace = 0.05
    during = [at for at, *_ in alice["arrivals"] if block["start"] + grace < at < block["end"]]
    assert during == []
    assert 1 <= alice["secondary_refusals"] <= 3


@pytest.mark.parametrize(
    ("tokens", "budgets"),
    [
        ("tok-alice-1,tok-alice-2", {"alice": 150}),
        ("tok-alice-1,tok-bob", {"alice": 150, "bob": 150}),
    ],
)
def test_two_accounts_give_twice_the_budget_two_tokens_of_one_do_not(
    tokens: str,
    budgets: dict[str, int],
    limited_standin: StandinServer,
    redis_url: str,
    key_prefix: str,
    store: RedisStore,
) -> None:
    limited_standin.set_rate_limit(150, reset=True)
    connection = redis.Redis.from_url(redis_url)
    governor = Governor(connection, GovernorLimits(**LIMITS), key_prefix)
    with (
        GitHubClient(limited_standin.url, tokens, governor=governor, max_rate_limit_wait=5) as gh,
        pytest.raises(RateLimitError, match="primary"),
    ):
        list(crawl_pages(gh, store, pages(*range(10))))
    report = limited_standin.accounts_report()
    answered = {login: report[login]["requests"]["rest"] for login in budgets}
    assert answered == budgets  # every point spent, not one more: nothing refused
    assert all(report[login]["primary_refusals"] == 0 for login in budgets)
    assert not secrets_in_redis(connection, key_prefix, tokens.split(","))


def secrets_in_redis(connection: redis.Redis, prefix: str, secrets: list[str]) -> list[str]:
    """Every key under ``prefix`` whose name or value holds one of ``secrets``."""
    found = []
    for key in connection.scan_iter(match=f"{prefix}*"):
        kind = connection.type(key)
        if kind == b"hash":
            value = repr(connection.hgetall(key))
        elif kind == b"zset":
            value = repr(connection.zrange(key, 0, -1))
        elif kind == b"set":
            value = repr(connection.smembers(key))
        else:
            value = repr(connection.get(key)) if kind == b"string" else ""
        if any(secret in key.decode() + value for secret in secrets):
            found.append(key.decode())
    return found


def test_app_installations_crawl_as_identities_of_their_own_renewing_tokens(
    redis_url: str, key_prefix: str, store: RedisStore
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    windows = pages(*range(8))
    with StandinServer(
        Dataset(size=1_000, seed=5),
        apps={77: public},
        installations={11: 77, 12: 77},
        installation_token_ttl=3.0,
        installation_limit=300,  # each: their paces add up, and neither budget runs dry
        minute=MINUTE,
        rest_points_per_minute=GITHUB_RATE,
    ) as standin:
        app = GitHubApp("77", private, standin.url, renew_before=1.0)
        minted: list[int] = []
        mint = app._mint
        app._mint = lambda installation: (minted.append(installation), mint(installation))[1]
        connection = redis.Redis.from_url(redis_url)
        slow = GovernorLimits(**(LIMITS | {"rest_points_per_minute": 60}))  # outlast a token
        governor = Governor(connection, slow, key_prefix)
        started = time.monotonic()
        with GitHubClient(standin.url, app=app, governor=governor) as client:
            written = list(crawl_pages(client, store, windows))
        took = time.monotonic() - started
        report = standin.accounts_report()
        assert [r.page for r in written] == [w.key for w in windows]
        assert stored(store, *windows) == truth(standin.dataset, *windows)
        used = {name: report[name]["requests"]["rest"] for name in report}
        assert set(used) == {"installation:11", "installation:12"}
        assert all(0 < n <= 300 for n in used.values())
        assert all(r["primary_refusals"] == r["secondary_refusals"] == 0 for r in report.values())
        assert "401" not in standin.stats()["requests"]["by_status"]
        assert took > 3.0 and len(minted) >= 3  # a token renewed mid-crawl, none used expired
