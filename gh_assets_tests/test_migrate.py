"""``gh-assets migrate``: a store written by the old release (one global ``gh:ids`` and
``gh:logins``, ``gh:user:<id>``, ``gh:page:<page>...``; its page script is read from git history)
converted in place into the block schema, losing nothing, and finished by a second run when the
first is cut short."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis

from gh_assets import cli
from gh_assets.aggregates import summarize_pages
from gh_assets.defs.crawl.page_asset import build_github_users
from gh_assets.partitions import PageWindow
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings
from gh_assets.storage import (
    COUNTERS,
    HASH_FIELDS,
    PageWrite,
    RedisStore,
    SchemaError,
    frame_from_batches,
)
from gh_assets.storage.migrate import MigrationError, migrate
from gh_assets.storage.schema import TIMES
from gh_assets.storage.store import page_aggregates
from gh_assets.summary import summarize
from gh_assets_devtools.standin import Dataset, StandinServer

from .dagster_runs import attempts, failure_line, run_page
from .page_writes import WHEN

pytestmark = pytest.mark.integration

# The old key schema's page script (global gh:ids and gh:logins), as its last release shipped it.
OLD_SCRIPT = "4f75916:gh_assets/storage/write_page.lua"
OLD_WRITE_PAGE = subprocess.run(
    ["git", "-C", str(Path(__file__).parent), "show", OLD_SCRIPT],
    capture_output=True,
    check=True,
    text=True,
).stdout
BLOCK = 500  # pages of 100 IDs in two blocks: users and pages are placed, not only renamed
WINDOWS = [PageWindow.number(k, 100) for k in range(8)]  # IDs 1-800


def old_write(client: redis.Redis, prefix: str, write: PageWrite) -> None:
    """``RedisStore.write_page`` of the old release, verbatim but for the class around it."""
    agg, histograms = page_aggregates(write.users)
    histograms = histograms[: len(COUNTERS)]  # that release kept the counters' alone

    def flat(fields: dict) -> list[str]:
        return [str(item) for pair in fields.items() for item in pair]

    meta = dict(write.meta) | {"fetched_at": write.fetched_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    payload = {
        "users": [flat(dict(user)) for user in write.users],
        "gone": [str(user_id) for user_id in write.gone],
        "meta": flat(meta),
        "agg": flat(agg),
        "hist": [flat(histogram) for histogram in histograms],
    }
    page = f"{prefix}page:{write.page}"
    keys = [
        page,
        f"{page}:users",
        f"{page}:gone",
        f"{prefix}logins",
        f"{prefix}ids",
        f"{prefix}pages",
        f"{prefix}deferred",
        f"{page}:staged",
        f"{page}:agg",
        *(
            f"{page}:hist:{counter}"
            for counter in ("public_repos", "public_gists", "followers", "following")
        ),
    ]
    args = [f"{prefix}user:", write.page, int(write.fetched_at.timestamp()), json.dumps(payload)]
    client.eval(OLD_WRITE_PAGE, len(keys), *keys, *args)


def crawled(dataset: Dataset, window: PageWindow, when: datetime) -> PageWrite:
    """What a crawl of ``window`` hands the writer: GitHub's users with ETags, the rest gone."""
    truth = dataset.truth(window.first_id, window.last_id)
    users = [
        {k: v for k, v in fields.items() if k not in TIMES}  # none kept by that release
        | {"fetched_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        | ({"etag": f"{user_id:064x}", "etag_auth": "anonymous"} if user_id % 3 else {})
        for user_id, fields in truth.items()
    ]  # fmt: skip
    gone = [i for i in range(window.first_id, window.first_id + 5) if i not in truth]
    meta = {
        "first_id": str(window.first_id),
        "last_id": str(window.last_id),
        "listed": str(len(users) + len(gone)),
        "users": str(len(users)),
        "gone": str(len(gone)),
    }
    return PageWrite(window.key, users, gone, meta, when)


@pytest.fixture
def old_store(redis_url: str, key_prefix: str) -> Iterator[tuple[redis.Redis, Dataset]]:
    """An old-schema store: 8 pages, re-crawls with a rename, a deletion and a login taken over,
    answers staged for a stopped page, a deferred page."""
    client = redis.Redis.from_url(redis_url)
    dataset = Dataset(size=800, seed=5)
    for window in WINDOWS:
        old_write(client, key_prefix, crawled(dataset, window, WHEN))
    first, second = dataset.users_between(1, 100)[:2]
    old_login = first.login
    dataset.update(first.id, login=f"{old_login}-renamed", followers=10**6)
    dataset.delete(second.id)
    old_write(client, key_prefix, crawled(dataset, WINDOWS[0], WHEN + timedelta(hours=1)))
    taker = dataset.users_between(701, 800)[0]
    dataset.update(taker.id, login=old_login)  # another account takes the freed login
    old_write(client, key_prefix, crawled(dataset, WINDOWS[7], WHEN + timedelta(hours=2)))
    staged = f"{key_prefix}page:{PageWindow.number(8, 100).key}:staged"
    client.hset(staged, mapping={"801": json.dumps({"id": "801", "login": "x"}), "802": "gone"})
    client.expire(staged, 3 * 3600)
    client.zadd(f"{key_prefix}deferred", {PageWindow.number(8, 100).key: 1e10})
    yield client, dataset
    client.close()


def old_contents(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Everything the old layout holds, read its own way."""
    ids = sorted(int(i) for i in client.zrange(f"{prefix}ids", 0, -1))
    pages = [p.decode() for p in client.zrange(f"{prefix}pages", 0, -1)]
    users = {i: client.hgetall(f"{prefix}user:{i}") for i in ids}
    page_parts = ("", ":users", ":gone", ":agg", *(f":hist:{c}" for c in COUNTERS))
    stored_pages = {}
    for page in pages:
        key = f"{prefix}page:{page}"
        stored_pages[page] = {
            part: (client.smembers if part in (":users", ":gone") else client.hgetall)(key + part)
            for part in page_parts
        }
    rows = [list(client.hmget(f"{prefix}user:{i}", HASH_FIELDS)) for i in ids]
    return {
        "ids": ids,
        "users": users,
        "pages": stored_pages,
        "fetched_at": client.zrange(f"{prefix}pages", 0, -1, withscores=True),
        "deferred": client.zrange(f"{prefix}deferred", 0, -1, withscores=True),
        "logins": {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}logins").items()},
        "frame": frame_from_batches([([str(i).encode() for i in ids], rows)]),
    }


def new_contents(store: RedisStore, pages: list[str]) -> dict[str, object]:
    """The same, through the new store's reads."""
    client = store.client
    ids = sorted(
        i for b in store.blocks() for i in store.ids_between(b * BLOCK + 1, (b + 1) * BLOCK)
    )
    stored_pages = {}
    for page in pages:
        stored_pages[page] = {
            "": client.hgetall(store.page_key(page)),
            ":users": client.smembers(store.page_key(page, "users")),
            ":gone": client.smembers(store.page_key(page, "gone")),
        }
        (aggregates,) = store.read_aggregates([page])
        stored_pages[page][":agg"] = aggregates.agg
        *histograms, created = aggregates.histograms
        assert created == {}  # no created_at in the old store: no years yet
        for counter, histogram in zip(COUNTERS, histograms, strict=True):
            stored_pages[page][f":hist:{counter}"] = histogram
    return {
        "ids": ids,
        "users": {i: client.hgetall(store.user_key(i)) for i in ids},
        "pages": stored_pages,
        "fetched_at": client.zrange(store.pages_key, 0, -1, withscores=True),
        "deferred": client.zrange(store.deferred_key, 0, -1, withscores=True),
    }


def test_an_old_store_is_migrated_losing_nothing_and_a_cut_run_is_finished(
    old_store: tuple[redis.Redis, Dataset],
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = old_store
    before = old_contents(client, key_prefix)
    assert len(before["users"]) > 500 and before["logins"]
    staged_ttl = client.ttl(f"{key_prefix}page:{PageWindow.number(8, 100).key}:staged")
    store = RedisStore.from_url(redis_url, key_prefix, block=BLOCK)
    with pytest.raises(SchemaError, match=r"old key schema \(.*ids\): run gh-assets migrate$"):
        store.read_frame()

    # Cut short after the users and some page keys: the old global keys stay, stores refuse.
    page_key, calls = RedisStore.page_key, []

    def crash_on_the_20th(self: RedisStore, page: str, part: str = "") -> str:
        calls.append(page)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return page_key(self, page, part)

    monkeypatch.setattr(RedisStore, "page_key", crash_on_the_20th)
    with pytest.raises(KeyboardInterrupt):
        migrate(store, say=lambda line: None)
    monkeypatch.undo()
    assert client.exists(f"{key_prefix}ids", f"{key_prefix}logins") == 2
    assert client.exists(f"{key_prefix}user:{before['ids'][0]}") == 0  # users moved already
    with pytest.raises(SchemaError):
        RedisStore.from_url(redis_url, key_prefix, block=BLOCK).check_schema()

    lines: list[str] = []
    report = migrate(store, say=lines.append)  # the second run finishes the job
    assert report.removed == [f"{key_prefix}ids", f"{key_prefix}logins"]
    assert report.users == 0 and report.page_keys > 0 and report.blocks == {0, 1}
    assert lines[-1] == f"old global keys removed: {key_prefix}ids, {key_prefix}logins"
    assert migrate(store, say=lines.append).removed == []  # a third: nothing left to do

    fresh = RedisStore.from_url(redis_url, key_prefix, block=BLOCK)
    try:
        pages = list(before["pages"])
        after = new_contents(fresh, pages)
        for name in ("ids", "users", "pages", "fetched_at", "deferred"):
            assert after[name] == before[name], name
        for login, user_id in before["logins"].items():
            assert fresh.user_id_for_login(login) == user_id, login
        assert len(before["logins"]) == len(before["users"])  # the freed login went to its taker
        frame = fresh.read_frame()
        pd.testing.assert_frame_equal(frame, before["frame"])
        report_after = frame.attrs["redis_read"]
        assert report_after["pages_users"] == report_after["indexed"] == len(frame)
        summary = summarize_pages(fresh)
        pd.testing.assert_frame_equal(summary.top_followers, summarize(frame).top_followers)
        staged = fresh.staged_answers(PageWindow.number(8, 100).key)
        assert staged == {801: {"id": "801", "login": "x"}, 802: None}
        assert 0 < client.ttl(fresh.page_key(PageWindow.number(8, 100).key, "staged")) <= staged_ttl
        leftovers = [k for k in client.scan_iter(match=f"{key_prefix}*") if b"{" not in k]
        assert sorted(leftovers) == sorted(
            f"{key_prefix}{name}".encode() for name in ("pages", "deferred", "blocks", "schema")
        )
    finally:
        fresh.close()
        store.close()


def test_the_command_migrates_and_says_what_it_did(
    old_store: tuple[redis.Redis, Dataset],
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("GH_ASSETS_KEY_PREFIX", key_prefix)
    assert cli.main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert f"Migrating REDIS_URL={redis_url!r}, prefix {key_prefix!r} into blocks of 100,000" in out
    assert "old global keys removed: " in out and "logins copied into 4,096 buckets" in out
    assert cli.main(["migrate"]) == 0
    assert "nothing to migrate" in capsys.readouterr().out
    store = RedisStore.from_url(redis_url, key_prefix)
    try:
        assert len(store.read_frame()) == len(old_store[1].all_users())
    finally:
        store.close()


def test_pages_that_fit_no_block_are_refused_before_anything_changes(
    redis_url: str, key_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        old_write(client, key_prefix, crawled(Dataset(size=400), PageWindow(251, 350), WHEN))
        store = RedisStore.from_url(redis_url, key_prefix, block=300)
        keys = sorted(client.scan_iter(match=f"{key_prefix}*"))
        with pytest.raises(MigrationError, match="1 old pages cannot be placed in blocks: page"):
            migrate(store, say=lambda line: None)
        assert sorted(client.scan_iter(match=f"{key_prefix}*")) == keys
        store.close()
    finally:
        client.close()


def test_a_page_run_on_the_old_schema_fails_once_in_one_line(
    old_store: tuple[redis.Redis, Dataset], standin: StandinServer, redis_url: str, key_prefix: str
) -> None:
    resources = {
        "github": GitHubResource(api_url=standin.url, max_retries=0),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
    }
    result = run_page(resources, build_github_users(Settings(page_retries=1)))
    assert not result.success
    assert attempts(result) == 1  # no retry can help
    assert failure_line(result) == (
        f"REDIS_URL={redis_url!r} holds gh_assets data in the old key schema "
        f"({key_prefix}ids): run gh-assets migrate"
    )
