"""Crawl one page: list its users, read their counts, and write the page to Redis whole."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gh_assets.github import GONE, NOT_MODIFIED, GitHubClient, UserDetail
from gh_assets.partitions import PageWindow
from gh_assets.storage import COUNTERS, PageWrite, RedisStore, iso_utc


@dataclass(frozen=True)
class PageReport:
    """What crawling one page did, for run metadata and the demo's progress lines."""

    page: str
    listed: int
    written: int
    gone: int
    not_modified: int
    requests: int
    rate_limit_remaining: int | None
    seconds: float


def crawl_page(
    client: GitHubClient, store: RedisStore, window: PageWindow, credential_id: str
) -> PageReport:
    """Crawl ``window`` and replace its page in Redis; raises (writing nothing) on any error.

    A stored ETag is sent as ``If-None-Match`` only when ``credential_id`` got it, since ETags
    are specific to a token; a 304 keeps the stored counts and refreshes ``fetched_at``. The
    client's ``detail_mode`` decides how counts are read; users answered by GraphQL come without
    an ETag, so their hash is written without one (and their next re-crawl has no 304).
    """
    started = time.monotonic()
    requests_before = client.stats.requests
    listed = client.list_users(window.first_id, window.last_id)
    stored = store.read_users(user.id for user in listed)
    answers = client.get_details(
        listed, {user.id: _reusable_etag(stored.get(user.id), credential_id) for user in listed}
    )
    fetched_at = datetime.now(UTC)
    now = iso_utc(fetched_at)

    users: list[dict[str, str]] = []
    gone: list[int] = []
    not_modified = 0
    for user in listed:
        answer = answers[user.id]
        if answer is GONE:
            gone.append(user.id)
        elif answer is NOT_MODIFIED:
            not_modified += 1
            users.append(stored[user.id] | {"fetched_at": now})
        elif isinstance(answer, UserDetail):
            users.append(_user_hash(answer, now, credential_id))
        else:  # pragma: no cover - the client returns nothing else
            raise TypeError(f"unexpected answer for user {user.id}: {answer!r}")

    requests = client.stats.requests - requests_before
    meta = {
        "first_id": str(window.first_id),
        "last_id": str(window.last_id),
        "listed": str(len(listed)),
        "users": str(len(users)),
        "gone": str(len(gone)),
        "not_modified": str(not_modified),
        "requests": str(requests),
    }
    store.write_page(PageWrite(window.key, users, gone, meta, fetched_at))
    return PageReport(
        page=window.key,
        listed=len(listed),
        written=len(users),
        gone=len(gone),
        not_modified=not_modified,
        requests=requests,
        rate_limit_remaining=client.stats.rate_limit_remaining,
        seconds=time.monotonic() - started,
    )


def _reusable_etag(stored: dict[str, str] | None, credential_id: str) -> str | None:
    if stored and stored.get("etag") and stored.get("etag_auth") == credential_id:
        return stored["etag"]
    return None


def _user_hash(user: UserDetail, fetched_at: str, credential_id: str) -> dict[str, str]:
    fields = {"id": str(user.id), "login": user.login, "type": user.type}
    fields |= {name: str(getattr(user, name)) for name in COUNTERS}
    fields["fetched_at"] = fetched_at
    if user.etag:
        fields |= {"etag": user.etag, "etag_auth": credential_id}
    return fields
