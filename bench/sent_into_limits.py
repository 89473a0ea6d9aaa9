"""Requests any checkout's client sends while GitHub says remaining 0, blocked or revoked.

``python -m bench.sent_into_limits ROOT [SCENARIO ...]`` starts today's stand-in, header proxy and
Redis, and runs each scenario's client side in a process whose ``PYTHONPATH`` is ``ROOT``: the same
command measures the release before a change (``git worktree add /tmp/old a1802fd``) and now.
The client side imports only ``gh_assets`` APIs both sides share; this file runs it by path so
that nothing of this checkout reaches it. ``gh_assets_tests/test_budget_faults.py`` and
``test_identity_faults.py`` hold the same faults as assertions on this checkout alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

SCENARIOS = ("headers", "reset", "reserved", "flush", "blocked", "revoked")
PREFIX = "probe:"


def _client(scenario: str, url: str, redis_url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The client side, in the checkout under test: what it saw, as a dict."""
    import redis

    from gh_assets.crawl import crawl_pages
    from gh_assets.github import GitHubClient, GitHubError, RateLimitError
    from gh_assets.github.governor import BudgetWaitTooLong, Governor, GovernorLimits
    from gh_assets.partitions import PageWindow
    from gh_assets.storage import RedisStore

    connection = redis.Redis.from_url(options.get("budget_url", redis_url))
    governor = Governor(connection, GovernorLimits(**options.get("limits", {})), PREFIX)
    seen: dict[str, Any] = {}
    if scenario in ("headers", "reset"):
        seen = {"ok": 0, "limited": 0, "failed": 0}
        with GitHubClient(url, governor=governor, max_rate_limit_wait=0, max_retries=0) as client:
            for user_id in range(1, options["calls"] + 1):
                try:
                    client.get_user(user_id)
                    seen["ok"] += 1
                except RateLimitError:
                    seen["limited"] += 1
                except GitHubError:
                    seen["failed"] += 1
    elif scenario == "reserved":  # 50 leases in flight, their set lost, the next window full
        reset = int(time.time()) + 600
        governor.observe("user:1", _headers(100, reset))
        for _ in range(50):
            governor.acquire(["user:1"], "core")
        connection.delete(governor.keys("user:1")[1])
        governor.observe("user:1", _headers(100, reset + 3600))
        seen["granted_of_100"] = 0
        for _ in range(200):
            try:
                governor.acquire(["user:1"], "core", max_wait=0)
            except BudgetWaitTooLong:
                break
            seen["granted_of_100"] += 1
    else:  # page crawls: a budget flushed mid-crawl, a blocked token, a token revoked
        store = RedisStore.from_url(redis_url, PREFIX)
        pages = [PageWindow.number(k, 100) for k in range(options["pages"])]
        seen["pages_written"] = 0
        for _ in range(options.get("runs", 1)):
            try:
                with GitHubClient(
                    url,
                    options["token"],
                    governor=governor,
                    max_concurrency=options["concurrency"],
                    max_rate_limit_wait=options.get("wait", 90),
                ) as client:
                    for _report in crawl_pages(client, store, pages):
                        seen["pages_written"] += 1
                        if scenario == "revoked" and seen["pages_written"] == 1:
                            print("REVOKE", flush=True)  # the harness revokes, then answers
                            sys.stdin.readline()
            except Exception as exc:  # what ended the run is the figure
                seen.setdefault("errors", []).append(type(exc).__name__)
    return seen


def _headers(remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
        "X-RateLimit-Resource": "core",
    }


