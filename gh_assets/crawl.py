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
    GitHubError,
    UserDetail,
    request_rank,
    request_tally,
)
from gh_assets.github.validation import MAX_COUNTER
from gh_assets.partitions import PageWindow
from gh_assets.storage import COUNTERS, PageWrite, RedisStore, iso_utc, user_problem
from gh_assets.storage.crawl_order import crawl_started, started_at
from gh_assets.user_fields import DETAIL_NAMES

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
    reused: int  # answers kept from an earlier attempt an error stopped (not asked again)
    requests: int
    budget_wait: float  # seconds its requests waited for shared rate budget, summed
    rate_limit_remaining: int | None
    seconds: float
    # When a crawl of the page that started after this one did; it wrote the page first, so
    # this one wrote nothing (``written``, ``gone``, ``not_modified`` 0): its older data would
    # have replaced newer.
    superseded_by: datetime | None = None


def crawl_page(client: GitHubClient, store: RedisStore, window: PageWindow) -> PageReport:
    """Crawl ``window`` and replace its page in Redis; raises (writing nothing) on any error.

    A stored ETag is sent as ``If-None-Match`` only with the credential that got it (its
    ``etag_auth``), since ETags are specific to a token; a 304 keeps the stored counts and
    refreshes ``fetched_at``. The
    client's ``detail_mode`` decides how counts are read; users answered by GraphQL come without
    an ETag, so their hash is written without one (and their next re-crawl has no 304).
    ``requests`` counts this page's own requests (retries included), even when other pages
    share the client at the same time. A stored hash that is damaged, or lacks a field of
    ``user_fields.DETAILS`` (written by an older release), is never reused: its user
    is asked without ``If-None-Match`` and the hash is overwritten. When an error (a rate limit)
    stops the page, the answers already paid for are staged in Redis and its re-run reuses them.
    The write (``RedisStore.write_page``) is tried again, for up to 30 s, while a Redis Cluster
    refuses it because the page's slot is being moved (a resharding). A crawl of the same page
    that started later and has written it already wins: this one then writes nothing
    (``superseded_by``).
    """
    started = time.monotonic()
    crawl_start = crawl_started(store, window.key)  # Redis's clock, before anything is asked
    with request_tally() as tally:
        listed = client.list_users(window.first_id, window.last_id)
        staged = store.staged_answers(window.key)  # from an attempt an error stopped
        asked = [user for user in listed if user.id not in staged]
        stored = _intact(store, store.read_users(user.id for user in asked))
        etags = {user.id: _reusable_etag(stored.get(user.id)) for user in asked}
        try:
            answers = client.get_details(asked, etags)
        except GitHubError as error:  # keep what was paid for: the re-run reuses it
            now = iso_utc(datetime.now(UTC))
            store.stage_answers(
                window.key,
                {i: _stored_form(a, stored.get(i), now) for i, a in error.partial.items()},
            )
            raise
    fetched_at = datetime.now(UTC)
    now = iso_utc(fetched_at)

    users: list[dict[str, str]] = []
    gone: list[int] = []
    not_modified = 0
    for user in listed:
        if user.id in staged:
            found = staged[user.id]
        else:
            not_modified += answers[user.id] is NOT_MODIFIED
            found = _stored_form(answers[user.id], stored.get(user.id), now)
        if found is None:
            gone.append(user.id)
        else:
            users.append(found)

    requests = tally.requests
    meta = {
        "first_id": str(window.first_id),
        "last_id": str(window.last_id),
        "listed": str(len(listed)),
        "users": str(len(users)),
        "gone": str(len(gone)),
        "not_modified": str(not_modified),
        "requests": str(requests),
        "reused": str(len(staged)),
        "budget_wait": f"{tally.budget_wait:.3f}",
    }
    superseded_by = None
    if not store.write_page(PageWrite(window.key, users, gone, meta, fetched_at, crawl_start)):
        superseded_by = started_at(store.page_meta(window.key).get("started", crawl_start))
        users, gone, not_modified = [], [], 0  # what this crawl wrote: nothing
    return PageReport(
        page=window.key,
        listed=len(listed),
        written=len(users),
        gone=len(gone),
        not_modified=not_modified,
        reused=len(staged),
        requests=requests,
        budget_wait=tally.budget_wait,
        rate_limit_remaining=client.stats.rate_limit_remaining,
        seconds=time.monotonic() - started,
        superseded_by=superseded_by,
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
    of the pages before it, then of those written beside it, have been yielded: a page without
    a report was not written.
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
        failure: BaseException | None = None
        while running and failure is None:
            try:
                report = running.popleft().result()  # that page's error, in window order
            except BaseException as error:
                failure = error
                break
            start_next()  # before yielding: a slow consumer must not idle the pipe
            yield report
        for beside in running:  # after a failure: the pages it ran beside, once they end
            if beside.exception() is None:
                yield beside.result()
    # Leaving the block (the consumer closing the iterator) waits for the pages still running.
    if failure is not None:
        raise failure


def _intact(store: RedisStore, found: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    """The stored hashes a 304 may stand for: those the write would accept as GitHub's answer
    (``user_problem``, the client's counter bound, their own id); a damaged one, reused, would
    fail the page on every re-crawl."""
    intact = {}
    lacking = [user_id for user_id, fields in found.items() if _lacks_detail(fields)]
    if lacking:  # written before a field joined the registry: a 304 would keep it missing
        log.info("%d stored users lack a registry field: fetched again in full", len(lacking))
    for user_id, fields in found.items():
        if user_id in lacking:
            continue
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


def _lacks_detail(fields: dict[str, str]) -> bool:
    """Whether a stored hash misses a field of ``user_fields.DETAILS`` (an older release's)."""
    return any(name not in fields for name in DETAIL_NAMES)


def _reusable_etag(stored: dict[str, str] | None) -> tuple[str, str] | None:
    """The stored ETag and the credential that got it (the client sends it only with that one)."""
    if stored and stored.get("etag") and stored.get("etag_auth"):
        return stored["etag"], stored["etag_auth"]
    return None


def _stored_form(
    answer: object, stored: dict[str, str] | None, fetched_at: str
) -> dict[str, str] | None:
    """The hash a user's answer gives (None: gone); a 304 keeps the stored copy, refreshed."""
    if answer is GONE:
        return None
    if answer is NOT_MODIFIED and stored is not None:
        return stored | {"fetched_at": fetched_at}
    if isinstance(answer, UserDetail):
        return _user_hash(answer, fetched_at)
    raise TypeError(f"unexpected answer: {answer!r}")  # pragma: no cover - nothing else comes


def _user_hash(user: UserDetail, fetched_at: str) -> dict[str, str]:
    fields = {"id": str(user.id), "login": user.login, "type": user.type}
    fields |= {name: str(getattr(user, name)) for name in DETAIL_NAMES}
    fields["fetched_at"] = fetched_at
    if user.etag and user.etag_auth:
        fields |= {"etag": user.etag, "etag_auth": user.etag_auth}
    return fields
