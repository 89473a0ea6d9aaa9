"""Summary statistics of every stored user, merged from the pages' aggregates in Redis (the users
themselves are not read), with its plots; and its check that no materialized page is missing."""

import dagster as dg

from gh_assets.aggregates import merge_pages
from gh_assets.defs.analysis.refresh import AFTER_PAGES_CHANGE
from gh_assets.defs.analysis.ui_metadata import image, table
from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.lost_pages import missing_pages
from gh_assets.plots import PLOTS
from gh_assets.preflight import redis_failures
from gh_assets.resources import RedisResource
from gh_assets.summary import UserSummary


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
            "counters": table(summary.counters.round(3).rename_axis("counter").reset_index()),
            "by_type": table(summary.by_type.round(4).reset_index()),
            "top_followers": table(summary.top_followers),
            **{name: image(plot(merged), name.replace("_", " ")) for name, plot in PLOTS.items()},
        },
    )


@dg.asset_check(
    asset=github_user_summary,
    description="Every page Dagster holds as materialized is in Redis, and no page's write was "
    "left unfinished: else the summary and the frame miss its users (stale_pages_sensor crawls "
    "it again).",
)
def materialized_pages_in_redis(
    context: dg.AssetCheckExecutionContext, redis: RedisResource
) -> dg.AssetCheckResult:
    with redis_failures(redis.url):
        missing = missing_pages(redis.get_store(), context.instance, USERS_KEY)
    return dg.AssetCheckResult(
        passed=not missing.pages,
        description=missing.describe(),
        metadata={
            "pages_lost": len(missing.lost),
            "pages_unfinished": len(missing.unfinished),
            "pages_missing": ", ".join(missing.pages[:100]),
        },
    )


summary_checks = [materialized_pages_in_redis]
