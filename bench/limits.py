"""Benchmark 6: the physical limits beside the figures.

- ``redis-benchmark`` (the system binary; skipped with a note when absent): pipelined (-P 100)
  HSET of a realistic user hash and HGETALL, against the bench's own server, from 1 and 50
  clients;
- the stand-in's own ceiling: requests/s at zero latency from many concurrent keep-alive clients
  (``bench.loadgen`` in a process of its own; client and server share the machine's 2 cores);
- latency x concurrency arithmetic, from the crawl's parameters and GitHub's documented limits.
"""

from __future__ import annotations

import csv
import io
import shutil
from urllib.parse import urlsplit

from bench.children import run_child, run_module
from bench.figures import BenchError, Row, Section
from bench.servers import Context, flush, standin_process
from bench.users import user_hash

GITHUB_REST_PER_HOUR = 5000
KEYSPACE = 100_000
REDIS_ROW = Row(
    "redis.{name}.c{clients}",
    "redis-benchmark {command} user hash, -P 100, {clients} client(s)",
    "ops/s",
    lambda values: values,
    digits=0,
)
STANDIN_ROW = Row(
    "standin.requests_per_s",
    "stand-in ceiling, 0 ms latency, {clients} keep-alive clients",
    "req/s",
    lambda values: values,
    digits=0,
)


def redis_benchmark(binary: str, url: str, clients: int, requests: int, *command: str) -> float:
    parts = urlsplit(url)
    stdout = run_child(
        [
            binary,
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port),
            "-n",
            str(requests),
            "-c",
            str(clients),
            "-P",
            "100",
            "-r",
            str(KEYSPACE),
            "--csv",
            *command,
        ],
        what="redis-benchmark",
        timeout=300,
        tail=500,
    )
    rows = list(csv.reader(io.StringIO(stdout)))
    data = [row for row in rows if row and row[0] != "test"]
    if not data:
        raise BenchError(f"redis-benchmark printed no figures: {stdout[-500:]}")
    return float(data[-1][1])


def run(ctx: Context) -> Section:
    section = Section(
        "limits",
        "Physical limits: redis-benchmark (-P 100), the stand-in's ceiling, arithmetic",
        params={
            "redis_benchmark_requests": ctx.size.redis_benchmark_requests,
            "standin_requests": ctx.size.standin_requests,
            "standin_clients": ctx.size.standin_clients,
        },
    )
    _redis_benchmarks(ctx, section)
    _standin_ceiling(ctx, section)
    crawl = ctx.sections.get("crawl")
    if crawl and not crawl.skipped:
        _arithmetic(crawl, section)
    return section


def _redis_benchmarks(ctx: Context, section: Section) -> None:
    """HSET and HGETALL of a user hash from 1 and 50 clients (a note when there is no binary)."""
    binary = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if binary is None:
        section.notes.append("redis-benchmark: skipped, no redis-benchmark binary on PATH")
        return
    section.params["redis_benchmark"] = binary
    fields = [item for pair in user_hash(123456).items() for item in pair]
    fields[1] = "__rand_int__"
    hset = ["HSET", "rb:user:__rand_int__", *fields]
    hgetall = ["HGETALL", "rb:user:__rand_int__"]
    results: dict[tuple[str, int], list[float]] = {}
    client = ctx.client()
    try:
        flush(client)
        for _ in range(ctx.runs):
            for clients in (1, 50):
                for name, command in (("hset", hset), ("hgetall", hgetall)):
                    results.setdefault((name, clients), []).append(
                        redis_benchmark(
                            binary,
                            ctx.redis_url,
                            clients,
                            ctx.size.redis_benchmark_requests,
                            *command,
                        )
                    )
    finally:
        flush(client)
        client.close()
    for (name, clients), values in results.items():
        section.add_rows([REDIS_ROW], values, name=name, command=name.upper(), clients=clients)


def _standin_ceiling(ctx: Context, section: Section) -> None:
    """Requests/s the stand-in serves at zero latency (``bench.loadgen``, a process of its own)."""
    size = ctx.size
    with standin_process(ctx.tmp / "standin-limits", size=1000, latency_ms=0) as url:
        rates = []
        for _ in range(ctx.runs):
            result = run_module(
                "bench.loadgen",
                url,
                "--requests",
                str(size.standin_requests),
                "--clients",
                str(size.standin_clients),
                what="loadgen",
                timeout=400,
                tail=1000,
            )
            ok = result["by_status"].get("200", 0) + result["by_status"].get("404", 0)
            if ok != size.standin_requests:
                raise BenchError(f"stand-in ceiling: answers {result['by_status']}")
            rates.append(result["requests_per_s"])
        section.add_rows([STANDIN_ROW], rates, clients=size.standin_clients)


def _arithmetic(crawl: Section, section: Section) -> None:
    """Notes: what latency x concurrency and GitHub's rate limit allow, from the crawl's figures."""
    latency = crawl.params["latency_ms"] / 1000
    concurrency = crawl.params["project_max_concurrency"]
    per_user = crawl.figure("rest.requests_per_user")
    standin = section.figure("standin.requests_per_s")
    section.notes.append(
        f"Latency x concurrency: {concurrency} requests in flight at {latency * 1000:g} ms "
        f"each = {concurrency / latency:g} requests/s at most (the crawl's ceiling); the "
        f"stand-in at zero latency serves {standin.median:,.0f}/s, so at "
        f"{latency * 1000:g} ms the latency, not the stand-in, bounds the crawl."
    )
    if per_user:
        users_per_hour = GITHUB_REST_PER_HOUR / per_user.median
        section.notes.append(
            f"GitHub's primary limit ({GITHUB_REST_PER_HOUR:,} requests/hour per account) at "
            f"{per_user.median:.3f} requests/user: {users_per_hour:,.0f} new users/hour per "
            f"token in REST mode, {GITHUB_REST_PER_HOUR / 3600:.2f} requests/s - far below "
            f"the ceiling, so on GitHub the rate limit bounds a first crawl; re-crawls of "
            f"unchanged users answer 304 and cost none of it."
        )
