"""Page writes into the Redis key schema: atomic and idempotent, users that left and renamed
logins kept right, pages larger than one batched call. The bulk read into pandas is in
test_read_frame.py, the block schema's keys and refusals in test_block_schema.py."""

from __future__ import annotations

import pytest
import redis

from gh_assets.storage import RedisStore

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


def test_repr_hides_the_password(redis_url: str) -> None:
    store = RedisStore.from_url("redis://reader:s3cret-pass@127.0.0.1:6390/2")
    assert "s3cret-pass" not in repr(store)
    assert "127.0.0.1:6390" in repr(store)
