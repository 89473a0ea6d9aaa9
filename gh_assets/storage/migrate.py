"""``gh-assets migrate``: convert, in place, a store written in the old key schema (one global
``gh:ids`` and ``gh:logins``, ``gh:user:<id>``, ``gh:page:<page>...``) into the block schema of
``schema.py``, losing nothing.

On a single Redis (the old schema never ran on a cluster): every user hash and every page key is
RENAMEd into its block (a rename keeps a staged page's expiry), the blocks' id indexes, page
sets and the login buckets are built from the old indexes, ``gh:schema`` and ``gh:blocks`` are
written, and the old global ``gh:ids`` and ``gh:logins`` go last. Each step is idempotent and
finds its work by scanning for old keys, so a migration interrupted anywhere is finished by
running it again; until it is, the old global keys are there and every store refuses the data.
Run it with no crawl running.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from gh_assets.storage.schema import ascii_lower, login_bucket, page_block, schema_text
from gh_assets.storage.store import RedisStore, SchemaError

STEP = 1_000  # keys per SCAN and per pipelined batch
_GLOB = re.compile(r"([*?\[\]\\])")


class MigrationError(RuntimeError):
    """The old data cannot be placed in blocks as it is; nothing was changed. One line."""


@dataclass
class MigrationReport:
    """What one run of ``migrate`` did (zeros: nothing was left to do)."""

    users: int = 0  # user hashes renamed into their block
    page_keys: int = 0  # page keys renamed into their block
    pages: int = 0  # distinct pages those keys belong to
    ids: int = 0  # entries of the old id index copied into the blocks' indexes
    logins: int = 0  # entries of the old login index copied into the buckets
    blocks: set[int] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)  # old global keys deleted

    def lines(self, store: RedisStore) -> list[str]:
        blocks = f"{len(self.blocks):,} block{'s' if len(self.blocks) != 1 else ''}"
        return [
            f"user hashes renamed into their block: {self.users:,} (into {blocks} of "
            f"{store.block:,} IDs)",
            f"page keys renamed: {self.page_keys:,} of {self.pages:,} pages",
            f"ids indexed per block: {self.ids:,}",
            f"logins copied into {store.login_buckets:,} buckets: {self.logins:,}",
            "old global keys removed: " + (", ".join(self.removed) or "none left"),
        ]


def old_keys_present(store: RedisStore) -> list[str]:
    """The old schema's global keys still in Redis (what stores refuse)."""
    return [key for key in store.old_keys if store.client.exists(key)]


