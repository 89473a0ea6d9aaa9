"""The block schema: keys of a block sharing one hash tag, its refusals (a user outside the page's
block, the old key schema, another block size), login lookups that verify, the cluster's write
path, and users kept unpaged when their page is forgotten. Split from test_storage.py."""

from __future__ import annotations

import json

import pytest

from gh_assets import preflight
from gh_assets.partitions import PageWindow
from gh_assets.preflight import PreflightError
from gh_assets.storage import PageWrite, RedisStore, SchemaError

from .page_writes import P1, WHEN, key, logins, page, snapshot, user

pytestmark = pytest.mark.integration


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
