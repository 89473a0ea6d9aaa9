"""A weekly re-crawl in bounded batches: off by default, an alternative to stale_pages_sensor for a
fixed weekly window."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from gh_assets.defs.crawl.jobs import crawl_job
from gh_assets.defs.crawl.recrawl import pages_due
from gh_assets.partitions import github_pages
from gh_assets.resources import RedisResource
from gh_assets.settings import Settings, at_load


@dg.definitions
def schedules() -> dg.Definitions:
    return dg.Definitions(schedules=[weekly_recrawl_schedule(at_load())])


def weekly_recrawl_schedule(settings: Settings) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="weekly_recrawl_schedule",
        cron_schedule="0 3 * * 0",
        job=crawl_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Sundays 03:00 UTC: re-crawls the GH_ASSETS_RECRAWL_BATCH least recently crawled "
            "pages, whatever their age (one run per page). An alternative to stale_pages_sensor "
            "for a fixed weekly window; off by default."
        ),
    )
    def weekly_recrawl_schedule(
        context: dg.ScheduleEvaluationContext, redis: RedisResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        known = set(context.instance.get_dynamic_partitions(github_pages.name))
        now = context.scheduled_execution_time or datetime.now(UTC)
        due = pages_due(
            redis.get_store(),
            context.instance,
            now,
            older_than=timedelta(0),
            limit=settings.recrawl_batch,
        )
        pages = [page for page in due.pages if page in known]
        if not pages:
            return dg.SkipReason("no crawled page to re-crawl")
        return [
            dg.RunRequest(
                partition_key=page,
                run_key=f"{page}@{now:%Y-%m-%dT%H:%M}",
                tags={"gh_assets/trigger": "weekly"},
            )
            for page in pages
        ]

    return weekly_recrawl_schedule
