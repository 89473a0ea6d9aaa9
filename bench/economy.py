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
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis
import requests

from bench.figures import BenchError, Row, Section
from bench.servers import Context, standin_process
from gh_assets.crawl import PageReport, crawl_pages
from gh_assets.github import GitHubClient, RateLimitError
from gh_assets.github.credentials import digest
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import StandinAdmin

PREFIX = "bench-economy:"  # every key this benchmark writes in the bench's Redis
# GitHub's limits per account, as the stand-in enforces them (on the shortened clock).
GITHUB_IN_FLIGHT = 100
GITHUB_REST_PER_MINUTE = 900
GITHUB_GRAPHQL_PER_MINUTE = 2_000
REST_PAGE_IDS = 100  # the project's default page (GH_ASSETS_PAGE_SIZE)
CLIENT_MAX_WAIT = 90.0  # GitHubClient's default max_rate_limit_wait, in GitHub's seconds
USER_AGENT = "gh-assets-bench"
TOKENS = {"rest": "tok-economy-rest", "graphql": "tok-economy-graphql"}
LOGINS = {"rest": "economy-rest", "graphql": "economy-graphql"}
ALONE_CALLS = 2_000  # acquires timed from one thread once the crawls are over


@dataclass(frozen=True)
class Clock:
    """GitHub's time, shortened ``k`` times."""

    k: float

    @property
    def minute(self) -> float:
        return 60.0 / self.k

    @property
    def hour(self) -> float:
        return 3600.0 / self.k


@dataclass
class Crawl:
    """One crawl: the pages it wrote, the rate limit that stopped it, the governor's record."""

    reports: list[PageReport]
    seconds: float
    stopped: RateLimitError | None
    slots: list[float]  # Redis time of each grant, sorted
    acquire_seconds: list[float]
    staged: int  # users of the pages the stop left unfinished, paid for and kept for the re-run

    @property
    def users(self) -> int:
        """Users paid for: written, or staged for their page's re-run (which asks no more)."""
        return sum(report.written for report in self.reports) + self.staged

    @property
    def windows(self) -> list[PageWindow]:
        return [PageWindow.from_key(report.page) for report in self.reports]


def crawl(
    url: str,
    token: str,
    governor: Governor,
    store: RedisStore,
    windows: Sequence[PageWindow],
    clock: Clock,
    **client_options: Any,
) -> Crawl:
    """``crawl_pages`` over ``windows`` until they are done or a rate limit stops it."""
    reports: list[PageReport] = []
    stopped: RateLimitError | None = None
    wait = CLIENT_MAX_WAIT / clock.k
    started = time.perf_counter()
    with GitHubClient(
        url, token, governor=governor, max_rate_limit_wait=wait, **client_options
    ) as client:
        try:
            reports.extend(crawl_pages(client, store, windows))
        except RateLimitError as error:
            stopped = error
    seconds = time.perf_counter() - started
    done = {report.page for report in reports}
    staged = sum(
        sum(answer is not None for answer in store.staged_answers(window.key).values())
        for window in windows
        if window.key not in done
    )
    return Crawl(
        reports, seconds, stopped, sorted(governor.slots), list(governor.acquire_seconds), staged
    )


