"""``FrameReads``: every stored user as one DataFrame, block by block against a snapshot of each
block, per node in parallel on a Cluster, from its replicas if asked (``read_frame``); the
pipelined read and parse of the hashes is ``bulk_read``."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd
import redis

from gh_assets.storage import bulk_read
from gh_assets.storage.bookkeeping import PageBookkeeping
from gh_assets.storage.bulk_read import FIRST_FEW, READ_BATCH, READ_REPORT, ReadReport
from gh_assets.storage.cluster_steps import redirected, slot_move_retry
from gh_assets.storage.frame_builder import frame_from_batches

# A frame read meeting a slot that moved, or is moving, reads the slot map again and starts over,
# for about MOVE_READ_SECONDS (a block's slot stays half moved while its keys are migrated).
MOVE_READ_SECONDS = 60.0


class _BlockRead(NamedTuple):
    """What reading some blocks on one node gave: their rows and what the report needs."""

    frame: pd.DataFrame
    no_hash: list[int]
    no_login: list[int]
    pages_users: int
    indexed: int
    from_replica: bool


class FrameReads(PageBookkeeping):
    """The bulk read of every user."""

    def read_frame(self, batch: int = READ_BATCH, *, from_replicas: bool = False) -> pd.DataFrame:
        """Every stored user as a DataFrame with integer counters, in ascending id order, read
        ``batch`` ids at a time (see ``bulk_read``).

        ``from_replicas``: on a cluster, each shard is read from a replica whose link to its
        primary is up (from the primary where it has none), sparing the primaries; the frame
        is then as recent as the replicas, each block still one consistent snapshot. On a
        single Redis it changes nothing. ``frame.attrs[READ_REPORT]["replica_shards"]`` counts
        the shards read from a replica.

        Block by block, the ids and the block's pages' user total are taken in one atomic step
        (every block's before the first user is read), so the frame can be graded against the
        pages as they were when it was read, whatever page runs finish meanwhile;
        ``frame.attrs[READ_REPORT]`` (a ``ReadReport``) records that total and the ids left out.
        On a cluster each primary reads its own blocks, over its own connection, in a thread of
        its own; the rows are then put in id order, as on one Redis.
        """
        self.check_schema()

        def moved(error: Exception) -> None:  # read the slot map again
            self.read_retries += 1
            for client in (self.client, self._replicas):
                if client is not None:
                    client.nodes_manager.initialize()

        try:
            return slot_move_retry(MOVE_READ_SECONDS).call_with_retry(
                lambda: self._read_frame(batch, from_replicas),
                moved,
                lambda error: self.cluster and redirected(error),
            )
        except redis.ResponseError as error:
            if self.cluster and redirected(error):  # still moving after MOVE_READ_SECONDS
                raise redis.ResponseError(
                    f"the frame read met slots moving for {MOVE_READ_SECONDS:.0f} s: {error}"
                ) from None
            raise

    def _read_frame(self, batch: int, from_replicas: bool) -> pd.DataFrame:
        blocks = self.blocks()
        if from_replicas and self.cluster:
            groups = self._blocks_by_replica(blocks)
        else:
            groups = [(client, b, False) for client, b in self._blocks_by_node(blocks)]
        with bulk_read.collector_paused():
            if len(groups) <= 1:
                reads = [self._read_blocks(*group, batch) for group in groups]
            else:
                with ThreadPoolExecutor(len(groups), thread_name_prefix="gh-read") as pool:
                    futures = [pool.submit(self._read_blocks, *group, batch) for group in groups]
                    reads = [future.result() for future in futures]
            frame = _in_id_order([read.frame for read in reads])
        no_hash = sorted(i for read in reads for i in read.no_hash)
        no_login = sorted(i for read in reads for i in read.no_login)
        # Without a hash: deleted by a page write since the snapshot when its id left the index
        # too (writes remove both at once), a fault when its id is still there.
        scores = self._each(
            no_hash, self.user_key, lambda pipe, i: pipe.zscore(self.ids_key(self.block_of(i)), i)
        )
        still = [i for i, score in zip(no_hash, scores, strict=True) if score is not None]
        report: ReadReport = {
            "pages_users": sum(read.pages_users for read in reads),
            "indexed": sum(read.indexed for read in reads),
            "deleted_during_read": len(no_hash) - len(still),
            "no_hash": still[:FIRST_FEW],
            "no_hash_count": len(still),
            "no_login": no_login[:FIRST_FEW],
            "no_login_count": len(no_login),
            "replica_shards": sum(read.from_replica for read in reads),
        }
        frame.attrs[READ_REPORT] = report
        return frame

    def _read_blocks(
        self, client: redis.Redis, blocks: list[int], replica: bool, batch: int
    ) -> _BlockRead:
        """``blocks`` (all on the node ``client`` reaches, a ``replica`` or not) into one frame:
        a snapshot of each block first (its ids and its pages' users, in one MULTI/EXEC), then
        the users."""
        snapshots: list[tuple[bytes, list[bytes]]] = []
        pages_users = indexed = 0
        for block in blocks:
            with client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: one atomic step
                self._pages_users(
                    keys=[self.block_pages_key(block)],
                    args=[f"{self.block_tag(block)}page:"],
                    client=pipe,
                )
                pipe.zrange(self.ids_key(block), 0, -1)  # native: 3x faster than the same in Lua
                users, ids = pipe.execute(raise_on_error=False)
            for reply in (users, ids):
                if isinstance(reply, Exception):
                    raise reply  # its own one-line message, not the pipeline's wrapping
            pages_users += users
            indexed += len(ids)
            snapshots.append((f"{self.block_tag(block)}user:".encode(), ids))
        frame, left_out = bulk_read.read_frame(client, _batches(snapshots, batch), self.user_key)
        return _BlockRead(frame, left_out.no_hash, left_out.no_login, pages_users, indexed, replica)


def _in_id_order(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames of several nodes (each in id order, their ids disjoint) as one, by id; one
    frame is returned as it is, none as an empty frame."""
    if not frames:
        return frame_from_batches([])
    if len(frames) == 1:
        return frames[0]
    kinds = sorted(set().union(*(frame["type"].cat.categories for frame in frames)))
    for frame in frames:
        frame["type"] = frame["type"].cat.set_categories(kinds)
    joined = pd.concat(frames, ignore_index=True)
    frames.clear()
    order = np.argsort(joined["id"].to_numpy(), kind="stable")
    return joined.take(order).reset_index(drop=True)


def _batches(
    snapshots: list[tuple[bytes, list[bytes]]], size: int
) -> Iterator[tuple[bytes, list[bytes]]]:
    """Each block's (user key prefix, ids), ``size`` ids at a time, each block's ids released
    once cut: the snapshot's memory goes as the frame's columns grow."""
    snapshots.reverse()
    while snapshots:
        prefix, ids = snapshots.pop()
        batches = [ids[first : first + size] for first in range(0, len(ids), size)]
        ids.clear()
        batches.reverse()
        while batches:
            yield prefix, batches.pop()
