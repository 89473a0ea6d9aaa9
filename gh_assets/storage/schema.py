"""The Redis key schema's constants and arithmetic: blocks of ``BLOCK`` IDs (``block_of``), login
buckets (``login_bucket``, ``ascii_lower``), page keys (``page_window``) and ``gh:schema``.

The schema is a contract for other tools and notebooks, stated key by key in docs/key-schema.md
(change the two together). Every key of a block shares the hash tag ``{b<b>}`` (one Cluster slot),
so a page's write is one atomic script on one node (``write_page.lua``); the login buckets,
``gh:pages``, ``gh:blocks``, ``gh:deferred`` and ``gh:schema`` are each in a slot of their own.
A page's ``started`` is ``crawl_order``'s; a block's kept merge is ``gh_assets.block_merges``'.
Nothing needs ``KEYS`` or a scan of the keyspace.
"""

from __future__ import annotations

import json
import re
import string
import zlib
from datetime import UTC, datetime

from gh_assets.user_fields import COUNTERS as COUNTERS
from gh_assets.user_fields import DETAIL_NAMES
from gh_assets.user_fields import TIMES as TIMES

FRAME_FIELDS = ("id", "login", "type", *DETAIL_NAMES, "fetched_at")
USER_FIELDS = (*FRAME_FIELDS, "etag", "etag_auth")
# A page histogram per counter (accounts per value) and per time (accounts per UTC year).
HISTOGRAMS = (*COUNTERS, *TIMES)
PAGE_TOP = 10  # accounts in a page's ``top`` list: the summary's top list is within their union
# A block's keys that record how it was written (a write counter) and a cache of its merged
# aggregates, not its data: two stores holding the same users may differ in them.
HISTORY_KEYS = ("version", "summary")
# Hash fields that differ between two crawls of the same users: when a crawl fetched, began, and
# how long it waited for the budget.
CRAWL_TIME_FIELDS = frozenset({"fetched_at", "started", "budget_wait"})
SCHEMA_VERSION = 2
# Every key's prefix unless GH_ASSETS_KEY_PREFIX names another (one store per prefix).
KEY_PREFIX = "gh:"
BLOCK = 100_000  # user IDs per block: 2,500 blocks for GitHub's 250 M IDs
# Login buckets: enough to spread evenly over any number of shards a crawl needs (4,096 of the
# Cluster's 16,384 slots), few enough to stay compact: a bucket is a listpack up to
# hash-max-listpack-entries logins (22 B a login; 4,096 x 512 = 2 M users on Valkey), beyond
# that a hashtable (64 B), as the one global hash always was. 2^20 buckets would keep listpacks
# at GitHub's scale (about 7 GB less at 167 M users) but cost a key per login (93 B) below a
# million users; the count is stored in gh:schema, so it can change for a new store.
LOGIN_BUCKETS = 4_096
KEY_DIGITS = 10  # a page key: first and last id of its window, 10 digits each
PAGE_KEY = re.compile(rf"^(\d{{{KEY_DIGITS}}})-(\d{{{KEY_DIGITS}}})$")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(login: str) -> str:
    """A login's field in its login bucket: A-Z lower-cased, every other character kept.

    The same rule as Lua's ``string.lower`` in ``write_page.lua`` (bytes, C locale), so both
    sides agree on any login, even a non-ASCII one from a hostile server (GitHub's are ASCII).
    """
    return login.translate(_ASCII_LOWER)


def login_bucket(login: str, buckets: int = LOGIN_BUCKETS) -> int:
    """The bucket of ``login`` (any case): CRC-32 of its ASCII-lower-cased UTF-8 bytes, modulo
    ``buckets``. Stable across processes and languages, unlike Python's salted ``hash``."""
    return zlib.crc32(ascii_lower(login).encode()) % buckets


def block_of(user_id: int | str, block: int = BLOCK) -> int:
    """The block holding ``user_id`` (ids start at 1)."""
    return (int(user_id) - 1) // block


def page_window(page: str) -> tuple[int, int]:
    """The inclusive ID window a page key names (``0000000001-0000000100``); ValueError if
    ``page`` is not a page key."""
    match = PAGE_KEY.match(page)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"not a page key: {page!r} (expected like 0000000001-0000000100)")
    return int(match[1]), int(match[2])


def page_block(page: str, block: int = BLOCK) -> int:
    """The block holding page ``page``; ValueError when its window spans two blocks."""
    first, last = page_window(page)
    if block_of(first, block) != block_of(last, block):
        raise ValueError(
            f"page {page} spans blocks of {block:,} IDs: page widths must divide {block:,}"
        )
    return block_of(first, block)


def schema_text(block: int = BLOCK, login_buckets: int = LOGIN_BUCKETS) -> str:
    """The value of ``gh:schema`` for a store of these parameters."""
    return json.dumps({"version": SCHEMA_VERSION, "block": block, "login_buckets": login_buckets})


def iso_utc(moment: datetime) -> str:
    """The one timestamp format of the schema: ISO-8601, UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
