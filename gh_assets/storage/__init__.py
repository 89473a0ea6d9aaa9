"""The Redis key schema (``schema``), every read and write of it (``store``), and the bulk read
of every user into a DataFrame (``bulk_read``, typed by ``frame_builder``). The atomic page write
is ``write_page.lua``; ``pages_users.lua`` sums the pages' users beside a bulk read's id snapshot.
"""

from gh_assets.storage.bulk_read import HASH_FIELDS, READ_BATCH, READ_REPORT, ReadReport
from gh_assets.storage.frame_builder import FrameBuilder, frame_from_batches
from gh_assets.storage.schema import COUNTERS, FRAME_FIELDS, USER_FIELDS, ascii_lower, iso_utc
from gh_assets.storage.store import PageWrite, RedisStore, user_problem

__all__ = [
    "COUNTERS",
    "FRAME_FIELDS",
    "HASH_FIELDS",
    "READ_BATCH",
    "READ_REPORT",
    "USER_FIELDS",
    "FrameBuilder",
    "PageWrite",
    "ReadReport",
    "RedisStore",
    "ascii_lower",
    "frame_from_batches",
    "iso_utc",
    "user_problem",
]
