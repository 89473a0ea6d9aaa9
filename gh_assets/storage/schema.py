"""The Redis key schema, a contract for other tools and notebooks (prefix ``gh:`` by default).

One schema for a single Redis and for Redis Cluster. User IDs fall into fixed **blocks** of
``BLOCK`` (100,000) IDs, block ``b = (id - 1) // BLOCK``; a page's width divides ``BLOCK``, so a
page lies in one block. Every key of a block shares the hash tag ``{b<b>}`` (one Cluster slot),
so a page's write is one atomic script on one node:

- ``gh:{b<b>}:user:<id>``: hash ``id login type public_repos public_gists followers following
  fetched_at [etag etag_auth]``; integers as decimal strings, ``fetched_at`` ISO-8601 UTC,
  ``etag`` the entity tag without ``W/`` and quotes, ``etag_auth`` which credential got it.
- ``gh:{b<b>}:ids``: sorted set of the block's stored user ids (score = id).
- ``gh:{b<b>}:pages``: set of the block's written pages (what a bulk read's snapshot of the
  block sums the pages' users over, atomically with its ids: ``gh:pages`` is in another slot).
- ``gh:{b<b>}:unpaged``: set of the block's user ids no page holds (``forget-pages`` kept them for
  the wider pages replacing theirs); the first write of the page whose window holds one claims it.
- ``gh:{b<b>}:version``: counter every page write (and forgetting a page) moves.
- ``gh:{b<b>}:summary``: JSON of the block's pages' aggregates merged (``gh_assets.aggregates``)
  with the version they were merged at and the ``format`` of the release that merged them
  (``gh_assets.block_merges``): reused by the next summary while both hold.
- ``gh:{b<b>}:page:<page>``: hash of page bookkeeping (window, counts, ``fetched_at``, and
  ``started``: when the crawl that wrote it started, microseconds by Redis's clock; a write of a
  crawl that started earlier is refused, ``storage.crawl_order``).
- ``gh:{b<b>}:page:<page>:users`` / ``:gone``: sets of the page's user ids and of the ids listed
  but deleted before their details were read.
- ``gh:{b<b>}:page:<page>:staged``: hash id -> the user's hash as JSON (or ``gone``), answers a
  page got before an error stopped it, reused by its re-run; expires after 3 hours, and the
  page's write removes it. Not part of the stored users.
- ``gh:{b<b>}:page:<page>:agg``: hash of the page's partial aggregates, replaced with the page by
  the same atomic write (absent while the page holds no user): ``users``; per account type
  ``type:{type}`` (accounts) and ``first:{type}`` (its lowest id); per counter
  ``{counter}:count``, ``{counter}:sum``, ``{counter}:sumsq`` (sum of squares), ``{counter}:min``,
  ``{counter}:max`` and per type ``{counter}:sum:{type}``; ``top``, JSON
  ``[[id, login, type, followers], ...]`` (strings) of the page's ``PAGE_TOP`` most followed
  accounts, ties to the lower id.
- ``gh:{b<b>}:page:<page>:hist:<counter>``: hash value -> accounts of the page with that value,
  one per counter (written and removed with ``:agg``). Merged over the pages in ``gh:pages`` they
  give the exact distribution, so every statistic of the summary without reading a user.

Outside the blocks, each key its own slot:

- ``gh:logins:{<n>}``: hash login lower-cased in ASCII only (``ascii_lower``) -> id, for the
  logins whose ``login_bucket`` is ``n`` (``LOGIN_BUCKETS`` buckets by CRC-32). Written right
  after the page's script; a lookup checks the login against the user's hash.
- ``gh:pages``: sorted set page -> ``fetched_at`` as epoch seconds (oldest pages first); written
  after the page's script: a page is complete once it is here with its new time.
- ``gh:blocks``: sorted set of the blocks holding data (member and score = the block number):
  what bulk reads visit. Not derived from ``gh:pages``: ``forget-pages`` keeps the users the
  next pages will hold while no page of their block is registered, and a read need not parse
  every page key to find 2,500 blocks.
- ``gh:deferred``: sorted set page -> epoch seconds after which a page that hit a long rate
  limit may run again; a successful write of the page removes it.
- ``gh:schema``: string, JSON ``{"version": 2, "block": 100000, "login_buckets": 4096}``: the
  schema the data was written with; a store of another block size refuses it.

Nothing needs ``KEYS`` or a scan of the keyspace.
"""

from __future__ import annotations

import json
import re
import string
import zlib
from datetime import UTC, datetime

COUNTERS = ("public_repos", "public_gists", "followers", "following")
FRAME_FIELDS = ("id", "login", "type", *COUNTERS, "fetched_at")
USER_FIELDS = (*FRAME_FIELDS, "etag", "etag_auth")
PAGE_TOP = 10  # accounts in a page's ``top`` list: the summary's top list is within their union
# A block's keys that record how it was written (a write counter) and a cache of its merged
# aggregates, not its data: two stores holding the same users may differ in them.
HISTORY_KEYS = ("version", "summary")
SCHEMA_VERSION = 2
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
