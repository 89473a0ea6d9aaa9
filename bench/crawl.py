"""Benchmark 1: crawling against the stand-in with GitHub-like latency, project vs original.

The stand-in runs as a process of its own. Each run crawls the same pages with the project's
defaults (``crawl_pages`` over one ``GitHubClient``, as one multi-page run does: pages overlap
within the client's bound on requests in flight; REST detail mode, GraphQL mode too when the
client offers ``detail_mode``), then re-crawls them unchanged (ETags: 304s), then runs the
original design (RQ, 2 workers, one job per user). Request counts are the stand-in's own. After
every run the bench checks that the side stored exactly the stand-in's users.
"""

from __future__ import annotations

import inspect
import math
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from bench import original
from bench.figures import BenchError, Section, paired_ratios
from bench.servers import Context, StandinAdmin, flush, standin_process
from gh_assets.crawl import PAGES_IN_FLIGHT, crawl_pages
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore

CREDENTIAL = "anonymous"  # what GitHubResource.credential_id says without a token
COMPARED = ("id", "login", "type", "public_repos", "public_gists", "followers", "following")
PROJECT_DB, QUEUE_DB, ORIGINAL_DB = 0, 1, 2
WIDE = 20  # x the original's workers: the concurrency whose ceiling is 20x the original's


def client_parameters() -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(GitHubClient.__init__).parameters)


def default_concurrency() -> int:
    return int(client_parameters()["max_concurrency"].default)


def detail_modes() -> list[str]:
    """REST always; GraphQL when this version of the client accepts ``detail_mode``."""
    return ["rest", "graphql"] if "detail_mode" in client_parameters() else ["rest"]


@dataclass
class CrawlRun:
    seconds: float
    users: int
    requests: dict[str, Any]  # the stand-in's counters for this run
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(self.requests["total"])

    def status(self, code: int) -> int:
        return int(self.requests["by_status"].get(str(code), 0))

    def route(self, name: str) -> int:
        return int(self.requests["by_route"].get(name, 0))


