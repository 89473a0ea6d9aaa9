"""The registry of user fields (``gh_assets.user_fields``) on a store an older release wrote:
``created_at`` joined the registry after a1802fd, so that release's hashes lack it. The next
re-crawl asks those users in full (no ``If-None-Match``, every answer a 200) and they gain it;
the crawl after that is conditional again. The old store is written by a1802fd's own code (its
``gh_assets`` taken from git), crawling the stand-in."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tarfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from gh_assets.crawl import crawl_page
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PREVIOUS_RELEASE = "a1802fd"  # the last release without created_at
WINDOW = PageWindow(1, 100)
# Crawls one page with the gh_assets on PYTHONPATH; prints where that package is and the users
# written.
OLD_CRAWL = """
import sys
import gh_assets
from gh_assets.crawl import crawl_page
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
api, url, prefix, first, last = sys.argv[1:]
store = RedisStore.from_url(url, prefix)
with GitHubClient(api, backoff_base=0.01) as client:
    report = crawl_page(client, store, PageWindow(int(first), int(last)))
print(gh_assets.__file__)
print(report.written)
"""


def old_release(where: Path) -> Path:
    """``gh_assets`` as PREVIOUS_RELEASE shipped it, extracted from git into ``where``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "gh_assets"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


def crawl_with_old_release(
    old: Path, standin: StandinServer, redis_url: str, prefix: str, window: PageWindow
) -> int:
    """The users PREVIOUS_RELEASE's ``crawl_page`` wrote for ``window``, in its own process."""
    env = os.environ | {"PYTHONPATH": str(old)}
    args = [standin.url, redis_url, prefix, str(window.first_id), str(window.last_id)]
    done = subprocess.run(
        [sys.executable, "-c", OLD_CRAWL, *args],
        cwd=old,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    package, written = done.stdout.split()
    assert Path(package).is_relative_to(old)  # the old code ran, not this tree's
    return int(written)


def seconds(iso: str) -> str:
    """GitHub's ``2008-01-14T04:33:35Z`` as the epoch seconds Redis keeps."""
    return str(int(datetime.fromisoformat(iso).timestamp()))


def test_a_store_crawled_by_the_previous_release_gains_created_at_on_its_next_recrawl(
    tmp_path: Path,
    standin: StandinServer,
    dataset: Dataset,
    store: RedisStore,
    redis_url: str,
    key_prefix: str,
    client: GitHubClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = old_release(tmp_path / "old")
    written = crawl_with_old_release(old, standin, redis_url, key_prefix, WINDOW)
    users = dataset.users_between(WINDOW.first_id, WINDOW.last_id)
    assert written == len(users) > 30
    before = store.read_users(u.id for u in users)
    assert all("created_at" not in fields and fields["etag"] for fields in before.values())
    assert store.read_frame()["created_at"].isna().all()  # readable before the re-crawl: NaT

    standin.reset_stats()
    with caplog.at_level(logging.INFO, logger="gh_assets.crawl"):
        again = crawl_page(client, store, WINDOW)

    by_status = standin.stats()["requests"]["by_status"]
    assert by_status == {"200": len(users) + 1}  # the list, then every user in full: no 304
    assert (again.written, again.not_modified) == (len(users), 0)
    assert f"{len(users)} stored users lack a registry field: fetched again in full" in [
        record.getMessage() for record in caplog.records
    ]
    after = store.read_users(u.id for u in users)
    assert {u.id: after[u.id]["created_at"] for u in users} == {
        u.id: seconds(u.created_at) for u in users
    }
    frame = store.read_frame().set_index("id")
    assert frame["created_at"].to_dict() == {
        u.id: pd.Timestamp(u.created_at).as_unit("us") for u in users
    }

    standin.reset_stats()
    third = crawl_page(client, store, WINDOW)  # complete hashes: conditional again
    assert third.not_modified == len(users)
    assert standin.stats()["requests"]["by_status"] == {"200": 1, "304": len(users)}
    kept = store.read_users(u.id for u in users)
    assert {i: {k: v for k, v in f.items() if k != "fetched_at"} for i, f in kept.items()} == {
        i: {k: v for k, v in f.items() if k != "fetched_at"} for i, f in after.items()
    }
