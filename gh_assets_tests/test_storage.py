"""The Redis key schema: atomic, idempotent page writes and the bulk read into pandas."""

from __future__ import annotations

import gc
import json

import pandas as pd
import pytest
import redis

from gh_assets import preflight
from gh_assets.partitions import PageWindow
from gh_assets.preflight import PreflightError
from gh_assets.storage import COUNTERS, READ_REPORT, PageWrite, RedisStore, SchemaError, bulk_read

from .page_writes import P1, WHEN, key, logins, page, snapshot, user

pytestmark = pytest.mark.integration

ETAG = "cdcdd165941281cdc3948a0cdff00dcb40d91a0ba044e67272d5b433326e8f81"


def test_page_write_stores_the_schema(store: RedisStore) -> None:
    store.write_page(
        page([user(3, "Alice", etag=ETAG, etag_auth="anonymous"), user(5, "bob")], (4,))
    )

    assert store.read_users([3, 4, 5]) == {
        3: user(3, "Alice", etag=ETAG, etag_auth="anonymous"),
        5: user(5, "bob"),
    }
    assert store.user_id_for_login("ALICE") == 3
    assert logins(store) == {b"alice": b"3", b"bob": b"5"}
    assert store.client.zrange(store.ids_key(0), 0, -1) == [b"3", b"5"]
    assert store.page_members(P1) == {3, 5}
    assert store.page_gone(P1) == {4}
    assert store.page_meta(P1) == {
        "listed": "3",
        "users": "2",
        "fetched_at": "2026-11-27T03:00:00Z",
    }
    assert store.pages_fetched_at() == {P1: WHEN}


def test_rerun_is_idempotent(store: RedisStore) -> None:
    write = page([user(i) for i in range(1, 40)], (40, 41))
    store.write_page(write)
    first = snapshot(store)
    store.write_page(write)
    again = snapshot(store)
    version = store.version_key(0)
    assert (first.pop(version), again.pop(version)) == (b"1", b"2")  # every write moves it
    assert again == first
    # user hashes + the block's ids and pages, blocks, schema, pages, page meta, members, gone
    # + aggregates, 4 histograms; and the login buckets, with one entry per user
    buckets = [k for k in first if k.startswith(f"{store.prefix}logins:")]
    assert len(first) - len(buckets) == 39 + 8 + 5
    assert len(logins(store)) == 39


def test_rerun_drops_users_that_left_and_renames(store: RedisStore) -> None:
    store.write_page(page([user(1, "one"), user(2, "two"), user(3, "three")]))
    store.write_page(page([user(1, "one"), user(3, "Three-Renamed")], (2,)))

    assert store.page_members(P1) == {1, 3}
    assert store.client.exists(store.user_key(2)) == 0
    assert logins(store) == {b"one": b"1", b"three-renamed": b"3"}
    assert store.client.zrange(store.ids_key(0), 0, -1) == [b"1", b"3"]
    assert store.user_count() == 2


def test_a_login_taken_over_by_another_account_is_kept(store: RedisStore) -> None:
    store.write_page(page([user(1, "name")], key=key(10)))
    store.write_page(page([user(1, "renamed")], key=key(10)))
    store.write_page(page([user(900, "name")], key=key(11)))  # someone else takes the old login
    store.write_page(page([], (1,), key=key(10)))  # then account 1 is deleted

    assert logins(store) == {b"name": b"900"}


def test_stale_fields_do_not_survive_a_rewrite(store: RedisStore) -> None:
    store.write_page(page([user(1, etag=ETAG, etag_auth="anonymous")]))
    store.write_page(page([user(1)]))
    assert "etag" not in store.read_users([1])[1]


def test_a_failed_write_leaves_the_page_as_it_was(store: RedisStore, redis_url: str) -> None:
    store.write_page(page([user(1), user(2)]))
    before = snapshot(store)
    for bad in ({"id": "2", "type": "User"}, user(2, followers="-1")):
        with pytest.raises(ValueError, match=r"login|followers"):
            store.write_page(page([user(1, followers=5), bad]))
        assert snapshot(store) == before

    dead = RedisStore.from_url("redis://127.0.0.1:1/0", store.prefix, socket_connect_timeout=0.2)
    with pytest.raises(redis.ConnectionError):
        dead.write_page(page([user(1, followers=9)]))
    assert snapshot(store) == before