def _timed(owner: object, name: str, phases: dict[str, float], lock: threading.Lock) -> None:
    """Wrap one method of an instance to add its wall time to ``phases[name]`` (summed over the
    pages that overlap, so the phases can add up to more than the run)."""
    method: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            with lock:
                phases[name] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def project_crawl(
    api_url: str,
    redis_client: redis.Redis,
    windows: list[PageWindow],
    admin: StandinAdmin,
    truth: dict[int, dict[str, Any]],
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
        # The detail call crawl_page makes: get_details where the client has it (REST or
        # GraphQL mode), get_users before that.
        detail = "get_details" if hasattr(client, "get_details") else "get_users"
        for name in ("list_users", detail):
            _timed(client, name, phases, lock)
        for name in ("read_users", "write_page"):
            _timed(store, name, phases, lock)
        started = time.perf_counter()
        for _ in crawl_pages(client, store, windows, CREDENTIAL):
            pass
        seconds = time.perf_counter() - started
    run = CrawlRun(seconds, len(truth), admin.requests(), dict(phases))
    check_project(store, truth, f"project ({client_options or 'defaults'})")
    return run


def check_project(store: RedisStore, truth: dict[int, dict[str, Any]], side: str) -> None:
    """The store holds exactly the stand-in's users, field for field; raises otherwise."""
    stored = store.read_users(truth)
    count = store.user_count()
    _compare(side, {uid: stored.get(uid) for uid in truth}, truth, extra=count - len(stored))


def _compare(
    side: str, stored: dict[int, dict[str, str] | None], truth: dict[int, dict[str, Any]], extra=0
) -> None:
    missing = [uid for uid in truth if not stored.get(uid)]
    wrong = [
        uid
        for uid, want in truth.items()
        if stored.get(uid) and any(stored[uid].get(k) != str(want[k]) for k in COMPARED)
    ]
    if missing or wrong or extra:
        raise BenchError(
            f"{side} did not store the stand-in's users: {len(missing)} missing "
            f"(e.g. {missing[:5]}), {len(wrong)} wrong (e.g. {wrong[:5]}), {extra} extra"
        )


def original_crawl(
    ctx: Context, api_url: str, max_id: int, admin: StandinAdmin, truth: dict[int, Any]
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
    run = CrawlRun(result.seconds, len(truth), admin.requests())
    stored = original.stored_users(ctx.redis_db(ORIGINAL_DB))
    _compare(
        "the original design",
        {uid: stored.get(uid) for uid in truth},
        truth,
        extra=len(set(stored) - set(truth)),
    )
    return run


def run(ctx: Context) -> Section:
    size = ctx.size
    latency = size.crawl_latency_ms / 1000
    concurrency = default_concurrency()
    workers = size.original_workers
    modes = detail_modes()
    windows = [PageWindow.number(k, size.crawl_page_size) for k in range(size.crawl_pages)]
    section = Section(
        "crawl",
        f"Crawl: {size.crawl_pages} pages of {size.crawl_page_size} IDs, "
        f"stand-in latency {size.crawl_latency_ms:g} ms",
        params={
            "pages": size.crawl_pages,
            "page_size": size.crawl_page_size,
            "latency_ms": size.crawl_latency_ms,
            "project_max_concurrency": concurrency,
            "project_pages_in_flight": PAGES_IN_FLIGHT,
            "project_detail_modes": modes,
            "original_workers": workers,
            "original_per_page": 30,
            "standin": "separate process (python -m gh_assets.local.standin)",
        },
    )
    if "graphql" not in modes:
        section.notes.append(
            "GraphQL detail mode: skipped, this GitHubClient has no detail_mode parameter yet"
        )
    runs: dict[str, list[CrawlRun]] = defaultdict(list)
    failures: list[str] = []
    project = ctx.client(PROJECT_DB)
    with standin_process(
        ctx.tmp / "standin-crawl", size=size.crawl_ids, latency_ms=latency * 1000
    ) as url:
        admin = StandinAdmin(url)
        try:
            truth = {row["id"]: row for row in admin.users(1, size.crawl_ids)}
            if not truth:
                raise BenchError("the stand-in has no users in the crawled window")
            section.params["users"] = len(truth)
            with original.rq_workers(ctx.redis_db(QUEUE_DB), workers, ctx.tmp / "rq"):
                for _ in range(ctx.runs):
                    runs["rest"].append(
                        project_crawl(url, project, windows, admin, truth, fresh=True)
                    )
                    runs["recrawl"].append(
                        project_crawl(url, project, windows, admin, truth, fresh=False)
                    )
                    if "graphql" in modes and "graphql" not in {f.split(":")[0] for f in failures}:
                        try:
                            runs["graphql"].append(
                                project_crawl(
                                    url,
                                    project,
                                    windows,
                                    admin,
                                    truth,
                                    fresh=True,
                                    detail_mode="graphql",
                                )
                            )
                        except Exception as error:  # reported, and the bench exits non-zero
                            failures.append(f"graphql: {type(error).__name__}: {error}")
                    runs["original"].append(original_crawl(ctx, url, size.crawl_ids, admin, truth))
                    # The same code with 20x the original's workers in flight
                    # (GH_ASSETS_MAX_CONCURRENCY=40): its ceiling is 20x the original's.
                    runs["wide"].append(
                        project_crawl(
                            url,
                            project,
                            windows,
                            admin,
                            truth,
                            fresh=True,
                            max_concurrency=WIDE * workers,
                        )
                    )
        finally:
            admin.close()
            project.close()
    _figures(section, runs, concurrency, latency, workers, len(windows))
    if failures:
        section.error = "; ".join(failures)
    return section


def _figures(
    section: Section,
    runs: dict[str, list[CrawlRun]],
    concurrency: int,
    latency: float,
    workers: int,
    pages: int,
) -> None:
    ceiling = concurrency / latency
    rest = runs["rest"]
    users = rest[0].users
    rest_rate = [users / r.seconds for r in rest]
    section.add(
        "ceiling",
        f"concurrency ceiling: {concurrency} in flight / {latency * 1000:g} ms",
        "req/s",
        ceiling,
        digits=0,
    )
    section.add("rest.users_per_s", "project, REST (defaults): users/s", "users/s", rest_rate)
    section.add(
        "rest.ceiling_share",
        "project, REST: users/s / concurrency ceiling",
        "%",
        [100 * rate / ceiling for rate in rest_rate],
    )
    section.add(
        "rest.requests_per_user",
        "project, REST: API requests per user",
        "req/user",
        [r.total / r.users for r in rest],
        digits=3,
    )
    recrawl = runs["recrawl"]
    section.add(
        "recrawl.not_modified_share",
        "unchanged re-crawl: detail answers 304",
        "%",
        [100 * r.status(304) / max(r.route("user"), 1) for r in recrawl],
        digits=2,
    )
    section.add(
        "recrawl.users_per_s",
        "unchanged re-crawl: users/s",
        "users/s",
        [r.users / r.seconds for r in recrawl],
    )
    section.add(
        "recrawl.charged_per_user",
        "unchanged re-crawl: rate-limited requests per user",
        "req/user",
        [(r.total - r.status(304)) / r.users for r in recrawl],
        digits=3,
    )
    if runs.get("graphql"):
        graphql = runs["graphql"]
        routes = graphql[0].requests["by_route"]
        section.notes.append(
            f"GraphQL mode, requests by route at the stand-in (one run of {pages} pages, "
            f"{graphql[0].users} users): {routes}"
        )
        section.add(
            "graphql.users_per_s",
            "project, GraphQL mode: users/s",
            "users/s",
            [r.users / r.seconds for r in graphql],
        )
        section.add(
            "graphql.requests_per_user",
            "project, GraphQL mode: API requests per user",
            "req/user",
            [r.total / r.users for r in graphql],
            digits=3,
        )
    orig = runs["original"]
    orig_rate = [r.users / r.seconds for r in orig]
    section.add(
        "original.ceiling",
        f"original ceiling: {workers} workers / {latency * 1000:g} ms",
        "req/s",
        workers / latency,
        digits=0,
    )
    section.add("original.users_per_s", "original (RQ, 1 job/user): users/s", "users/s", orig_rate)
    section.add(
        "original.requests_per_user",
        "original: API requests per user",
        "req/user",
        [r.total / r.users for r in orig],
        digits=3,
    )
    section.add(
        "rest_vs_original",
        "project REST / original, users/s (paired runs)",
        "x",
        paired_ratios(rest_rate, orig_rate),
    )
    if runs.get("wide"):
        wide = runs["wide"]
        wide_rate = [r.users / r.seconds for r in wide]
        section.add(
            "wide.users_per_s",
            f"project, REST, max_concurrency={WIDE * workers}: users/s",
            "users/s",
            wide_rate,
        )
        section.add(
            "wide_vs_original",
            f"project, REST, max_concurrency={WIDE * workers} / original, users/s (paired)",
            "x",
            paired_ratios(wide_rate, orig_rate),
        )
    if runs.get("graphql"):
        section.add(
            "graphql_vs_original_requests",
            "original / GraphQL mode, API requests per user",
            "x",
            paired_ratios(
                [r.total / r.users for r in orig], [r.total / r.users for r in runs["graphql"]]
            ),
        )

    # Where the project's time goes, and what latency alone allows: the first round can only
    # hold list requests (one per page started), then every request needs a slot for `latency`.
    middle = sorted(rest, key=lambda r: r.seconds)[len(rest) // 2]
    first_round = min(PAGES_IN_FLIGHT, pages)
    rounds = 1 + math.ceil((middle.total - first_round) / concurrency)
    ideal = latency * rounds
    section.details["rest_median_run"] = {
        "seconds": round(middle.seconds, 3),
        "phases_seconds": {k: round(v, 3) for k, v in middle.phases.items()},
        "standin_requests": middle.requests,
        "latency_bound_seconds": round(ideal, 3),
    }
    section.details["original_median_run"] = {
        "seconds": round(sorted(orig, key=lambda r: r.seconds)[len(orig) // 2].seconds, 3),
        "standin_requests": orig[0].requests,
    }
    section.notes.append(
        f"Latency bound of the project's defaults ({PAGES_IN_FLIGHT} pages in flight, "
        f"{concurrency} requests): a first round of {first_round} list request(s), then "
        f"ceil(({middle.total} - {first_round}) requests / {concurrency}) rounds of "
        f"{latency * 1000:g} ms -> {ideal:.2f} s for {users} users = {users / ideal:.0f} users/s "
        f"= {100 * users / ideal / ceiling:.0f}% of the ceiling; measured {middle.seconds:.2f} s, "
        f"peak {middle.requests.get('peak_in_flight', '?')} requests in flight at the stand-in "
        f"(phases, summed over overlapping pages: "
        f"{', '.join(f'{k} {v:.2f} s' for k, v in middle.phases.items())})."
    )
    orig_median = statistics.median(orig_rate)
    section.notes.append(
        f"Ceiling arithmetic: at its default {concurrency} requests in flight the project's "
        f"ceiling is {concurrency}/{workers} = {concurrency / workers:g}x the original's "
        f"({workers} workers) at the same latency; the original reaches "
        f"{100 * orig_median * latency / workers:.0f}% of its own, so 20x its users/s "
        f"({20 * orig_median:.0f}) is {100 * 20 * orig_median / ceiling:.0f}% of the project's "
        f"ceiling. The row with max_concurrency={WIDE * workers} shows the same code where the "
        f"ceiling itself is 20x the original's (GitHub allows at most 100 concurrent)."
    )
