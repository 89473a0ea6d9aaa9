"""The Redis key schema and every read and write of it.

The schema is a contract for other tools and notebooks (prefix ``gh:`` by default):

- ``gh:user:{id}``: hash ``id login type public_repos public_gists followers following
  fetched_at [etag etag_auth]``; integers as decimal strings, ``fetched_at`` ISO-8601 UTC,
  ``etag`` the entity tag without ``W/`` and quotes, ``etag_auth`` which credential got it.
- ``gh:logins``: hash lower-cased login -> id.
- ``gh:ids``: sorted set of every stored user id (score = id).
- ``gh:page:{page}``: hash of page bookkeeping (window, counts, ``fetched_at``).
- ``gh:page:{page}:users`` / ``gh:page:{page}:gone``: sets of the page's user ids and of the ids
  listed but deleted before their details were read.
- ``gh:pages``: sorted set page -> ``fetched_at`` as epoch seconds (oldest pages first).
- ``gh:deferred``: sorted set page -> epoch seconds after which a page that hit a long rate
  limit may run again; a successful write of the page removes it.

Nothing needs ``KEYS`` or a scan of the keyspace. The module works without Dagster, e.g.
``RedisStore.from_url("redis://localhost:6379/0").read_frame()`` in a notebook.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from itertools import groupby, islice
from typing import Any

import hiredis
import numpy as np
import pandas as pd
import redis

COUNTERS = ("public_repos", "public_gists", "followers", "following")
FRAME_FIELDS = ("id", "login", "type", *COUNTERS, "fetched_at")
USER_FIELDS = (*FRAME_FIELDS, "etag", "etag_auth")
_INT64 = np.iinfo(np.int64)
HASH_FIELDS = FRAME_FIELDS[1:]  # what read_frame reads from each hash: ids come from the index
READ_BATCH = 2_000  # small enough that Redis and the client overlap even at 10,000 users

_WRITE_PAGE = resources.files(__package__).joinpath("write_page.lua").read_text()


def iso_utc(moment: datetime) -> str:
    """The one timestamp format of the schema: ISO-8601, UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PageWrite:
    """Everything one crawled page puts into Redis; hashes hold strings, as Redis does."""

    page: str
    users: Sequence[Mapping[str, str]]
    gone: Sequence[int]
    meta: Mapping[str, str]
    fetched_at: datetime


