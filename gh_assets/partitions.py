"""Pages: fixed windows of GitHub user IDs, one Dagster partition each.

A page key names its window, ``0000000001-0000000100`` for IDs 1..100, so a key alone says which
users it holds (a failed page re-run lists the same IDs), keys sort in ID order, and changing the
window width later adds new keys instead of changing what old ones meant.

Pages are dynamic partitions: they are added by a sensor (and by ``gh-assets demo``) rather than
fixed in code, so the crawl can grow with GitHub without a redeploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

from gh_assets.settings import Settings

KEY_DIGITS = 10

github_pages = dg.DynamicPartitionsDefinition(name="github_pages")

_KEY = re.compile(rf"^(\d{{{KEY_DIGITS}}})-(\d{{{KEY_DIGITS}}})$")


@dataclass(frozen=True, order=True)
class PageWindow:
    """The inclusive ID range ``first_id..last_id`` of one page."""

    first_id: int
    last_id: int

    def __post_init__(self) -> None:
        if not 1 <= self.first_id <= self.last_id:
            raise ValueError(f"not a page window: {self.first_id}..{self.last_id}")

    @property
    def since(self) -> int:
        """The ``GET /users?since=`` cursor that starts this window."""
        return self.first_id - 1

    @property
    def key(self) -> str:
        return f"{self.first_id:0{KEY_DIGITS}d}-{self.last_id:0{KEY_DIGITS}d}"

    @classmethod
    def from_key(cls, key: str) -> PageWindow:
        match = _KEY.match(key)
        if not match:
            raise ValueError(f"not a page key: {key!r} (expected like 0000000001-0000000100)")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def number(cls, k: int, width: int) -> PageWindow:
        """Page ``k`` (from 0) of a crawl with ``width`` IDs per page: IDs k·W+1 .. (k+1)·W."""
        return cls(k * width + 1, (k + 1) * width)


def default_page_keys(settings: Settings) -> list[str]:
    """Pages 0 .. ``settings.pages``-1 of ``settings.page_size`` IDs each."""
    return [PageWindow.number(k, settings.page_size).key for k in range(settings.pages)]


def add_missing_pages(
    instance: dg.DagsterInstance, keys: list[str], chunk: int = 5_000
) -> list[str]:
    """Register page keys the instance lacks, in chunks (SQLite refuses ~36k at once)."""
    known = set(instance.get_dynamic_partitions(github_pages.name))
    missing = [key for key in keys if key not in known]
    for start in range(0, len(missing), chunk):
        instance.add_dynamic_partitions(github_pages.name, missing[start : start + chunk])
    return missing
