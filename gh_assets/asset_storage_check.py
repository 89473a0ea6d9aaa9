"""Whether ``GH_ASSETS_ASSET_STORAGE`` can hold the Parquet files, asked when the settings are
read: an fsspec protocol whose package is missing (``s3://`` without ``s3fs``), or a folder under
a regular file, would otherwise fail only when the frame is stored, after the whole crawl."""

from __future__ import annotations

import os
from pathlib import Path


def storage_fault(base: str) -> str | None:
    """What keeps ``base`` (a folder, or an fsspec URI) from holding asset values, as the end of
    an "expected ..." line; None when nothing is known to."""
    if "://" in base:
        return _protocol_fault(base.split("://", 1)[0])
    path = Path(base)
    for folder in (path, *path.parents):  # the nearest part that exists decides
        if folder.is_dir():
            if not os.access(folder, os.W_OK | os.X_OK):
                return f"a folder this user may write ({folder} is not writable)"
            return None
        if folder.exists() or folder.is_symlink():
            return f"a folder ({folder} is a file, not a folder)"
    return None


def _protocol_fault(protocol: str) -> str | None:
    import fsspec
    from fsspec.registry import known_implementations

    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError:  # a known protocol whose package is not installed
        package = known_implementations[protocol]["class"].split(".")[0]
        return (
            f"an fsspec URI this host can open ({protocol}:// needs the {package} package: "
            f"pip install {package})"
        )
    except ValueError:
        return f"a folder or an fsspec URI ({protocol}:// is no protocol fsspec knows)"
    return None