def test_a_page_larger_than_one_batched_call(store: RedisStore) -> None:
    # The script sends the login, id and member updates of a page in calls of 1,000 arguments.
    store.write_page(page([user(i) for i in range(1, 2501)]))
    assert store.user_count() == 2500
    assert len(logins(store)) == 2500
    assert store.user_id_for_login("user2500") == 2500

    store.write_page(page([user(i) for i in range(1, 1301)], gone=tuple(range(1301, 2501))))

    assert store.user_count() == 1300
    assert store.ids_between(1, 2500) == set(range(1, 1301))
    assert store.page_members(P1) == set(range(1, 1301))
    assert store.page_gone(P1) == set(range(1301, 2501))
    assert len(logins(store)) == 1300
    assert store.user_id_for_login("user1301") is None
    assert store.client.exists(store.user_key(2000)) == 0


def test_a_page_whose_users_are_all_gone(store: RedisStore) -> None:
    store.write_page(page([user(1), user(2)]))
    store.write_page(page([], gone=(1, 2)))
    assert store.user_count() == 0
    assert store.page_gone(P1) == {1, 2}
    assert store.page_meta(P1)["users"] == "0"


def test_user_hash_stays_in_compact_encoding(store: RedisStore) -> None:
    store.write_page(page([user(1, "a" * 39, etag=ETAG, etag_auth="sha256:0123456789ab")]))
    assert store.client.object("encoding", store.user_key(1)) == b"listpack"


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


def test_repr_hides_the_password(redis_url: str) -> None:
    store = RedisStore.from_url("redis://reader:s3cret-pass@127.0.0.1:6390/2")
    assert "s3cret-pass" not in repr(store)
    assert "127.0.0.1:6390" in repr(store)


# --- the block schema: keys, its refusals, lookups that verify ------------------------------


def test_keys_of_a_block_share_one_hash_tag(store: RedisStore) -> None:
    prefix = store.prefix
    assert store.user_key(100_000) == f"{prefix}{{b0}}:user:100000"
    assert store.user_key(100_001) == f"{prefix}{{b1}}:user:100001"
    page_2500 = PageWindow.number(40, 2500).key  # IDs 100,001-102,500
    assert store.page_key(page_2500, "agg") == f"{prefix}{{b1}}:page:{page_2500}:agg"
    assert store.ids_key(1) == f"{prefix}{{b1}}:ids"
    assert store.login_key("TorValds") == store.login_key("torvalds")  # CRC-32 of the lower case
    assert store.login_key("torvalds") == f"{prefix}logins:{{{0x0A74E9AD % 4096}}}"
    with pytest.raises(ValueError, match="spans blocks of 100,000 IDs"):
        store.page_key(PageWindow(99_901, 100_200).key)
    with pytest.raises(ValueError, match="not a page key"):
        store.page_key("p1")


def test_a_user_outside_the_pages_block_is_refused(store: RedisStore) -> None:
    with pytest.raises(ValueError, match=r"user 100001 lies outside its block of IDs 1-100000"):
        store.write_page(page([user(1), user(100_001)]))
    assert snapshot(store) == {}


def test_a_login_entry_its_users_hash_does_not_confirm_is_not_returned(store: RedisStore) -> None:
    store.write_page(page([user(1, "ada"), user(2, "bob")]))
    # As a crash between the page's script and its login entries can leave them.
    store.client.hset(store.login_key("carol"), "carol", "1")
    store.client.hset(store.login_key("ada"), "ada", "2")
    assert store.user_id_for_login("carol") is None
    assert store.user_id_for_login("ada") is None
    assert store.user_id_for_login("BOB") == 2


