"""The economy benchmark's figures: the arithmetic over its three crawls, the stand-in's record
and budgets (``Measured``, which ``bench.economy``'s rows read), and the notes and details.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.economy_crawls import GITHUB_REST_PER_MINUTE, LOGINS, Clock, Crawl
from bench.figures import BenchError
from gh_assets.github.governor import GovernorLimits


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
