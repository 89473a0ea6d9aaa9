"""Crawl pages: list each page's users, read their counts, and write the page to Redis whole.

``crawl_page`` does one page; ``crawl_pages`` overlaps consecutive pages of a run so the client's
requests in flight stay busy while a page waits for its list request or its last details.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from gh_assets.github import (
    GONE,
    NOT_MODIFIED,
    GitHubClient,
    UserDetail,
    request_rank,
    request_tally,
)
from gh_assets.github.validation import MAX_COUNTER
from gh_assets.partitions import PageWindow
from gh_assets.storage import COUNTERS, PageWrite, RedisStore, iso_utc, user_problem

log = logging.getLogger(__name__)

# Pages in progress at once in crawl_pages. One page alone leaves the pipe part empty (its list
# request is serial, its last round of details partly full); a second page fills those gaps.
PAGES_IN_FLIGHT = 2


@dataclass(frozen=True)
class PageReport:
    """What crawling one page did, for run metadata and the demo's progress lines."""

    page: str
    listed: int
    written: int
    gone: int
    not_modified: int
    requests: int
    budget_wait: float  # seconds its requests waited for shared rate budget, summed
    rate_limit_remaining: int | None
    seconds: float


def crawl_page(client: GitHubClient, store: RedisStore, window: PageWindow) -> PageReport:
    """Crawl ``window`` and replace its page in Redis; raises (writing nothing) on any error.

    A stored ETag is sent as ``If-None-Match`` only with the credential that got it (its
    ``etag_auth``), since ETags are specific to a token; a 304 keeps the stored counts and
    refreshes ``fetched_at``. The
    client's ``detail_mode`` decides how counts are read; users answered by GraphQL come without
    an ETag, so their hash is written without one (and their next re-crawl has no 304).
    ``requests`` counts this page's own requests (retries included), even when other pages
    share the client at the same time. A stored hash that is damaged is never reused: its user
    is asked without ``If-None-Match`` and the hash is overwritten.
    """
    started = time.monotonic()
    with request_tally() as tally:
        listed = client.list_users(window.first_id, window.last_id)
        stored = _intact(store, store.read_users(user.id for user in listed))
        answers = client.get_details(
            listed,
            {user.id: _reusable_etag(stored.get(user.id)) for user in listed},
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
            users.append(_user_hash(answer, now))
        else:  # pragma: no cover - the client returns nothing else
            raise TypeError(f"unexpected answer for user {user.id}: {answer!r}")

    requests = tally.requests
    meta = {
        "first_id": str(window.first_id),
        "last_id": str(window.last_id),
        "listed": str(len(listed)),
        "users": str(len(users)),
        "gone": str(len(gone)),
        "not_modified": str(not_modified),
        "requests": str(requests),
        "budget_wait": f"{tally.budget_wait:.3f}",
    }
    store.write_page(PageWrite(window.key, users, gone, meta, fetched_at))
    return PageReport(
        page=window.key,
        listed=len(listed),
        written=len(users),
        gone=len(gone),
        not_modified=not_modified,
        requests=requests,
        budget_wait=tally.budget_wait,
        rate_limit_remaining=client.stats.rate_limit_remaining,
        seconds=time.monotonic() - started,
    )


def crawl_pages(
    client: GitHubClient,
    store: RedisStore,
    windows: Iterable[PageWindow],
) -> Iterator[PageReport]:
    """``crawl_page`` for each window, up to ``PAGES_IN_FLIGHT`` at once; reports in window order.

    The next page's list request and details start while the previous page's last details are
    in flight; all of them share the client's one bound on requests in flight, where an earlier
    page takes a free slot first (``request_rank``), so pages finish one by one. Each page is
    written whole, in its own ``write_page``, as soon as its own details are complete. At the
    first page (in window order) that fails, no new page starts; the pages already running are
    waited for (no thread outlives the call), and that page's error is raised once the reports
    of the pages before it have been yielded.
    """
    upcoming = enumerate(windows)
    failed = threading.Event()  # set by any page that raises: start nothing after it

    def run(number: int, window: PageWindow) -> PageReport:
        try:
            with request_rank(number):  # the earlier page gets free slots first, finishes first
                return crawl_page(client, store, window)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(PAGES_IN_FLIGHT, thread_name_prefix="gh-page") as pool:
        running: deque[Future[PageReport]] = deque()

        def start_next() -> None:
            page = next(upcoming, None)
            if page is not None and not failed.is_set():
                running.append(pool.submit(contextvars.copy_context().run, run, *page))

        for _ in range(PAGES_IN_FLIGHT):
            start_next()
        while running:
            report = running.popleft().result()  # raises that page's error, in window order
            start_next()  # before yielding: a slow consumer must not idle the pipe
            yield report
    # Leaving the block (a page's error, or the consumer closing the iterator) waits for the
    # pages still running.


def _intact(store: RedisStore, found: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    """The stored hashes a 304 may stand for: those the write would accept as GitHub's answer
    (``user_problem``, the client's counter bound, their own id); a damaged one, reused, would
    fail the page on every re-crawl."""
    intact = {}
    for user_id, fields in found.items():
        problem = user_problem(fields)
        if not problem and fields["id"] != str(user_id):
            problem = f"user {user_id} holds the id {fields['id']!r}"
        if not problem and any(int(fields[name]) >= MAX_COUNTER for name in COUNTERS):
            problem = f"user {user_id} has a counter of {MAX_COUNTER:,} or more"
        if problem:
            log.warning(
                "%s is damaged (%s): fetched again in full", store.user_key(user_id), problem
            )
        else:
            intact[user_id] = fields
    return intact


def _reusable_etag(stored: dict[str, str] | None) -> tuple[str, str] | None:
    """The stored ETag and the credential that got it (the client sends it only with that one)."""
    if stored and stored.get("etag") and stored.get("etag_auth"):
        return stored["etag"], stored["etag_auth"]
    return None


def _user_hash(user: UserDetail, fetched_at: str) -> dict[str, str]:
    fields = {"id": str(user.id), "login": user.login, "type": user.type}
    fields |= {name: str(getattr(user, name)) for name in COUNTERS}
    fields["fetched_at"] = fetched_at
    if user.etag and user.etag_auth:
        fields |= {"etag": user.etag, "etag_auth": user.etag_auth}
    return fields
