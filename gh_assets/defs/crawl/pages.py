"""The crawl: the page asset (one dynamic partition per page of user IDs), the job that runs it,
the sensors that register, grow and re-crawl pages, and the weekly re-crawl schedule.

Its shape (page width, pages, pages per run, retries, intervals) is one ``Settings`` read when
the location loads, not a Component with YAML attributes: each value is an environment variable
the CLI commands (demo, forget-pages), the worker's checks and the operators' docs share, and a
second source in YAML would let the two disagree about the page width of stored data."""

import dagster as dg

from gh_assets.assets import build_github_users
from gh_assets.jobs import crawl_job
from gh_assets.schedules import weekly_recrawl_schedule
from gh_assets.sensors import crawl_sensors
from gh_assets.settings import at_load


@dg.definitions
def crawl() -> dg.Definitions:
    settings = at_load()
    return dg.Definitions(
        assets=[build_github_users(settings)],
        jobs=[crawl_job],
        sensors=crawl_sensors(settings),
        schedules=[weekly_recrawl_schedule(settings)],
    )
