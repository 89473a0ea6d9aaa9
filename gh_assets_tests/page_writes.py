"""Users and page writes made by hand, and what a store holds read back raw: the storage tests'
material, shared by the aggregates', the stored faults' and the cluster's tests."""

from __future__ import annotations

from datetime import UTC, datetime

from gh_assets.partitions import PageWindow
from gh_assets.storage import PageWrite, RedisStore

WHEN = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)


def user(user_id: int, login: str | None = None, followers: int = 1, **extra: str) -> dict:
    fields = {
        "id": str(user_id),
        "login": login or f"User{user_id}",
        "type": "User",
        "public_repos": str(user_id % 7),
        "public_gists": "0",
        "followers": str(followers),
        "following": "3",
        "fetched_at": "2026-11-27T03:00:00Z",
    }
    return fields | extra


def key(n: int) -> str:
    """Page ``n`` of the tests: the window of the single ID n + 1, in block 0 as every user the
    tests write (the store asks only that a page's users are in its block, not in its window)."""
    return PageWindow(n + 1, n + 1).key


P1 = key(1)


def logins(store: RedisStore) -> dict[bytes, bytes]:
    """Every login entry, over all the login buckets."""
    found: dict[bytes, bytes] = {}
    for bucket in store.client.scan_iter(match=f"{store.prefix}logins:*"):
        found |= store.client.hgetall(bucket)
    return found


def page(users: list[dict], gone: tuple[int, ...] = (), key: str = P1) -> PageWrite:
    meta = {"listed": str(len(users) + len(gone)), "users": str(len(users))}
    return PageWrite(key, users, list(gone), meta, WHEN)


def snapshot(store: RedisStore) -> dict[str, object]:
    """Every key under the store's prefix with its full contents."""
    found: dict[str, object] = {}
    for raw in store.client.scan_iter(match=f"{store.prefix}*"):
        key = raw.decode()
        kind = store.client.type(key).decode()
        if kind == "hash":
            found[key] = store.client.hgetall(key)
        elif kind == "set":
            found[key] = store.client.smembers(key)
        elif kind == "zset":
            found[key] = store.client.zrange(key, 0, -1, withscores=True)
        else:
            found[key] = store.client.get(key)
    return found
