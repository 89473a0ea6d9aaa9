"""Crawling pages from the stand-in over HTTP into a real Redis."""

from __future__ import annotations

import pytest

from gh_assets.crawl import crawl_page
from gh_assets.github import GitHubClient, GitHubError, ListedUser
from gh_assets.partitions import PageWindow
from gh_assets.standin import Dataset, StandinServer
from gh_assets.storage import COUNTERS, RedisStore

WINDOW = PageWindow(101, 200)


def truth(dataset: Dataset, window: PageWindow) -> dict[int, dict[str, str]]:
    """What Redis must hold for ``window``, straight from the stand-in's data."""
    return {
        u.id: {"id": str(u.id), "login": u.login, "type": u.type}
        | {name: str(getattr(u, name)) for name in COUNTERS}
        for u in dataset.users_between(window.first_id, window.last_id)
    }


def stored(store: RedisStore, window: PageWindow) -> dict[int, dict[str, str]]:
    members = store.page_members(window.key)
    keep = ("id", "login", "type", *COUNTERS)
    return {
        i: {k: v for k, v in h.items() if k in keep} for i, h in store.read_users(members).items()
    }


def test_a_page_holds_exactly_its_users(
    client: GitHubClient, store: RedisStore, dataset: Dataset
) -> None:
    report = crawl_page(client, store, WINDOW, "anonymous")

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
    report = crawl_page(client, store, window, "anonymous")
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
        report = crawl_page(client, store, WINDOW, "anonymous")

    assert report.gone == 1
    assert store.page_gone(WINDOW.key) == {victim}
    assert victim not in store.page_members(WINDOW.key)
    assert stored(store, WINDOW) == truth(dataset, WINDOW)


def test_a_failing_page_writes_nothing_and_a_rerun_completes_it(
    standin: StandinServer, store: RedisStore, dataset: Dataset
) -> None:
    members = dataset.users_between(WINDOW.first_id, WINDOW.last_id)
    with GitHubClient(standin.url, backoff_base=0.01, max_retries=2) as client:
        crawl_page(client, store, WINDOW, "anonymous")
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
            crawl_page(failing, store, WINDOW, "anonymous")
        assert (stored(store, WINDOW), store.page_meta(WINDOW.key)) == before

        standin.heal()
        crawl_page(client, store, WINDOW, "anonymous")
    assert stored(store, WINDOW) == truth(dataset, WINDOW)
    assert stored(store, WINDOW)[members[0].id]["followers"] == str(members[0].followers + 1000)


def test_a_recrawl_is_conditional_for_the_same_credential_only(
    client: GitHubClient, store: RedisStore, dataset: Dataset
) -> None:
    first = crawl_page(client, store, WINDOW, "anonymous")
    changed = dataset.users_between(WINDOW.first_id, WINDOW.last_id)[1]
    dataset.update(changed.id, public_repos=changed.public_repos + 5)
    fetched_before = store.read_users([changed.id])[changed.id]["fetched_at"]

    again = crawl_page(client, store, WINDOW, "anonymous")
    assert again.not_modified == first.written - 1  # every user but the changed one: 304
    assert stored(store, WINDOW) == truth(dataset, WINDOW)
    assert store.read_users([changed.id])[changed.id]["fetched_at"] >= fetched_before

    other = crawl_page(client, store, WINDOW, "sha256:another-token")
    assert other.not_modified == 0  # ETags are only valid for the credential that got them
    assert {h["etag_auth"] for h in store.read_users(store.page_members(WINDOW.key)).values()} == {
        "sha256:another-token"
    }
