"""Asset values as Parquet: readable without Dagster, refused when they do not match, and the
notebook's loaders (``gh_assets.explore``) on the same files and on Redis."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gh_assets import explore
from gh_assets.asset_storage import ParquetSchemaError, storage_resources
from gh_assets.defs.analysis.frame import github_users_frame
from gh_assets.defs.analysis.summary import github_user_summary
from gh_assets.partitions import PageWindow, add_missing_pages
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.storage import READ_REPORT, RedisStore
from gh_assets.summary import summarize
from gh_assets_devtools.services import free_port

from .conftest import github_users

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOWS = [PageWindow.number(k, 100) for k in range(2)]
ASSETS = [github_users, github_users_frame, github_user_summary]


def materialize_all(instance: dg.DagsterInstance, resources: dict) -> dg.ExecuteInProcessResult:
    add_missing_pages(instance, [window.key for window in WINDOWS])
    for window in WINDOWS:
        assert dg.materialize([github_users], partition_key=window.key, instance=instance,
                              resources=resources).success  # fmt: skip
    return dg.materialize(ASSETS, selection=ASSETS[1:], instance=instance, resources=resources)


@pytest.fixture
def crawled(standin, redis_url: str, key_prefix: str, tmp_path: Path, monkeypatch):
    """Two pages, the frame and the summary materialized in a real instance under ``tmp_path``
    (as ``DAGSTER_HOME``), Parquet under ``tmp_path/assets``."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    resources = {
        "github": GitHubResource(api_url=standin.url),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
        **storage_resources(str(tmp_path / "assets")),
    }
    with dg.DagsterInstance.get() as instance:
        result = materialize_all(instance, resources)
    return result, tmp_path / "assets"


def test_the_frame_and_summary_are_parquet_that_pandas_reads_without_dagster(
    crawled, store: RedisStore
) -> None:
    result, base = crawled
    path = result.asset_materializations_for_node("github_users_frame")[0].metadata["path"].value
    assert path == str(base / "github_users_frame.parquet")
    from_redis = store.read_frame()
    from_file = pd.read_parquet(path)  # plain pandas: no Dagster, no Redis
    pd.testing.assert_frame_equal(from_file, from_redis)
    assert len(from_file) > 100
    assert from_file.attrs[READ_REPORT] == from_redis.attrs[READ_REPORT]  # the checks' input
    created_at = pq.read_schema(path).field("created_at").type  # the registry's time, typed
    assert created_at == pa.timestamp("us", tz="UTC") and from_file["created_at"].notna().all()

    folder = base / "github_user_summary"
    assert sorted(p.name for p in folder.iterdir()) == [
        "by_type.parquet", "counters.parquet", "per_year.parquet", "top_followers.parquet",
    ]  # fmt: skip
    expected = summarize(from_redis)
    counters = pd.read_parquet(folder / "counters.parquet")
    pd.testing.assert_frame_equal(counters, expected.counters)
    loaded = explore.load_summary()  # the path from the instance's latest materialization
    pd.testing.assert_frame_equal(loaded.top_followers, expected.top_followers)
    pd.testing.assert_frame_equal(explore.load_users_frame(), from_redis)
    pd.testing.assert_frame_equal(explore.read_users(store), from_redis)


def test_a_parquet_file_that_does_not_match_the_schema_is_refused_with_path_and_column(
    crawled, standin, redis_url: str, key_prefix: str
) -> None:
    _, base = crawled
    path = base / "github_users_frame.parquet"
    frame = pd.read_parquet(path)
    frame.astype({"followers": "str"}).to_parquet(path)
    with pytest.raises(ParquetSchemaError) as refused:
        explore.load_users_frame()
    assert str(refused.value) == f"{path}: column 'followers' is str, expected int64"

    # The same refusal when Dagster loads it as an asset's input (the summary reads Redis's
    # aggregates, not the frame: it is still written).
    @dg.asset
    def reads_the_frame(github_users_frame: pd.DataFrame) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": len(github_users_frame)})

    resources = {
        "github": GitHubResource(api_url=standin.url),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
        **storage_resources(str(base)),
    }
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([*ASSETS, reads_the_frame], selection=[github_user_summary],
                              instance=instance, resources=resources).success  # fmt: skip
        failed = dg.materialize([*ASSETS, reads_the_frame], selection=[reads_the_frame],
                                instance=instance, resources=resources,
                                raise_on_error=False)  # fmt: skip
    assert not failed.success
    (failure,) = failed.get_step_failure_events()
    assert f"{path}: column 'followers' is str" in str(failure.step_failure_data.error)

    frame.drop(columns="login").to_parquet(path)
    with pytest.raises(ParquetSchemaError, match="column 'login' is missing"):
        explore.load_users_frame()


