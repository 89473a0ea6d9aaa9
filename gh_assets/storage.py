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

import gc
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from itertools import islice
from typing import Any

import hiredis
import numpy as np
import pandas as pd
import redis
from pandas.api.types import union_categoricals

COUNTERS = ("public_repos", "public_gists", "followers", "following")
FRAME_FIELDS = ("id", "login", "type", *COUNTERS, "fetched_at")
USER_FIELDS = (*FRAME_FIELDS, "etag", "etag_auth")
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
        rows = _hash_rows(self.client, self.user_key(""), self.iter_id_batches(batch), HASH_FIELDS)
        return frame_from_batches(batch_columns(ids, found) for ids, found in rows)


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

    between = b"\r\n" + tail + head  # ends one command, starts the next

    def packed(ids: list[bytes]) -> bytes:
        keys = [b"$%d\r\n%s%s" % (len(prefix) + len(i), prefix, i) for i in ids]
        return head + between.join(keys) + b"\r\n" + tail

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
    # A batch is thousands of fresh lists and no cycles: pausing the cyclic collector while they
    # arrive saves it scanning them again and again (a third of the client's time at 1M users).
    collecting = gc.isenabled()
    gc.disable()
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
    finally:
        if collecting:
            gc.enable()
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


def batch_columns(
    ids: Sequence[bytes], rows: Sequence[Sequence[bytes | None]]
) -> dict[str, Any] | None:
    """One batch of ``HASH_FIELDS`` replies as typed columns (None if no user is left).

    A user deleted by a page write since its id was read has no login and is left out; a
    missing or non-integer counter is an error. Timestamps are parsed once per distinct value,
    since a page's users share theirs.
    """
    logins, kinds, *counters, fetched = zip(*rows, strict=True) if rows else ((),) * 7
    if None in logins:
        kept = [i for i, login in enumerate(logins) if login is not None]
        return batch_columns([ids[i] for i in kept], [rows[i] for i in kept]) if kept else None
    if not ids:
        return None
    if None in kinds:
        raise ValueError("stored users lack the field 'type'")
    columns: dict[str, Any] = {"id": _integers("id", ids)}
    columns["login"] = [login.decode() for login in logins]
    columns["type"] = pd.Categorical(kinds)
    for name, values in zip(COUNTERS, counters, strict=True):
        columns[name] = _integers(name, values)
    codes, stamps = pd.factorize(np.array(fetched, dtype=object))
    parsed = pd.to_datetime([stamp.decode() for stamp in stamps], format="ISO8601", utc=True)
    columns["fetched_at"] = parsed.take(codes, allow_fill=True)  # no fetched_at: NaT
    return columns


def _integers(name: str, values: Sequence[bytes | None]) -> np.ndarray:
    if None in values:
        raise ValueError(f"stored users lack the integer field {name!r}")
    try:
        return np.fromiter(map(int, values), dtype=np.int64, count=len(values))
    except (ValueError, OverflowError) as error:
        raise ValueError(f"stored users have a non-integer {name!r}: {error}") from None


def frame_from_batches(batches: Iterable[dict[str, Any] | None]) -> pd.DataFrame:
    """The typed DataFrame of ``batch_columns`` results, in their order."""
    parts = [part for part in batches if part is not None]
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return pd.DataFrame(
            {"id": empty, "login": pd.Series([], dtype="str"), "type": pd.Categorical([])}
            | {name: empty for name in COUNTERS}
            | {"fetched_at": pd.DatetimeIndex([], dtype="datetime64[us, UTC]")}
        )
    data: dict[str, Any] = {
        name: np.concatenate([part[name] for part in parts]) for name in ("id", *COUNTERS)
    }
    data["login"] = [login for part in parts for login in part["login"]]
    kinds = union_categoricals([part["type"] for part in parts])
    data["type"] = kinds.rename_categories([kind.decode() for kind in kinds.categories])
    data["fetched_at"] = parts[0]["fetched_at"].append([part["fetched_at"] for part in parts[1:]])
    return pd.DataFrame({name: data[name] for name in FRAME_FIELDS}, copy=False)
