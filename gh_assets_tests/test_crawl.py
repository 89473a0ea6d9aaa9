"""Crawling pages from the stand-in over HTTP into a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gh_assets.crawl import PAGES_IN_FLIGHT, crawl_page, crawl_pages
from gh_assets.github import GitHubClient, GitHubError, ListedUser, RateLimitError
from gh_assets.github.credentials import digest
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.http_server import Reply, Request

from .crawled import WINDOW, stored, truth

pytestmark = pytest.mark.integration


def test_a_page_holds_exactly_its_users(
    client: GitHubClient, store: RedisStore, dataset: Dataset
) -> None:
    report = crawl_page(client, store, WINDOW)

    expected = truth(dataset, WINDOW)
    assert 40 < len(expected) < 100  # sparse IDs, as on GitHub
    assert stored(store, WINDOW) == expected
    assert report.written == report.listed == len(expected)
    assert report.requests == 1 + len(expected)  # one list page + one detail per user
    assert report.gone == report.not_modified == 0
    meta = store.page_meta(WINDOW.key)
    assert (meta["first_id"], meta["last_id"], meta["users"]) == ("101", "200", str(len(expected)))
    for login, user_id in ((u["login"], i) for i, u in expected.items()):
        assert store.user_id_for_login(login.upper()) == user_id


def test_a_wide_window_follows_several_list_pages(
    client: GitHubClient, store: RedisStore, dataset: Dataset
) -> None:
    window = PageWindow(1, 400)
    report = crawl_page(client, store, window)
    expected = truth(dataset, window)
    assert len(expected) > 200
    assert stored(store, window) == expected
    assert report.requests == len(expected) + -(-len(expected) // 100)


def test_a_user_deleted_after_listing_is_recorded_gone(
    standin: StandinServer, store: RedisStore, dataset: Dataset
) -> None:
    victim = dataset.users_between(WINDOW.first_id, WINDOW.last_id)[3].id

    class DeletesAfterListing(GitHubClient):
        def list_users(self, first_id: int, last_id: int) -> list[ListedUser]:
            listed = super().list_users(first_id, last_id)
            dataset.delete(victim)  # the account disappears between the list and its details
            return listed

    with DeletesAfterListing(standin.url) as client:
        report = crawl_page(client, store, WINDOW)

    assert report.gone == 1
    assert store.page_gone(WINDOW.key) == {victim}
    assert victim not in store.page_members(WINDOW.key)
    assert stored(store, WINDOW) == truth(dataset, WINDOW)


def test_a_failing_page_writes_nothing_and_a_rerun_completes_it(
    standin: StandinServer, store: RedisStore, dataset: Dataset
) -> None:
    members = dataset.users_between(WINDOW.first_id, WINDOW.last_id)
    with GitHubClient(standin.url, backoff_base=0.01, max_retries=2) as client:
        crawl_page(client, store, WINDOW)
        before = stored(store, WINDOW), store.page_meta(WINDOW.key)
        dataset.update(members[0].id, followers=members[0].followers + 1000)
        broken = members[-1].id

        class FailsAfterListing(GitHubClient):
            def list_users(self, first_id: int, last_id: int) -> list[ListedUser]:
                listed = super().list_users(first_id, last_id)
                standin.set_faults(fail_ids=[(broken, broken)])  # one detail request breaks
                return listed

        with (
            FailsAfterListing(standin.url, backoff_base=0.01, max_retries=2) as failing,
            pytest.raises(GitHubError, match=f"/user/{broken} -> 502"),
        ):
            crawl_page(failing, store, WINDOW)
        assert (stored(store, WINDOW), store.page_meta(WINDOW.key)) == before

        standin.heal()
        crawl_page(client, store, WINDOW)
    assert stored(store, WINDOW) == truth(dataset, WINDOW)
    assert stored(store, WINDOW)[members[0].id]["followers"] == str(members[0].followers + 1000)


def test_of_two_overlapping_crawls_of_a_page_the_later_started_one_is_kept(
    standin: StandinServer, store: RedisStore, dataset: Dataset
) -> None:
    """A crawl that started first but writes last (a backfill beside a sensor's run, a task
    delivered twice) leaves the newer crawl's data, and gh:pages never moves back."""
    member = dataset.users_between(WINDOW.first_id, WINDOW.last_id)[0]
    answered, release = threading.Event(), threading.Event()

    class WritesLate(GitHubClient):
        def get_details(self, *args: Any, **kwargs: Any) -> Any:
            found = super().get_details(*args, **kwargs)
            answered.set()
            assert release.wait(60), "the newer crawl never finished"
            return found

    older: dict[str, Any] = {}
    with WritesLate(standin.url) as slow, GitHubClient(standin.url) as client:
        thread = threading.Thread(
            target=lambda: older.update(report=crawl_page(slow, store, WINDOW))
        )
        thread.start()
        assert answered.wait(60)  # the older crawl has its answers, not yet written
        dataset.update(member.id, followers=member.followers + 1000)
        newer = crawl_page(client, store, WINDOW)  # starts later, writes first
        written_at = store.pages_fetched_at()[WINDOW.key]
        release.set()
        thread.join(60)
    assert not thread.is_alive()

    assert stored(store, WINDOW) == truth(dataset, WINDOW)  # the newer crawl's data
    assert stored(store, WINDOW)[member.id]["followers"] == str(member.followers + 1000)
    assert store.pages_fetched_at()[WINDOW.key] == written_at  # not moved back
    assert newer.superseded_by is None and newer.written == len(truth(dataset, WINDOW))
    from gh_assets.storage.crawl_order import started_at  # new with the ordering of crawls

    report = older["report"]
    assert report.written == report.not_modified == 0  # it wrote nothing, and says who won
    assert report.superseded_by == started_at(store.page_meta(WINDOW.key)["started"])


