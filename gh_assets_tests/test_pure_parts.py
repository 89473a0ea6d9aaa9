"""The pure parts, called directly: what they do, shown on small inputs."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from gh_assets.defs.crawl.recrawl import choose_pages
from gh_assets.github import safe_url
from gh_assets.partitions import PageWindow, default_page_keys, pages_up_to
from gh_assets.settings import Settings
from gh_assets.summary import summarize

pytestmark = pytest.mark.unit

FRAME = pd.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "login": ["ada", "bob", "cy", "acme"],
        "type": pd.Categorical(["User", "User", "User", "Organization"]),
        "public_repos": [3, 0, 10, 7],
        "public_gists": [1, 0, 0, 0],
        "followers": [5, 0, 500, 40],
        "following": [2, 1, 0, 0],
        # bob's hash was written before created_at joined the registry: NaT, in no year
        "created_at": pd.to_datetime(
            ["2008-01-14T04:33:35Z", None, "2008-12-31T23:59:59Z", "2011-01-01T00:00:00Z"],
            utc=True,
        ),
    }
)


def test_a_page_key_names_its_window() -> None:
    assert PageWindow.number(0, 100).key == "0000000001-0000000100"
    assert PageWindow.from_key("0000000101-0000000200") == PageWindow(101, 200)
    assert PageWindow.number(9, 100).since == 900  # GET /users?since=900 starts page 9
    with pytest.raises(ValueError, match="page key"):
        PageWindow.from_key("1-100")
    with pytest.raises(ValueError, match="not a page window"):
        PageWindow(200, 101)


def test_the_configured_pages_tile_the_ids_from_one() -> None:
    keys = default_page_keys(Settings(page_size=8, pages=3))
    assert keys == ["0000000001-0000000008", "0000000009-0000000016", "0000000017-0000000024"]


def test_growth_adds_pages_up_to_the_newest_user_within_the_room_left() -> None:
    assert pages_up_to(frontier=200, newest_id=401, width=100, room=10) == [
        "0000000201-0000000300",
        "0000000301-0000000400",
        "0000000401-0000000500",
    ]
    assert pages_up_to(frontier=200, newest_id=401, width=100, room=1) == ["0000000201-0000000300"]
    assert pages_up_to(frontier=200, newest_id=200, width=100, room=10) == []


def test_pages_due_come_deferred_first_then_oldest_never_running_or_waiting() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    deferred = {"p7": now - timedelta(seconds=1), "p3": now + timedelta(minutes=5)}
    stale = ["p1", "p3", "p4", "p5"]  # oldest first, as Redis gives them
    running = [("p4", "p4")]
    assert choose_pages(deferred, stale, running, now, limit=3) == ["p7", "p1", "p5"]
    assert choose_pages(deferred, stale, running, now, limit=1) == ["p7"]
    assert choose_pages({}, stale, [("p1", "p4")], now, limit=9) == ["p5"]  # a multi-page run


def test_summarize() -> None:
    summary = summarize(FRAME)
    assert summary.counters.loc["followers"].to_dict() == {
        "count": 4,
        "sum": 545,
        "mean": 136.25,
        "median": 22.5,
        "std": pytest.approx(243.152, abs=0.001),  # sample std (ddof=1)
        "p90": pytest.approx(362.0),
        "p99": pytest.approx(486.2),
        "max": 500,
    }
    assert summary.by_type.to_dict() == {
        "accounts": {"User": 3, "Organization": 1},
        "share": {"User": 0.75, "Organization": 0.25},
    }
    assert summary.top_followers["login"].tolist() == ["cy", "acme", "ada", "bob"]
    assert summary.per_year.to_dict() == {"created_at": {2008: 2, 2011: 1}}
    assert summary.per_year.index.name == "year"


def test_redis_urls_in_messages_lose_their_passwords() -> None:
    # What RedisStore names REDIS_URL by in its messages (the project's one URL cleaner).
    assert safe_url("redis://:s3cret@h:1/0") == "redis://h:1/0"
    assert safe_url("rediss://app:s3cret@h:1/0?ssl_cert_reqs=none") == (
        "rediss://h:1/0?ssl_cert_reqs=none"
    )
    assert safe_url("redis://h:1/0?password=s3cret&db=2") == "redis://h:1/0?password=***&db=2"
    assert (
        safe_url("unix:///run/redis.sock?Password=s3cret") == "unix:///run/redis.sock?Password=***"
    )
