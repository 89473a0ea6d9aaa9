"""The aggregates as Redis keeps them: each page's replaced with the page in one atomic step (a
reader never sees one version's users with another's aggregates), and each block's merge kept and
reused until a page of the block is written, merged again when unreadable or kept by an older
release."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from gh_assets.aggregates import AggregatesError, summarize_pages
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets.storage.store import page_aggregates

from .page_writes import P1, page, snapshot
from .same_summary import assert_same_summary
from .user_hashes import account


def stored_aggregates(store: RedisStore, key: str = P1) -> dict[str, dict[bytes, bytes]]:
    return {k: store.client.hgetall(k) for k in store.aggregate_keys(key)}


def expected_aggregates(store: RedisStore, users: list[dict], key: str = P1) -> dict:
    agg, histograms = page_aggregates(users)
    return {
        k: {f.encode(): v.encode() for f, v in fields.items()}
        for k, fields in zip(store.aggregate_keys(key), [agg, *histograms], strict=True)
    }


@pytest.mark.integration
def test_a_pages_aggregates_are_replaced_with_the_page(store: RedisStore) -> None:
    before = [account(i, followers=i, public_repos=i % 3) for i in range(1, 9)]
    after = [  # one gone, one changed type and counters, one new
        *before[:3],
        account(4, "Organization", followers=1000, public_repos=99),
        *before[5:],
        account(9, followers=5),
    ]
    store.write_page(page(before))
    assert stored_aggregates(store) == expected_aggregates(store, before)
    agg = store.client.hgetall(store.page_key(P1, "agg"))
    assert agg[b"users"] == b"8" and agg[b"type:User"] == b"8" and agg[b"first:User"] == b"1"
    assert agg[b"followers:sumsq"] == str(sum(i * i for i in range(1, 9))).encode()
    assert json.loads(agg[b"top"])[0] == ["8", "login8", "User", "8"]
    assert store.client.hgetall(store.page_key(P1, "hist:public_repos")) == {
        b"0": b"2",
        b"1": b"3",
        b"2": b"3",
    }

    store.write_page(page(after, gone=(5,)))
    assert stored_aggregates(store) == expected_aggregates(store, after)  # nothing of before left
    assert b"type:Organization" in store.client.hgetall(store.page_key(P1, "agg"))
    assert b"4" not in store.client.hgetall(store.page_key(P1, "hist:followers"))
    assert_same_summary(store)

    # A refused write (bad payload) changes nothing, aggregates included.
    whole = snapshot(store)
    with pytest.raises(ValueError, match="both written and gone"):
        store.write_page(page(before, gone=(3,)))
    assert snapshot(store) == whole

    store.write_page(page([], gone=tuple(range(1, 10))))  # the page lost every user
    assert store.client.exists(*store.aggregate_keys(P1)) == 0


@pytest.mark.integration
def test_a_reader_never_sees_one_versions_users_with_anothers_aggregates(
    store: RedisStore,
) -> None:
    versions = [
        [account(i, followers=i) for i in range(1, 40)],
        [account(i, "Organization", followers=3 * i) for i in range(1, 40, 3)],
    ]
    expected = [
        (len(users), expected_aggregates(store, users)) for users in versions
    ]  # members, then each aggregates key's hash
    store.write_page(page(versions[0]))
    done = threading.Event()
    seen: list[tuple[int, dict]] = []

    def read() -> None:
        while not done.is_set():
            (stored,) = store.read_aggregates([P1])
            hashes = [stored.agg, *stored.histograms]
            seen.append((stored.members, dict(zip(store.aggregate_keys(P1), hashes, strict=True))))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for number in range(200):
            store.write_page(page(versions[number % 2]))
    finally:
        done.set()
        reader.join()
    assert len(seen) > 10
    assert all(observed in expected for observed in seen)


@pytest.fixture
def blocks_store(redis_url: str, key_prefix: str) -> Iterator[RedisStore]:
    """A store of 200-ID blocks, so a few pages span several blocks."""
    small = RedisStore.from_url(redis_url, key_prefix, block=200)
    yield small
    small.close()


def write_window(store: RedisStore, first: int, users: list[dict[str, str]]) -> None:
    store.write_page(page(users, key=PageWindow(first, first + 99).key))


def pages_read(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pages whose aggregates the store reads from now on."""
    seen: list[str] = []
    read = store.read_aggregates

    def counted(pages=None, *args, **kwargs):
        pages = list(pages) if pages is not None else store.pages()
        seen.extend(pages)
        return read(pages, *args, **kwargs)

    monkeypatch.setattr(store, "read_aggregates", counted)
    return seen


