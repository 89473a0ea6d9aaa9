"""The asset graph: pages of GitHub users -> one DataFrame -> summary statistics."""

import base64
import time

import dagster as dg
import pandas as pd

from gh_assets.aggregates import merge_pages
from gh_assets.asset_storage import COLUMN_SCHEMA, column_schema
from gh_assets.checks import PAGE_CHECKS, USERS_KEY, audit_pages
from gh_assets.crawl import PageReport, crawl_pages
from gh_assets.github import (
    GitHubConfigError,
    GitHubHTTPError,
    MalformedResponseError,
    RateLimitError,
)
from gh_assets.lost_pages import missing_pages
from gh_assets.partitions import PageWindow, github_pages
from gh_assets.plots import PLOTS
from gh_assets.preflight import github_failure, redis_failures
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings
from gh_assets.storage import READ_REPORT, RedisStore, frame_from_batches, iso_utc
from gh_assets.summary import UserSummary

GITHUB_POOL = "github_api"  # its limit is the instance's (locally the devtools' dagster.yaml)
PERMANENT_STATUSES = {400, 401, 403, 404, 410, 422}  # retrying cannot fix these

# Downstream of the pages: refresh once a batch of page runs is over, not once per page.
AFTER_PAGES_CHANGE = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after its inputs change, once none is in progress")


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
        check_specs=PAGE_CHECKS,
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


@dg.asset(
    deps=[USERS_KEY],
    automation_condition=AFTER_PAGES_CHANGE,
    kinds={"pandas", "redis", "parquet"},
    group_name="analysis",
    description="Every stored GitHub user in one DataFrame, read from Redis; stored as Parquet "
    "(its path is in each materialization's metadata).",
    # The columns every frame has; the IO manager refuses a stored file that differs.
    metadata={COLUMN_SCHEMA: column_schema(frame_from_batches([]))},
)
def github_users_frame(redis: RedisResource) -> dg.MaterializeResult:
    with redis_failures(redis.url):  # one line naming REDIS_URL (the old key schema, too)
        frame = redis.get_store().read_frame(from_replicas=redis.frame_from_replicas)
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "preview": _table(frame.head(10)),
            "organizations": int((frame["type"] == "Organization").sum()),
            # What the read saw beside the rows (frame.attrs, graded by the frame checks).
            **{f"read_{name}": value for name, value in frame.attrs[READ_REPORT].items()},
        },
    )


@dg.asset(
    deps=[USERS_KEY],  # refreshed after pages change, like the frame, but never reads it
    automation_condition=AFTER_PAGES_CHANGE,
    io_manager_key="summary_io_manager",
    kinds={"pandas", "redis", "parquet"},
    group_name="analysis",
    description="Summary statistics of every stored user (counters, account types, top "
    "followed), merged from the pages' aggregates in Redis: the users themselves are not read.",
)
def github_user_summary(
    context: dg.AssetExecutionContext, redis: RedisResource
) -> dg.MaterializeResult:
    with redis_failures(redis.url):  # one line naming REDIS_URL (the old key schema, too)
        store = redis.get_store()
        merged = merge_pages(store)
        pages = store.pages_meta().values()
        missing = missing_pages(store, context.instance, USERS_KEY)
    if missing.pages:  # the summary lacks their users (check materialized_pages_in_redis)
        context.log.warning(missing.describe())
    summary: UserSummary = merged.summary()
    followers = summary.counters.loc["followers"]
    written, unchanged = (sum(int(p.get(k, 0)) for p in pages) for k in ("users", "not_modified"))
    return dg.MaterializeResult(
        value=summary,
        metadata={
            # Numbers first: the UI's Plots tab charts each one across materializations.
            "accounts": merged.accounts,
            "organizations": merged.type_accounts("Organization"),
            "followers_p50": round(float(followers["median"]), 3),
            "followers_p90": round(float(followers["p90"]), 3),
            "followers_p99": round(float(followers["p99"]), 3),
            # Of the users the pages' latest crawls wrote, those GitHub answered 304 for.
            "share_not_modified": round(unchanged / max(written, 1), 4),
            # Pages Dagster holds as materialized (or begun) whose users the summary lacks.
            "pages_missing": len(missing.pages),
            "pages_missing_keys": ", ".join(missing.pages[:100]),
            "counters": _table(summary.counters.round(3).rename_axis("counter").reset_index()),
            "by_type": _table(summary.by_type.round(4).reset_index()),
            "top_followers": _table(summary.top_followers),
            **{name: _image(plot(merged), name.replace("_", " ")) for name, plot in PLOTS.items()},
        },
    )


def _image(png: bytes, title: str) -> dg.MarkdownMetadataValue:
    """A PNG inline in Markdown metadata (the UI has no image metadata type)."""
    encoded = base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def _table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    """A DataFrame as a table in the Dagster UI."""
    kinds = {"i": "int", "u": "int", "f": "float", "b": "bool"}
    columns = [
        dg.TableColumn(str(name), kinds.get(dtype.kind, "string"))
        for name, dtype in frame.dtypes.items()
    ]
    records = [
        dg.TableRecord({str(k): _plain(v) for k, v in row.items()})
        for row in frame.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def _plain(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)
