"""Benchmark 2: Redis writes, the project's ``write_page`` vs one ``HSET`` round trip per user.

Both sides write the same realistic hashes (every field the crawl stores) to the bench's own
server through the project's client settings. ``write_page`` also keeps the login index, the id
index and the page's bookkeeping, in one Lua script per page of 100 users, as a crawl does.
Where the time goes comes from the server's ``INFO commandstats`` (the script, and the commands
it calls) and from timing the client's payload preparation on its own.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from bench import original
from bench.figures import BenchError, Row, Section, paired_ratios
from bench.profiling import profile_call
from bench.servers import Context, flush
from bench.targets import missed
from bench.users import page_writes, user_hash, write_pages
from gh_assets.storage import PageWrite, RedisStore

PAGE_USERS = 100
SCRIPT_COMMANDS = ("cmdstat_evalsha", "cmdstat_eval")


def _preparation_seconds(client: redis.Redis, pages: list[PageWrite]) -> float:
    """The client's share of write_page (checks, field order, keys, JSON): every page prepared
    (``RedisStore.prepare_page``), none sent."""
    store = RedisStore(client)
    started = time.perf_counter()
    for page in pages:
        store.prepare_page(page)
    return time.perf_counter() - started


def _server_usec(stats: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(microseconds inside the script, microseconds per command called from it)."""
    script = sum(stats.get(name, {}).get("usec", 0) for name in SCRIPT_COMMANDS)
    inner = {
        name.removeprefix("cmdstat_"): float(value.get("usec", 0))
        for name, value in stats.items()
        if name not in SCRIPT_COMMANDS
        and name.removeprefix("cmdstat_")
        in ("hset", "hget", "del", "zadd", "zrem", "sadd", "smembers", "hdel")
    }
    return float(script), inner


def run(ctx: Context) -> Section:
    size = ctx.size
    section = Section(
        "writes",
        "Redis writes: write_page (pages of 100) vs one HSET round trip per user",
        params={
            "project_users": size.write_users,
            "page_users": PAGE_USERS,
            "original_users": size.write_original_users,
            "fields": list(user_hash(1)),
        },
    )
    pages = list(page_writes(1, size.write_users, PAGE_USERS))
    singles = [user_hash(user_id) for user_id in range(1, size.write_original_users + 1)]
    store = RedisStore.from_url(ctx.redis_url)
    client = store.client
    project, hset, breakdowns = [], [], []
    users = size.write_users
    try:
        for _ in range(ctx.runs):
            flush(client)
            client.config_resetstat()
            seconds = write_pages(store, pages)
            if store.user_count() != users:
                raise BenchError(f"write_page stored {store.user_count()} of {users}")
            project.append(users / seconds)
            script, inner = _server_usec(client.info("commandstats"))
            prepared = _preparation_seconds(client, pages)
            breakdowns.append(
                {
                    "wall_us_per_user": 1e6 * seconds / users,
                    "script_us_per_user": script / users,
                    "script_commands_us_per_user": {k: v / users for k, v in inner.items()},
                    "lua_and_cjson_us_per_user": (script - sum(inner.values())) / users,
                    "client_preparation_us_per_user": 1e6 * prepared / users,
                }
            )

            flush(client)
            started = time.perf_counter()
            original.hset_per_user(client, singles)
            seconds = time.perf_counter() - started
            if client.dbsize() != len(singles):
                raise BenchError(f"HSET per user stored {client.dbsize()} of {len(singles)}")
            hset.append(len(singles) / seconds)

        section.add_rows(ROWS, {"project": project, "hset": hset, "breakdowns": breakdowns})
        section.details["breakdown_per_run"] = breakdowns
        if missed(section, "project.users_per_s", size.name):
            middle = breakdowns[project.index(statistics.median_low(project))]
            inner = ", ".join(
                f"{name} {us:.1f}"
                for name, us in sorted(
                    middle["script_commands_us_per_user"].items(), key=lambda kv: -kv[1]
                )
            )
            section.notes.append(
                f"write_page misses its target: per user {middle['wall_us_per_user']:.1f} us of "
                f"wall = {middle['script_us_per_user']:.1f} us in the Lua script on the server "
                f"(commands it calls: {inner} us; Lua and cjson "
                f"{middle['lua_and_cjson_us_per_user']:.1f} us) + "
                f"{middle['client_preparation_us_per_user']:.1f} us of client "
                f"preparation (gh_assets/storage RedisStore.write_page: its checks, field order "
                f"and JSON) + the transfer. cProfile of one run in the JSON "
                f"(writes.details.profile_write_page)."
            )
            flush(client)
            section.details["profile_write_page"] = profile_call(
                lambda: [store.write_page(page) for page in pages]
            )
    finally:
        flush(client)
        client.close()
    return section


def _per_run(name: str) -> Callable[[dict[str, list]], list[float]]:
    """A figure of each run's breakdown."""
    return lambda m: [b[name] for b in m["breakdowns"]]


ROWS = (
    Row(
        "project.users_per_s",
        "write_page, pages of 100: users/s",
        "users/s",
        lambda m: m["project"],
        digits=0,
    ),
    Row(
        "project.script_us",
        "write_page: server time in the Lua script per user",
        "us/user",
        _per_run("script_us_per_user"),
    ),
    Row(
        "project.client_us",
        "write_page: client preparation per user (checks, order, JSON)",
        "us/user",
        _per_run("client_preparation_us_per_user"),
    ),
    Row(
        "original.users_per_s",
        "one HSET round trip per user: users/s",
        "users/s",
        lambda m: m["hset"],
        digits=0,
    ),
    Row(
        "speedup",
        "write_page / HSET per user (paired runs)",
        "x",
        lambda m: paired_ratios(m["project"], m["hset"]),
    ),
)
