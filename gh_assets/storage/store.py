"""``RedisStore``: every read and write of the key schema (``schema.py``) on one database.

Works without Dagster, e.g. ``RedisStore.from_url("redis://localhost:6379/0").read_frame()`` in a
notebook.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import NamedTuple

import pandas as pd
import redis

from gh_assets.storage import bulk_read
from gh_assets.storage.bulk_read import FIRST_FEW, READ_BATCH, READ_REPORT, ReadReport
from gh_assets.storage.schema import COUNTERS, PAGE_TOP, USER_FIELDS, ascii_lower, iso_utc

AGGREGATE_PAGES_PER_STEP = 200  # pages whose aggregates one pipelined round trip reads
STAGED_SECONDS = 3 * 3600  # longer than GitHub's hourly reset, short enough to stay fresh
GONE_MARK = "gone"
_WRITE_PAGE = resources.files(__package__).joinpath("write_page.lua").read_text()
_PAGES_USERS = resources.files(__package__).joinpath("pages_users.lua").read_text()
# One page's member count and aggregates in one atomic step; every key is the page's, so the read
# stays a single-slot call when a page's keys share a hash tag (Redis Cluster).
# KEYS[1] page member set, KEYS[2..] RedisStore.aggregate_keys(page)
_READ_AGGREGATES = """
local found = {redis.call('SCARD', KEYS[1])}
for i = 2, #KEYS do
  found[i] = redis.call('HGETALL', KEYS[i])
end
return found
"""


@dataclass(frozen=True)
class PageWrite:
    """Everything one crawled page puts into Redis; hashes hold strings, as Redis does."""

    page: str
    users: Sequence[Mapping[str, str]]
    gone: Sequence[int]
    meta: Mapping[str, str]
    fetched_at: datetime


class StoredAggregates(NamedTuple):
    """One page's aggregates as stored (``schema``), read in one atomic step with its member
    count (``SCARD`` of its member set): ``agg`` the ``:agg`` hash, ``histograms`` each
    counter's ``:hist:`` hash (COUNTERS order), raw bytes as Redis gives them."""

    page: str
    members: int
    agg: dict[bytes, bytes]
    histograms: list[dict[bytes, bytes]]


