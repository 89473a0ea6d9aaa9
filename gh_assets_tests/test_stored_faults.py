"""Faults in what Redis holds (issue 9): a re-crawl repairs them, or the read reports them in one
line naming the key, the user and the field; the frame's checks never race page runs."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import pytest
import redis

from gh_assets.crawl import crawl_page
from gh_assets.defs.analysis.frame_checks import (
    frame_every_indexed_user_read,
    frame_ids_and_logins_unique,
    frame_rows_match_pages,
)
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import READ_REPORT, RedisStore, ascii_lower, bulk_read
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.http_server import Reply, Request

from .conftest import KEYS
from .crawled import WINDOW, stored, truth
from .dagster_runs import analyse, checks_of, crawl
from .page_writes import P1, logins, page, user


class ConditionalRecordingStandin(StandinServer):
    """The stand-in, also noting each detail request's user id and its ``If-None-Match``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.details: list[tuple[int, str | None]] = []
        self._details_lock = threading.Lock()

    def answer(self, request: Request) -> Reply:
        path = urlsplit(request.target).path
        if path.startswith("/user/"):
            with self._details_lock:
                self.details.append(
                    (int(path.rsplit("/", 1)[1]), request.headers.get("If-None-Match"))
                )
        return super().answer(request)


@pytest.fixture
def recording(dataset: Dataset) -> Iterator[ConditionalRecordingStandin]:
    with ConditionalRecordingStandin(dataset) as server:
        yield server


# --- 1. a corrupt stored hash is fetched again in full, not reused on a 304 -----------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("followers", "abc"),
        ("public_repos", "-1"),
        ("following", "٣"),  # a Unicode digit: str.isdecimal says yes, int64 parsing says no
        ("public_gists", str(10**12)),  # beyond what the client accepts from GitHub
        ("login", None),
        ("type", ""),
        ("id", "999"),  # another user's id
        ("created_at", "2008-01-14T04:33:35Z"),  # GitHub's text: Redis keeps epoch seconds
    ],
)
def test_a_recrawl_repairs_a_corrupt_stored_hash(
    recording: ConditionalRecordingStandin,
    store: RedisStore,
    dataset: Dataset,
    field: str,
    value: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with GitHubClient(recording.url, backoff_base=0.01) as client:
        first = crawl_page(client, store, WINDOW)
        victim = sorted(truth(dataset, WINDOW))[5]
        if value is None:
            store.client.hdel(store.user_key(victim), field)
        else:
            store.client.hset(store.user_key(victim), field, value)
        recording.details.clear()
        recording.reset_stats()

        again = crawl_page(client, store, WINDOW)

    assert stored(store, WINDOW) == truth(dataset, WINDOW)  # the victim's hash is the truth again
    assert store.read_users([victim])[victim]["etag"]  # and conditional on the next re-crawl
    sent = dict(recording.details)
    assert len(sent) == len(recording.details) == first.written
    assert sent.pop(victim) is None  # asked without If-None-Match
    assert all(sent.values())  # every other user was asked conditionally ...
    assert recording.stats()["requests"]["by_status"]["304"] == first.written - 1  # ... and 304
    assert again.not_modified == first.written - 1
    assert again.written == first.written
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gh_assets.crawl"]
    assert line.startswith(f"{store.user_key(victim)} is damaged (user ")
    assert line.endswith("): fetched again in full")


# --- 2. the frame names what is wrong, and reports what it leaves out ------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda s, k: s.client.hset(k, "followers", "abc"), "has a non-integer 'followers': 'abc'"),
        (lambda s, k: s.client.hset(k, "following", "1 2"), "has a non-integer 'following': '1 2'"),
        (
            lambda s, k: s.client.hset(k, "public_repos", str(2**63)),
            f"has 'public_repos' beyond int64: '{2**63}'",
        ),
        (lambda s, k: s.client.hdel(k, "public_gists"), "has no 'public_gists'"),
        (lambda s, k: s.client.hdel(k, "type"), "has no 'type'"),
    ],
)
def test_a_corrupt_hash_is_named_by_key_user_and_field(
    store: RedisStore, corrupt: Callable[[RedisStore, str], object], message: str
) -> None:
    store.write_page(page([user(i) for i in range(1, 12)]))
    corrupt(store, store.user_key(7))

    with pytest.raises(ValueError) as raised:
        store.read_frame(batch=3)

    assert str(raised.value) == f"{store.user_key(7)} (user 7) {message}"


