"""The code location: every asset, check, job, schedule, sensor and resource, built from one
``Settings`` read when Dagster loads the location (nothing is read at import time)."""

import dagster as dg

from gh_assets.asset_storage import storage_resources
from gh_assets.assets import build_github_users, github_user_summary, github_users_frame
from gh_assets.checks import frame_checks, summary_checks
from gh_assets.jobs import crawl_job, summary_job
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.schedules import build_schedules
from gh_assets.sensors import build_sensors
from gh_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    """The definitions for ``settings``; tests build their own with the settings they need."""
    return dg.Definitions(
        # One process per run: a step and its checks share it, which halves the cost of a short
        # run on a small machine.
        executor=dg.in_process_executor,
        assets=[build_github_users(settings), github_users_frame, github_user_summary],
        asset_checks=[*frame_checks, *summary_checks],
        jobs=[crawl_job, summary_job],
        schedules=build_schedules(settings),
        sensors=build_sensors(settings),
        resources={
            "github": GitHubResource.from_settings(settings),
            "redis": RedisResource.from_settings(settings),
            # Parquet, so the frame is read without Dagster; in-process runs (the demo, tests)
            # persist values where the UI's runs load them.
            **storage_resources(settings.asset_storage),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(Settings.from_env())