class RedisStore:
    """Reads and writes the gh_assets key schema on one Redis database."""

    def __init__(self, client: redis.Redis, prefix: str = "gh:"):
        self.client = client
        self.prefix = prefix
        self.logins_key = f"{prefix}logins"
        self.ids_key = f"{prefix}ids"
        self.pages_key = f"{prefix}pages"
        self.deferred_key = f"{prefix}deferred"
        self._write_page = client.register_script(_WRITE_PAGE)
        self._pages_users = client.register_script(_PAGES_USERS)
        self._read_aggregates = client.register_script(_READ_AGGREGATES)

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

    def user_key(self, user_id: int | str) -> str:
        return f"{self.prefix}user:{user_id}"

    def page_key(self, page: str, part: str = "") -> str:
        return f"{self.prefix}page:{page}{':' + part if part else ''}"

    def aggregate_keys(self, page: str) -> list[str]:
        """The page's aggregates: its ``:agg`` hash, then one ``:hist:{counter}`` per counter."""
        return [
            self.page_key(page, "agg"),
            *(self.page_key(page, f"hist:{counter}") for counter in COUNTERS),
        ]

    def page_keys(self, page: str) -> list[str]:
        """Every key a page write leaves for the page (bookkeeping, members, gone, aggregates),
        all named from the page key: what forgetting the page deletes."""
        parts = ("", "users", "gone")
        return [*(self.page_key(page, part) for part in parts), *self.aggregate_keys(page)]

    # Writes ---------------------------------------------------------------------------------
    def write_page(self, write: PageWrite) -> None:
        """Replace a page's users, gone ids, bookkeeping and aggregates in one atomic step.

        Users that the page held before and no longer lists are deleted with their login entry,
        so re-running a page is idempotent and never leaves a deleted account behind. The page's
        aggregates (``page_aggregates``) are computed here, with Python's exact integers, and
        replace the old ones in the same step.
        """
        for user in write.users:
            _check_user(user)
        both = {int(user["id"]) for user in write.users} & {int(i) for i in write.gone}
        if both:
            raise ValueError(f"page {write.page}: user {min(both)} is both written and gone")
        meta = dict(write.meta) | {"fetched_at": iso_utc(write.fetched_at)}
        agg, histograms = page_aggregates(write.users)
        payload = {
            "users": [_flat(_ordered(user)) for user in write.users],
            "gone": [str(user_id) for user_id in write.gone],
            "meta": _flat(meta),
            "agg": _flat(agg),
            "hist": [_flat(histogram) for histogram in histograms],
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
                self.page_key(write.page, "staged"),
                *self.aggregate_keys(write.page),
            ],
            args=[
                self.user_key(""),
                write.page,
                int(write.fetched_at.timestamp()),
                json.dumps(payload),
            ],
        )

    def stage_answers(self, page: str, answers: Mapping[int, Mapping[str, str] | None]) -> None:
        """Keep answers a page got before an error stopped it (a user's hash, or None: gone), for
        ``STAGED_SECONDS``: its re-run reuses them instead of paying GitHub for them again (the
        page is still written whole, by its re-run; that write drops them)."""
        if not answers:
            return
        key = self.page_key(page, "staged")
        mapping = {
            str(i): GONE_MARK if a is None else json.dumps(dict(a)) for i, a in answers.items()
        }
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, STAGED_SECONDS)
            pipe.execute()

    def staged_answers(self, page: str) -> dict[int, dict[str, str] | None]:
        """The answers ``stage_answers`` kept for ``page`` (None: the user is gone)."""
        found = self.client.hgetall(self.page_key(page, "staged"))
        return {
            int(i): None if raw == GONE_MARK.encode() else json.loads(raw)
            for i, raw in found.items()
        }

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
        found = self.client.hget(self.logins_key, ascii_lower(login))
        return int(found) if found is not None else None

    def delete_users(self, user_ids: Sequence[int]) -> int:
        """Delete users with their id and login entries (a login entry only while it still points
        at them); a maintenance step, not meant to race page writes. Returns how many existed."""
        if not user_ids:
            return 0
        keys = [self.user_key(user_id) for user_id in user_ids]
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "login")
            logins = [ascii_lower(raw.decode()) if raw else None for raw in pipe.execute()]
        owners = self.client.hmget(self.logins_key, [x or "" for x in logins])
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            pipe.zrem(self.ids_key, *user_ids)
            stale = [
                login
                for login, owner, user_id in zip(logins, owners, user_ids, strict=True)
                if login and owner is not None and int(owner) == user_id
            ]
            if stale:
                pipe.hdel(self.logins_key, *stale)
            return pipe.execute()[0]

    def page_members(self, page: str) -> set[int]:
        return {int(member) for member in self.client.smembers(self.page_key(page, "users"))}

    def page_gone(self, page: str) -> set[int]:
        return {int(member) for member in self.client.smembers(self.page_key(page, "gone"))}

    def page_meta(self, page: str) -> dict[str, str]:
        found = self.client.hgetall(self.page_key(page))
        return {k.decode(): v.decode() for k, v in found.items()}

    def pages_meta(self) -> dict[str, dict[str, str]]:
        """Every crawled page's bookkeeping, oldest first, in one round trip."""
        pages = [page.decode() for page in self.client.zrange(self.pages_key, 0, -1)]
        with self.client.pipeline(transaction=False) as pipe:
            for page in pages:
                pipe.hgetall(self.page_key(page))
            found = pipe.execute()
        return {
            page: {k.decode(): v.decode() for k, v in meta.items()}
            for page, meta in zip(pages, found, strict=True)
        }

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

    def read_aggregates(
        self, pages: Sequence[str] | None = None, per_step: int = AGGREGATE_PAGES_PER_STEP
    ) -> Iterator[StoredAggregates]:
        """The stored aggregates of ``pages`` (default: every page in ``gh:pages``, oldest first),
        ``per_step`` pages per pipelined round trip. Each page is read in one atomic step, whole
        as its last write left it, with its member count (a page written meanwhile is seen
        before or after, never half); pages are independent, so no step spans two."""
        if pages is None:
            pages = [page.decode() for page in self.client.zrange(self.pages_key, 0, -1)]
        for first in range(0, len(pages), per_step):
            chunk = pages[first : first + per_step]
            with self.client.pipeline(transaction=False) as pipe:
                for page in chunk:
                    keys = [self.page_key(page, "users"), *self.aggregate_keys(page)]
                    self._read_aggregates(keys=keys, client=pipe)
                replies = pipe.execute()
            for page, (members, agg, *histograms) in zip(chunk, replies, strict=True):
                yield StoredAggregates(page, members, _pairs(agg), [_pairs(h) for h in histograms])

    def page_user_total(self) -> int:
        """Users stored over all pages, by the pages' own bookkeeping."""
        pages = self.client.zrange(self.pages_key, 0, -1)
        with self.client.pipeline(transaction=False) as pipe:
            for page in pages:
                pipe.hget(self.page_key(page.decode()), "users")
            return sum(int(users or 0) for users in pipe.execute())

    def user_count(self) -> int:
        return self.client.zcard(self.ids_key)

    def read_frame(self, batch: int = READ_BATCH) -> pd.DataFrame:
        """Every stored user as a DataFrame with integer counters, in ascending id order, read
        ``batch`` ids at a time (see ``bulk_read``).

        The ids and the pages' user total are taken in one atomic step, so the frame can be
        graded against the pages as they were when it was read, whatever page runs finish
        meanwhile; ``frame.attrs[READ_REPORT]`` (a ``ReadReport``) records that total and the
        ids left out.
        """
        with self.client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: one atomic step
            self._pages_users(keys=[self.pages_key], args=[self.page_key("")], client=pipe)
            pipe.zrange(self.ids_key, 0, -1)  # native: 3x faster than the same in Lua
            pages_users, ids = pipe.execute(raise_on_error=False)
        for reply in (pages_users, ids):
            if isinstance(reply, Exception):
                raise reply  # its own one-line message, not the pipeline's wrapping
        indexed = len(ids)
        batches = _batches(ids, batch)
        frame, left_out = bulk_read.read_frame(self.client, self.user_key(""), batches)
        # Without a hash: deleted by a page write since the snapshot when its id left the index
        # too (writes remove both at once), a fault when its id is still there.
        scores = self.client.zmscore(self.ids_key, left_out.no_hash) if left_out.no_hash else []
        no_hash = [
            i for i, score in zip(left_out.no_hash, scores, strict=True) if score is not None
        ]
        report: ReadReport = {
            "pages_users": pages_users,
            "indexed": indexed,
            "deleted_during_read": len(left_out.no_hash) - len(no_hash),
            "no_hash": no_hash[:FIRST_FEW],
            "no_hash_count": len(no_hash),
            "no_login": left_out.no_login[:FIRST_FEW],
            "no_login_count": len(left_out.no_login),
        }
        frame.attrs[READ_REPORT] = report
        return frame


