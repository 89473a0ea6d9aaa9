"""The bulk read of the users into pandas (``RedisStore.read_frame``): dtypes and values, ids
without a hash reported, corrupt counters refused, the connection and the garbage collector left
as they were. Split from test_storage.py, which keeps the page writes."""

from __future__ import annotations

import gc

import pandas as pd
import pytest
import redis

from gh_assets.storage import COUNTERS, READ_REPORT, RedisStore, bulk_read

from .page_writes import key, page, user

pytestmark = pytest.mark.integration


def test_read_frame_types_and_values(store: RedisStore) -> None:
    created = {i: 1200285215 + i * 86_400 * 40 for i in range(1, 26)}  # epoch seconds
    users = [user(i, followers=i * 10, created_at=str(created[i])) for i in range(1, 26)]
    store.write_page(page(users, key=key(10)))
    # As an older release wrote them: no created_at (NaT in the frame until a re-crawl).
    store.write_page(page([user(i, followers=i * 10) for i in range(26, 31)], key=key(11)))

    frame = store.read_frame(batch=7)

    assert tuple(frame.columns) == ("id", "login", "type", *COUNTERS, "created_at", "fetched_at")
    for column in ("id", "public_repos", "public_gists", "followers", "following"):
        assert frame[column].dtype == "int64", column
    assert frame["created_at"].dtype == "datetime64[us, UTC]"
    assert frame["created_at"].iloc[0] == pd.Timestamp("2008-02-23T04:33:35Z")
    assert (
        frame["created_at"].tolist()[:25]
        == pd.to_datetime(list(created.values()), unit="s", utc=True).tolist()
    )
    assert frame["created_at"].iloc[25:].isna().all()
    assert frame["id"].tolist() == list(range(1, 31))
    assert frame["followers"].tolist() == [i * 10 for i in range(1, 31)]
    assert frame["public_repos"].tolist() == [i % 7 for i in range(1, 31)]
    assert frame["login"].tolist() == [f"User{i}" for i in range(1, 31)]
    assert (frame["fetched_at"] == pd.Timestamp("2026-11-27T03:00:00Z")).all()
    assert set(frame["type"].cat.categories) == {"User"}


def test_read_frame_types_come_sorted_as_categories(store: RedisStore) -> None:
    kinds = ["User", "Bot", "User", "Organization"]
    store.write_page(page([user(i, type=kind) for i, kind in enumerate(kinds, 1)]))

    frame = store.read_frame(batch=2)

    assert list(frame["type"].cat.categories) == ["Bot", "Organization", "User"]
    assert frame["type"].tolist() == kinds


def test_read_frame_of_an_empty_store(store: RedisStore) -> None:
    frame = store.read_frame()
    assert len(frame) == 0
    assert frame["followers"].dtype == "int64"


def test_read_frame_rejects_corrupt_counters(store: RedisStore) -> None:
    store.write_page(page([user(1)]))
    store.client.hset(store.user_key(1), "followers", "many")
    with pytest.raises(ValueError, match="followers"):
        store.read_frame()


def test_read_frame_leaves_out_and_reports_indexed_ids_without_a_hash(store: RedisStore) -> None:
    store.write_page(page([user(i) for i in range(1, 11)]))
    store.client.zadd(store.ids_key(0), {"4": 4, "8": 8, "11": 11})  # ids without a hash
    store.client.delete(store.user_key(4), store.user_key(8))

    frame = store.read_frame(batch=3)

    assert frame["id"].tolist() == [1, 2, 3, 5, 6, 7, 9, 10]
    assert frame["login"].tolist() == [f"User{i}" for i in (1, 2, 3, 5, 6, 7, 9, 10)]
    report = frame.attrs[READ_REPORT]
    assert (report["no_hash"], report["no_hash_count"], report["indexed"]) == ([4, 8, 11], 3, 11)


def test_read_frame_reads_the_ids_of_its_snapshot_only(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_page(page([user(i) for i in range(10, 20)]))
    read = bulk_read.read_frame

    def a_page_lands_after_the_snapshot(*args: object) -> object:
        store.write_page(page([user(1), user(2), user(25)], key=key(0)))
        return read(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk_read, "read_frame", a_page_lands_after_the_snapshot)
    frame = store.read_frame(batch=4)

    assert frame["id"].tolist() == list(range(10, 20))
    assert frame.attrs[READ_REPORT]["pages_users"] == frame.attrs[READ_REPORT]["indexed"] == 10
    assert store.user_count() == 13


def test_read_frame_keeps_missing_fetched_at_as_nat(store: RedisStore) -> None:
    store.write_page(page([user(1), user(2)]))
    store.client.hdel(store.user_key(2), "fetched_at")

    frame = store.read_frame()

    assert frame["fetched_at"].iloc[0] == pd.Timestamp("2026-11-27T03:00:00Z")
    assert frame["fetched_at"].isna().tolist() == [False, True]


def test_read_frame_error_reply_discards_the_connection(store: RedisStore) -> None:
    store.write_page(page([user(i) for i in range(1, 21)]))
    store.client.zadd(store.ids_key(0), {"15": 15})
    store.client.delete(store.user_key(15))
    store.client.set(store.user_key(15), "not a hash")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.read_frame(batch=4)

    # The connection with replies still owed was closed, not handed back: the pool still works.
    assert store.client.hget(store.user_key(3), "login") == b"User3"
    store.client.delete(store.user_key(15))
    assert len(store.read_frame(batch=4)) == 19


def test_read_frame_leaves_the_garbage_collector_as_it_found_it(store: RedisStore) -> None:
    store.write_page(page([user(1), user(2)]))
    assert gc.isenabled()
    assert len(store.read_frame()) == 2
    assert gc.isenabled()

    store.client.hset(store.user_key(2), "followers", "many")
    with pytest.raises(ValueError, match="followers"):
        store.read_frame()
    assert gc.isenabled()

    gc.disable()
    try:
        store.client.hset(store.user_key(2), "followers", "7")
        assert store.read_frame()["followers"].tolist() == [1, 7]
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_read_frame_parses_counters_exactly(store: RedisStore) -> None:
    # numpy's fast text parser clips overflow and stops at junk: such values must not slip by.
    store.write_page(page([user(1), user(2), user(3)]))
    store.client.hset(store.user_key(2), "followers", str(2**63 - 1))
    store.client.hset(store.user_key(3), "followers", str(2**53 + 1))  # not a float's
    assert store.read_frame()["followers"].tolist() == [1, 2**63 - 1, 2**53 + 1]
    for bad in (str(2**63), "1 2", "", "1-2", "--1", "0x10"):
        store.client.hset(store.user_key(2), "followers", bad)
        with pytest.raises(ValueError, match="followers"):
            store.read_frame()


def test_read_frame_survives_health_checks_between_batches(redis_url: str, key_prefix: str) -> None:
    # A health-check PING sent while a batch's replies are unread would read one of them.
    # redis-py 8.2 pipelines its connect handshake (CLIENT SETINFO, replies read last), which a
    # health check before every command breaks by itself: without SETINFO here.
    store = RedisStore.from_url(
        redis_url, key_prefix, health_check_interval=1e-6, lib_name=None, lib_version=None
    )
    try:
        store.write_page(page([user(i, followers=i) for i in range(1, 51)]))
        frame = store.read_frame(batch=5)
        assert frame["followers"].tolist() == list(range(1, 51))
        assert store.client.ping()
    finally:
        store.client.close()
