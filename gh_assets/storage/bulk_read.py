"""The bulk read behind ``RedisStore.read_frame``: every stored user into one typed DataFrame.

It bypasses redis-py's pipeline, which costs about 30 µs a command in Python against the 3 µs
Redis spends on an ``HMGET``: each batch of commands is packed here as one buffer, its replies are
parsed by hiredis straight off the socket, and batch k+1 is sent before batch k's replies are
read, so the server works while the client parses. Each batch becomes typed columns at once, so
raw replies never pile up: peak memory stays near the frame's own size.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby, islice
from typing import Any

import hiredis
import numpy as np
import pandas as pd
import redis

from gh_assets.storage.schema import COUNTERS, FRAME_FIELDS

READ_BATCH = 2_000  # small enough that Redis and the client overlap even at 10,000 users
HASH_FIELDS = FRAME_FIELDS[1:]  # what is read from each hash: ids come from the index
_INT64 = np.iinfo(np.int64)


def read_frame(
    client: redis.Redis, key_prefix: str, id_batches: Iterable[list[bytes]]
) -> pd.DataFrame:
    """The users ``key_prefix+id`` of every id, batch by batch, as one typed DataFrame."""
    with _collector_paused():
        return frame_from_batches(_hash_rows(client, key_prefix, id_batches, HASH_FIELDS))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, as it was before after it.

    A bulk read allocates millions of short-lived lists (one per HMGET reply) and no cycles; the
    collector would scan them again and again, a third of the client's time at 1M users.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _hash_rows(
    client: redis.Redis, key_prefix: str, id_batches: Iterable[list[bytes]], fields: Sequence[str]
) -> Iterator[tuple[list[bytes], list[list[bytes | None]]]]:
    """``HMGET key_prefix+id fields`` for every id, one batch at a time over one connection.

    A connection left with unread replies (an error, or the caller stopping early) is closed,
    never handed back to the pool.
    """
    # The fields' part of the command is the same for every user.
    tail = b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in (f.encode() for f in fields))
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)
    prefix = key_prefix.encode()

    def packed(ids: list[bytes]) -> bytes:
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
        for ids in id_batches:
            # A health-check PING would read a reply still owed to the previous batch.
            connection.send_packed_command([packed(ids)], check_health=not sent)
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


class FrameBuilder:
    """Typed columns of ``HASH_FIELDS`` replies, a batch at a time, and the frame they make.

    ``type`` and ``fetched_at`` take few distinct values (a page's users share a timestamp): each
    batch keeps only their codes, and the distinct values are decoded and parsed once, by
    ``frame``.
    """

    def __init__(self) -> None:
        self.columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("id", *COUNTERS, "type", "fetched_at")
        }
        self.logins: list[str] = []
        self.kinds: dict[bytes, int] = {}
        self.stamps: dict[bytes | None, int] = {}

    def add(self, ids: Sequence[bytes], rows: Sequence[Sequence[bytes | None]]) -> None:
        """One batch: the ids read from the index and their ``HMGET`` replies.

        A user deleted by a page write since its id was read has no login and is left out; a
        missing or non-integer counter is an error.
        """
        if not rows:
            return
        logins, kinds, *counters, fetched = zip(*rows, strict=True)
        if None in logins:
            kept = [i for i, login in enumerate(logins) if login is not None]
            if kept:
                self.add([ids[i] for i in kept], [rows[i] for i in kept])
            return
        if None in kinds:
            raise ValueError("stored users lack the field 'type'")
        self.columns["id"].append(_integers("id", ids))
        for name, values in zip(COUNTERS, counters, strict=True):
            self.columns[name].append(_integers(name, values))
        self.logins += [login.decode() for login in logins]
        self.columns["type"].append(_codes(kinds, self.kinds))
        self.columns["fetched_at"].append(_codes(fetched, self.stamps))

    def frame(self) -> pd.DataFrame:
        """Every batch added, in order, as one typed DataFrame."""
        data: dict[str, Any] = {
            name: np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            for name, parts in self.columns.items()
        }
        data["login"] = pd.array(self.logins, dtype="str")
        kinds = [kind.decode() for kind in self.kinds]  # in order of first appearance
        data["type"] = pd.Categorical.from_codes(data["type"], kinds).reorder_categories(
            sorted(kinds)
        )
        stamps = [stamp.decode() if stamp else None for stamp in self.stamps]
        parsed = pd.to_datetime(stamps, format="ISO8601", utc=True).as_unit("us")
        data["fetched_at"] = parsed.take(data["fetched_at"])  # a missing fetched_at: NaT
        return pd.DataFrame({name: data[name] for name in FRAME_FIELDS}, copy=False)


def frame_from_batches(
    batches: Iterable[tuple[Sequence[bytes], Sequence[Sequence[bytes | None]]]],
) -> pd.DataFrame:
    """The typed DataFrame of ``(ids, HMGET replies)`` batches, in their order."""
    builder = FrameBuilder()
    for ids, rows in batches:
        builder.add(ids, rows)
    return builder.frame()


def _codes(values: Sequence[Any], table: dict[Any, int]) -> np.ndarray:
    """Each value's index in ``table`` (new values are appended to it), as int32."""
    for value in dict.fromkeys(values):  # the few distinct values, found in C
        table.setdefault(value, len(table))
    return np.fromiter(map(table.__getitem__, values), dtype=np.int32, count=len(values))


def _integers(name: str, values: Sequence[bytes | None]) -> np.ndarray:
    """Decimal strings as int64, parsed by numpy in one C call (3x ``map(int)``), strictly.

    numpy's text parser stops at junk and clips overflow to the int64 bounds, so it gets only
    digits and minus signs with one space between values, and any batch it reads short or
    clipped is parsed again by ``int``, which is exact and names what is wrong.
    """
    if None in values:
        raise ValueError(f"stored users lack the integer field {name!r}")
    joined = b" ".join(values)  # type: ignore[arg-type]  # no None, checked above
    parsed = None
    if (
        values
        and not joined.translate(None, b"0123456789- ")
        and joined.count(b" ") == len(values) - 1
    ):
        with contextlib.suppress(ValueError, DeprecationWarning):  # its "unmatched data"
            parsed = np.fromstring(joined, dtype=np.int64, sep=" ")
    if (
        parsed is None
        or len(parsed) != len(values)
        or parsed.max() == _INT64.max
        or parsed.min() == _INT64.min
    ):
        try:
            return np.fromiter(map(int, values), dtype=np.int64, count=len(values))  # type: ignore[arg-type]
        except (ValueError, OverflowError) as error:
            raise ValueError(f"stored users have a non-integer {name!r}: {error}") from None
    return parsed
