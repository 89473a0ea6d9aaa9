"""When the analysis refreshes: after pages change, once a batch of page runs is over (an
automation condition and the sensor that evaluates it); its job and daily schedule."""

import dagster as dg

from gh_assets.settings import Settings, at_load

ANALYSIS = dg.AssetSelection.groups("analysis")
# Downstream of the pages: refresh once a batch of page runs is over, not once per page.
AFTER_PAGES_CHANGE = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after its inputs change, once none is in progress")

summary_job = dg.define_asset_job(
    "refresh_user_summary",
    selection=ANALYSIS,
    description="Read every stored user into pandas and recompute the summary statistics.",
)
daily_summary_schedule = dg.ScheduleDefinition(
    name="daily_summary_schedule",
    job=summary_job,
    cron_schedule="0 6 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 UTC: re-reads every user from Redis into the frame (and its "
    "checks) and recomputes the summary from the pages' aggregates.",
)


@dg.definitions
def refresh() -> dg.Definitions:
    return dg.Definitions(
        jobs=[summary_job],
        schedules=[daily_summary_schedule],
        sensors=[refresh_analysis_sensor(at_load())],
    )


def refresh_analysis_sensor(settings: Settings) -> dg.SensorDefinition:
    """Refreshes the analysis after pages change, ticking like the crawl's sensors."""
    return dg.AutomationConditionSensorDefinition(
        "refresh_analysis_sensor",
        target=ANALYSIS,
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Refreshes github_users_frame (with its checks) and github_user_summary "
        "after pages change: once per batch of page runs, when none is in progress.",
    )