@pytest.mark.integration
def test_a_summary_reads_again_only_the_blocks_of_pages_written_since(
    blocks_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = blocks_store
    for first in (1, 101, 201, 301, 401):  # blocks 0, 0, 1, 1, 2
        users = [account(i, followers=i % 13) for i in range(first, first + 30)]
        write_window(store, first, users)
    seen = pages_read(store, monkeypatch)
    assert_same_summary(store)
    assert len(seen) == 5  # every page once (assert_same_summary merges twice)
    assert [
        json.loads(store.client.get(store.block_summary_key(b)))["version"] for b in (0, 1, 2)
    ] == [
        2,
        2,
        1,
    ]

    seen.clear()
    write_window(store, 301, [account(i, "Organization", followers=99) for i in range(301, 340)])
    assert_same_summary(store)
    assert sorted(set(seen)) == [PageWindow(201, 300).key, PageWindow(301, 400).key]

    seen.clear()
    store.forget_pages([PageWindow(1, 100).key])  # its users stay, counted by no page
    store.delete_users(list(range(1, 31)))
    assert_same_summary(store)
    assert seen == [PageWindow(101, 200).key]


@pytest.mark.integration
def test_a_block_written_during_its_merge_is_not_stored_as_current(
    blocks_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = blocks_store
    write_window(store, 1, [account(i) for i in range(1, 20)])
    read = store.read_aggregates

    def then_a_write(pages=None, *args, **kwargs):
        found = list(read(pages, *args, **kwargs))
        write_window(store, 101, [account(150, followers=7)])  # the same block, meanwhile
        return iter(found)

    monkeypatch.setattr(store, "read_aggregates", then_a_write)
    assert summarize_pages(store).counters.at["followers", "count"] == 19  # what it read
    assert store.client.get(store.block_summary_key(0)) is None  # not kept: it is out of date
    monkeypatch.undo()
    assert_same_summary(store)  # 20 users, merged again


@pytest.mark.integration
def test_an_unreadable_stored_block_summary_is_merged_again(blocks_store: RedisStore) -> None:
    store = blocks_store
    write_window(store, 1, [account(i, followers=i) for i in range(1, 20)])
    assert_same_summary(store)
    version = store.block_version(0)
    kept = json.loads(store.client.get(store.block_summary_key(0)))  # current: reused as it is
    store.client.set(store.block_summary_key(0), json.dumps(kept | {"pages": "x"}))
    with pytest.raises(AggregatesError, match="a block's stored summary is unreadable"):
        summarize_pages(store)
    store.client.set(store.block_summary_key(0), b"\xff not json")
    assert_same_summary(store)
    assert json.loads(store.client.get(store.block_summary_key(0)))["version"] == version


@pytest.mark.integration
def test_a_block_merge_kept_by_an_older_release_is_merged_again(blocks_store: RedisStore) -> None:
    """A release whose merge differs (here a top list of 3, and no format) kept a block's merge
    at the block's current version: the summary merges the block again, not serve the old."""
    store = blocks_store
    write_window(store, 1, [account(i, followers=i) for i in range(1, 40)])
    assert_same_summary(store)
    kept = json.loads(store.client.get(store.block_summary_key(0)))
    old = {name: value for name, value in kept.items() if name != "format"}
    store.client.set(store.block_summary_key(0), json.dumps(old | {"top": kept["top"][:3]}))

    summary = assert_same_summary(store)  # pandas' top 10, not the old release's 3
    assert summary.top_followers["followers"].tolist() == list(range(39, 29, -1))
    assert len(json.loads(store.client.get(store.block_summary_key(0)))["top"]) == 10
