"""What the topology tests ask of a running deployment and compare it with: a single-machine
crawl of the same pages, a comparable snapshot of a Redis store, and the webserver's answers on
asset materializations and launches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from gh_assets.storage.schema import CRAWL_TIME_FIELDS, HISTORY_KEYS
from gh_assets_devtools.dagster_graphql import LOCATION, REPOSITORY, DagsterGraphQL


def crawl_in_process(
    standin_url: str, redis_url: str, prefix: str, keys: Sequence[str], page_size: int
) -> None:
    """A single-machine crawl of pages ``keys``: ``dg.materialize`` in this process, on a
    temporary instance, into ``redis_url`` under ``prefix``."""
    import dagster as dg

    from gh_assets.defs.crawl.page_asset import build_github_users
    from gh_assets.partitions import add_missing_pages
    from gh_assets.resources import GitHubResource, RedisResource
    from gh_assets.settings import Settings

    asset = build_github_users(Settings(page_size=page_size, page_retries=0))
    resources = {
        "github": GitHubResource(api_url=standin_url, max_retries=1),
        "redis": RedisResource(url=redis_url, key_prefix=prefix),
    }
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, list(keys))
        for key in keys:
            result = dg.materialize(
                [asset], partition_key=key, instance=instance, resources=resources
            )
            if not result.success:
                raise RuntimeError(f"the single-machine crawl of {key} failed")


def redis_snapshot(redis_url: str, prefix: str) -> dict[str, object]:
    """Every key under ``prefix`` (named without it) with its value, comparable across crawls:
    hashes without CRAWL_TIME_FIELDS, sets and sorted sets as member sets (a sorted set's scores
    are ids or times), strings as they are; the blocks' HISTORY_KEYS left out."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    snapshot: dict[str, object] = {}
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            if key.rsplit(":", 1)[-1] in HISTORY_KEYS:
                continue
            kind = client.type(key)
            if kind == "hash":
                value: object = {
                    k: v for k, v in client.hgetall(key).items() if k not in CRAWL_TIME_FIELDS
                }
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "zset":
                value = set(client.zrange(key, 0, -1))
            elif kind == "string":
                value = client.get(key)
            else:
                value = kind
            snapshot[key[len(prefix) :]] = value
    finally:
        client.close()
    return snapshot


_LAST_MATERIALIZATION = """
query Last($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries { label ... on PathMetadataEntry { path } }
      }
    }
  }
}"""


def last_materialization(api: DagsterGraphQL, path: Sequence[str]) -> dict[str, Any] | None:
    """The latest materialization of an asset: ``run_id`` and its ``path`` metadata, if any."""
    data = api.query(_LAST_MATERIALIZATION, path=list(path))["assetOrError"]
    events = (data or {}).get("assetMaterializations") or []
    if not events:
        return None
    paths = [e["path"] for e in events[0]["metadataEntries"] if e.get("path")]
    return {"run_id": events[0]["runId"], "path": paths[0] if paths else None}


_LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def launch_assets(api: DagsterGraphQL, *paths: Sequence[str]) -> str:
    """Launch a run of the given unpartitioned assets (as *Materialize* in the UI); its id."""
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": list(path)} for path in paths],
        },
        "mode": "default",
    }
    data = api.query(_LAUNCH_RUN, params=params)["launchRun"]
    if data["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun: {data}")
    return data["run"]["runId"]
