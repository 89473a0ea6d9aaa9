"""Asset values as Parquet under one base URI, so pandas, DuckDB, Polars or Spark read them
without Dagster and without Redis.

Dagster's ``UPathIOManager`` does the paths, partitions and fsspec (any ``s3://``, ``gs://`` or
local base); this module only says how a value becomes Parquet and back: a DataFrame is one file
``<base>/<asset>.parquet``, checked on load against the asset's declared
``dagster/column_schema``; a ``UserSummary`` is a folder ``<base>/<asset>/`` of one file per table.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd
from pydantic import Field

from gh_assets.summary import UserSummary

if TYPE_CHECKING:
    from upath import UPath

COLUMN_SCHEMA = "dagster/column_schema"  # definition metadata an asset declares its columns in
LOCAL_PROTOCOLS = ("", "file", "local")


class ParquetSchemaError(ValueError):
    """A Parquet file is not what its asset declares; one line naming the path and the column."""


class ParquetReadError(ValueError):
    """A file that is no whole Parquet file (truncated, empty, another format); one line naming
    it, instead of pyarrow's traceback."""


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The schema of ``frame`` as Dagster shows it: each column's pandas dtype."""
    return dg.TableSchema(
        columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]
    )


def check_schema(frame: pd.DataFrame, schema: dg.TableSchema, path: object) -> None:
    """Refuse ``frame`` (read from ``path``) unless its columns and dtypes are ``schema``'s."""
    expected = {column.name: column.type for column in schema.columns}
    for name, wanted in expected.items():
        if name not in frame.columns:
            raise ParquetSchemaError(f"{path}: column {name!r} is missing (expected {wanted})")
        found = str(frame[name].dtype)
        if found != wanted:
            raise ParquetSchemaError(f"{path}: column {name!r} is {found}, expected {wanted}")
    extra = [str(name) for name in frame.columns if name not in expected]
    if extra:
        raise ParquetSchemaError(f"{path}: column {extra[0]!r} is not in the asset's schema")


def read_frame(path: UPath | str, schema: dg.TableSchema | None = None) -> pd.DataFrame:
    """One Parquet file as a DataFrame (its ``attrs`` restored), checked against ``schema``."""
    import pyarrow as pa
    from upath import UPath

    path = UPath(path)
    try:
        with path.open("rb") as file:
            frame = pd.read_parquet(file)
    except pa.ArrowException as error:
        reason = str(error).rpartition("': ")[2]  # without "Could not open ... '<Buffer>'"
        text = " ".join(reason.split())
        raise ParquetReadError(f"{path}: not a whole Parquet file ({text})") from None
    if schema is not None:
        check_schema(frame, schema, path)
    return frame


def write_frame(frame: pd.DataFrame, path: UPath) -> None:
    """``frame`` to ``path``; a local file is replaced whole, so no reader sees half of one (an
    object store's PUT is already atomic)."""
    if path.protocol not in LOCAL_PROTOCOLS:
        with path.open("wb") as file:
            frame.to_parquet(file)
        return
    partial = f"{path.path}.{uuid.uuid4().hex[:8]}.partial"
    try:
        frame.to_parquet(partial)
        os.replace(partial, path.path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


class _FrameParquet(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a DataFrame")
        write_frame(obj, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        upstream = context.upstream_output
        declared = upstream.definition_metadata if upstream is not None else None
        return read_frame(path, (declared or {}).get(COLUMN_SCHEMA))


class _TablesParquet(dg.UPathIOManager):
    extension = None  # a folder: one Parquet file per table

    def dump_to_path(self, context: dg.OutputContext, obj: UserSummary, path: UPath) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for name, table in obj.tables().items():
            write_frame(table, path / f"{name}.parquet")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> UserSummary:
        return UserSummary.from_tables(
            {name: read_frame(path / f"{name}.parquet") for name in UserSummary.TABLES}
        )


class _StorageBase(dg.ConfigurableIOManagerFactory):
    base_path: str | None = Field(
        default=None,
        description="Base URI of the Parquet files (GH_ASSETS_ASSET_STORAGE), e.g. "
        "s3://bucket/prefix; unset: the instance's storage folder ($DAGSTER_HOME/storage).",
    )

    def _base(self, context: dg.InitResourceContext) -> UPath:
        from upath import UPath

        if self.base_path:
            return UPath(self.base_path)
        if context.instance is None:
            raise dg.DagsterInvariantViolationError("no base_path and no Dagster instance")
        return UPath(context.instance.storage_directory())


class ParquetIOManager(_StorageBase):
    """DataFrames as ``<base>/<asset>.parquet``; the ``path`` is in each materialization's
    metadata, and a file that does not match the asset's declared columns is refused on load."""

    def create_io_manager(self, context: dg.InitResourceContext) -> _FrameParquet:
        return _FrameParquet(self._base(context))


class SummaryIOManager(_StorageBase):
    """A ``UserSummary`` as ``<base>/<asset>/{counters,by_type,top_followers}.parquet``."""

    def create_io_manager(self, context: dg.InitResourceContext) -> _TablesParquet:
        return _TablesParquet(self._base(context))


def storage_resources(base_path: str | None) -> dict[str, Any]:
    """The IO managers of the code location, both under ``base_path``."""
    return {
        "io_manager": ParquetIOManager(base_path=base_path),
        "summary_io_manager": SummaryIOManager(base_path=base_path),
    }
