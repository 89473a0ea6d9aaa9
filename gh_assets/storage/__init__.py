"""The Redis key schema (``schema``), every read and write of it on a single Redis or a Redis
Cluster (``store``), the bulk read of every user into a DataFrame (``bulk_read``, typed by
``frame_builder``) and the conversion of a store in the old key schema (``migrate``). The atomic
page write is ``write_page.lua``, the login buckets' update ``logins.lua``; ``pages_users.lua``
sums a block's pages' users beside a bulk read's snapshot of the block's ids.
"""

from gh_assets.storage.bulk_read import HASH_FIELDS, READ_BATCH, READ_REPORT, ReadReport
from gh_assets.storage.frame_builder import FrameBuilder, frame_from_batches
from gh_assets.storage.schema import (
    BLOCK,
    COUNTERS,
    FRAME_FIELDS,
    LOGIN_BUCKETS,
    USER_FIELDS,
    ascii_lower,
    iso_utc,
)
from gh_assets.storage.store import PageWrite, RedisStore, SchemaError, user_problem

__all__ = [
    "BLOCK",
    "COUNTERS",
    "FRAME_FIELDS",
    "HASH_FIELDS",
    "LOGIN_BUCKETS",
    "READ_BATCH",
    "READ_REPORT",
    "USER_FIELDS",
    "FrameBuilder",
    "PageWrite",
    "ReadReport",
    "RedisStore",
    "SchemaError",
    "ascii_lower",
    "frame_from_batches",
    "iso_utc",
    "user_problem",
]
