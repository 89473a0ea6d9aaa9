"""Pages: fixed windows of GitHub user IDs, one Dagster partition each.

A page key names its window, ``0000000001-0000000100`` for IDs 1..100, so a key alone says which
users it holds (a failed page re-run lists the same IDs), keys sort in ID order, and changing the
window width later adds new keys instead of changing what old ones meant.

Pages are dynamic partitions: they are added by a sensor (and by ``gh-assets demo``) rather than
fixed in code, so the crawl can grow with GitHub without a redeploy.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg

from gh_assets.settings import Settings, SettingsError
from gh_assets.storage import RedisStore
from gh_assets.storage.schema import KEY_DIGITS, PAGE_KEY

github_pages = dg.DynamicPartitionsDefinition(name="github_pages")


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
    def width(self) -> int:
        return self.last_id - self.first_id + 1

    @property
    def key(self) -> str:
        return f"{self.first_id:0{KEY_DIGITS}d}-{self.last_id:0{KEY_DIGITS}d}"

    @classmethod
    def from_key(cls, key: str) -> PageWindow:
        match = PAGE_KEY.match(key)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise PageKeyError(
                f"not a page key: {key!r} (expected its first and last user ID, 10 digits each, "
                "the first not above the last, like 0000000001-0000000100)"
            )
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def number(cls, k: int, width: int) -> PageWindow:
        """Page ``k`` (from 0) of a crawl with ``width`` IDs per page: IDs k·W+1 .. (k+1)·W."""
        return cls(k * width + 1, (k + 1) * width)


class PageKeyError(SettingsError):
    """A page key that names no window (a command's ``--pages``); one line."""


def page_keys(text: str) -> list[str]:
    """Comma-separated page keys (``--pages``), each checked: a bad one is a ``PageKeyError``."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise PageKeyError(f"--pages {text!r}: expected page keys like 0000000001-0000000100")
    return [PageWindow.from_key(key).key for key in keys]


def default_page_keys(settings: Settings) -> list[str]:
    """Pages 0 .. ``settings.pages``-1 of ``settings.page_size`` IDs each."""
    return [PageWindow.number(k, settings.page_size).key for k in range(settings.pages)]


class PageOverlapError(SettingsError):
    """New pages would share IDs with registered ones: their users would be counted twice."""


def add_missing_pages(
    instance: dg.DagsterInstance, keys: list[str], chunk: int = 5_000, *, chosen: bool = False
) -> list[str]:
    """Register page keys the instance lacks, in chunks (SQLite refuses ~36k at once); none at all
    when one of them overlaps a registered page or another of them (``PageOverlapError``, one
    line saying the way out; ``chosen``: the keys were named by ``--pages``, not configured)."""
    known = set(instance.get_dynamic_partitions(github_pages.name))
    missing = [key for key in dict.fromkeys(keys) if key not in known]
    clashes = overlaps(known, missing)
    if clashes:
        raise PageOverlapError(overlap_message(*next(iter(clashes.items())), chosen=chosen))
    windows = sorted(PageWindow.from_key(key) for key in missing)
    for before, after in itertools.pairwise(windows):
        if after.first_id <= before.last_id:
            raise PageOverlapError(f"pages {before.key} and {after.key} overlap: pick one")
    for start in range(0, len(missing), chunk):
        instance.add_dynamic_partitions(github_pages.name, missing[start : start + chunk])
    return missing


def overlaps(known: Iterable[str], keys: Iterable[str]) -> dict[str, list[str]]:
    """Each key of ``keys`` whose window shares IDs with pages of ``known``, mapped to those
    pages in ID order."""
    pages = sorted(PageWindow.from_key(key) for key in known)
    firsts = [page.first_id for page in pages]
    # Running maximum of the ends: ends need not be sorted when two widths are registered.
    ends = list(itertools.accumulate((page.last_id for page in pages), max))
    clashes: dict[str, list[str]] = {}
    for key in keys:
        window = PageWindow.from_key(key)
        start = bisect.bisect_left(ends, window.first_id)  # every page before ends before it
        stop = bisect.bisect_right(firsts, window.last_id)  # every page after starts after it
        hit = [page.key for page in pages[start:stop] if page.last_id >= window.first_id]
        if hit:
            clashes[key] = hit
    return clashes


def overlap_message(key: str, pages: list[str], *, chosen: bool = False) -> str:
    """Why page ``key`` is refused, overlapping registered ``pages``, and the way out; a key
    ``chosen`` by ``--pages`` is named as such, not blamed on GH_ASSETS_PAGE_SIZE."""
    width = PageWindow.from_key(key).width
    old = Counter(PageWindow.from_key(page).width for page in pages).most_common(1)[0][0]
    shown = pages[0] + (" …" if len(pages) > 1 else "")
    count = f"{len(pages)} registered page{'s' if len(pages) > 1 else ''}"
    if old != width and chosen:
        return (
            f"--pages {key} is {width} IDs wide and overlaps {count} of {old} IDs ({shown}); "
            f"name pages of {old} IDs instead, or forget the old pages first: "
            f"gh-assets forget-pages --width {old}"
        )
    if old != width:
        return (
            f"GH_ASSETS_PAGE_SIZE={width} gives page {key}, which overlaps {count} of another "
            f"width ({shown}); keep GH_ASSETS_PAGE_SIZE={old}, or forget the old pages first: "
            f"gh-assets forget-pages --width {old}"
        )
    return (
        f"page {key} overlaps {count} ({shown}); crawl those instead, or forget them first: "
        f"gh-assets forget-pages --pages {','.join(pages)}"
    )


def pages_of_width(instance: dg.DagsterInstance, width: int) -> list[str]:
    """The registered pages of ``width`` IDs each, in ID order."""
    keys = instance.get_dynamic_partitions(github_pages.name)
    return sorted(key for key in keys if PageWindow.from_key(key).width == width)


def forget_pages(
    instance: dg.DagsterInstance,
    store: RedisStore,
    keys: list[str],
    keep: Sequence[PageWindow] = (),
) -> int:
    """Unregister pages and delete their bookkeeping in Redis (``gh:{b…}:page:{key}``, its member
    and gone sets, its aggregates, its entries in its block's page set, ``gh:pages`` and
    ``gh:deferred``: ``RedisStore.forget_pages``), e.g. before
    changing the page width. Their users inside a window of ``keep`` (the pages that will be
    crawled instead) stay, with their ETags, to be claimed as mostly free 304s; the others are
    deleted, so no user is left that no page holds. Returns how many users were deleted. Run it
    with no crawl running."""
    dropped = 0
    for start in range(0, len(keys), 1_000):
        chunk = keys[start : start + 1_000]
        members = set().union(*(store.page_members(key) for key in chunk))
        orphans = [i for i in members if not any(w.first_id <= i <= w.last_id for w in keep)]
        dropped += store.delete_users(orphans)
        store.forget_pages(chunk)
    for key in keys:  # after Redis: a page still registered is merely crawled again
        instance.delete_dynamic_partition(github_pages.name, key)
    return dropped


def pages_up_to(frontier: int, newest_id: int, width: int, room: int) -> list[str]:
    """Keys of the pages of ``width`` IDs after ``frontier`` that reach ``newest_id``, at most
    ``room`` of them."""
    keys = []
    first = frontier + 1
    while first <= newest_id and len(keys) < room:
        keys.append(PageWindow(first, first + width - 1).key)
        first += width
    return keys
