"""The Redis key schema (``schema``, its key names ``keys``) and every read and write of it on a
single Redis or a Redis Cluster: ``RedisStore`` (``store``) joins the parts, each a module by
job: ``connection`` and ``cluster_steps`` (the client, commands per node, slot-move retries),
``schema_check``, ``page_write`` and ``logins`` (the atomic page write, ``write_page.lua``, and
the login buckets, ``logins.lua``), ``bookkeeping`` and ``registration`` (what is recorded about
pages), ``user_reads``, ``frame_read`` (every user into a DataFrame: ``bulk_read``, typed by
``frame_builder``; ``pages_users.lua`` sums a block's pages' users beside its snapshot of ids),
``aggregate_reads`` (``read_aggregates.lua``), ``forget``, and ``migrate`` (a store in the old key
schema converted). No Dagster: the Dagster layer (``gh_assets.resources``) wraps it.
"""

from gh_assets.storage.bulk_read import HASH_FIELDS, READ_BATCH, READ_REPORT, ReadReport
from gh_assets.storage.frame_builder import FrameBuilder, frame_from_batches
from gh_assets.storage.schema import (
    BLOCK,
    COUNTERS,
    FRAME_FIELDS,
    KEY_PREFIX,
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
    "KEY_PREFIX",
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