def migrate(store: RedisStore, say: Callable[[str], None] = print) -> MigrationReport:
    """Convert the old key schema under ``store.prefix`` into ``store``'s block schema; see the
    module. Refuses (``MigrationError``), before changing anything, old pages whose keys are not
    page windows within one block."""
    client = store.client
    report = MigrationReport()
    prefix = store.prefix
    if store.cluster:
        if old_keys_present(store):
            raise MigrationError("the old key schema on a Redis Cluster: migrate on one Redis")
        return report
    stored = client.get(store.schema_key)
    if stored is not None:
        store._check_stored_schema(stored)  # a store of another block size: SchemaError
    old_users, old_pages = f"{prefix}user:", f"{prefix}page:"
    _refuse_unplaceable(store, old_pages)
    client.set(store.schema_key, schema_text(store.block, store.login_buckets), nx=True)

    # Users: each hash renamed into its block.
    for keys in _scan(client, old_users):
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                user_id = key[len(old_users) :]
                pipe.rename(key, store.user_key(user_id))
                report.blocks.add(store.block_of(user_id))
            report.users += _done(pipe.execute(raise_on_error=False))

    # Pages: every key renamed into the page's block; written pages join their block's set.
    pages: set[str] = set()
    for keys in _scan(client, old_pages):
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                page, _, part = key[len(old_pages) :].partition(":")
                pipe.rename(key, store.page_key(page, part))
                pages.add(page)
            report.page_keys += _done(pipe.execute(raise_on_error=False))
    report.pages = len(pages)
    written = [page.decode() for page in client.zrange(store.pages_key, 0, -1)]
    with client.pipeline(transaction=False) as pipe:
        for page in written:
            block = store.page_block(page)
            pipe.sadd(store.block_pages_key(block), page)
            report.blocks.add(block)
        pipe.execute()

    # The old indexes, copied into the blocks' and buckets' (then the old ones go, last).
    ids_key, logins_key = store.old_keys
    for start in range(0, client.zcard(ids_key), STEP):
        chunk = client.zrange(ids_key, start, start + STEP - 1)
        by_block: dict[int, dict[bytes, int]] = defaultdict(dict)
        for raw in chunk:
            by_block[store.block_of(raw.decode())][raw] = int(raw)
        with client.pipeline(transaction=False) as pipe:
            for block, scored in by_block.items():
                pipe.zadd(store.ids_key(block), scored)
                report.blocks.add(block)
            pipe.execute()
        report.ids += len(chunk)
    cursor = 0
    while True:
        cursor, found = client.hscan(logins_key, cursor, count=STEP)
        by_bucket: dict[int, dict[str, bytes]] = defaultdict(dict)
        for login, user_id in found.items():
            lower = ascii_lower(login.decode())
            by_bucket[login_bucket(lower, store.login_buckets)][lower] = user_id
        with client.pipeline(transaction=False) as pipe:
            for bucket, mapping in by_bucket.items():
                pipe.hset(store.logins_key(bucket), mapping=mapping)
            pipe.execute()
        report.logins += len(found)
        if cursor == 0:
            break
    if report.blocks:
        client.zadd(store.blocks_key, {str(block): block for block in report.blocks})
    report.removed = old_keys_present(store)
    if report.removed:
        client.delete(*report.removed)
    for line in report.lines(store):
        say(line)
    return report


def _refuse_unplaceable(store: RedisStore, old_pages: str) -> None:
    """Every old page (its keys, or its entry in ``gh:pages`` or ``gh:deferred``) must be a page
    window within one block, and every old user key end in an id: else refuse, changing nothing."""
    client = store.client
    names = {
        key[len(old_pages) :].partition(":")[0] for keys in _scan(client, old_pages) for key in keys
    }
    for registry in (store.pages_key, store.deferred_key):
        names |= {page.decode() for page in client.zrange(registry, 0, -1)}
    bad = []
    for page in sorted(names):
        try:
            page_block(page, store.block)
        except ValueError as error:
            bad.append(str(error))
    if bad:
        raise MigrationError(f"{len(bad)} old pages cannot be placed in blocks: {bad[0]}")
    for keys in _scan(client, f"{store.prefix}user:"):
        for key in keys:
            user_id = key[len(store.prefix) + len("user:") :]
            if not (user_id.isascii() and user_id.isdecimal() and int(user_id) > 0):
                raise MigrationError(f"{key!r} is not a user hash of the old schema (no id)")


def _scan(client: redis.Redis, prefix: str) -> Iterator[list[str]]:
    """The keys starting with ``prefix``, STEP at a time (SCAN: keys renamed meanwhile are
    simply not seen again)."""
    batch: list[str] = []
    for raw in client.scan_iter(match=_GLOB.sub(r"\\\1", prefix) + "*", count=STEP):
        batch.append(raw.decode(errors="backslashreplace"))  # a key in messages: one line
        if len(batch) == STEP:
            yield batch
            batch = []
    if batch:
        yield batch


def _done(replies: list[object]) -> int:
    """Renames that happened; a key gone meanwhile ("no such key") was renamed by an earlier
    run. Any other error is raised."""
    done = 0
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            if "no such key" not in str(reply).lower():
                raise reply
        else:
            done += 1
    return done


__all__ = ["MigrationError", "MigrationReport", "SchemaError", "migrate", "old_keys_present"]
