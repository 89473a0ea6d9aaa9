"""``ClusterSteps``: commands batched per node on a Redis Cluster (one pipeline per node, in a
caller's order), and the retry of a step that a moving slot refuses: on a single Redis, one
pipeline and no retries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import LoadBalancingStrategy, RedisCluster
from redis.exceptions import AskError, ClusterDownError, ClusterError, TryAgainError
from redis.retry import Retry

from gh_assets.storage.connection import Connection

# A step refused while its slot moves between Cluster nodes is tried again, backing off from
# BACKOFF s, doubling up to BACKOFF_MAX: a Cluster refuses a multi-key script (TRYAGAIN) for as
# long as its slot is being moved.
BACKOFF = 0.1
BACKOFF_MAX = 2.0
REDIRECTIONS = (AskError, TryAgainError, ClusterDownError, ClusterError)  # MovedError is an Ask
# Valkey: "Attempted to access a non local key in a cluster node script"; Redis 7: "Script
# attempted to access a non local key in a cluster node script"; Redis 6: "Lua script attempted…".
NON_LOCAL_KEY = "non local key in a cluster node"


class ClusterSteps(Connection):
    """Batched commands, per node on a cluster."""

    def _nodes(self, keys: Sequence[str]) -> list[tuple[redis.Redis, list[int]]]:
        """The plain client of each node owning some of ``keys``, with their positions; on a
        single Redis, the client with every position."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return [(client, list(range(len(keys))))]
        found: dict[str, tuple[redis.Redis, list[int]]] = {}
        for index, key in enumerate(keys):
            node = client.get_node_from_key(key)
            if node.name not in found:
                found[node.name] = (client.get_redis_connection(node), [])
            found[node.name][1].append(index)
        return list(found.values())

    def _each(
        self,
        items: Sequence[Any],
        key_of: Callable[[Any], str],
        queue: Callable[[Any, Any], Any],
        replies: int = 1,
    ) -> list[Any]:
        """``queue(pipe, item)`` for every item, pipelined per node (the node owning
        ``key_of(item)``), its ``replies`` replies (as a tuple when more than one) in ``items``
        order. On a cluster whose slots moved (MOVED), the slot map is read again and the step
        repeated; while a slot is moving (ASK, TRYAGAIN), the items are sent one at a time
        through the cluster client, which follows the redirections (``queue`` returns what
        the client answers)."""
        if not items:
            return []
        for attempt in range(2):
            try:
                return self._each_once(items, key_of, queue, replies)
            except redis.ResponseError as error:
                if not (self.cluster and redirected(error)):
                    raise
            if not attempt:
                self.client.nodes_manager.initialize()
        return [queue(self.client, item) for item in items]

    def _each_once(
        self,
        items: Sequence[Any],
        key_of: Callable[[Any], str],
        queue: Callable[[Any, Any], object],
        replies: int,
    ) -> list[Any]:
        found: list[Any] = [None] * len(items)
        for client, positions in self._nodes([key_of(item) for item in items]):
            with client.pipeline(transaction=False) as pipe:
                for position in positions:
                    queue(pipe, items[position])
                answers = pipe.execute()
            for n, position in enumerate(positions):
                if replies == 1:
                    found[position] = answers[n]
                else:
                    found[position] = tuple(answers[n * replies : (n + 1) * replies])
        return found

    def _blocks_by_replica(self, blocks: list[int]) -> list[tuple[redis.Redis, list[int], bool]]:
        """``blocks`` grouped by shard, each group with a client of a replica of the shard
        whose link to its primary is up (READONLY connections), or of the primary where the
        shard has no such replica; ascending in each group."""
        if self._replicas is None:
            if self._connect_replicas is None:
                raise ValueError("reading from replicas needs a store made by RedisStore.from_url")
            with self._lock:
                if self._replicas is None:
                    self._replicas = self._connect_replicas()
        replicas, primaries = self._replicas, self.client
        assert isinstance(primaries, RedisCluster)
        found: dict[str, tuple[redis.Redis, list[int], bool]] = {}
        linked: dict[str, bool] = {}
        for block in blocks:
            slot = primaries.keyslot(self.ids_key(block))
            node = replicas.nodes_manager.get_node_from_slot(
                slot, load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
            )
            if node.server_type == "replica" and node.name not in linked:
                link = replicas.get_redis_connection(node).info("replication")
                linked[node.name] = link.get("master_link_status") == "up"
            if not linked.get(node.name, False):
                node = primaries.nodes_manager.get_node_from_slot(slot)
            if node.name not in found:
                client = (replicas if linked.get(node.name) else primaries).get_redis_connection(
                    node
                )
                found[node.name] = (client, [], bool(linked.get(node.name)))
            found[node.name][1].append(block)
        return list(found.values())

    def _blocks_by_node(self, blocks: list[int]) -> list[tuple[redis.Redis, list[int]]]:
        """``blocks`` grouped by the node holding them, ascending in each group."""
        return [
            (client, [blocks[i] for i in positions])
            for client, positions in self._nodes([self.ids_key(b) for b in blocks])
            if positions
        ]


def slot_move_retry(seconds: float, also: tuple[type[Exception], ...] = ()) -> Retry:
    """redis-py's ``Retry`` for a step a moving slot (or ``also``) refuses: waits from BACKOFF s,
    doubling up to BACKOFF_MAX, about ``seconds`` in all (the caller says which are retried)."""
    retries, waited = 0, 0.0
    while waited < seconds:
        retries += 1
        waited += min(BACKOFF_MAX, BACKOFF * 2**retries)
    backoff = ExponentialBackoff(cap=BACKOFF_MAX, base=BACKOFF)
    return Retry(backoff, retries, supported_errors=(redis.ResponseError, ClusterError, *also))


def redirected(error: Exception) -> bool:
    """A Cluster's answer that the key's slot is elsewhere or moving (redis-py's classes, or the
    raw reply the bulk read's parser gives)."""
    if isinstance(error, REDIRECTIONS):
        return True
    # A script reading a key it did not declare (pages_users.lua reads the pages it lists) is
    # refused that key once it has migrated away: the slot is moving.
    return NON_LOCAL_KEY in str(error) or str(error).split(" ", 1)[0] in (
        "MOVED",
        "ASK",
        "TRYAGAIN",
        "CLUSTERDOWN",
    )
