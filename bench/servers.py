"""The bench's own servers: a Redis server and GitHub stand-ins, on free loopback ports.

Nothing here touches a server on a standard port: every server is started by the bench, on a
port the OS picked, and stopped by the context manager that started it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from gh_assets_devtools import services

STANDIN_SEED = 11
NO_RATE_LIMIT = 1_000_000_000  # the stand-in's budget per window: never the bottleneck here


@dataclass
class Context:
    """What every benchmark gets: the size, the runs, a scratch folder and the Redis server."""

    size: Any  # bench.sizes.Size
    runs: int
    tmp: Path
    redis_url: str  # database 0 of the bench's own server
    only: frozenset[str]
    sections: dict[str, Any] = field(default_factory=dict)  # finished benchmarks, by name

    def redis_db(self, db: int) -> str:
        return self.redis_url.rsplit("/", 1)[0] + f"/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.redis_db(db), socket_timeout=300)

    def flush_all(self) -> None:
        client = self.client()
        try:
            flush(client)
        finally:
            client.close()


def flush(client: redis.Redis, *, everything: bool = True) -> None:
    """``FLUSHALL SYNC`` (or ``FLUSHDB SYNC``): freed before it returns, so memory figures
    taken next are not skewed by a lazy free still running (Valkey frees lazily by default)."""
    client.execute_command("FLUSHALL" if everything else "FLUSHDB", "SYNC")


@contextlib.contextmanager
def standin_process(
    log_dir: Path,
    *,
    size: int,
    latency_ms: float = 0.0,
    seed: int = STANDIN_SEED,
    rate_limit: int = NO_RATE_LIMIT,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """The stand-in as a process of its own (its CPU does not compete with the client's GIL);
    ``extra_args``: more of its command-line options (e.g. the secondary limits)."""
    extra = ["--latency-ms", str(latency_ms), "--rate-limit", str(rate_limit), *extra_args]
    with services.standin_server(log_dir, size=size, seed=seed, extra_args=extra) as url:
        yield url


def server_info(url: str) -> dict[str, str]:
    """The Redis server's name and version, from ``INFO server``."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    found = {"redis_version": str(info.get("redis_version", "?"))}
    if "valkey_version" in info:
        found["valkey_version"] = str(info["valkey_version"])
    found["server"] = str(
        info.get("server_name", "valkey" if "valkey_version" in info else "redis")
    )
    return found