def page_aggregates(
    users: Sequence[Mapping[str, str]],
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A page's partial aggregates as stored (``schema``): the ``:agg`` hash and each counter's
    value histogram (COUNTERS order), decimal strings of Python integers (a sum of squares
    outgrows int64 and a Lua double). Empty for a page without users.

    A user listed twice counts once, as its last entry (what the page write stores).
    """
    latest = {user["id"]: user for user in users}
    if not latest:
        return {}, [{} for _ in COUNTERS]
    accounts: Counter[str] = Counter()
    first: dict[str, int] = {}
    by_type: Counter[tuple[str, str]] = Counter()
    values: dict[str, list[int]] = {counter: [] for counter in COUNTERS}
    for user in latest.values():
        kind, user_id = user["type"], int(user["id"])
        accounts[kind] += 1
        first[kind] = min(first.get(kind, user_id), user_id)
        for counter in COUNTERS:
            value = int(user[counter])
            values[counter].append(value)
            by_type[counter, kind] += value
    agg = {"users": len(latest)}
    agg |= {f"type:{kind}": count for kind, count in accounts.items()}
    agg |= {f"first:{kind}": user_id for kind, user_id in first.items()}
    for counter, found in values.items():
        agg |= {
            f"{counter}:count": len(found),
            f"{counter}:sum": sum(found),
            f"{counter}:sumsq": sum(value * value for value in found),
            f"{counter}:min": min(found),
            f"{counter}:max": max(found),
        }
        agg |= {f"{counter}:sum:{kind}": by_type[counter, kind] for kind in accounts}
    top = sorted(latest.values(), key=lambda u: (-int(u["followers"]), int(u["id"])))[:PAGE_TOP]
    agg["top"] = json.dumps(
        [[str(int(u["id"])), u["login"], u["type"], str(int(u["followers"]))] for u in top]
    )
    histograms = [
        {str(value): str(count) for value, count in sorted(Counter(found).items())}
        for found in values.values()
    ]
    return {field: str(value) for field, value in agg.items()}, histograms


def _ordered(user: Mapping[str, str]) -> dict[str, str]:
    """Schema fields first, in schema order (``HGETALL`` reads well), then any others."""
    ordered = {field: user[field] for field in USER_FIELDS if field in user}
    return ordered | {field: value for field, value in user.items() if field not in ordered}


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash as a script returns it (field, value, ...) as a dict, like ``HGETALL``'s."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [str(item) for pair in fields.items() for item in pair]


def _batches(ids: list[bytes], size: int) -> Iterator[list[bytes]]:
    """``ids``, ``size`` at a time, each batch released once read: the snapshot's memory goes
    as the frame's columns grow, so the peak stays where it was."""
    batches = [ids[first : first + size] for first in range(0, len(ids), size)]
    ids.clear()
    batches.reverse()
    while batches:
        yield batches.pop()


def user_problem(user: Mapping[str, str]) -> str | None:
    """What keeps a user hash out of the schema, or None: the rule every write applies, and
    the test a stored hash passes before a crawl reuses it."""
    for field in ("id", "login", "type"):
        if not user.get(field):
            return f"user {user.get('id', '?')} has no {field!r}"
    for field in ("id", *COUNTERS):
        value = str(user.get(field, ""))
        if not (value.isascii() and value.isdecimal()):  # "٣" is decimal, not ASCII
            return f"user {user['id']} has a non-integer {field!r}: {user.get(field)!r}"
    return None


def _check_user(user: Mapping[str, str]) -> None:
    """Refuse a user hash that would break the schema, before anything is written."""
    if problem := user_problem(user):
        raise ValueError(problem)
