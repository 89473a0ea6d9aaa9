"""Every stored user as one pandas DataFrame, read from Redis and stored as Parquet."""

import dagster as dg

from gh_assets.asset_storage import COLUMN_SCHEMA, column_schema
from gh_assets.defs.analysis.refresh import AFTER_PAGES_CHANGE
from gh_assets.defs.analysis.ui_metadata import table
from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.preflight import redis_failures
from gh_assets.resources import RedisResource
from gh_assets.storage import READ_REPORT, frame_from_batches


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
            "preview": table(frame.head(10)),
            "organizations": int((frame["type"] == "Organization").sum()),
            # What the read saw beside the rows (frame.attrs, graded by the frame checks).
            **{f"read_{name}": value for name, value in frame.attrs[READ_REPORT].items()},
        },
    )