class RedisStore:
    """Reads and writes the gh_assets key schema on one Redis database."""

    def __init__(self, client: redis.Redis, prefix: str = "gh:"):
        self.client = client
        self.prefix = prefix
        self._write_page = client.register_script(_WRITE_PAGE)

    @classmethod
    def from_url(cls, url: str, prefix: str = "gh:", **client_options) -> RedisStore:
        """Connect from a redis://, rediss:// or unix:// URL (password or ACL user in it)."""
        options = {"socket_timeout": 60, "socket_connect_timeout": 10, "health_check_interval": 30}
        return cls(redis.Redis.from_url(url, **(options | client_options)), prefix)

    def __repr__(self) -> str:
        # The connection kwargs may carry a password: show only where the data lives.
        kwargs = self.client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"RedisStore({where} db={kwargs.get('db', 0)} prefix={self.prefix!r})"

    # Keys -----------------------------------------------------------------------------------
    def user_key(self, user_id: int | str) -> str:
        return f"{self.prefix}user:{user_id}"

    def page_key(self, page: str, part: str = "") -> str:
        return f"{self.prefix}page:{page}{':' + part if part else ''}"

    @property
    def logins_key(self) -> str:
        return f"{self.prefix}logins"

    @property
    def ids_key(self) -> str:
        return f"{self.prefix}ids"

    @property
    def pages_key(self) -> str:
        return f"{self.prefix}pages"

    @property
    def deferred_key(self) -> str:
        return f"{self.prefix}deferred"

    # Writes ---------------------------------------------------------------------------------
    def write_page(self, write: PageWrite) -> None:
        """Replace a page's users, gone ids and bookkeeping in one atomic step.

        Users that the page held before and no longer lists are deleted with their login entry,
        so re-running a page is idempotent and never leaves a deleted account behind.
        """
        for user in write.users:
            _check_user(user)
        meta = dict(write.meta) | {"fetched_at": iso_utc(write.fetched_at)}
        payload = {
            "users": [_flat(_ordered(user)) for user in write.users],
            "gone": [str(user_id) for user_id in write.gone],
            "meta": _flat(meta),
        }
        self._write_page(
            keys=[
                self.page_key(write.page),
                self.page_key(write.page, "users"),
                self.page_key(write.page, "gone"),
                self.logins_key,
                self.ids_key,
                self.pages_key,
                self.deferred_key,
            ],
            args=[
                self.user_key(""),
                write.page,
                int(write.fetched_at.timestamp()),
                json.dumps(payload),
            ],
        )

    # Reads ----------------------------------------------------------------------------------
    def read_users(self, user_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Stored hashes of the given ids (absent ids left out), in one round trip."""
        ids = list(user_ids)
        with self.client.pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.hgetall(self.user_key(user_id))
            hashes = pipe.execute()
        return {
            user_id: {k.decode(): v.decode() for k, v in found.items()}
            for user_id, found in zip(ids, hashes, strict=True)
            if found
        }

    def user_id_for_login(self, login: str) -> int | None:
        found = self.client.hget(self.logins_key, login.lower())
        return int(found) if found is not None else None

    def page_members(self, page: str) -> set[int]:
        return {int(member) for member in self.client.smembers(self.page_key(page, "users"))}

    def page_gone(self, page: str) -> set[int]:
        return {int(member) for member in self.client.smembers(self.page_key(page, "gone"))}

    def page_meta(self, page: str) -> dict[str, str]:
        found = self.client.hgetall(self.page_key(page))
        return {k.decode(): v.decode() for k, v in found.items()}

    def pages_fetched_at(self) -> dict[str, datetime]:
        """Every crawled page with the time it was last written, oldest first."""
        return {
            page.decode(): datetime.fromtimestamp(score, UTC)
            for page, score in self.client.zrange(self.pages_key, 0, -1, withscores=True)
        }

    def stale_pages(self, before: datetime, limit: int) -> list[str]:
        """Up to ``limit`` pages last written before ``before``, oldest first."""
        found = self.client.zrangebyscore(
            self.pages_key, "-inf", f"({before.timestamp()}", start=0, num=limit
        )
        return [page.decode() for page in found]

    def defer_page(self, page: str, until: datetime) -> None:
        """Mark a page to run again after ``until`` (the reset of a long rate limit)."""
        self.client.zadd(self.deferred_key, {page: until.timestamp()})

    def deferred_pages(self) -> dict[str, datetime]:
        """Pages waiting for a rate-limit reset, with the time each may run again."""
        return {
            page.decode(): datetime.fromtimestamp(score, UTC)
            for page, score in self.client.zrange(self.deferred_key, 0, -1, withscores=True)
        }

    def ids_between(self, first_id: int, last_id: int) -> set[int]:
        """Stored user ids in an ID window, from the id index."""
        return {int(i) for i in self.client.zrangebyscore(self.ids_key, first_id, last_id)}

    def read_counters(self, user_ids: Iterable[int]) -> dict[int, list[bytes | None]]:
        """The four counters of each id (None where absent), in one round trip."""
        ids = list(user_ids)
        with self.client.pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.hmget(self.user_key(user_id), COUNTERS)
            return dict(zip(ids, pipe.execute(), strict=True))

    def page_user_total(self) -> int:
        """Users stored over all pages, by the pages' own bookkeeping."""
        pages = self.client.zrange(self.pages_key, 0, -1)
        with self.client.pipeline(transaction=False) as pipe:
            for page in pages:
                pipe.hget(self.page_key(page.decode()), "users")
            return sum(int(users or 0) for users in pipe.execute())

    def user_count(self) -> int:
        return self.client.zcard(self.ids_key)

    def iter_id_batches(self, batch: int = READ_BATCH) -> Iterator[list[bytes]]:
        """Stored ids in ascending order, a batch at a time (bounded memory on both sides).

        Each batch starts after the last id seen, not at a rank, so ids added or removed by page
        writes meanwhile never make a batch repeat or skip one that was there all along.
        """
        after = "-inf"
        while ids := self.client.zrangebyscore(self.ids_key, after, "+inf", start=0, num=batch):
            yield ids
            after = b"(" + ids[-1]

    def read_frame(self, batch: int = READ_BATCH) -> pd.DataFrame:
        """Every stored user as a DataFrame with integer counters, in ascending id order.

        Ids come from the index a batch at a time; each batch's hashes are read with one
        pipelined ``HMGET`` per user (see ``_hash_rows``) and turned into typed columns at once,
        so raw replies never pile up: peak memory stays near the frame's own size.
        """
        ids = self.iter_id_batches(batch)
        with _collector_paused():
            return frame_from_batches(_hash_rows(self.client, self.user_key(""), ids, HASH_FIELDS))


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

    redis-py's pipeline costs tens of microseconds a command in Python, several times what
    Redis spends on it. Here each batch is packed as one buffer (the fields' part of the command
    is the same for every user) and batch k+1 is sent before batch k's replies are read, so the
    server works while the client parses. A connection left with unread replies (an error, or
    the caller stopping early) is closed, never handed back to the pool.
    """
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
    """The next ``count`` replies on ``connection``, parsed by hiredis straight off its socket:
    redis-py's ``read_response`` adds microseconds a reply, more than Redis spends on an HMGET."""
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


def _ordered(user: Mapping[str, str]) -> dict[str, str]:
    """Schema fields first, in schema order (``HGETALL`` reads well), then any others."""
    ordered = {field: user[field] for field in USER_FIELDS if field in user}
    return ordered | {field: value for field, value in user.items() if field not in ordered}


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [str(item) for pair in fields.items() for item in pair]


def _check_user(user: Mapping[str, str]) -> None:
    """Refuse a user hash that would break the schema, before anything is written."""
    for field in ("id", "login", "type"):
        if not user.get(field):
            raise ValueError(f"user {user.get('id', '?')} has no {field!r}")
    for field in ("id", *COUNTERS):
        if not str(user.get(field, "")).isdecimal():
            raise ValueError(f"user {user['id']} has a non-integer {field!r}: {user.get(field)!r}")


class FrameBuilder:
    """Typed columns of ``HASH_FIELDS`` replies, a batch at a time, and the frame they make.

    Each batch becomes numpy columns at once, so raw replies never pile up. ``type`` and
    ``fetched_at`` take few distinct values (a page's users share a timestamp): each batch keeps
    only their codes, and the distinct values are decoded and parsed once, by ``frame``.
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