def test_a_recrawl_is_conditional_for_the_same_credential_only(
    client: GitHubClient, store: RedisStore, dataset: Dataset
) -> None:
    first = crawl_page(client, store, WINDOW)
    changed = dataset.users_between(WINDOW.first_id, WINDOW.last_id)[1]
    dataset.update(changed.id, public_repos=changed.public_repos + 5)
    fetched_before = store.read_users([changed.id])[changed.id]["fetched_at"]

    again = crawl_page(client, store, WINDOW)
    assert again.not_modified == first.written - 1  # every user but the changed one: 304
    assert stored(store, WINDOW) == truth(dataset, WINDOW)
    assert store.read_users([changed.id])[changed.id]["fetched_at"] >= fetched_before

    with GitHubClient(client._api_url, "another-token") as other_client:
        other = crawl_page(other_client, store, WINDOW)
    assert other.not_modified == 0  # ETags are only valid for the credential that got them
    assert {h["etag_auth"] for h in store.read_users(store.page_members(WINDOW.key)).values()} == {
        digest("another-token")
    }


# --- several pages at once ------------------------------------------------------------------


class RecordingStandin(StandinServer):
    """The stand-in, also noting the target (path and query) of every API request it answers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.targets: list[str] = []
        self._targets_lock = threading.Lock()

    def answer(self, request: Request) -> Reply:
        if not request.target.startswith("/_standin/"):
            with self._targets_lock:
                self.targets.append(request.target)
        return super().answer(request)

    def page_of(self, target: str, windows: list[PageWindow]) -> str:
        """The page a request was for: a list request by its cursor, a detail by its user ID."""
        parts = urlsplit(target)
        if parts.path == "/users":
            user_id = int(parse_qs(parts.query)["since"][0]) + 1
        else:
            user_id = int(parts.path.rsplit("/", 1)[1])
        (window,) = [w for w in windows if w.first_id <= user_id <= w.last_id]
        return window.key

    def requests_by_page(self, windows: list[PageWindow]) -> dict[str, int]:
        counts = dict.fromkeys((w.key for w in windows), 0)
        for target in self.targets:
            counts[self.page_of(target, windows)] += 1
        return counts


@pytest.fixture
def recording(dataset: Dataset) -> Iterator[RecordingStandin]:
    with RecordingStandin(dataset) as server:
        yield server


def crawl_threads() -> set[threading.Thread]:
    """Live threads but the stand-in's own per-connection ones (it runs in this process, and
    the client's keep-alive connections rightly keep them)."""
    return {t for t in threading.enumerate() if "process_request_thread" not in t.name}


@pytest.mark.slow
def test_overlapping_pages_hold_exactly_their_users_and_count_their_own_requests(
    recording: RecordingStandin, store: RedisStore, dataset: Dataset
) -> None:
    windows = [PageWindow.number(k, 150) for k in range(6)]  # some pages need 2 list requests
    recording.set_faults(error_rate=0.1)  # retries count for the page that made them
    with GitHubClient(
        recording.url, max_concurrency=4, backoff_base=0.01, backoff_max=0.05
    ) as client:
        reports = list(crawl_pages(client, store, windows))

    assert [r.page for r in reports] == [w.key for w in windows]
    assert client.stats.retries > 0
    by_page = recording.requests_by_page(windows)
    assert sum(by_page.values()) == client.stats.requests == recording.stats()["requests"]["total"]
    assert any(by_page[w.key] > len(truth(dataset, w)) + 2 for w in windows)  # with retries
    for window, report in zip(windows, reports, strict=True):
        expected = truth(dataset, window)
        assert stored(store, window) == expected
        assert report.written == report.listed == len(expected)
        assert report.requests == by_page[window.key]
        assert store.page_meta(window.key)["requests"] == str(by_page[window.key])


