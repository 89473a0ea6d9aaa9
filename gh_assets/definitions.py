"""The code location: every asset, job, sensor and resource of gh_assets, in one place.

Settings come from the environment (see README): ``GITHUB_API_URL``, ``GITHUB_TOKEN``,
``REDIS_URL``, ``GH_ASSETS_KEY_PREFIX``, ``GH_ASSETS_MAX_CONCURRENCY``. Unset ones keep the
resource defaults; set ones are passed as ``EnvVar`` so secrets stay out of the UI and run config.
"""

from __future__ import annotations

import os

import dagster as dg

from gh_assets.assets import github_user_summary, github_users, github_users_frame
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.sensors import github_pages_sensor


def _from_env(**fields: str) -> dict[str, dg.EnvVar]:
    """Resource fields bound to the environment variables that are set."""
    return {field: dg.EnvVar(name) for field, name in fields.items() if os.environ.get(name)}


def _int_from_env(**fields: str) -> dict[str, dg.IntEnvVar]:
    return {field: dg.EnvVar.int(name) for field, name in fields.items() if os.environ.get(name)}


crawl_job = dg.define_asset_job(
    "crawl_github_users",
    selection=[github_users],
    description="Crawl pages of GitHub users into Redis (one partition per page).",
)
summary_job = dg.define_asset_job(
    "refresh_user_summary",
    selection=[github_users_frame, github_user_summary],
    description="Read every stored user into pandas and recompute the summary statistics.",
)

defs = dg.Definitions(
    assets=[github_users, github_users_frame, github_user_summary],
    jobs=[crawl_job, summary_job],
    sensors=[github_pages_sensor],
    resources={
        "github": GitHubResource(
            **_from_env(api_url="GITHUB_API_URL", token="GITHUB_TOKEN"),
            **_int_from_env(max_concurrency="GH_ASSETS_MAX_CONCURRENCY"),
        ),
        "redis": RedisResource(**_from_env(url="REDIS_URL", key_prefix="GH_ASSETS_KEY_PREFIX")),
        # Explicit, so in-process runs (the demo, tests) persist values the UI's runs can load.
        "io_manager": dg.FilesystemIOManager(),
    },
)
