"""The page asset: GitHub users of one page (a fixed window of user IDs) crawled into Redis, one
partition per page, with the checks each run grades its pages by; GitHub's errors become the
run's outcome (retried, deferred until a rate limit's reset, or failed in one line)."""

import time
from collections.abc import Sequence

import dagster as dg

from gh_assets.crawl import PageReport, crawl_pages
from gh_assets.github import (
    GitHubConfigError,
    GitHubHTTPError,
    MalformedResponseError,
    RateLimitError,
)
from gh_assets.page_audit import PAGE_CHECKS, page_findings
from gh_assets.partitions import PageWindow, github_pages
from gh_assets.preflight import github_failure, redis_failures
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings, at_load
from gh_assets.storage import RedisStore, iso_utc

USERS_KEY = dg.AssetKey("github_users")
GITHUB_POOL = "github_api"  # its limit is the instance's (devtools/gh_assets_devtools/dagster.yaml)
PERMANENT_STATUSES = {400, 401, 403, 404, 410, 422}  # retrying cannot fix these
PAGE_CHECK_SPECS = tuple(
    dg.AssetCheckSpec(name, asset=USERS_KEY, description=description)
    for name, description in PAGE_CHECKS.items()
)


@dg.definitions
def page_asset() -> dg.Definitions:
    return dg.Definitions(assets=[build_github_users(at_load())])


def build_github_users(settings: Settings) -> dg.AssetsDefinition:
    """The page asset; its retries and backfill grouping come from ``settings``."""

    @dg.asset(
        key=USERS_KEY,
        partitions_def=github_pages,
        pool=GITHUB_POOL,
        # Transient faults that outlived the client's own retries get a few more, spaced out.
        retry_policy=dg.RetryPolicy(
            max_retries=settings.page_retries,
            delay=10,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        backfill_policy=dg.BackfillPolicy.multi_run(settings.pages_per_run),
        check_specs=PAGE_CHECK_SPECS,
        kinds={"python", "redis"},
        group_name="github",
        description="GitHub users of one page (a fixed window of user IDs), one Redis hash each.",
    )
    def github_users(
        context: dg.AssetExecutionContext, github: GitHubResource, redis: RedisResource
    ) -> dg.MaterializeResult:
        windows = [PageWindow.from_key(key) for key in context.partition_keys]
        started = time.monotonic()
        with redis_failures(redis.url):  # one line naming REDIS_URL, retried only if it may help
            store = redis.get_store()
            reports = _crawl(context, github, store, windows)
            check_results = audit_pages(store, windows)
        return dg.MaterializeResult(
            metadata=_run_metadata(reports, time.monotonic() - started),
            check_results=check_results,
        )

    return github_users


def _crawl(
    context: dg.AssetExecutionContext,
    github: GitHubResource,
    store: RedisStore,
    windows: list[PageWindow],
) -> list[PageReport]:
    """Crawl the run's pages (they overlap; reports, and a failed page's error, come in page
    order), turning GitHub's errors into the run's outcome: retried, deferred or failed."""
    reports: list[PageReport] = []
    try:
        client = github.get_client()
    except GitHubConfigError as error:  # e.g. anonymous GraphQL on GitHub: no retry can help
        raise dg.Failure(description=str(error), allow_retries=False) from None
    with client:
        try:
            for report in crawl_pages(client, store, windows):
                context.log.info(_page_line(report))
                # Each page's own numbers on its own materialization: Plots charts them.
                context.add_asset_metadata(_page_metadata(report), partition_key=report.page)
                reports.append(report)
        except RateLimitError as error:
            unwritten = _unwritten(windows, reports)  # a page written beside it is not deferred
            for left in unwritten:
                store.defer_page(left.key, error.reset_at)
            raise dg.Failure(
                description=f"{error}. Page {unwritten[0].key} was not written; "
                "stale_pages_sensor runs it again after the reset.",
                allow_retries=False,
            ) from error
        except (MalformedResponseError, GitHubHTTPError) as error:
            page = _unwritten(windows, reports)[0].key
            failure = github_failure(error, github.api_url, github.token, page)
            if failure is not None:  # unreachable, or a refused credential: one line
                raise failure from None
            if isinstance(error, GitHubHTTPError) and error.status not in PERMANENT_STATUSES:
                raise  # a transient fault outlived the client's retries: RetryPolicy
            raise dg.Failure(
                description=f"{error}. Page {page} was not written; "
                "retrying would not help until the cause is fixed.",
                allow_retries=False,
            ) from error
    return reports


def _unwritten(windows: list[PageWindow], reports: list[PageReport]) -> list[PageWindow]:
    """The run's pages without a report, in order: the failed one first (``crawl_pages``)."""
    written = {report.page for report in reports}
    return [window for window in windows if window.key not in written]


def _page_line(report: PageReport) -> str:
    """The log line of a page the run crawled."""
    if report.superseded_by:  # not a failure: the page holds newer data than this crawl got
        return (
            f"page {report.page}: not written: a crawl of it that started later "
            f"({report.superseded_by:%Y-%m-%d %H:%M:%S} UTC) wrote it first, and its data is kept"
        )
    return (
        f"page {report.page}: {report.written} users written, {report.gone} gone, "
        f"{report.not_modified} unchanged (304), {report.requests} requests, "
        f"{report.seconds:.1f} s, {report.budget_wait:.1f} s waiting for rate budget"
    )


def _page_metadata(report: PageReport) -> dict[str, int | float | str]:
    """One page's bookkeeping, as ``gh:{b…}:page:{page}`` holds it."""
    later = report.superseded_by  # set: this crawl wrote nothing, a later-started one did
    superseded = {"superseded_by_crawl_started": iso_utc(later)} if later else {}
    return superseded | {
        "users_written": report.written,
        "users_gone": report.gone,
        "users_listed": report.listed,
        "not_modified": report.not_modified,
        # Unchanged users a re-crawl paid nothing for (304s): the ETags' economy.
        "share_not_modified": round(report.not_modified / max(report.written, 1), 4),
        "api_requests": report.requests,
        "budget_wait_seconds": round(report.budget_wait, 3),
        "seconds": round(report.seconds, 3),
    }


def _run_metadata(reports: list[PageReport], seconds: float) -> dict[str, int | float | str]:
    """What belongs to the run, shown on each of its pages; ``run_seconds`` is the run's crawl
    time (its pages overlap, so their own times add up to more)."""
    remaining = reports[-1].rate_limit_remaining if reports else None
    return {
        "rate_limit_remaining": remaining if remaining is not None else "unlimited",
        "run_seconds": round(seconds, 3),
        "run_pages": len(reports),
    }


def audit_pages(store: RedisStore, windows: Sequence[PageWindow]) -> list[dg.AssetCheckResult]:
    """Read back what the run wrote and grade it; one result per check over all its pages."""
    pages = {"pages": len(windows)}
    detail = {"counters_valid": "invalid_users"}  # the metadata key of what is off
    return [
        dg.AssetCheckResult(
            check_name=check,
            passed=not off,
            metadata=pages | {detail.get(check, "pages_off"): str(off)[:1000]} if off else pages,
        )
        for check, off in page_findings(store, windows).items()
    ]