@pytest.mark.slow
def test_overlapping_pages_never_exceed_the_clients_requests_in_flight(
    recording: RecordingStandin, store: RedisStore, dataset: Dataset
) -> None:
    windows = [PageWindow.number(k, 100) for k in range(4)]
    recording.set_faults(latency_ms=20)
    with GitHubClient(recording.url, max_concurrency=4) as client:
        reports = list(crawl_pages(client, store, windows))

    assert recording.stats()["requests"]["peak_in_flight"] == 4  # reached, and never more
    assert sum(r.requests for r in reports) == len(recording.targets)
    # Page 1 was listed (and its details asked for) before page 0's last detail request.
    order = [recording.page_of(t, windows) for t in recording.targets]
    last_of_page_0 = len(order) - 1 - order[::-1].index(windows[0].key)
    assert order.index(windows[1].key) < last_of_page_0
    for window in windows:
        assert stored(store, window) == truth(dataset, window)


def test_a_failing_page_stops_the_run_after_the_pages_before_it(
    recording: RecordingStandin, store: RedisStore, dataset: Dataset
) -> None:
    windows = [PageWindow.number(k, 100) for k in range(5)]
    broken = truth(dataset, windows[2])
    victim = sorted(broken)[len(broken) // 2]
    recording.set_faults(fail_ids=[(victim, victim)])
    threads_before = crawl_threads()
    reports = []
    with GitHubClient(recording.url, max_retries=1, backoff_base=0.01) as client:
        pages = crawl_pages(client, store, windows)
        with pytest.raises(GitHubError, match=f"/user/{victim} -> 502"):
            for report in pages:
                reports.append(report)

    # The pages before it, then page 3 if it ran beside page 2 and was written: every page
    # written has its report, so the caller knows which pages a failed run still wrote.
    assert [r.page for r in reports][:2] == [windows[0].key, windows[1].key]
    assert [r.page for r in reports][2:] in ([], [windows[3].key])
    assert crawl_threads() == threads_before  # the pages running beside it were waited for
    for window in [w for w in windows if w.key in {r.page for r in reports}]:
        assert stored(store, window) == truth(dataset, window)
    assert store.page_members(windows[2].key) == set()  # the failed page wrote nothing
    # Page 3 may have started beside page 2; page 4 was never started.
    assert recording.requests_by_page(windows)[windows[4].key] == 0
    assert store.page_members(windows[4].key) == set()


def test_closing_the_iterator_early_waits_for_the_running_pages(
    recording: RecordingStandin, store: RedisStore
) -> None:
    windows = [PageWindow.number(k, 100) for k in range(6)]
    threads_before = crawl_threads()
    with GitHubClient(recording.url) as client:
        pages = crawl_pages(client, store, windows)
        first = next(pages)
        pages.close()
    assert first.page == windows[0].key
    assert crawl_threads() == threads_before
    started = {k for k, n in recording.requests_by_page(windows).items() if n}
    assert len(started) <= 1 + PAGES_IN_FLIGHT  # the first, and the ones running when it ended


def test_a_page_stopped_by_a_rate_limit_keeps_what_it_paid_for(
    standin: StandinServer, store: RedisStore, dataset: Dataset
) -> None:
    standin.set_rate_limit(30, reset=True)  # runs out in the middle of the page's details
    with GitHubClient(standin.url, max_rate_limit_wait=0, max_concurrency=4) as client:
        with pytest.raises(RateLimitError):
            crawl_page(client, store, WINDOW)
        staged = store.staged_answers(WINDOW.key)
        assert 20 <= len(staged) <= 29 and not store.page_members(WINDOW.key)  # nothing written
        standin.set_rate_limit(5000, reset=True)  # the reset
        report = crawl_page(client, store, WINDOW)
    listed = len(dataset.users_between(WINDOW.first_id, WINDOW.last_id))
    assert report.reused == len(staged)
    assert report.requests == 1 + listed - len(staged)  # the list, and only the users not paid for
    assert stored(store, WINDOW) == truth(dataset, WINDOW)
    assert store.staged_answers(WINDOW.key) == {}  # the page's write dropped them
