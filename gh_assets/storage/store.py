"""``RedisStore``: every read and write of the key schema (``schema.py``), on a single Redis or on
a Redis Cluster alike.

Works without Dagster, e.g. ``RedisStore.from_url("redis://localhost:6379/0").read_frame()`` in a
notebook. ``from_url`` finds out on first use whether the URL names a node of a cluster
(``INFO cluster``) and then uses redis-py's cluster client: nothing else to configure.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import LoadBalancingStrategy, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    NoScriptError,
    TryAgainError,
)
from redis.retry import Retry

from gh_assets.github.urls import safe_url
from gh_assets.storage import bulk_read
from gh_assets.storage.bulk_read import FIRST_FEW, READ_BATCH, READ_REPORT, ReadReport
from gh_assets.storage.failover import NODE_FAULTS, FailoverWait
from gh_assets.storage.frame_builder import frame_from_batches
from gh_assets.storage.page_aggregates import page_aggregates
from gh_assets.storage.schema import (
    BLOCK,
    COUNTERS,
    LOGIN_BUCKETS,
    USER_FIELDS,
    ascii_lower,
    block_of,
    iso_utc,
    login_bucket,
    page_block,
    page_window,
    schema_text,
)

AGGREGATE_PAGES_PER_STEP = 200  # pages whose aggregates one pipelined round trip reads
STAGED_SECONDS = 3 * 3600  # longer than GitHub's hourly reset, short enough to stay fresh
GONE_MARK = "gone"
# A page write refused while its block's slot moves between Cluster nodes (or rewritten between
# the read of its members and the script) is tried again for about WRITE_RETRY_SECONDS, backing
# off from BACKOFF s, doubling up to BACKOFF_MAX: a Cluster refuses a multi-key script
# (TRYAGAIN) for as long as its slot is being moved.
WRITE_RETRY_SECONDS = 30.0
BACKOFF = 0.1
BACKOFF_MAX = 2.0
# A frame read meeting a slot that moved, or is moving, reads the slot map again and starts over,
# for about MOVE_READ_SECONDS (a block's slot stays half moved while its keys are migrated).
MOVE_READ_SECONDS = 60.0
REDIRECTIONS = (AskError, TryAgainError, ClusterDownError, ClusterError)  # MovedError is an Ask
STALE_MEMBERS = "GHSTALE"
# Valkey: "Attempted to access a non local key in a cluster node script"; Redis 7: "Script
# attempted to access a non local key in a cluster node script"; Redis 6: "Lua script attempted…".
NON_LOCAL_KEY = "non local key in a cluster node"
_WRITE_PAGE = resources.files(__package__).joinpath("write_page.lua").read_text()
_LOGINS = resources.files(__package__).joinpath("logins.lua").read_text()
_PAGES_USERS = resources.files(__package__).joinpath("pages_users.lua").read_text()
# One page's member count and aggregates in one atomic step; every key is the page's, so the read
# is a single-slot call (Redis Cluster).
# KEYS[1] page member set, KEYS[2..] RedisStore.aggregate_keys(page)
_READ_AGGREGATES = """
local found = {redis.call('SCARD', KEYS[1])}
for i = 2, #KEYS do
  found[i] = redis.call('HGETALL', KEYS[i])
end
return found
"""
_CLIENT_DEFAULTS = {"socket_timeout": 60, "socket_connect_timeout": 10, "health_check_interval": 30}


class SchemaError(RuntimeError):
    """The Redis holds gh_assets data this store must not read or write: the old key schema
    (``gh-assets migrate`` converts it), or blocks of another size. One line naming REDIS_URL."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"REDIS_URL={where!r} {detail}")
        self.where = where
        self.detail = detail


@dataclass(frozen=True)
class PageWrite:
    """Everything one crawled page puts into Redis; hashes hold strings, as Redis does."""

    page: str
    users: Sequence[Mapping[str, str]]
    gone: Sequence[int]
    meta: Mapping[str, str]
    fetched_at: datetime
    started: int | None = None  # the crawl's start, Redis's clock (crawl_order): a later one wins


class StoredAggregates(NamedTuple):
    """One page's aggregates as stored (``schema``), read in one atomic step with its member
    count (``SCARD`` of its member set): ``agg`` the ``:agg`` hash, ``histograms`` each
    counter's ``:hist:`` hash (COUNTERS order), raw bytes as Redis gives them."""

    page: str
    members: int
    agg: dict[bytes, bytes]
    histograms: list[dict[bytes, bytes]]