def as_on_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores take the cluster's write path (every key declared, the members read first, the
    login entries and the registration after the script) on this single Redis."""
    monkeypatch.setattr(RedisStore, "cluster", property(lambda self: True))


def test_the_cluster_write_path_stores_what_the_single_redis_one_does(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = [
        page([user(1, "one"), user(2, "two"), user(3, "three")], gone=(4,)),
        page([user(1, "one"), user(3, "Three-Renamed"), user(5, "two")], gone=(2, 4)),
        page([user(900, "one")], key=key(10)),
        page([], gone=(1,)),
    ]
    found = []
    for split in (False, True):
        if split:
            as_on_a_cluster(monkeypatch)
        store = RedisStore.from_url(redis_url, f"{key_prefix}split{split}:")  # fixture cleans up
        try:
            for write in writes:
                store.write_page(write)
            found.append({k.removeprefix(store.prefix): v for k, v in snapshot(store).items()})
            assert store.user_id_for_login("one") == 900  # taken over, then 1 deleted
            assert store.user_id_for_login("two") is None  # 5 took it, then left the page
            assert logins(store) == {b"one": b"900"}
        finally:
            store.close()
    assert found[0] == found[1]


def test_a_page_rewritten_between_its_members_read_and_its_script_is_retried(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_on_a_cluster(monkeypatch)
    store.write_page(page([user(1), user(2)]))
    smembers, calls = store.client.smembers, []

    def stale_once(key: str) -> set[bytes]:
        if key != store.page_key(P1, "users"):
            return smembers(key)
        calls.append(key)
        return set() if len(calls) == 1 else smembers(key)  # user 2 not declared at first

    monkeypatch.setattr(store.client, "smembers", stale_once)
    store.write_page(page([user(1)], gone=(3,)))

    assert len(calls) == 2  # refused with GHSTALE before writing anything, then written
    assert store.page_members(P1) == {1}
    assert store.client.exists(store.user_key(2)) == 0
    assert logins(store) == {b"user1": b"1"}


def test_users_kept_by_forgetting_their_page_are_claimed_by_the_wider_page(
    store: RedisStore,
) -> None:
    narrow, wide = PageWindow(1, 100).key, PageWindow(1, 1000).key
    store.write_page(page([user(1), user(2), user(3), user(150)], key=narrow))
    store.forget_pages([narrow])  # the page width changes: the users stay, held by no page
    assert store.client.smembers(store.unpaged_key(0)) == {b"1", b"2", b"3", b"150"}

    store.write_page(page([user(1), user(2)], key=wide))  # 3 and 150 were deleted on GitHub

    assert store.ids_between(1, 100_000) == store.page_members(wide) == {1, 2}
    assert store.client.exists(store.user_key(3), store.user_key(150)) == 0
    assert store.user_id_for_login("User3") is None
    assert store.client.exists(store.unpaged_key(0)) == 0  # claimed
    assert store.user_count() == store.page_user_total() == 2


def test_a_user_kept_outside_the_next_pages_window_stays_unpaged(store: RedisStore) -> None:
    store.write_page(page([user(1), user(150)], key=PageWindow(1, 200).key))
    store.forget_pages([PageWindow(1, 200).key])
    store.write_page(page([user(1)], key=PageWindow(1, 100).key))
    assert store.client.smembers(store.unpaged_key(0)) == {b"150"}  # page 101-200's to claim
    assert store.ids_between(1, 1000) == {1, 150}
    store.delete_users([150])
    assert store.client.exists(store.unpaged_key(0)) == 0


def test_users_deleted_before_their_page_is_forgotten_are_not_kept(store: RedisStore) -> None:
    store.write_page(page([user(1), user(2), user(150)], key=PageWindow(1, 200).key))
    store.delete_users([2, 150])  # forget-pages: the users no configured page will hold
    store.forget_pages([PageWindow(1, 200).key])
    assert store.client.smembers(store.unpaged_key(0)) == {b"1"}  # not the deleted ones


def test_a_damaged_crawl_start_orders_nothing(store: RedisStore) -> None:
    store.write_page(page([user(1)]))
    store.client.hset(store.page_key(P1), "started", "abc")
    later = page([user(1, "renamed")])
    assert store.write_page(PageWrite(later.page, later.users, [], later.meta, WHEN, 10**15))
    assert store.page_meta(P1)["started"] == str(10**15)
    assert store.user_id_for_login("renamed") == 1


def test_data_in_the_old_key_schema_is_refused_in_one_line(
    store: RedisStore, redis_url: str
) -> None:
    store.client.zadd(f"{store.prefix}ids", {"1": 1})
    fresh = RedisStore.from_url(redis_url, store.prefix)
    try:
        for use in (fresh.read_frame, lambda: fresh.write_page(page([user(1)]))):
            with pytest.raises(SchemaError) as refused:
                use()
            assert str(refused.value) == (
                f"REDIS_URL={redis_url!r} holds gh_assets data in the old key schema "
                f"({store.prefix}ids): run gh-assets migrate"
            )
        with pytest.raises(PreflightError) as refused:
            preflight.check_redis(redis_url, prefix=store.prefix)
        assert str(refused.value) == (
            f"REDIS_URL={redis_url!r} holds gh_assets data in the old key schema "
            f"({store.prefix}ids): run gh-assets migrate"
        )
    finally:
        fresh.close()
    assert snapshot(store) == {f"{store.prefix}ids": [(b"1", 1.0)]}  # nothing written


def test_a_store_of_another_block_size_refuses_the_data(store: RedisStore, redis_url: str) -> None:
    store.write_page(page([user(1)]))
    other = RedisStore.from_url(redis_url, store.prefix, block=1_000)
    try:
        with pytest.raises(SchemaError, match="in blocks of 100,000 IDs and 4,096 login buckets"):
            other.read_frame()
    finally:
        other.close()
    assert json.loads(store.client.get(store.schema_key)) == {
        "version": 2,
        "block": 100_000,
        "login_buckets": 4096,
    }
