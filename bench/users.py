"""Realistic user hashes, as the crawl stores them, generated fast and in batches.

Counts, types and login handles come from the stand-in's own generator (a template of a few
thousand accounts, cycled); each hash gets its own id, a login ending in that id, a 64-hex ETag
and ``etag_auth``, exactly the fields ``gh_assets.crawl`` writes; and the seconds such pages take
to write (``write_pages``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache

from gh_assets.partitions import PageWindow
from gh_assets.storage import PageWrite, RedisStore
from gh_assets_devtools.standin import Dataset
from gh_assets_devtools.standin.data import ground_truth, stored_form

FETCHED_AT = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)
TEMPLATE_IDS = 10_000
CREDENTIAL = "anonymous"


@cache
def _template() -> list[tuple[str, dict[str, str]]]:
    """(handle, the stored fields after identity: type and ``user_fields.DETAILS``) of generated
    accounts."""
    rows = []
    for user in Dataset(size=TEMPLATE_IDS, seed=3).all_users():
        handle = user.login[: len(user.login) - len(str(user.id))]
        stored = stored_form([ground_truth(user)])[user.id]
        rows.append((handle, {k: v for k, v in stored.items() if k not in ("id", "login")}))
    return rows


def user_hash(user_id: int, fetched_at: str = "2026-11-27T03:00:00Z") -> dict[str, str]:
    """One user's hash with every field the crawl stores."""
    template = _template()
    handle, fields = template[user_id % len(template)]
    return {
        "id": str(user_id),
        "login": f"{handle}{user_id}",
        **fields,
        "fetched_at": fetched_at,
        "etag": hashlib.sha256(b"%d" % user_id).hexdigest(),
        "etag_auth": CREDENTIAL,
    }


def page_write(first_id: int, count: int) -> PageWrite:
    """A page of ``count`` consecutive users as ``crawl_page`` would hand it to ``write_page``."""
    window = PageWindow(first_id, first_id + count - 1)
    users = [user_hash(user_id) for user_id in range(first_id, first_id + count)]
    meta = {
        "first_id": str(window.first_id),
        "last_id": str(window.last_id),
        "listed": str(count),
        "users": str(count),
        "gone": "0",
        "not_modified": "0",
        "requests": str(count + 1),
    }
    return PageWrite(window.key, users, [], meta, FETCHED_AT)


def page_writes(first_id: int, users: int, per_page: int) -> Iterator[PageWrite]:
    """Pages of ``per_page`` users covering ids ``first_id .. first_id + users - 1``."""
    start, end = first_id, first_id + users
    while start < end:
        count = min(per_page, end - start)
        yield page_write(start, count)
        start += count


def write_pages(store: RedisStore, pages: list[PageWrite]) -> float:
    """Seconds to write every page through ``store.write_page``, one after another."""
    started = time.perf_counter()
    for page in pages:
        store.write_page(page)
    return time.perf_counter() - started