@dataclass(frozen=True)
class PreparedPage:
    """A page write checked and encoded, ready for Redis (``RedisStore.prepare_page``)."""

    page: str
    block: int
    keys: list[str]  # the script's keys (``write_page.lua``) but the members that left
    listed: frozenset[str]  # ids the page writes or records as gone
    payload: str
    logins: dict[int, list[str]]  # bucket -> [login, id, ...] the page's users set
    fetched_at: float
    finished: bool  # the script writes the login entries and the registration too


class _BlockRead(NamedTuple):
    """What reading some blocks on one node gave: their rows and what the report needs."""

    frame: pd.DataFrame
    no_hash: list[int]
    no_login: list[int]
    pages_users: int
    indexed: int
    from_replica: bool


class RedisStore:
    """Reads and writes the gh_assets key schema on one Redis database or one Redis Cluster.

    ``block`` (``schema.BLOCK`` unless a test wants pages spread over a small cluster) is part
    of the schema: it is stored in ``gh:schema`` by the first write, and a store of another
    block size refuses the data (``SchemaError``), as it refuses data in the old key schema.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster | None = None,
        prefix: str = "gh:",
        *,
        block: int = BLOCK,
        connect: Callable[[], redis.Redis | RedisCluster] | None = None,
        where: str | None = None,
    ):
        if client is None and connect is None:
            raise ValueError("RedisStore needs a client or a way to connect")
        if block < 1:
            raise ValueError(f"block must be >= 1, not {block}")
        self.prefix = prefix
        self.block = block
        self.login_buckets = LOGIN_BUCKETS
        self.pages_key = f"{prefix}pages"
        self.deferred_key = f"{prefix}deferred"
        self.blocks_key = f"{prefix}blocks"
        self.schema_key = f"{prefix}schema"
        self.old_keys = (f"{prefix}ids", f"{prefix}logins")
        self._connect = connect
        self._connect_replicas: Callable[[], RedisCluster] | None = None
        self._replicas: RedisCluster | None = None
        self._where = where
        self._lock = threading.Lock()
        self._checked = False
        self.write_retries = 0  # page writes tried again (a moving slot, a page rewritten)
        self.read_retries = 0  # frame reads started over (a slot moved or moving)
        self._client: redis.Redis | RedisCluster | None = None
        if client is not None:
            self._use(client)

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "gh:", *, block: int = BLOCK, **client_options: Any
    ) -> RedisStore:
        """A store on the redis://, rediss:// or unix:// URL (password or ACL user in it), which
        may name any node of a Redis Cluster. Nothing connects until the first use."""
        options = _CLIENT_DEFAULTS | client_options
        # Not connected yet; a URL redis-py refuses raises ValueError here.
        single = redis.Redis.from_url(url, **options)

        def connect() -> redis.Redis | RedisCluster:
            try:
                enabled = str(single.info("cluster").get("cluster_enabled", 0)) == "1"
            except redis.ResponseError:  # INFO refused (ACL, a proxy): not a cluster node
                enabled = False
            if not enabled:
                return single
            single.close()
            return RedisCluster.from_url(url, **options)

        store = cls(None, prefix, block=block, connect=connect, where=safe_url(url))
        # Replica reads (``read_frame(from_replicas=True)``) go through a client of their own:
        # its connections send READONLY, and nothing else the store does ever uses it.
        store._connect_replicas = lambda: RedisCluster.from_url(
            url, load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS, **options
        )
        return store

    # The client, connected on first use -----------------------------------------------------
    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The redis-py client: ``redis.Redis``, or ``RedisCluster`` when the URL names a node
        of a cluster."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    assert self._connect is not None
                    self._use(self._connect())
        assert self._client is not None
        return self._client

    @property
    def cluster(self) -> bool:
        return isinstance(self.client, RedisCluster)

    def close(self) -> None:
        """Close the clients' connections, if they ever connected."""
        for client in (self._client, self._replicas):
            if client is not None:
                client.close()

    def _use(self, client: redis.Redis | RedisCluster) -> None:
        self._write_page = client.register_script(_WRITE_PAGE)
        self._logins = client.register_script(_LOGINS)
        self._pages_users = client.register_script(_PAGES_USERS)
        self._read_aggregates = client.register_script(_READ_AGGREGATES)
        self._client = client

    def __repr__(self) -> str:
        # The connection kwargs may carry a password: show only where the data lives.
        return f"RedisStore({self._location()} prefix={self.prefix!r})"

    def _location(self) -> str:
        url = self._url()
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        cluster = " cluster" if self._client is not None and self.cluster else ""
        return f"{parts.hostname}:{parts.port or 6379} db={parts.path.strip('/') or 0}{cluster}"

    def _url(self) -> str:
        """Where the data lives as a URL without credentials, for one-line messages."""
        if self._where is not None:
            return self._where
        client = self.client
        if isinstance(client, RedisCluster):
            node = client.get_default_node()
            return f"redis://{node.host}:{node.port}/0"
        kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("path"):
            return f"unix://{kwargs['path']}"
        return f"redis://{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"

    # Keys -------------------------------------------------------------------------------------
    def block_tag(self, block: int) -> str:
        """The prefix of every key of ``block``: its hash tag picks one Cluster slot."""
        return f"{self.prefix}{{b{block}}}:"

    def block_of(self, user_id: int | str) -> int:
        return block_of(user_id, self.block)

    def page_block(self, page: str) -> int:
        return page_block(page, self.block)

    def user_key(self, user_id: int | str) -> str:
        return f"{self.block_tag(self.block_of(user_id))}user:{user_id}"

    def ids_key(self, block: int) -> str:
        """The block's id index: a sorted set of its stored user ids (score = id)."""
        return f"{self.block_tag(block)}ids"

    def block_pages_key(self, block: int) -> str:
        """The set of the block's written pages."""
        return f"{self.block_tag(block)}pages"

    def version_key(self, block: int) -> str:
        """The block's version: a counter every page write (and forgetting a page) moves, so a
        summary of the block's pages made at one version is known to be current or not."""
        return f"{self.block_tag(block)}version"

    def block_summary_key(self, block: int) -> str:
        """The block's pages' aggregates merged, as JSON, with the version they were merged at
        (``gh_assets.aggregates``): what the next summary reuses while the version holds."""
        return f"{self.block_tag(block)}summary"

    def unpaged_key(self, block: int) -> str:
        """The block's users no page holds: kept by ``forget_pages`` for the wider pages that
        replace theirs; the first write of the page whose window holds one claims it."""
        return f"{self.block_tag(block)}unpaged"

    def logins_key(self, bucket: int) -> str:
        """Login bucket ``bucket``: a hash of lower-cased login -> id."""
        return f"{self.prefix}logins:{{{bucket}}}"

    def login_key(self, login: str) -> str:
        """The login bucket holding ``login`` (any case)."""
        return self.logins_key(login_bucket(login, self.login_buckets))

    def page_key(self, page: str, part: str = "") -> str:
        return f"{self.block_tag(self.page_block(page))}page:{page}{':' + part if part else ''}"

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

    # The schema the data was written with -----------------------------------------------------
    def check_schema(self) -> None:
        """Refuse (``SchemaError``, one line) a Redis holding gh_assets data in the old key
        schema (``gh:ids``, ``gh:logins``: run ``gh-assets migrate``) or written with another
        block size. One round trip, on the first use of the store only."""
        if self._checked:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for key in self.old_keys:
                pipe.exists(key)
            pipe.get(self.schema_key)
            *old, stored = pipe.execute()
        found = [key for key, exists in zip(self.old_keys, old, strict=True) if exists]
        if found:
            raise SchemaError(
                self._url(),
                f"holds gh_assets data in the old key schema ({found[0]}): run gh-assets migrate",
            )
        if stored is not None:
            self._check_stored_schema(stored)
        self._checked = True

    def _check_stored_schema(self, stored: bytes | str) -> None:
        text = stored.decode() if isinstance(stored, bytes) else stored
        try:
            found = json.loads(text)
            block, buckets = int(found["block"]), int(found["login_buckets"])
        except (ValueError, KeyError, TypeError):
            raise SchemaError(
                self._url(), f"holds {self.schema_key} = {text[:60]!r}, not a gh_assets schema"
            ) from None
        if (block, buckets) != (self.block, self.login_buckets):
            raise SchemaError(
                self._url(),
                f"holds gh_assets data in blocks of {block:,} IDs and {buckets:,} login "
                f"buckets ({self.schema_key}); this store uses {self.block:,} and "
                f"{self.login_buckets:,}",
            )

    # Writes ---------------------------------------------------------------------------------
    def prepare_page(self, write: PageWrite, finish: bool | None = None) -> PreparedPage:
        """Check and encode a page write (the client's share of ``write_page``, no I/O).

        ``finish`` (default: not on a cluster) has the script also write the page's login
        entries and its registration, as a single Redis allows."""
        for user in write.users:
            _check_user(user)
        both = {int(user["id"]) for user in write.users} & {int(i) for i in write.gone}
        if both:
            raise ValueError(f"page {write.page}: user {min(both)} is both written and gone")
        block = self.page_block(write.page)
        numbers = [int(user["id"]) for user in write.users] + [int(i) for i in write.gone]
        first, last = block * self.block + 1, (block + 1) * self.block
        outside = [i for i in numbers if not first <= i <= last]
        if outside:
            raise ValueError(
                f"page {write.page}: user {min(outside)} lies outside its block of IDs "
                f"{first}-{last}"
            )
        ids = list(map(str, numbers))
        if finish is None:
            finish = not self.cluster
        meta = dict(write.meta) | {"fetched_at": iso_utc(write.fetched_at)}
        meta |= {} if write.started is None else {"started": str(write.started)}
        agg, histograms = page_aggregates(write.users)
        logins: dict[int, list[str]] = defaultdict(list)
        for user, user_id in zip(write.users, ids, strict=False):
            lower = ascii_lower(user["login"])
            logins[login_bucket(lower, self.login_buckets)] += [lower, user_id]
        payload: dict[str, Any] = {
            "users": [_flat(_ordered(user)) for user in write.users],
            "gone": [str(user_id) for user_id in write.gone],
            "meta": _flat(meta),
            "agg": _flat(agg),
            "hist": [_flat(histogram) for histogram in histograms],
            **({} if write.started is None else {"started": str(write.started)}),
        }
        finish_keys: list[str] = []
        if finish:
            buckets = sorted(logins)
            payload["finish"] = {
                "fetched_at": str(int(write.fetched_at.timestamp())),
                "block": str(block),
                "schema": schema_text(self.block, self.login_buckets),
                "sets": [logins[bucket] for bucket in buckets],
            }
            finish_keys = [
                self.pages_key,
                self.deferred_key,
                self.blocks_key,
                self.schema_key,
                *(self.logins_key(bucket) for bucket in buckets),
            ]
        tag = self.block_tag(block)
        keys = [
            self.page_key(write.page),
            self.page_key(write.page, "users"),
            self.page_key(write.page, "gone"),
            self.ids_key(block),
            self.block_pages_key(block),
            self.page_key(write.page, "staged"),
            self.unpaged_key(block),
            self.version_key(block),
            *self.aggregate_keys(write.page),
            *finish_keys,
            *(f"{tag}user:{user_id}" for user_id in dict.fromkeys(ids)),
        ]
        return PreparedPage(
            page=write.page,
            block=block,
            keys=keys,
            listed=frozenset(ids),
            payload=json.dumps(payload),
            logins=dict(logins),
            fetched_at=write.fetched_at.timestamp(),
            finished=finish,
        )

    def write_page(self, write: PageWrite) -> bool:
        """Replace a page's users, gone ids, bookkeeping and aggregates in one atomic step: one
        script (``write_page.lua``) over its block's keys, every one declared.

        Users that the page held before and no longer lists are deleted, and their login entries
        with them (only where a bucket still maps the login to that user), so re-running a page
        is idempotent and never leaves a deleted account behind. The page's aggregates
        (``page_aggregates``) are computed here, with Python's exact integers, and replace the
        old ones in the same step.

        The login buckets and ``gh:pages`` are in other slots. On a single Redis the script
        writes the page's login entries and its registration in ``gh:pages`` (and
        ``gh:blocks``) in the same step all the same; on a cluster they follow the script, the
        login entries first (pipelined, one call per bucket), then the registration. A crash
        in between leaves the page's users written but its login entries or its ``gh:pages``
        time behind: the page is crawled again (its failed run's retry, or as stale; a first
        write, never in ``gh:pages``, as unfinished: ``registration.write_begun``) and its
        write completes then. Login entries a write makes stale (renamed, deleted users) are
        removed right after the script, each only where its bucket still maps the login to that
        user, so a crash can leave one behind: ``user_id_for_login`` checks every entry against
        the user's hash and ignores it.

        On Redis Cluster, a write refused because its block's slot is moving (TRYAGAIN, ASK,
        MOVED, CLUSTERDOWN, once redis-py's own redirections are spent) or its primary stops
        answering (a failover, logged once: ``FailoverWait``) is tried again for up to
        ``WRITE_RETRY_SECONDS``, backing off: the write is idempotent, so a retry after a
        half-done attempt finishes it. So is a write whose page was rewritten between its
        members' read and its script (GHSTALE). ``write_retries`` counts them.

        False, writing nothing, when a crawl of the page that started later (``write.started``,
        ``crawl_order``) has written it already: the older crawl never replaces newer data.
        """
        prepared = self.prepare_page(write)
        self.check_schema()
        removals: dict[int, list[str]] = defaultdict(list)  # kept across attempts

        def retryable(error: Exception) -> bool:
            # A script cut short by a slot move (a key it deleted has migrated meanwhile)
            # wrote part of the page: the retry, once the move is over, rewrites it whole.
            return _redirected(error) or str(error).startswith(STALE_MEMBERS)

        hooks = FailoverWait(self, write.page, prepared.keys[0], retryable, WRITE_RETRY_SECONDS)
        return _slot_move_retry(WRITE_RETRY_SECONDS, NODE_FAULTS).call_with_retry(
            lambda: self._write_prepared(prepared, removals), hooks.refused, hooks.retryable
        )

    def _write_prepared(self, prepared: PreparedPage, removals: dict[int, list[str]]) -> bool:
        """One attempt at ``write_page`` (False: superseded); the stale login entries its script
        reports are added to ``removals`` (a retry after the script ran finds none to report)."""
        tag = self.block_tag(prepared.block)
        left: list[str] = []
        if not prepared.finished:  # a cluster: every key declared, the ids that left too
            first, last = page_window(prepared.page)
            members = self.client.smembers(prepared.keys[1])
            unpaged = self.client.smembers(self.unpaged_key(prepared.block))  # mostly empty
            held = {m.decode() for m in members}
            held |= {i.decode() for i in unpaged if i.isdigit() and first <= int(i) <= last}
            left = [f"{tag}user:{i}" for i in sorted(held) if i not in prepared.listed]
        written, stale = self._write_page(
            keys=[*prepared.keys, *left],
            args=[
                f"{tag}user:",
                prepared.page,
                prepared.payload,
                "" if prepared.finished else "strict",
            ],
        )
        if written < 0:  # a later-started crawl wrote the page: nothing was written
            return False
        for login, user_id in zip(stale[::2], stale[1::2], strict=True):
            lower = ascii_lower(login.decode())
            removals[login_bucket(lower, self.login_buckets)] += [lower, user_id.decode()]
        if prepared.finished:  # the entries and the registration are written: the stale ones go
            self._update_logins({}, removals)
            return True
        # On a cluster: the page's login entries, then (once they are written) the page's
        # registration in gh:pages, which completes it; never back in time (GT), should an older
        # write register after a newer one.
        self._update_logins(prepared.logins, removals)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.pages_key, {prepared.page: int(prepared.fetched_at)}, gt=True)
            pipe.zrem(self.deferred_key, prepared.page)
            pipe.zadd(self.blocks_key, {str(prepared.block): prepared.block})
            pipe.set(self.schema_key, schema_text(self.block, self.login_buckets), nx=True)
            pipe.execute()
        return True

    def _update_logins(
        self, sets: Mapping[int, list[str]], removals: Mapping[int, list[str]]
    ) -> None:
        """Set ``sets`` (bucket -> [login, id, ...]) and remove ``removals`` where the bucket
        still maps the login to that id: one script call over every bucket on a single Redis,
        one per bucket (its own slot), pipelined, on a cluster."""
        buckets = sorted(set(sets) | set(removals))
        if not buckets:
            return

        def args(bucket: int) -> list[str]:
            setting, removing = sets.get(bucket, []), removals.get(bucket, [])
            return [str(len(setting) // 2), str(len(removing) // 2), *setting, *removing]

        if not self.cluster:
            keys = [self.logins_key(bucket) for bucket in buckets]
            self._logins(keys=keys, args=[a for bucket in buckets for a in args(bucket)])
            return
        # A cluster: every bucket is a slot of its own. Sets are plain HSETs, pipelined per node
        # (a cluster pipeline costs several times more per command); the conditional removals,
        # rare (a user gone or renamed), go through the script, one call per bucket.
        setting = [bucket for bucket in buckets if sets.get(bucket)]
        self._each(
            setting,
            self.logins_key,
            lambda pipe, bucket: pipe.hset(self.logins_key(bucket), items=sets[bucket]),
        )
        removing = [bucket for bucket in buckets if removals.get(bucket)]
        if not removing:
            return
        for attempt in range(2):
            try:
                with self.client.pipeline(transaction=False) as cluster_pipe:
                    for bucket in removing:
                        keys = [self.logins_key(bucket)]
                        self._logins(
                            keys=keys,
                            args=["0", str(len(removals[bucket]) // 2), *removals[bucket]],
                            client=cluster_pipe,
                        )
                    cluster_pipe.execute()
                return
            except NoScriptError:  # a cluster pipeline does not load scripts: load, once
                if attempt:
                    raise
                self.client.script_load(_LOGINS)

    def stage_answers(self, page: str, answers: Mapping[int, Mapping[str, str] | None]) -> None:
        """Keep answers a page got before an error stopped it (a user's hash, or None: gone), for
        ``STAGED_SECONDS``: its re-run reuses them instead of paying GitHub for them again (the
        page is still written whole, by its re-run; that write drops them)."""
        if not answers:
            return
        self.check_schema()
        key = self.page_key(page, "staged")
        mapping = {
            str(i): GONE_MARK if a is None else json.dumps(dict(a)) for i, a in answers.items()
        }
        with self.client.pipeline(transaction=True) as pipe:  # one key: one slot
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, STAGED_SECONDS)
            pipe.execute()

    def staged_answers(self, page: str) -> dict[int, dict[str, str] | None]:
        """The answers ``stage_answers`` kept for ``page`` (None: the user is gone)."""
        self.check_schema()
        found = self.client.hgetall(self.page_key(page, "staged"))
        return {
            int(i): None if raw == GONE_MARK.encode() else json.loads(raw)
            for i, raw in found.items()
        }

    def delete_users(self, user_ids: Sequence[int]) -> int:
        """Delete users with their id and login entries (a login entry only while it still points
        at them); a maintenance step, not meant to race page writes. Returns how many existed."""
        if not user_ids:
            return 0
        self.check_schema()
        logins = self._each(
            user_ids, self.user_key, lambda pipe, i: pipe.hget(self.user_key(i), "login")
        )
        deleted = self._each(
            user_ids,
            self.user_key,
            lambda pipe, i: (
                pipe.delete(self.user_key(i)),
                pipe.zrem(self.ids_key(self.block_of(i)), i),
                pipe.srem(self.unpaged_key(self.block_of(i)), i),
            ),
            replies=3,
        )
        removals: dict[int, list[str]] = defaultdict(list)
        for login, user_id in zip(logins, user_ids, strict=True):
            if login:
                lower = ascii_lower(login.decode())
                removals[login_bucket(lower, self.login_buckets)] += [lower, str(user_id)]
        self._update_logins({}, removals)
        return sum(existed for existed, _, _ in deleted)

    def forget_pages(self, pages: Sequence[str]) -> None:
        """Delete pages' bookkeeping (``page_keys``) and their entries in their blocks' page
        sets, ``gh:pages`` and ``gh:deferred``. Their users stay (``delete_users`` removes
        them), recorded as held by no page (``unpaged_key``) until the page whose window holds
        them is written, which keeps or deletes them as it finds them on GitHub; so do their
        blocks in ``gh:blocks``, which the users kept may still be in. Members without a hash
        (``delete_users`` removed them first) are not kept: every later write of the block would
        read them."""
        if not pages:
            return
        self.check_schema()
        members = self._each(
            pages, self.page_key, lambda p, page: p.smembers(self.page_key(page, "users"))
        )
        ids = sorted({int(i) for found in members for i in found})
        exists = self._each(ids, self.user_key, lambda pipe, i: pipe.exists(self.user_key(i)))
        alive = {i for i, found in zip(ids, exists, strict=True) if found}
        kept = {
            p: [i for i in found if int(i) in alive]
            for p, found in zip(pages, members, strict=True)
        }
        self._each(
            [page for page in pages if kept[page]],
            self.page_key,
            lambda pipe, page: pipe.sadd(self.unpaged_key(self.page_block(page)), *kept[page]),
        )

        def forget(pipe: Any, page: str) -> tuple[Any, ...]:
            block = self.page_block(page)
            return (
                pipe.delete(*self.page_keys(page)),
                pipe.srem(self.block_pages_key(block), page),
                pipe.incr(self.version_key(block)),
            )

        self._each(pages, self.page_key, forget, replies=3)
        self.client.zrem(self.pages_key, *pages)
        self.client.zrem(self.deferred_key, *pages)

    # Reads ----------------------------------------------------------------------------------
    def read_users(self, user_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Stored hashes of the given ids (absent ids left out), in one round trip per node."""
        ids = list(user_ids)
        self.check_schema()
        hashes = self._each(ids, self.user_key, lambda pipe, i: pipe.hgetall(self.user_key(i)))
        return {
            user_id: {k.decode(): v.decode() for k, v in found.items()}
            for user_id, found in zip(ids, hashes, strict=True)
            if found
        }

    def user_id_for_login(self, login: str) -> int | None:
        """The id of the account whose login is ``login`` (A-Z in any case), or None. An entry
        the user's hash no longer confirms (a write cut short, see ``write_page``) is None."""
        self.check_schema()
        lower = ascii_lower(login)
        found = self.client.hget(self.login_key(lower), lower)
        if found is None:
            return None
        user_id = int(found)
        stored = self.client.hget(self.user_key(user_id), "login")
        if stored is None or ascii_lower(stored.decode()) != lower:
            return None
        return user_id

    def page_members(self, page: str) -> set[int]:
        self.check_schema()
        return {int(member) for member in self.client.smembers(self.page_key(page, "users"))}

    def page_gone(self, page: str) -> set[int]:
        self.check_schema()
        return {int(member) for member in self.client.smembers(self.page_key(page, "gone"))}

    def page_meta(self, page: str) -> dict[str, str]:
        self.check_schema()
        found = self.client.hgetall(self.page_key(page))
        return {k.decode(): v.decode() for k, v in found.items()}

    def pages(self) -> list[str]:
        """Every written page (``gh:pages``), oldest first."""
        return [page.decode() for page in self.client.zrange(self.pages_key, 0, -1)]

    def pages_meta(self) -> dict[str, dict[str, str]]:
        """Every crawled page's bookkeeping, oldest first, in one round trip per node."""
        self.check_schema()
        pages = self.pages()
        found = self._each(pages, self.page_key, lambda pipe, p: pipe.hgetall(self.page_key(p)))
        return {
            page: {k.decode(): v.decode() for k, v in meta.items()}
            for page, meta in zip(pages, found, strict=True)
        }

    def pages_fetched_at(self) -> dict[str, datetime]:
        """Every crawled page with the time it was last written, oldest first."""
        self.check_schema()
        return {
            page.decode(): datetime.fromtimestamp(score, UTC)
            for page, score in self.client.zrange(self.pages_key, 0, -1, withscores=True)
        }

    def stale_pages(self, before: datetime, limit: int) -> list[str]:
        """Up to ``limit`` pages last written before ``before``, oldest first."""
        self.check_schema()
        found = self.client.zrangebyscore(
            self.pages_key, "-inf", f"({before.timestamp()}", start=0, num=limit
        )
        return [page.decode() for page in found]

    def defer_page(self, page: str, until: datetime) -> None:
        """Mark a page to run again after ``until`` (the reset of a long rate limit)."""
        self.check_schema()
        self.client.zadd(self.deferred_key, {page: until.timestamp()})

    def deferred_pages(self) -> dict[str, datetime]:
        """Pages waiting for a rate-limit reset, with the time each may run again."""
        self.check_schema()
        return {
            page.decode(): datetime.fromtimestamp(score, UTC)
            for page, score in self.client.zrange(self.deferred_key, 0, -1, withscores=True)
        }

    def blocks(self) -> list[int]:
        """The blocks holding data (``gh:blocks``), ascending."""
        return [int(block) for block in self.client.zrange(self.blocks_key, 0, -1)]

    def ids_between(self, first_id: int, last_id: int) -> set[int]:
        """Stored user ids in an ID window, from the id indexes of its blocks."""
        self.check_schema()
        blocks = list(range(self.block_of(first_id), self.block_of(last_id) + 1))
        found = self._each(
            blocks,
            self.ids_key,
            lambda pipe, b: pipe.zrangebyscore(self.ids_key(b), first_id, last_id),
        )
        return {int(i) for ids in found for i in ids}

    def read_counters(self, user_ids: Iterable[int]) -> dict[int, list[bytes | None]]:
        """The four counters of each id (None where absent), in one round trip per node."""
        ids = list(user_ids)
        self.check_schema()
        found = self._each(
            ids, self.user_key, lambda pipe, i: pipe.hmget(self.user_key(i), COUNTERS)
        )
        return dict(zip(ids, found, strict=True))

    def read_aggregates(
        self, pages: Sequence[str] | None = None, per_step: int = AGGREGATE_PAGES_PER_STEP
    ) -> Iterator[StoredAggregates]:
        """The stored aggregates of ``pages`` (default: every page in ``gh:pages``, oldest first),
        ``per_step`` pages per pipelined round trip (per node). Each page is read in one atomic
        step, whole as its last write left it, with its member count (a page written meanwhile
        is seen before or after, never half); pages are independent, so no step spans two."""
        self.check_schema()
        if pages is None:
            pages = self.pages()

        def read(pipe: Any, page: str) -> Any:
            keys = [self.page_key(page, "users"), *self.aggregate_keys(page)]
            return self._read_aggregates(keys=keys, client=pipe)

        for first in range(0, len(pages), per_step):
            chunk = pages[first : first + per_step]
            replies = self._each(chunk, self.page_key, read)
            for page, (members, agg, *histograms) in zip(chunk, replies, strict=True):
                yield StoredAggregates(page, members, _pairs(agg), [_pairs(h) for h in histograms])

    def block_pages(self, block: int) -> list[str]:
        """The block's written pages, in ID order."""
        return sorted(m.decode() for m in self.client.smembers(self.block_pages_key(block)))

    def block_summaries(self, blocks: Sequence[int]) -> list[tuple[int, bytes | None]]:
        """Per block, its version now and its stored summary (None when none is stored), read
        together (one slot)."""
        found = self._each(
            blocks,
            self.version_key,
            lambda pipe, b: (pipe.get(self.version_key(b)), pipe.get(self.block_summary_key(b))),
            replies=2,
        )
        return [(int(version or 0), stored) for version, stored in found]

    def block_version(self, block: int) -> int:
        return int(self.client.get(self.version_key(block)) or 0)

    def store_block_summary(self, block: int, text: str) -> None:
        """Keep ``text`` (the block's merged aggregates with their version) for later summaries."""
        self.client.set(self.block_summary_key(block), text)

    def page_user_total(self) -> int:
        """Users stored over all pages, by the pages' own bookkeeping."""
        self.check_schema()
        pages = self.pages()
        found = self._each(
            pages, self.page_key, lambda pipe, p: pipe.hget(self.page_key(p), "users")
        )
        return sum(int(users or 0) for users in found)

    def user_count(self) -> int:
        self.check_schema()
        blocks = self.blocks()
        return sum(self._each(blocks, self.ids_key, lambda pipe, b: pipe.zcard(self.ids_key(b))))

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
            return _slot_move_retry(MOVE_READ_SECONDS).call_with_retry(
                lambda: self._read_frame(batch, from_replicas),
                moved,
                lambda error: self.cluster and _redirected(error),
            )
        except redis.ResponseError as error:
            if self.cluster and _redirected(error):  # still moving after MOVE_READ_SECONDS
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

    # Batched commands, per node on a cluster --------------------------------------------------
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
                if not (self.cluster and _redirected(error)):
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


def _slot_move_retry(seconds: float, also: tuple[type[Exception], ...] = ()) -> Retry:
    """redis-py's ``Retry`` for a step a moving slot (or ``also``) refuses: waits from BACKOFF s,
    doubling up to BACKOFF_MAX, about ``seconds`` in all (the caller says which are retried)."""
    retries, waited = 0, 0.0
    while waited < seconds:
        retries += 1
        waited += min(BACKOFF_MAX, BACKOFF * 2**retries)
    backoff = ExponentialBackoff(cap=BACKOFF_MAX, base=BACKOFF)
    return Retry(backoff, retries, supported_errors=(redis.ResponseError, ClusterError, *also))


def _redirected(error: Exception) -> bool:
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


def _ordered(user: Mapping[str, str]) -> dict[str, str]:
    """Schema fields first, in schema order (``HGETALL`` reads well), then any others."""
    ordered = {field: user[field] for field in USER_FIELDS if field in user}
    return ordered | {field: value for field, value in user.items() if field not in ordered}


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash as a script returns it (field, value, ...) as a dict, like ``HGETALL``'s."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [str(item) for pair in fields.items() for item in pair]


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
