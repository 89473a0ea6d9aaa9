"""A page write on a Redis Cluster whose primary stops answering waits for the failover, and says
so once, naming the node: the write was refused (or held for as long as the failover took) with
nothing printed. The write is idempotent, so trying it again on the promoted replica finishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from redis.cluster import RedisCluster

log = logging.getLogger(__name__)
NODE_FAULTS = (redis.ConnectionError, redis.TimeoutError)  # a node gone or hung


class FailoverWait:
    """``RedisStore.write_page``'s retry hooks for one page: ``retryable`` adds a cluster node's
    faults to the errors the write waits out (``moved``: slot moves), and ``refused`` counts
    each retry and names the node once."""

    def __init__(
        self, store: Any, page: str, key: str, moved: Callable[[Exception], bool], seconds: float
    ) -> None:
        self.store, self.page, self.moved, self.seconds = store, page, moved, seconds
        # The node holding the page's block when the write starts (the slot map may move on).
        client = store.client
        self.node = client.get_node_from_key(key).name if isinstance(client, RedisCluster) else None
        self.said = False

    def retryable(self, error: Exception) -> bool:
        return self.moved(error) or (self.node is not None and isinstance(error, NODE_FAULTS))

    def refused(self, error: Exception) -> None:
        self.store.write_retries += 1
        if self.node is not None and isinstance(error, NODE_FAULTS) and not self.said:
            self.said = True
            log.warning(
                "page %s: Redis Cluster node %s does not answer (%s); the write waits up to %d s "
                "for a failover to its replica",
                self.page,
                self.node,
                " ".join(str(error).split()) or type(error).__name__,
                self.seconds,
            )
