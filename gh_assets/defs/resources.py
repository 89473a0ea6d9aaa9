"""Where GitHub and Redis are, where asset values go (Parquet), and how runs execute."""

import dagster as dg

from gh_assets.asset_storage import storage_resources
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import at_load


@dg.definitions
def resources() -> dg.Definitions:
    settings = at_load()
    redis = RedisResource.from_settings(settings)
    return dg.Definitions(
        # One process per run: a step and its checks share it, which halves the cost of a short
        # run on a small machine.
        executor=dg.in_process_executor,
        resources={
            "github": GitHubResource.from_settings(settings, redis),  # its budget in the data's
            "redis": redis,
            # Parquet, so the frame is read without Dagster; in-process runs (the demo, tests)
            # persist values where the UI's runs load them.
            **storage_resources(settings.asset_storage),
        },
    )