def _run_client(root: str, scenario: str, url: str, redis_url: str, revoke=None, **options):
    """Runs this file's client side with ``PYTHONPATH=root``; ``revoke`` when it asks."""
    command = [sys.executable, __file__, "--client", scenario, url, redis_url, json.dumps(options)]
    with subprocess.Popen(
        command,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        assert process.stdin and process.stdout
        last = ""
        for line in process.stdout:
            if line.startswith("REVOKE") and revoke:
                revoke()
                process.stdin.write("\n")
                process.stdin.flush()
            last = line
    return json.loads(last) if process.returncode == 0 else {"exit": process.returncode}


def measure(root: str, scenarios: list[str]) -> None:
    """Each scenario against today's servers, its client from ``root``; a line each."""
    import redis

    from gh_assets_devtools.services import redis_server
    from gh_assets_devtools.standin import Dataset, StandinServer
    from gh_assets_tests.header_proxy import header_proxy, reset_at, strip_every

    def refused(standin: StandinServer, status: str) -> int:
        return standin.stats()["requests"]["by_status"].get(status, 0)

    with TemporaryDirectory() as tmp, redis_server(Path(tmp) / "data", persist=False) as url:
        data = redis.Redis.from_url(url)
        unpaced = {"limits": {"rest_points_per_minute": 0}}
        for scenario in scenarios:
            data.flushdb()
            if scenario == "headers":  # item 1: every 2nd answer without X-RateLimit-*
                with (
                    StandinServer(Dataset(size=200, seed=3), rate_limit=10) as s,
                    header_proxy(s.url, strip_every(2)) as proxy,
                ):
                    seen = _run_client(root, scenario, proxy, url, calls=30, **unpaced)
                    print(f"1 headers stripped: {seen}; sent at remaining 0: {refused(s, '403')}")
            elif scenario == "reset":  # item 2: GitHub's reset 1 s behind Redis's clock
                with StandinServer(Dataset(size=200, seed=3), rate_limit=10) as s:
                    s.set_rate_limit(1, reset=True)
                    behind = reset_at(lambda: float(data.time()[0]) - 1)
                    with header_proxy(s.url, behind) as proxy:
                        seen = _run_client(root, scenario, proxy, url, calls=50, **unpaced)
                    print(f"2 reset behind: {seen}; sent at remaining 0: {refused(s, '403')}")
            elif scenario == "reserved":  # item 3
                limits = {"minute": 1.0, "rest_points_per_minute": 0, "max_in_flight": 500}
                print("3 leases lost:", _run_client(root, scenario, "", url, limits=limits))
            elif scenario == "flush":  # item 4: the budget's Redis flushed mid-crawl
                _flush(root, url, Path(tmp), redis_server, Dataset, StandinServer)
            elif scenario == "blocked":  # item 5: 429 Retry-After: 3600, two runs
                tokens = {"tok-carol": "carol"}
                dataset = Dataset(size=300, seed=3)
                with StandinServer(dataset, tokens=tokens, secondary_status=429) as s:
                    s.refuse_next("carol", retry_after=3600)
                    limits = {"minute": 1.0, "rest_points_per_minute": 120}
                    seen = _run_client(
                        root, scenario, s.url, url, pages=3, runs=2, token="tok-carol",
                        concurrency=8, wait=5, limits=limits,
                    )  # fmt: skip
                    (block,) = s.accounts_report()["carol"]["blocks"]
                    print(f"5 blocked: {seen}; sent into the block: {block['arrivals']}")
            elif scenario == "revoked":  # item 6: one of two tokens revoked after a page
                tokens = {"tok-erin": "erin", "tok-frank": "frank"}
                with StandinServer(Dataset(size=600, seed=5), tokens=tokens) as s:
                    limits = {"minute": 1.0, "rest_points_per_minute": 100}
                    limits |= {"horizon_minutes": 0.001}  # both tokens sent from the start
                    seen = _run_client(
                        root, scenario, s.url, url, pages=6, token=",".join(tokens),
                        concurrency=6, limits=limits,
                        revoke=lambda: s.accounts.revoke(["tok-frank"]),
                    )  # fmt: skip
                    print(f"6 revoked: {seen}; sent with the revoked token: {refused(s, '401')}")


def _flush(root: str, url: str, tmp: Path, redis_server, Dataset, StandinServer) -> None:
    """Item 4: 10 pages kept to 90 of GitHub's 100 a (shortened) minute, the budget flushed
    after 250 requests; secondary refusals counted by the stand-in."""
    import redis

    with (
        StandinServer(
            Dataset(size=2_000, seed=5),
            tokens={"tok-alice": "alice"},
            minute=1.0,
            rest_points_per_minute=100,
            secondary_in_flight=20,
        ) as s,
        redis_server(tmp / "budget", persist=False) as budget_url,
    ):

        def flush_mid_crawl() -> None:
            deadline = time.monotonic() + 60
            while s.stats()["requests"]["total"] < 250 and time.monotonic() < deadline:
                time.sleep(0.05)
            redis.Redis.from_url(budget_url).flushdb()

        flusher = threading.Thread(target=flush_mid_crawl)
        flusher.start()
        limits = {"minute": 1.0, "rest_points_per_minute": 90, "lease_seconds": 2.0}
        limits["horizon_minutes"] = 0.25
        seen = _run_client(
            root, "flush", s.url, url, budget_url=budget_url, limits=limits, pages=10,
            token="tok-alice", concurrency=20,
        )  # fmt: skip
        flusher.join()
        alice = s.accounts_report()["alice"]
        print(f"4 budget flushed: {seen}; secondary refusals: {alice['secondary_refusals']} "
              f"of {len(alice['arrivals'])} requests")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        scenario, api, redis_url, options = sys.argv[2:6]
        print(json.dumps(_client(scenario, api, redis_url, json.loads(options))), flush=True)
    else:
        measure(sys.argv[1], sys.argv[2:] or list(SCENARIOS))