@pytest.mark.integration
def test_users_left_out_of_the_frame_are_reported_not_dropped(store: RedisStore) -> None:
    store.write_page(page([user(i) for i in range(1, 31)]))
    store.client.hdel(store.user_key(3), "login")  # a hash without a login
    store.client.delete(store.user_key(5), store.user_key(20))  # indexed ids without a hash
    store.client.zadd(store.ids_key(0), {str(i): i for i in range(40, 52)})  # 12 more of them

    frame = store.read_frame(batch=4)

    left_out = {3, 5, 20, *range(40, 52)}
    assert frame["id"].tolist() == [i for i in range(1, 31) if i not in left_out]
    report = pickle.loads(pickle.dumps(frame)).attrs[READ_REPORT]  # as the IO manager stores it
    assert report == frame.attrs[READ_REPORT]
    assert report["no_login"] == [3] and report["no_login_count"] == 1
    assert report["no_hash"] == [5, 20, 40, 41, 42, 43, 44, 45, 46, 47]  # the first few
    assert report["no_hash_count"] == 14
    assert (report["indexed"], report["pages_users"], report["deleted_during_read"]) == (42, 30, 0)

    result = frame_every_indexed_user_read(frame)
    assert not result.passed
    assert result.description == (
        "15 indexed users are not in the frame: 14 without a hash "
        "(ids 5, 20, 40, 41, 42, 43, 44, 45, 46, 47, …), 1 without a login (id 3)"
    )
    assert result.metadata["no_hash_count"].value == 14
    assert result.metadata["no_login_ids"].value == "3"


@pytest.mark.integration
@pytest.mark.slow
def test_a_hash_left_out_fails_its_check_through_dagster(
    instance: dg.DagsterInstance, resources: dict, store: RedisStore
) -> None:
    assert crawl(instance, resources, KEYS[0]).success
    victims = sorted(store.page_members(KEYS[0]))[:2]
    store.client.hdel(store.user_key(victims[0]), "login")
    store.client.delete(store.user_key(victims[1]))

    result = analyse(instance, resources)  # the frame goes through the FilesystemIOManager

    assert checks_of(result)["frame_every_indexed_user_read"] is False
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "frame_every_indexed_user_read"
    ]
    assert evaluation.description == (
        f"2 indexed users are not in the frame: 1 without a hash (id {victims[1]}), "
        f"1 without a login (id {victims[0]})"
    )
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    # The summary merges the pages' aggregates, never the frame: the frame's check does not
    # block it (and the damage, done behind the page writes, is not in the aggregates).
    assert materialized == {dg.AssetKey("github_users_frame"), dg.AssetKey("github_user_summary")}


# --- 3. the rows check compares within one consistent read -----------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_a_page_written_after_the_read_does_not_fail_the_rows_check(
    instance: dg.DagsterInstance,
    resources: dict,
    store: RedisStore,
    standin: StandinServer,
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in KEYS[:2]:
        assert crawl(instance, resources, key).success
    read_frame = RedisStore.read_frame

    def read_then_a_page_lands(self: RedisStore, *args: Any, **kwargs: Any) -> pd.DataFrame:
        frame = read_frame(self, *args, **kwargs)
        with GitHubClient(standin.url) as client:  # a page run finishes before the checks run
            crawl_page(client, self, PageWindow.from_key(KEYS[2]))
        return frame

    monkeypatch.setattr(RedisStore, "read_frame", read_then_a_page_lands)
    result = analyse(instance, resources)

    assert result.success
    assert set(checks_of(result).values()) == {True}
    frame = result.output_for_node("github_users_frame")
    first_two = len(truth(dataset, PageWindow(1, 200)))
    assert len(frame) == frame.attrs[READ_REPORT]["pages_users"] == first_two
    assert store.page_user_total() == len(truth(dataset, PageWindow(1, 300))) > first_two


