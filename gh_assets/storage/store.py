"""``RedisStore``: every read and write of the key schema (``schema.py``), on a single Redis or on
a Redis Cluster alike; one object, one connection, its parts by job in their own modules.

Works without Dagster, e.g. ``RedisStore.from_url("redis://localhost:6379/0").read_frame()`` in a
notebook. ``from_url`` finds out on first use whether the URL names a node of a cluster
(``INFO cluster``) and then uses redis-py's cluster client: nothing else to configure.

A facade of the parts (``gh_assets.storage`` lists them), not a layer: each part is a class over
the one connection (``Connection``), so ``RedisStore`` is every part at once and a caller that
needs one job may use that part alone (``FrameReads.from_url(url).read_frame()``).
"""

from __future__ import annotations

from gh_assets.storage.aggregate_reads import AggregateReads, StoredAggregates
from gh_assets.storage.forget import Forgetting
from gh_assets.storage.frame_read import FrameReads
from gh_assets.storage.page_aggregates import page_aggregates
from gh_assets.storage.page_write import PageWrite, PageWrites, PreparedPage, user_problem
from gh_assets.storage.schema_check import SchemaError
from gh_assets.storage.user_reads import UserReads

__all__ = [
    "PageWrite",
    "PreparedPage",
    "RedisStore",
    "SchemaError",
    "StoredAggregates",
    "page_aggregates",
    "user_problem",
]


class RedisStore(PageWrites, Forgetting, UserReads, FrameReads, AggregateReads):
    """Reads and writes the gh_assets key schema on one Redis database or one Redis Cluster.

    ``block`` (``schema.BLOCK`` unless a test wants pages spread over a small cluster) is part
    of the schema: it is stored in ``gh:schema`` by the first write, and a store of another
    block size refuses the data (``SchemaError``), as it refuses data in the old key schema.
    """
