"""The crawl's job: one page per run (a backfill groups GH_ASSETS_PAGES_PER_RUN)."""

import dagster as dg

from gh_assets.defs.crawl.page_asset import USERS_KEY

crawl_job = dg.define_asset_job(
    "crawl_github_users",
    selection=dg.AssetSelection.assets(USERS_KEY),
    description="Crawl pages of GitHub users into Redis (one partition per page).",
)