@pytest.mark.integration
def test_a_user_deleted_during_the_read_is_neither_a_row_nor_a_fault(
    store: RedisStore, standin: StandinServer, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GitHubClient(standin.url) as client:
        crawl_page(client, store, WINDOW)
        victim = sorted(truth(dataset, WINDOW))[3]
        read = bulk_read.read_frame

        def snapshot_then_a_deletion(*args: Any, **kwargs: Any) -> Any:
            dataset.delete(victim)  # a re-crawl after the id snapshot finds the account gone
            crawl_page(client, store, WINDOW)
            return read(*args, **kwargs)

        monkeypatch.setattr(bulk_read, "read_frame", snapshot_then_a_deletion)
        frame = store.read_frame(batch=7)

    report = frame.attrs[READ_REPORT]
    assert victim not in frame["id"].tolist()
    assert report["deleted_during_read"] == 1 and report["no_hash_count"] == 0
    assert len(frame) + 1 == report["indexed"] == report["pages_users"]
    assert frame_rows_match_pages(frame).passed
    assert frame_every_indexed_user_read(frame).passed


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_mismatch_fails_the_rows_check_with_both_numbers(
    instance: dg.DagsterInstance, resources: dict, store: RedisStore
) -> None:
    for key in KEYS:
        assert crawl(instance, resources, key).success
    store.client.hincrby(store.page_key(KEYS[1]), "users", 1000)  # pages claim 1,000 more

    result = analyse(instance, resources)

    assert not result.success
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "frame_rows_match_pages"
    ]
    rows = store.user_count()
    assert not evaluation.passed
    assert evaluation.description == f"{rows:,} rows but the pages hold {rows + 1000:,} users"
    assert evaluation.metadata["rows"].value == rows
    assert evaluation.metadata["users_in_pages"].value == rows + 1000


# --- 4. one rule for lower-casing logins, in Lua and in Python -------------------------------


@pytest.mark.integration
def test_a_non_ascii_login_is_lower_cased_the_same_on_both_sides(store: RedisStore) -> None:
    store.write_page(page([user(7, "ÄBC-Straße"), user(8, "Éclair")]))

    assert ascii_lower("ÄBC-Straße") == "Äbc-straße"  # ASCII letters only, as Lua's string.lower
    assert logins(store) == {
        ascii_lower("ÄBC-Straße").encode(): b"7",
        ascii_lower("Éclair").encode(): b"8",
    }
    assert store.user_id_for_login("ÄBC-Straße") == 7
    assert store.user_id_for_login("Äbc-STRAße") == 7
    assert store.user_id_for_login("éclair") is None  # É and é are different logins here
    assert store.user_id_for_login("ÉCLAIR") == 8

    store.write_page(page([user(7, "ÄBC-Straße2"), user(8, "Éclair")]))  # a rename
    assert store.user_id_for_login("ÄBC-Straße") is None
    assert store.user_id_for_login("äbc-straße2") is None
    assert store.user_id_for_login("Äbc-straße2") == 7


@pytest.mark.unit
def test_the_unique_logins_check_lower_cases_as_the_login_index_does() -> None:
    def frame(*logins: str) -> pd.DataFrame:
        return pd.DataFrame({"id": range(len(logins)), "login": list(logins)})

    assert frame_ids_and_logins_unique(frame("Äx", "äx")).passed  # two keys in gh:logins
    assert not frame_ids_and_logins_unique(frame("ÄX", "Äx")).passed  # one key


@pytest.mark.integration
@pytest.mark.slow
def test_a_corrupt_page_count_is_named_by_its_key(store: RedisStore) -> None:
    store.write_page(page([user(1), user(2)]))
    store.client.hset(store.page_key(P1), "users", "two\nor so")

    with pytest.raises(redis.ResponseError) as raised:
        store.read_frame()

    assert str(raised.value) == f"{store.page_key(P1)} has a non-integer 'users': 'two?or so'"
