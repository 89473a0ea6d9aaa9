"""The analysis: every stored user as one frame, the summary merged from the pages' aggregates,
their checks, the job that refreshes both, its daily schedule and the sensor that refreshes them
after pages change (its tick interval is the crawl sensors', GH_ASSETS_SENSOR_INTERVAL)."""

import dagster as dg

from gh_assets.assets import github_user_summary, github_users_frame
from gh_assets.checks import frame_checks, summary_checks
from gh_assets.jobs import summary_job
from gh_assets.schedules import daily_summary_schedule
from gh_assets.sensors import refresh_analysis_sensor
from gh_assets.settings import at_load


@dg.definitions
def analysis() -> dg.Definitions:
    return dg.Definitions(
        assets=[github_users_frame, github_user_summary],
        asset_checks=[*frame_checks, *summary_checks],
        jobs=[summary_job],
        schedules=[daily_summary_schedule],
        sensors=[refresh_analysis_sensor(at_load())],
    )
