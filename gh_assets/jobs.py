"""Jobs: the crawl (one page per run) and the analysis refresh, as the UI and schedules see them."""

import dagster as dg

from gh_assets.assets import USERS_KEY, github_user_summary, github_users_frame

crawl_job = dg.define_asset_job(
    "crawl_github_users",
    selection=dg.AssetSelection.assets(USERS_KEY),
    description="Crawl pages of GitHub users into Redis (one partition per page).",
)
summary_job = dg.define_asset_job(
    "refresh_user_summary",
    selection=dg.AssetSelection.assets(github_users_frame, github_user_summary),
    description="Read every stored user into pandas and recompute the summary statistics.",
)
