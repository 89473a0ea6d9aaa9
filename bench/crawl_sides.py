"""The crawl benchmark's runs of each side (``bench.crawl`` runs them in turn): the project's
crawl (``crawl_pages`` over one ``GitHubClient``, its phases timed) and the original design's (RQ,
one job per user), each checked afterwards: the side stored exactly the stand-in's users.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from bench import original
from bench.figures import BenchError
from bench.original_jobs import FIELDS  # the original design's fields, not the registry's
from bench.servers import Context, flush
from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import StandinAdmin

PROJECT_DB, QUEUE_DB, ORIGINAL_DB = 0, 1, 2
Truth = dict[int, dict[str, str]]


@dataclass
class CrawlRun:
    seconds: float
    users: int
    requests: dict[str, Any]  # the stand-in's counters for this run
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(self.requests["total"])

    @property
    def users_per_s(self) -> float:
        return self.users / self.seconds

    @property
    def per_user(self) -> float:
        """API requests per user."""
        return self.total / self.users

    def status(self, code: int) -> int:
        return int(self.requests["by_status"].get(str(code), 0))

    def route(self, name: str) -> int:
        return int(self.requests["by_route"].get(name, 0))


def _timed(method: Callable[..., Any], phases: dict[str, float], lock: threading.Lock) -> Any:
    """``method`` adding its wall time to ``phases[its name]`` (summed over the pages that
    overlap, so the phases can add up to more than the run)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            with lock:
                phases[method.__name__] += time.perf_counter() - started

    return wrapper


def project_crawl(
    api_url: str,
    redis_client: redis.Redis,
    windows: list[PageWindow],
    admin: StandinAdmin,
    truth: Truth,
    *,
    fresh: bool,
    **client_options: Any,
) -> CrawlRun:
    """The pages crawled as one multi-page run does (``crawl_pages``: up to PAGES_IN_FLIGHT
    overlapping); checked afterwards."""
    if fresh:
        flush(redis_client, everything=False)
    store = RedisStore(redis_client)
    admin.reset_stats()
    phases: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    with GitHubClient(api_url, **client_options) as client:
        # An instance attribute shadows the method: only this run's client and store are timed.
        client.list_users = _timed(client.list_users, phases, lock)
        client.get_details = _timed(client.get_details, phases, lock)
        store.read_users = _timed(store.read_users, phases, lock)
        store.write_page = _timed(store.write_page, phases, lock)
        started = time.perf_counter()
        for _ in crawl_pages(client, store, windows):
            pass
        seconds = time.perf_counter() - started
    run = CrawlRun(seconds, len(truth), admin.stats()["requests"], dict(phases))
    check_project(store, truth, f"project ({client_options or 'defaults'})")
    return run


def check_project(store: RedisStore, truth: Truth, side: str) -> None:
    """The store holds exactly the stand-in's users, field for field; raises otherwise."""
    stored = store.read_users(truth)
    _compare(side, stored, truth, extra=store.user_count() - len(stored))


def _compare(side: str, stored: dict[int, dict[str, str]], truth: Truth, extra: int) -> None:
    missing = [uid for uid in truth if uid not in stored]
    wrong = [
        uid
        for uid, want in truth.items()
        if uid in stored and any(stored[uid].get(k) != v for k, v in want.items())
    ]
    if missing or wrong or extra:
        raise BenchError(
            f"{side} did not store the stand-in's users: {len(missing)} missing "
            f"(e.g. {missing[:5]}), {len(wrong)} wrong (e.g. {wrong[:5]}), {extra} extra"
        )


def original_crawl(
    ctx: Context, api_url: str, max_id: int, admin: StandinAdmin, truth: Truth
) -> CrawlRun:
    data = ctx.client(ORIGINAL_DB)
    try:
        flush(data, everything=False)
    finally:
        data.close()
    admin.reset_stats()
    result = original.run_crawl(
        api_url,
        ctx.redis_db(QUEUE_DB),
        ctx.redis_db(ORIGINAL_DB),
        max_id,
        expected=len(truth),
        timeout=900,
    )
    run = CrawlRun(result.seconds, len(truth), admin.stats()["requests"])
    stored = original.stored_users(ctx.redis_db(ORIGINAL_DB))
    kept = {uid: {k: v for k, v in want.items() if k in FIELDS} for uid, want in truth.items()}
    _compare("the original design", stored, kept, extra=len(set(stored) - set(truth)))
    return run
