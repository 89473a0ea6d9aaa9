"""``PageWrites``: one crawled page into Redis in one atomic step (``write_page.lua``), its users
checked first, on a single Redis or a Redis Cluster alike (``write_page`` says how)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gh_assets.storage.cluster_steps import redirected, slot_move_retry
from gh_assets.storage.failover import NODE_FAULTS, FailoverWait
from gh_assets.storage.logins import LoginEntries
from gh_assets.storage.page_aggregates import page_aggregates
from gh_assets.storage.schema import (
    COUNTERS,
    TIMES,
    USER_FIELDS,
    ascii_lower,
    iso_utc,
    login_bucket,
    page_window,
    schema_text,
)

# A page write refused while its block's slot moves between Cluster nodes (or rewritten between
# the read of its members and the script) is tried again for about WRITE_RETRY_SECONDS.
WRITE_RETRY_SECONDS = 30.0
STALE_MEMBERS = "GHSTALE"


@dataclass(frozen=True)
class PageWrite:
    """Everything one crawled page puts into Redis; hashes hold strings, as Redis does."""

    page: str
    users: Sequence[Mapping[str, str]]
    gone: Sequence[int]
    meta: Mapping[str, str]
    fetched_at: datetime
    started: int | None = None  # the crawl's start, Redis's clock (crawl_order): a later one wins


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


class PageWrites(LoginEntries):
    """Page writes: checked and encoded (``prepare_page``), then sent (``write_page``)."""

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
            return redirected(error) or str(error).startswith(STALE_MEMBERS)

        hooks = FailoverWait(self, write.page, prepared.keys[0], retryable, WRITE_RETRY_SECONDS)
        return slot_move_retry(WRITE_RETRY_SECONDS, NODE_FAULTS).call_with_retry(
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


def _ordered(user: Mapping[str, str]) -> dict[str, str]:
    """Schema fields first, in schema order (``HGETALL`` reads well), then any others."""
    ordered = {field: user[field] for field in USER_FIELDS if field in user}
    return ordered | {field: value for field, value in user.items() if field not in ordered}


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [str(item) for pair in fields.items() for item in pair]


def user_problem(user: Mapping[str, str]) -> str | None:
    """What keeps a user hash out of the schema, or None: the rule every write applies, and
    the test a stored hash passes before a crawl reuses it."""
    for field in ("id", "login", "type"):
        if not user.get(field):
            return f"user {user.get('id', '?')} has no {field!r}"
    # A time is checked when present: a hash written before it joined the registry lacks it.
    for field in ("id", *COUNTERS, *(name for name in TIMES if name in user)):
        value = str(user.get(field, ""))
        if not (value.isascii() and value.isdecimal()):  # "٣" is decimal, not ASCII
            return f"user {user['id']} has a non-integer {field!r}: {user.get(field)!r}"
    return None


def _check_user(user: Mapping[str, str]) -> None:
    """Refuse a user hash that would break the schema, before anything is written."""
    if problem := user_problem(user):
        raise ValueError(problem)
