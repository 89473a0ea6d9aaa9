"""Benchmark 7: what one identity's budgets buy under GitHub's real limits, on a faster clock.

Against github.com the crawl is bounded by GitHub's limits per account, not by latency, so the
figures that decide how long "all of GitHub" takes are users per hour per identity
(docs/crawling-all-of-github.md). The stand-in enforces GitHub's limits per account (100 requests in
flight, 900 REST and 2,000 GraphQL points per rolling minute, 5,000 REST requests and 5,000
GraphQL points per hour), with time shortened ``k`` times (a minute of 60/k s, an hour of
3600/k s; k is chosen so the machine is not what binds), and the crawl keeps to the project's
default governor (870 and 1,900 points a minute, 50 in flight) on the same clock. Per scenario,
one identity:

1. a first REST crawl until the governor refuses to wait for the primary reset: the users one
   hour's budget writes (the rest of that hour is idle);
2. an unchanged re-crawl of those users (304s, free on the primary budget), after a new hour
   starts: the sustained rate, from the governor's grant slots over the busy period's whole
   minutes, against the configured 870 per minute, and the users per hour it gives;
3. GraphQL detail mode on wide pages until a primary budget is spent, and which one (GraphQL
   points, or REST requests for lists and organizations);
4. the refusals the stand-in counted over all of them, by limit (target: none);
5. the latency of the governor's acquire (one Lua script call in Redis).

Each scenario spends an hour's budget, so it runs once whatever ``--runs`` says.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import redis

from bench.economy_crawls import (
    GITHUB_GRAPHQL_PER_MINUTE,
    GITHUB_IN_FLIGHT,
    GITHUB_REST_PER_MINUTE,
    LOGINS,
    TOKENS,
    Clock,
    budgets,
    crawl,
)
from bench.economy_figures import Measured, quantile
from bench.figures import BenchError, Row, Section
from bench.servers import Context, standin_process
from gh_assets.github.credentials import digest
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import StandinAdmin

PREFIX = "bench-economy:"  # every key this benchmark writes in the bench's Redis
REST_PAGE_IDS = 100  # the project's default page (GH_ASSETS_PAGE_SIZE)
ALONE_CALLS = 2_000  # acquires timed from one thread once the crawls are over


ROWS = (
    Row(
        "rest.users_per_hour",
        "first REST crawl: users/h per identity (bound: {rest_bound})",
        "users/h",
        lambda m: m.per_hour(m.first),
        digits=0,
    ),
    Row(
        "rest.requests_per_user",
        "first REST crawl: primary requests spent per user written",
        "req/user",
        lambda m: m.first_budgets["core"]["used"] / max(m.first.users, 1),
        digits=3,
    ),
    Row(
        "recrawl.requests_per_minute",
        "unchanged re-crawl: sustained requests/min ({minutes} min; bound: {recrawl_bound})",
        "req/min",
        lambda m: m.rate[0],
        digits=0,
    ),
    Row(
        "recrawl.rate_share",
        "unchanged re-crawl: sustained rate / configured {rate}/min",
        "%",
        lambda m: m.rate_share,
    ),
    Row(
        "recrawl.users_per_hour",
        "unchanged re-crawl: users/h per identity (bound: {recrawl_bound})",
        "users/h",
        lambda m: m.recrawl_per_hour,
        digits=0,
    ),
    Row(
        "graphql.users_per_hour",
        "GraphQL mode: users/h per identity ({page:,}-ID pages; bound: {graphql_bound})",
        "users/h",
        lambda m: m.per_hour(m.graphql),
        digits=0,
    ),
    Row(
        "graphql.rest_per_100",
        "GraphQL mode: REST requests per 100 users written (lists, organizations)",
        "req",
        lambda m: 100 * m.graphql_budgets["core"]["used"] / max(m.graphql.users, 1),
        digits=2,
    ),
    Row(
        "graphql.points_per_100",
        "GraphQL mode: GraphQL points per 100 users written",
        "points",
        lambda m: 100 * m.graphql_budgets["graphql"]["used"] / max(m.graphql.users, 1),
        digits=2,
    ),
    Row(
        "secondary_refusals",
        "secondary-limit refusals at the stand-in, all scenarios",
        "refusals",
        lambda m: m.total("secondary_refusals"),
        digits=0,
    ),
    Row(
        "primary_refusals",
        "primary-limit refusals at the stand-in, all scenarios",
        "refusals",
        lambda m: m.total("primary_refusals"),
        digits=0,
    ),
    Row(
        "busiest_rest_minute",
        f"busiest rolling minute of one account, REST (GitHub: {GITHUB_REST_PER_MINUTE})",
        "req",
        lambda m: m.busiest("rest"),
        digits=0,
    ),
    Row(
        "busiest_graphql_minute",
        f"busiest rolling minute of one account, GraphQL (GitHub: {GITHUB_GRAPHQL_PER_MINUTE:,})",
        "req",
        lambda m: m.busiest("graphql"),
        digits=0,
    ),
    Row(
        "peak_in_flight",
        f"most requests in flight for one account (GitHub: {GITHUB_IN_FLIGHT})",
        "req",
        lambda m: max(int(a["peak_in_flight"]) for a in m.accounts.values()),
        digits=0,
    ),
    Row(
        "acquire.p50_ms",
        "governor acquire p50 ({acquires:,} script calls)",
        "ms",
        lambda m: m.acquire_ms(0.50),
        digits=2,
    ),
    Row(
        "acquire.p99_ms",
        "governor acquire p99 ({acquires:,} script calls)",
        "ms",
        lambda m: m.acquire_ms(0.99),
        digits=2,
    ),
    Row(
        "acquire.alone_p99_ms",
        f"governor acquire p99, one thread, no crawl running ({ALONE_CALLS:,} calls)",
        "ms",
        lambda m: 1000 * quantile(m.alone, 0.99),
        digits=2,
    ),
)


def run(ctx: Context) -> Section:
    size = ctx.size
    clock = Clock(size.economy_k)
    limits = GovernorLimits(minute=clock.minute)  # the project's defaults on the same clock
    rest_pages = math.ceil(2 * size.economy_rest_budget / REST_PAGE_IDS)  # ~1.5 IDs a user
    page = size.economy_graphql_page
    graphql_pages = size.economy_graphql_ids // page
    section = Section(
        "economy",
        f"Economy: one identity under GitHub's limits, time {clock.k:g}x faster (minute "
        f"{clock.minute:g} s, hour {clock.hour:g} s), stand-in latency "
        f"{size.economy_latency_ms:g} ms",
        params={
            "k": clock.k,
            "minute_seconds": clock.minute,
            "hour_seconds": clock.hour,
            "latency_ms": size.economy_latency_ms,
            "standin": {
                "secondary_in_flight": GITHUB_IN_FLIGHT,
                "rest_points_per_minute": GITHUB_REST_PER_MINUTE,
                "graphql_points_per_minute": GITHUB_GRAPHQL_PER_MINUTE,
                "rest_per_hour": size.economy_rest_budget,
                "graphql_points_per_hour": size.economy_graphql_budget,
            },
            "governor": {
                "rest_points_per_minute": limits.rest_points_per_minute,
                "graphql_points_per_minute": limits.graphql_points_per_minute,
                "max_in_flight": limits.max_in_flight,
                "minute": limits.minute,
            },
            "rest_pages": f"{rest_pages} of {REST_PAGE_IDS} IDs",
            "graphql_pages": f"{graphql_pages} of {page} IDs",
            "runs": 1,
        },
    )
    standin_args = [
        "--tokens", ",".join(f"{TOKENS[n]}={LOGINS[n]}" for n in TOKENS),
        "--minute", str(clock.minute),
        "--rate-window", str(clock.hour),
        "--secondary-in-flight", str(GITHUB_IN_FLIGHT),
        "--rest-points-per-minute", str(GITHUB_REST_PER_MINUTE),
        "--graphql-points-per-minute", str(GITHUB_GRAPHQL_PER_MINUTE),
    ]  # fmt: skip
    connection = ctx.client()
    try:
        with (
            standin_process(
                ctx.tmp / "standin-economy",
                size=max(size.economy_graphql_ids, rest_pages * REST_PAGE_IDS),
                latency_ms=size.economy_latency_ms,
                rate_limit=size.economy_rest_budget,
                extra_args=standin_args,
            ) as url,
            StandinAdmin(url) as admin,
        ):
            admin.set_rate_limit(graphql_limit=size.economy_graphql_budget, reset=True)
            measured = _scenarios(url, admin, connection, clock, limits, size, rest_pages)
    finally:
        _forget(connection)
        connection.close()
    section.add_rows(ROWS, measured, **measured.params())
    section.notes += measured.notes()
    section.details |= measured.details()
    return section


def _scenarios(
    url: str,
    admin: StandinAdmin,
    connection: redis.Redis,
    clock: Clock,
    limits: GovernorLimits,
    size: Any,
    rest_pages: int,
) -> Measured:
    """The three crawls, each with a Governor of its own (its own record) on shared budgets."""
    token = TOKENS["rest"]
    rest_store = RedisStore(connection, PREFIX + "rest:")

    def governor() -> Governor:
        return Governor(connection, limits, PREFIX)

    windows = [PageWindow.number(k, REST_PAGE_IDS) for k in range(rest_pages)]
    first = crawl(url, token, governor(), rest_store, windows, clock)
    if first.stopped is None:
        raise BenchError(f"the first REST crawl wrote all {rest_pages} pages: no budget bound")
    first_budgets, _ = budgets(url, token)

    # A new hour at once: the stand-in's windows start afresh, and the governor, which still
    # holds the spent budget until the old reset, learns it from an answer (as from any).
    admin.set_rate_limit(reset=True)
    gate = governor()
    identity = gate.identity_of(digest(token))
    if identity is None:
        raise BenchError("the governor does not know the REST token's identity")
    gate.observe(identity, budgets(url, token)[1])
    recrawl = crawl(url, token, gate, rest_store, first.windows, clock)
    if recrawl.stopped is not None:
        raise BenchError(f"the unchanged re-crawl was stopped: {recrawl.stopped}")
    changed = sum(r.written - r.not_modified for r in recrawl.reports)
    written = sum(r.written for r in first.reports)
    if changed or recrawl.users != written:
        raise BenchError(
            f"the unchanged re-crawl wrote {recrawl.users} users ({changed} not 304) of {written}"
        )

    page = size.economy_graphql_page
    windows = [PageWindow.number(k, page) for k in range(size.economy_graphql_ids // page)]
    graphql_store = RedisStore(connection, PREFIX + "graphql:")
    graphql = crawl(
        url, TOKENS["graphql"], governor(), graphql_store, windows, clock, detail_mode="graphql"
    )
    if graphql.stopped is None:
        raise BenchError(f"the GraphQL crawl wrote all {len(windows)} pages: no budget bound")
    graphql_budgets, _ = budgets(url, TOKENS["graphql"])
    return Measured(
        clock=clock,
        limits=limits,
        graphql_page=page,
        first=first,
        first_budgets=first_budgets,
        recrawl=recrawl,
        graphql=graphql,
        graphql_budgets=graphql_budgets,
        accounts=admin.accounts_report(),
        alone=acquire_alone(connection, limits),
    )


def acquire_alone(connection: redis.Redis, limits: GovernorLimits) -> list[float]:
    """Acquire and release on an identity of its own, one thread, nothing else running, no
    pacing: the script's own round trip, without a busy client's threads around it."""
    gate = Governor(connection, replace(limits, rest_points_per_minute=0), PREFIX)
    for _ in range(ALONE_CALLS):
        grant = gate.acquire(["bench:alone"], "core")
        gate.release(grant, None, charged=False)
    return list(gate.acquire_seconds)


def _forget(connection: redis.Redis) -> None:
    """Delete every key under PREFIX."""
    batch: list[bytes] = []
    for key in connection.scan_iter(match=PREFIX + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            connection.unlink(*batch)
            batch.clear()
    if batch:
        connection.unlink(*batch)