def budgets(url: str, token: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The stand-in's primary budgets of ``token``'s account (``GET /rate_limit``): its body's
    resources and its headers."""
    answer = requests.get(
        f"{url}/rate_limit",
        headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["resources"], dict(answer.headers)


def most_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` in any half-open window [t, t + window)."""
    ordered = sorted(times)
    most = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def quantile(values: Sequence[float], share: float) -> float:
    """The nearest-rank ``share`` quantile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(math.ceil(share * len(ordered)) - 1, 0))]


def sustained(slots: Sequence[float], minute: float) -> tuple[float, int]:
    """Grants per minute over the whole minutes of the busy period from the first grant, and
    how many whole minutes that is."""
    minutes = int((slots[-1] - slots[0]) // minute) if slots else 0
    if minutes < 1:
        raise BenchError(f"the re-crawl lasted less than a minute ({minute:g} s): no rate")
    end = slots[0] + minutes * minute
    return sum(1 for slot in slots if slot < end) / minutes, minutes


@dataclass
class Measured:
    """The three crawls, the stand-in's record and budgets, and the figures' arithmetic."""

    clock: Clock
    limits: GovernorLimits
    graphql_page: int
    first: Crawl
    first_budgets: dict[str, Any]  # the REST identity's budgets when the first crawl stopped
    recrawl: Crawl
    graphql: Crawl
    graphql_budgets: dict[str, Any]  # the GraphQL identity's budgets when its crawl stopped
    accounts: dict[str, Any]  # the stand-in's accounts_report at the end
    alone: list[float]  # acquire script calls from one thread, no crawl running

    @property
    def rate(self) -> tuple[float, int]:
        return sustained(self.recrawl.slots, self.clock.minute)

    @property
    def rate_share(self) -> float:
        return 100 * self.rate[0] / self.limits.rest_points_per_minute

    def per_hour(self, run: Crawl) -> float:
        """Users one hour's budget wrote (the crawl stopped at the budget: the rest is idle)."""
        if run.stopped is None or run.stopped.secondary:
            raise BenchError(f"the crawl did not stop at a primary budget: {run.stopped}")
        if run.seconds > self.clock.hour:
            raise BenchError(
                f"a crawl took {run.seconds:.0f} s, more than an hour ({self.clock.hour:g} s): "
                "its budget was renewed on the way; the machine binds, use a smaller k"
            )
        return float(run.users)

    @property
    def recrawl_per_hour(self) -> float:
        """Users per hour at the sustained rate (the re-crawl's users per request)."""
        return self.rate[0] * 60 * self.recrawl.users / len(self.recrawl.slots)

    def total(self, field: str) -> int:
        return sum(int(account[field]) for account in self.accounts.values())

    def busiest(self, kind: str) -> int:
        """The most requests of ``kind`` one account sent in any rolling minute."""
        return max(
            most_in_window([at for at, k, _ in a["arrivals"] if k == kind], self.clock.minute)
            for a in self.accounts.values()
        )

    def acquire_ms(self, share: float, *runs: Crawl) -> float:
        """The ``share`` quantile of the acquire script calls' durations (of ``runs``, or all)."""
        every = [s for run in runs or self.runs for s in run.acquire_seconds]
        return 1000 * quantile(every, share)

    @property
    def runs(self) -> tuple[Crawl, Crawl, Crawl]:
        return self.first, self.recrawl, self.graphql

    @property
    def acquires(self) -> int:
        return sum(len(r.acquire_seconds) for r in self.runs)

    def bound(self, run: Crawl) -> str:
        """The budget that stopped ``run``: its RateLimitError names the limit, the method the
        resource (a GraphQL query is a POST)."""
        error = run.stopped
        if error is None:
            return "none"
        kind = "secondary" if error.secondary else "primary"
        if error.method == "POST":
            return f"{kind}, GraphQL points"
        return f"{kind}, REST" + (": lists, orgs" if run is self.graphql else "")

    @property
    def recrawl_bound(self) -> str:
        if self.rate_share >= 90:
            return f"secondary, {self.limits.rest_points_per_minute}/min"
        return "not a budget: client or machine"

    def params(self) -> dict[str, Any]:
        return {
            "page": self.graphql_page,
            "rest_bound": self.bound(self.first),
            "recrawl_bound": self.recrawl_bound,
            "graphql_bound": self.bound(self.graphql),
            "rate": self.limits.rest_points_per_minute,
            "minutes": self.rate[1],
            "acquires": self.acquires,
        }

    def details(self) -> dict[str, Any]:
        """Each crawl's outcome, for the JSON."""
        names = ("first_rest", "recrawl", "graphql")
        return {
            name: {
                "users": run.users,
                "pages": len(run.reports),
                "seconds": round(run.seconds, 2),
                "grants": len(run.slots),
                "stopped_by": str(run.stopped) if run.stopped else None,
                "acquire_ms": {
                    "p50": round(self.acquire_ms(0.5, run), 3),
                    "p99": round(self.acquire_ms(0.99, run), 3),
                    "max": round(1000 * max(run.acquire_seconds), 3),
                },
            }
            for name, run in zip(names, self.runs, strict=True)
        } | {"budgets_at_stop": {"first_rest": self.first_budgets, "graphql": self.graphql_budgets}}

    def notes(self) -> list[str]:
        first, graphql = self.first_budgets, self.graphql_budgets
        rest_login, graphql_login = self.accounts[LOGINS["rest"]], self.accounts[LOGINS["graphql"]]
        return [
            f"First REST crawl: {self.first.users:,} users in {len(self.first.reports)} pages "
            f"in {self.first.seconds:.1f} s, stopped by {self.first.stopped}; the stand-in "
            f"had charged {first['core']['used']:,} of {first['core']['limit']:,} REST "
            f"requests. A new hour then starts at once (the stand-in's windows reset, the "
            f"governor learns it from a GET /rate_limit answer): the idle rest is skipped.",
            f"Unchanged re-crawl: {self.recrawl.users:,} users, {len(self.recrawl.slots):,} "
            f"grants in {self.recrawl.seconds:.1f} s; rate over {self.rate[1]} whole minute(s) "
            f"of {self.clock.minute:g} s from the first grant. The stand-in answered the REST "
            f"identity {rest_login['requests']['rest']:,} requests in all.",
            f"GraphQL mode: {self.graphql.users:,} users in {len(self.graphql.reports)} pages "
            f"in {self.graphql.seconds:.1f} s, stopped by {self.graphql.stopped}; budgets "
            f"spent: REST {graphql['core']['used']:,}/{graphql['core']['limit']:,}, GraphQL "
            f"points {graphql['graphql']['used']:,}/{graphql['graphql']['limit']:,}; the "
            f"stand-in answered {graphql_login['requests']['rest']:,} REST requests and "
            f"{graphql_login['requests']['graphql']:,} GraphQL queries. The pages in flight "
            f"when a budget runs out are not written; the answers they got are staged for their "
            f"re-run and counted here ({self.first.staged} REST, {self.graphql.staged} GraphQL).",
            f"Rolling minutes: the governor granted at most "
            f"{most_in_window(self.first.slots + self.recrawl.slots, self.clock.minute)} REST "
            f"requests in any minute by Redis's clock (its promise: "
            f"{self.limits.rest_points_per_minute}); the stand-in counted up to "
            f"{self.busiest('rest')} arrivals, the requests sent after their slot (thread "
            f"wake-up, GIL) bunching up, plus the lookups outside the governor (GET /user, "
            f"/rate_limit). The margin of "
            f"{GITHUB_REST_PER_MINUTE - self.limits.rest_points_per_minute} points absorbs it; "
            f"on a minute {self.clock.k:g}x shorter the same jitter takes {self.clock.k:g}x "
            f"more of it than on GitHub.",
            "Governor acquire p99 by crawl: "
            + ", ".join(
                f"{name} {self.acquire_ms(0.99, run):.2f} ms"
                for name, run in zip(("first REST", "re-crawl", "GraphQL"), self.runs, strict=True)
            )
            + f"; the same call from one thread with nothing else running: "
            f"{1000 * quantile(self.alone, 0.99):.2f} ms. The rest is waiting inside a busy "
            f"client (its request threads share one GIL, and 2 cores with the stand-in and "
            f"Redis) and in Redis behind other scripts (a page write of {self.graphql_page:,} "
            f"IDs is one script call).",
        ]


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
