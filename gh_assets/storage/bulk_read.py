"""The bulk read behind ``RedisStore.read_frame``: every stored user into one typed DataFrame.

It bypasses redis-py's pipeline, which costs about 30 µs a command in Python against the 3 µs
Redis spends on an ``HMGET``: each batch of commands is packed here as one buffer, its replies are
parsed by hiredis straight off the socket, and batch k+1 is sent before batch k's replies are
read, so the server works while the client parses. Each batch becomes typed columns at once
(``frame_builder``), so raw replies never pile up: peak memory stays near the frame's own size.
Ids the read finds no row for are set aside (``LeftOut``) for the caller to report, never
dropped silently.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby, islice
from typing import Any, TypedDict

import hiredis
import pandas as pd
import redis

from gh_assets.storage.frame_builder import FrameBuilder, LeftOut
from gh_assets.storage.schema import FRAME_FIELDS

READ_BATCH = 2_000  # small enough that Redis and the client overlap even at 10,000 users
HASH_FIELDS = FRAME_FIELDS[1:]  # what is read from each hash: ids come from the index
READ_REPORT = "redis_read"  # the frame.attrs key of its ReadReport (it survives pickling)
FIRST_FEW = 10  # ids a report names of each kind left out


class ReadReport(TypedDict):
    """What one ``read_frame`` saw besides its rows, for the frame checks to grade."""

    pages_users: int  # the pages' ``users`` counts summed, atomically with the id snapshot
    indexed: int  # ids in that snapshot
    deleted_during_read: int  # snapshot ids a page write deleted (hash and id) before the read
    no_hash: list[int]  # the first FIRST_FEW ids still indexed but without a hash
    no_hash_count: int
    no_login: list[int]  # the first FIRST_FEW ids whose hash has no login
    no_login_count: int
    replica_shards: int  # shards read from a replica (``read_frame(from_replicas=True)``)


def read_frame(
    client: redis.Redis,
    id_batches: Iterable[tuple[bytes, list[bytes]]],
    user_key: Callable[[str], str] | None = None,
) -> tuple[pd.DataFrame, LeftOut]:
    """The users ``key_prefix+id`` of every batch ``(key_prefix, ids)`` (ids ascending within
    a batch), batch by batch, as one typed DataFrame, and the ids it left out. ``user_key``
    names a user's key in errors."""
    builder = FrameBuilder(user_key)
    with collector_paused():
        for ids, rows in _hash_rows(client, id_batches, HASH_FIELDS):
            builder.add(ids, rows)
        return builder.frame(), builder.left_out()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, as it was before after it.

    A bulk read allocates millions of short-lived lists (one per HMGET reply) and no cycles; the
    collector would scan them again and again, a third of the client's time at 1M users.
    Nested (or beside threads reading at once), only the outermost turns it back on.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _hash_rows(
    client: redis.Redis,
    id_batches: Iterable[tuple[bytes, list[bytes]]],
    fields: Sequence[str],
) -> Iterator[tuple[list[bytes], list[list[bytes | None]]]]:
    """``HMGET key_prefix+id fields`` for every id of every ``(key_prefix, ids)`` batch, one
    batch at a time over one connection.

    A connection left with unread replies (an error, or the caller stopping early) is closed,
    never handed back to the pool.
    """
    # The fields' part of the command is the same for every user.
    tail = b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in (f.encode() for f in fields))
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)

    def packed(prefix: bytes, ids: list[bytes]) -> bytes:
        # Ids come sorted, so those of one length are neighbours: between two of them everything
        # is the same bytes, and one join per length packs them all.
        parts = []
        for size, same in groupby(ids, len):
            start = b"$%d\r\n%s" % (len(prefix) + size, prefix)
            parts.append(head + start + (b"\r\n" + tail + head + start).join(same) + b"\r\n" + tail)
        return b"".join(parts)

    pool = client.connection_pool
    connection = pool.get_connection()
    reader = hiredis.Reader()
    sent: deque[list[bytes]] = deque()
    try:
        for prefix, ids in id_batches:
            # A health-check PING would read a reply still owed to the previous batch.
            connection.send_packed_command([packed(prefix, ids)], check_health=not sent)
            sent.append(ids)
            if len(sent) == 2:
                done = sent.popleft()
                yield done, _replies(connection, reader, len(done))
        while sent:
            done = sent.popleft()
            yield done, _replies(connection, reader, len(done))
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _replies(connection: redis.connection.AbstractConnection, reader: Any, count: int) -> list:
    """The next ``count`` replies on ``connection``, parsed by hiredis straight off its socket."""
    sock = connection._sock  # the connected socket (plain, TLS or unix) redis-py keeps
    found: list = []
    try:
        while True:
            # The complete replies parsed so far, in one C loop; those past ``count`` belong to
            # the next batch and stay in the reader.
            found += islice(iter(reader.gets, False), count - len(found))
            if len(found) == count:
                break
            data = sock.recv(1 << 20)
            if not data:
                raise redis.ConnectionError("Redis closed the connection during a read")
            reader.feed(data)
    except TimeoutError as error:
        raise redis.TimeoutError(f"Redis did not answer in time: {error}") from None
    except OSError as error:
        raise redis.ConnectionError(f"reading from Redis failed: {error}") from None
    if set(map(type, found)) - {list}:  # an HMGET answers a list, or an error
        raise redis.ResponseError(next(str(r) for r in found if not isinstance(r, list)))
    return found