def test_a_damaged_parquet_file_is_one_line_naming_it_and_what_to_do(crawled) -> None:
    _, base = crawled
    frame = base / "github_users_frame.parquet"
    frame.write_bytes(frame.read_bytes()[:200])  # truncated, as by a full disk or a killed copy
    with pytest.raises(explore.ExploreError) as truncated:
        explore.load_users_frame()
    message = str(truncated.value)
    assert message.startswith(f"{frame}: not a whole Parquet file (Parquet magic bytes not found")
    assert message.endswith("): materialize github_users_frame again") and "\n" not in message

    counters = base / "github_user_summary" / "counters.parquet"
    counters.write_bytes(b"")
    with pytest.raises(explore.ExploreError) as empty:
        explore.load_summary()
    assert str(empty.value) == (
        f"{counters}: not a whole Parquet file (Parquet file size is 0 bytes): materialize "
        "github_user_summary again"
    )
    assert empty.value._render_traceback_() == [f"ExploreError: {empty.value}"]


def test_any_fsspec_uri_is_a_base(standin, redis_url: str, key_prefix: str) -> None:
    """An object-store URI works as well as a folder (fsspec's in-memory filesystem here)."""
    base = f"memory://gh-assets-test/{key_prefix.strip(':')}"
    resources = {
        "github": GitHubResource(api_url=standin.url),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
        **storage_resources(base),
    }
    with dg.instance_for_test() as instance:
        result = materialize_all(instance, resources)
    path = result.asset_materializations_for_node("github_users_frame")[0].metadata["path"].value
    assert path == f"{base}/github_users_frame.parquet"
    with fsspec.open(path, "rb") as file:
        stored = pd.read_parquet(file)
    assert len(stored) == len(result.output_for_node("github_users_frame")) > 100
    assert fsspec.filesystem("memory").exists(f"{base}/github_user_summary/counters.parquet")


def test_the_notebook_loaders_say_what_is_missing_in_one_line(
    store: RedisStore, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(explore.ExploreError) as no_instance:
        explore.load_users_frame()
    assert str(no_instance.value) == (
        f"no Dagster instance at {tmp_path / 'nowhere'}: set DAGSTER_HOME, or run `make demo` first"
    )
    assert no_instance.value._render_traceback_() == [f"ExploreError: {no_instance.value}"]

    home = tmp_path / "empty_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with pytest.raises(explore.ExploreError, match="github_users_frame has no stored value"):
        explore.load_users_frame()

    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("REDIS_URL", nowhere)
    with pytest.raises(explore.ExploreError, match=f"^REDIS_URL='{nowhere}': nothing answers"):
        explore.store()

    with pytest.raises(explore.ExploreError) as empty:
        explore.read_users(store)
    assert str(empty.value) == f"{store!r} holds no users: crawl first (`make demo`)"
    assert "\n" not in str(empty.value)


def test_pages_and_their_check_failures_for_a_notebook(crawled, store: RedisStore) -> None:
    pages = explore.read_pages(store)
    assert pages.index.tolist() == [window.key for window in WINDOWS]
    assert pages["users"].tolist() == [len(store.page_members(w.key)) for w in WINDOWS]
    assert str(pages["users"].dtype) == "int64"
    assert explore.page_check_failures(store).empty

    victim = min(store.page_members(WINDOWS[1].key))
    store.client.hset(store.user_key(victim), "followers", "many")
    failures = explore.page_check_failures(store)
    assert failures[["page", "check"]].values.tolist() == [[WINDOWS[1].key, "counters_valid"]]
    assert str(victim) in failures["detail"].iloc[0]
