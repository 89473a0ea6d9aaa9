"""The Redis key schema (``schema``), every read and write of it (``store``), and the bulk read
of every user into a DataFrame (``bulk_read``). The atomic page write is ``write_page.lua``."""

from gh_assets.storage.bulk_read import (
    HASH_FIELDS,
    READ_BATCH,
    FrameBuilder,
    frame_from_batches,
)
from gh_assets.storage.schema import COUNTERS, FRAME_FIELDS, USER_FIELDS, iso_utc
from gh_assets.storage.store import PageWrite, RedisStore

# bench/writes.py times write_page's client-side preparation with these.
from gh_assets.storage.store import _check_user as _check_user
from gh_assets.storage.store import _flat as _flat
from gh_assets.storage.store import _ordered as _ordered

__all__ = [
    "COUNTERS",
    "FRAME_FIELDS",
    "HASH_FIELDS",
    "READ_BATCH",
    "USER_FIELDS",
    "FrameBuilder",
    "PageWrite",
    "RedisStore",
    "frame_from_batches",
    "iso_utc",
]
