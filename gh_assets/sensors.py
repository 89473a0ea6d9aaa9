"""Sensors: keep the set of pages in the instance in step with the configured crawl."""

from __future__ import annotations

import dagster as dg

from gh_assets.partitions import CrawlSettings, github_pages


@dg.sensor(
    name="github_pages_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds the pages GH_ASSETS_PAGES x GH_ASSETS_PAGE_SIZE asks for, so they appear "
    "in the UI (ready to materialize or backfill) without a manual step.",
)
def github_pages_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    known = set(context.instance.get_dynamic_partitions(github_pages.name))
    missing = [key for key in CrawlSettings.from_env().page_keys() if key not in known]
    if not missing:
        return dg.SkipReason(f"all {len(known)} pages are registered")
    return dg.SensorResult(dynamic_partitions_requests=[github_pages.build_add_request(missing)])
