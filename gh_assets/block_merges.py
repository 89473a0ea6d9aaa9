"""The summary's cache of each block's merged aggregates (``gh:{b…}:summary``), reused while the
block's version holds and only when this release merged it: a release that changes what a merge
holds (the top list's length, a field) merges again instead of serving the old one."""

from __future__ import annotations

import json

from gh_assets.summary import TOP_N

# The shape of a merge's state (``aggregate_merge.Merger.state``): move the number with any change
# to it; TOP_N, the top list's length, is part of it by itself.
FORMAT = f"1/top{TOP_N}"


def cache_text(version: int, state: dict) -> str:
    """What ``gh:{b…}:summary`` keeps: ``state`` merged at the block's ``version``."""
    return json.dumps({"version": version, "format": FORMAT, **state})


def reusable(stored: bytes | None, version: int) -> dict | None:
    """A block's stored merge, when it was made at ``version`` in this ``FORMAT`` (else it is out
    of date, of another release, or unreadable: merged again, and replaced)."""
    if stored is None:
        return None
    try:
        state = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(state, dict):
        return None
    return state if (state.get("version"), state.get("format")) == (version, FORMAT) else None
