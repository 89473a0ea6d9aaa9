"""The code location: every asset, check, job, schedule, sensor and resource, in one place.

Settings come from the environment (see README): ``GITHUB_API_URL``, ``GITHUB_TOKEN``,
``REDIS_URL``, ``GH_ASSETS_KEY_PREFIX``, ``GH_ASSETS_MAX_CONCURRENCY``,
``GH_ASSETS_MAX_RATE_LIMIT_WAIT`` and the ``GH_ASSETS_*`` knobs of ``gh_assets.settings``. Unset
ones keep the resource defaults; set ones are bound as ``EnvVar`` so secrets stay out of the UI.
"""

import os

import dagster as dg

from gh_assets.assets import github_user_summary, github_users, github_users_frame
from gh_assets.checks import frame_checks
from gh_assets.jobs import crawl_job, summary_job
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.schedules import daily_summary_schedule, weekly_recrawl_schedule
from gh_assets.sensors import INTERVAL, github_pages_sensor, stale_pages_sensor


def _from_env(**fields: str) -> dict[str, dg.EnvVar]:
    """Resource fields bound to the environment variables that are set."""
    return {field: dg.EnvVar(name) for field, name in fields.items() if os.environ.get(name)}


def _int_from_env(**fields: str) -> dict[str, object]:
    return {field: dg.EnvVar.int(name) for field, name in fields.items() if os.environ.get(name)}


analysis_automation = dg.AutomationConditionSensorDefinition(
    "refresh_analysis_sensor",
    target=dg.AssetSelection.assets(github_users_frame, github_user_summary),
    minimum_interval_seconds=INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes github_users_frame and github_user_summary (with the frame's checks) "
    "after pages change: once per batch of page runs, when none is still in progress.",
)

defs = dg.Definitions(
    # One process per run: a step and its checks share it, which halves the cost of a short run
    # on a small machine. Scale-out swaps this for a distributed executor (see docker-compose).
    executor=dg.in_process_executor,
    assets=[github_users, github_users_frame, github_user_summary],
    asset_checks=frame_checks,
    jobs=[crawl_job, summary_job],
    schedules=[weekly_recrawl_schedule, daily_summary_schedule],
    sensors=[github_pages_sensor, stale_pages_sensor, analysis_automation],
    resources={
        "github": GitHubResource(
            **_from_env(
                api_url="GITHUB_API_URL", token="GITHUB_TOKEN", detail_mode="GH_ASSETS_DETAIL_MODE"
            ),
            **_int_from_env(
                max_concurrency="GH_ASSETS_MAX_CONCURRENCY",
                max_retries="GH_ASSETS_MAX_RETRIES",
                max_rate_limit_wait="GH_ASSETS_MAX_RATE_LIMIT_WAIT",
            ),
        ),
        "redis": RedisResource(**_from_env(url="REDIS_URL", key_prefix="GH_ASSETS_KEY_PREFIX")),
        # Explicit, so in-process runs (the demo, tests) persist values the UI's runs can load.
        "io_manager": dg.FilesystemIOManager(),
    },
)
