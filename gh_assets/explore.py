"""What a notebook imports (``notebooks/explore.ipynb``): the users frame from the materialized
asset (its Parquet file) or straight from Redis, the summary, the pages' bookkeeping and what the
page checks find. Settings come from the environment as for the code location; every failure is
one line (``ExploreError``, which IPython shows without a traceback)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import redis

from gh_assets.asset_storage import ParquetReadError, column_schema, read_frame
from gh_assets.page_audit import page_findings
from gh_assets.partitions import PageWindow
from gh_assets.preflight import redis_fault
from gh_assets.settings import Settings
from gh_assets.storage import RedisStore, SchemaError, frame_from_batches
from gh_assets.summary import UserSummary

FRAME_ASSET = "github_users_frame"
SUMMARY_ASSET = "github_user_summary"
PAGE_COLUMNS = {  # the page bookkeeping of the key schema, typed
    "first_id": "int64",
    "last_id": "int64",
    "listed": "int64",
    "users": "int64",
    "gone": "int64",
    "not_modified": "int64",
    "reused": "int64",
    "requests": "int64",
    "budget_wait": "float64",
}


class ExploreError(RuntimeError):
    """Data a notebook asked for is not there; the message says what to do."""

    def _render_traceback_(self) -> list[str]:  # IPython: this line instead of a traceback
        return [f"{type(self).__name__}: {self}"]


def dagster_home() -> Path:
    """``DAGSTER_HOME``, or, when it is unset, the instance ``gh-assets demo/dev`` made under
    ``GH_ASSETS_DATA_DIR`` (``.data``) in the folder ``make`` ran in: the working directory or
    the nearest one above it holding such an instance (Jupyter and VS Code start a notebook's
    kernel in ``notebooks/``), else the checkout this package was installed from."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return Path(home)
    data = Path(os.environ.get("GH_ASSETS_DATA_DIR", ".data")) / "dagster_home"
    here = Path.cwd()
    for folder in (here, *here.parents, Path(__file__).resolve().parents[1]):
        if (folder / data / "dagster.yaml").is_file():
            return (folder / data).resolve()
    return (here / data).resolve()


def asset_path(asset: str = FRAME_ASSET) -> str:
    """Where the latest materialization of ``asset`` stored its value (its ``path`` metadata)."""
    import dagster as dg

    home = dagster_home()
    if not (home / "dagster.yaml").exists():
        raise ExploreError(
            f"no Dagster instance at {home}: set DAGSTER_HOME, or run `make demo` first"
        )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    materialization = event.asset_materialization if event else None
    path = materialization.metadata.get("path") if materialization else None
    if path is None:
        raise ExploreError(
            f"{asset} has no stored value in the Dagster instance at {home}: materialize it "
            "(`make demo`, or Materialize in the UI)"
        )
    return str(path.value)


def load_users_frame(path: str | None = None) -> pd.DataFrame:
    """The users frame as the asset last stored it (Parquet), its columns checked."""
    path = path or asset_path(FRAME_ASSET)
    try:
        return read_frame(path, column_schema(frame_from_batches([])))
    except FileNotFoundError:
        raise ExploreError(f"{path} does not exist: materialize {FRAME_ASSET} again") from None
    except ParquetReadError as error:
        raise ExploreError(f"{error}: materialize {FRAME_ASSET} again") from None


def load_summary(path: str | None = None) -> UserSummary:
    """The summary as the asset last stored it: a folder of one Parquet file per table."""
    path = (path or asset_path(SUMMARY_ASSET)).rstrip("/")
    try:
        return UserSummary.from_tables(
            {name: read_frame(f"{path}/{name}.parquet") for name in UserSummary.TABLES}
        )
    except FileNotFoundError:
        raise ExploreError(f"{path} is incomplete: materialize {SUMMARY_ASSET} again") from None
    except ParquetReadError as error:
        raise ExploreError(f"{error}: materialize {SUMMARY_ASSET} again") from None


def store(settings: Settings | None = None) -> RedisStore:
    """The Redis the crawl writes to (``REDIS_URL``, ``GH_ASSETS_KEY_PREFIX``)."""
    settings = settings or Settings.from_env()
    users = RedisStore.from_url(settings.redis_url, settings.key_prefix, block=settings.block)
    try:
        users.client.ping()
        users.check_schema()
    except (redis.RedisError, SchemaError) as error:
        users.close()
        raise ExploreError(redis_fault(settings.redis_url, error)) from None
    return users


def read_users(users: RedisStore | None = None) -> pd.DataFrame:
    """Every stored user straight from Redis (``RedisStore.read_frame``); none is an error."""
    users = users or store()
    frame = users.read_frame()
    if frame.empty:
        raise ExploreError(f"{users!r} holds no users: crawl first (`make demo`)")
    return frame


def read_pages(users: RedisStore | None = None) -> pd.DataFrame:
    """One row per stored page: its bookkeeping (the key schema's ``page`` hash), typed."""
    users = users or store()
    fetched = users.pages_fetched_at()
    rows = users.pages_meta()
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(PAGE_COLUMNS))
    # Redis holds text: numbers first, then 0 for a field a page does not record.
    frame = frame.apply(pd.to_numeric).fillna(0).astype(PAGE_COLUMNS)
    frame["fetched_at"] = pd.Series(fetched).reindex(frame.index)
    return frame.rename_axis("page").sort_values("first_id")


def page_check_failures(users: RedisStore | None = None) -> pd.DataFrame:
    """The stored pages a page check fails on now: page, check, what is off (no rows: none)."""
    users = users or store()
    windows = [PageWindow.from_key(page) for page in users.pages_fetched_at()]
    rows = [
        {"page": page, "check": check, "detail": detail}
        for check, pages in page_findings(users, windows).items()
        for page, detail in pages.items()
    ]
    return pd.DataFrame(rows, columns=["page", "check", "detail"])
