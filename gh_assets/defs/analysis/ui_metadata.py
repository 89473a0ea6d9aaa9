"""Values as the Dagster UI shows them in an asset's metadata: tables and inline images."""

import base64

import dagster as dg
import pandas as pd


def image(png: bytes, title: str) -> dg.MarkdownMetadataValue:
    """A PNG inline in Markdown metadata (the UI has no image metadata type)."""
    encoded = base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    """A DataFrame as a table in the Dagster UI."""
    kinds = {"i": "int", "u": "int", "f": "float", "b": "bool"}
    columns = [
        dg.TableColumn(str(name), kinds.get(dtype.kind, "string"))
        for name, dtype in frame.dtypes.items()
    ]
    records = [
        dg.TableRecord({str(k): plain(v) for k, v in row.items()})
        for row in frame.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def plain(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)
