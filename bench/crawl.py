"""Benchmark 1: crawling against the stand-in with GitHub-like latency, project vs original.

The stand-in runs as a process of its own. Each run crawls the same pages with the project's
defaults (``crawl_pages`` over one ``GitHubClient``, as one multi-page run does: pages overlap
within the client's bound on requests in flight), in REST and in GraphQL detail mode, then
re-crawls them unchanged (ETags: 304s), then runs the original design (RQ, 2 workers, one job
per user). Request counts are the stand-in's own. After every run the bench checks that the side
stored exactly the stand-in's users.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import original
from bench.crawl_sides import PROJECT_DB, QUEUE_DB, CrawlRun, original_crawl, project_crawl
from bench.figures import BenchError, Row, Section, paired_ratios
from bench.servers import Context, standin_process
from gh_assets.crawl import PAGES_IN_FLIGHT
from gh_assets.github import DEFAULT_MAX_CONCURRENCY
from gh_assets.partitions import PageWindow
from gh_assets_devtools.standin import StandinAdmin

WIDE = 20  # x the original's workers: the concurrency whose ceiling is 20x the original's
DETAIL_MODES = ["rest", "graphql"]


def run(ctx: Context) -> Section:
    size = ctx.size
    latency = size.crawl_latency_ms / 1000
    workers = size.original_workers
    windows = [PageWindow.number(k, size.crawl_page_size) for k in range(size.crawl_pages)]
    section = Section(
        "crawl",
        f"Crawl: {size.crawl_pages} pages of {size.crawl_page_size} IDs, "
        f"stand-in latency {size.crawl_latency_ms:g} ms",
        params={
            "pages": size.crawl_pages,
            "page_size": size.crawl_page_size,
            "latency_ms": size.crawl_latency_ms,
            "project_max_concurrency": DEFAULT_MAX_CONCURRENCY,
            "project_pages_in_flight": PAGES_IN_FLIGHT,
            "project_detail_modes": DETAIL_MODES,
            "original_workers": workers,
            "original_per_page": 30,
            "standin": "separate process (python -m gh_assets_devtools.standin)",
        },
    )
    runs: dict[str, list[CrawlRun]] = defaultdict(list)
    failures: list[str] = []
    project = ctx.client(PROJECT_DB)
    with (
        standin_process(
            ctx.tmp / "standin-crawl", size=size.crawl_ids, latency_ms=latency * 1000
        ) as url,
        StandinAdmin(url) as admin,
    ):
        try:
            truth = admin.truth(1, size.crawl_ids)
            if not truth:
                raise BenchError("the stand-in has no users in the crawled window")
            section.params["users"] = len(truth)

            def crawl(fresh: bool, **options: Any) -> CrawlRun:
                return project_crawl(url, project, windows, admin, truth, fresh=fresh, **options)

            with original.rq_workers(ctx.redis_db(QUEUE_DB), workers, ctx.tmp / "rq"):
                for _ in range(ctx.runs):
                    runs["rest"].append(crawl(fresh=True))
                    runs["recrawl"].append(crawl(fresh=False))
                    if not failures:
                        try:
                            runs["graphql"].append(crawl(fresh=True, detail_mode="graphql"))
                        except Exception as error:  # reported, and the bench exits non-zero
                            failures.append(f"graphql: {type(error).__name__}: {error}")
                    runs["original"].append(original_crawl(ctx, url, size.crawl_ids, admin, truth))
                    # The same code with 20x the original's workers in flight
                    # (GH_ASSETS_MAX_CONCURRENCY=40): its ceiling is 20x the original's.
                    runs["wide"].append(crawl(fresh=True, max_concurrency=WIDE * workers))
        finally:
            project.close()
    measured = Measured(runs, latency, workers, len(windows))
    section.add_rows(
        ROWS,
        measured,
        concurrency=DEFAULT_MAX_CONCURRENCY,
        latency_ms=latency * 1000,
        workers=workers,
        wide=WIDE * workers,
    )
    section.notes += measured.notes()
    section.details |= measured.details()
    if failures:
        section.error = "; ".join(failures)
    return section


@dataclass
class Measured:
    """Every side's runs, and the figures' arithmetic over them."""

    runs: dict[str, list[CrawlRun]]
    latency: float  # seconds
    workers: int
    pages: int
    concurrency: int = DEFAULT_MAX_CONCURRENCY

    @property
    def ceiling(self) -> float:
        """Requests/s that the bound on requests in flight allows at this latency."""
        return self.concurrency / self.latency

    def each(self, side: str, value: Callable[[CrawlRun], float]) -> list[float] | None:
        """``value`` of each run of ``side``; None when the side did not run."""
        return [value(run) for run in self.runs[side]] or None

    def paired(self, a: list[float] | None, b: list[float] | None) -> list[float] | None:
        """Run-by-run ratios of two sides measured in the same iterations."""
        return paired_ratios(a, b) if a and b and len(a) == len(b) else None

    def middle(self, side: str) -> CrawlRun:
        """The median run of ``side`` by seconds."""
        runs = sorted(self.runs[side], key=lambda r: r.seconds)
        return runs[len(runs) // 2]

    @property
    def first_round(self) -> int:
        """Requests in flight at first: one list request per page started."""
        return min(PAGES_IN_FLIGHT, self.pages)

    def latency_bound(self, run: CrawlRun) -> float:
        """The seconds latency alone allows for ``run``'s requests: a first round, then every
        request needs one of ``concurrency`` slots for ``latency``."""
        rounds = 1 + math.ceil((run.total - self.first_round) / self.concurrency)
        return self.latency * rounds

    def notes(self) -> list[str]:
        graphql = self.runs["graphql"]
        found = []
        if graphql:
            found.append(
                f"GraphQL mode, requests by route at the stand-in (one run of {self.pages} pages,"
                f" {graphql[0].users} users): {graphql[0].requests['by_route']}"
            )
        middle = self.middle("rest")
        users, concurrency, ms = middle.users, self.concurrency, self.latency * 1000
        first_round, ideal = self.first_round, self.latency_bound(middle)
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in middle.phases.items())
        found.append(
            f"Latency bound of the project's defaults ({PAGES_IN_FLIGHT} pages in flight, "
            f"{concurrency} requests): a first round of {first_round} list request(s), then "
            f"ceil(({middle.total} - {first_round}) requests / {concurrency}) rounds of "
            f"{ms:g} ms -> {ideal:.2f} s for {users} users = {users / ideal:.0f} users/s "
            f"= {100 * users / ideal / self.ceiling:.0f}% of the ceiling; measured "
            f"{middle.seconds:.2f} s, peak {middle.requests.get('peak_in_flight', '?')} requests "
            f"in flight at the stand-in (phases, summed over overlapping pages: {phases})."
        )
        orig_median = statistics.median(run.users_per_s for run in self.runs["original"])
        workers = self.workers
        found.append(
            f"Ceiling arithmetic: at its default {concurrency} requests in flight the project's "
            f"ceiling is {concurrency}/{workers} = {concurrency / workers:g}x the original's "
            f"({workers} workers) at the same latency; the original reaches "
            f"{100 * orig_median * self.latency / workers:.0f}% of its own, so 20x its users/s "
            f"({20 * orig_median:.0f}) is {100 * 20 * orig_median / self.ceiling:.0f}% of the "
            f"project's ceiling. The row with max_concurrency={WIDE * workers} shows the same "
            f"code where the ceiling itself is 20x the original's (GitHub allows at most 100 "
            f"concurrent)."
        )
        return found

    def details(self) -> dict[str, Any]:
        middle = self.middle("rest")
        return {
            "rest_median_run": {
                "seconds": round(middle.seconds, 3),
                "phases_seconds": {k: round(v, 3) for k, v in middle.phases.items()},
                "standin_requests": middle.requests,
                "latency_bound_seconds": round(self.latency_bound(middle), 3),
            },
            "original_median_run": {
                "seconds": round(self.middle("original").seconds, 3),
                "standin_requests": self.runs["original"][0].requests,
            },
        }


def _share_304(run: CrawlRun) -> float:
    return 100 * run.status(304) / max(run.route("user"), 1)


def _charged_per_user(run: CrawlRun) -> float:
    return (run.total - run.status(304)) / run.users


def _rate(side: str) -> Callable[[Measured], list[float] | None]:
    return lambda m: m.each(side, lambda run: run.users_per_s)


def _per_user(side: str) -> Callable[[Measured], list[float] | None]:
    return lambda m: m.each(side, lambda run: run.per_user)


def _users_per_s(side: str, who: str) -> Row:
    """The users/s row every side has (``who``: the label's start)."""
    return Row(f"{side}.users_per_s", f"{who}: users/s", "users/s", _rate(side))


def _requests_per_user(side: str, who: str) -> Row:
    """The API requests per user row of a side that crawls from nothing."""
    return Row(
        f"{side}.requests_per_user",
        f"{who}: API requests per user",
        "req/user",
        _per_user(side),
        digits=3,
    )


ROWS = (
    Row(
        "ceiling",
        "concurrency ceiling: {concurrency} in flight / {latency_ms:g} ms",
        "req/s",
        lambda m: m.ceiling,
        digits=0,
    ),
    _users_per_s("rest", "project, REST (defaults)"),
    Row(
        "rest.ceiling_share",
        "project, REST: users/s / concurrency ceiling",
        "%",
        lambda m: m.each("rest", lambda run: 100 * run.users_per_s / m.ceiling),
    ),
    _requests_per_user("rest", "project, REST"),
    Row(
        "recrawl.not_modified_share",
        "unchanged re-crawl: detail answers 304",
        "%",
        lambda m: m.each("recrawl", _share_304),
        digits=2,
    ),
    _users_per_s("recrawl", "unchanged re-crawl"),
    Row(
        "recrawl.charged_per_user",
        "unchanged re-crawl: rate-limited requests per user",
        "req/user",
        lambda m: m.each("recrawl", _charged_per_user),
        digits=3,
    ),
    _users_per_s("graphql", "project, GraphQL mode"),
    _requests_per_user("graphql", "project, GraphQL mode"),
    Row(
        "original.ceiling",
        "original ceiling: {workers} workers / {latency_ms:g} ms",
        "req/s",
        lambda m: m.workers / m.latency,
        digits=0,
    ),
    _users_per_s("original", "original (RQ, 1 job/user)"),
    _requests_per_user("original", "original"),
    Row(
        "rest_vs_original",
        "project REST / original, users/s (paired runs)",
        "x",
        lambda m: m.paired(_rate("rest")(m), _rate("original")(m)),
    ),
    _users_per_s("wide", "project, REST, max_concurrency={wide}"),
    Row(
        "wide_vs_original",
        "project, REST, max_concurrency={wide} / original, users/s (paired)",
        "x",
        lambda m: m.paired(_rate("wide")(m), _rate("original")(m)),
    ),
    Row(
        "graphql_vs_original_requests",
        "original / GraphQL mode, API requests per user",
        "x",
        lambda m: m.paired(_per_user("original")(m), _per_user("graphql")(m)),
    ),
)
