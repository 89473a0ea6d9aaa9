"""Bad configuration and unreachable services (issue 9): checked once before the first page with
one clear line, never retried in a run when retrying cannot help, and a changed page width
refused with its way out instead of counting users twice."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from gh_assets import preflight
from gh_assets.asset_storage import storage_resources
from gh_assets.defs.analysis.frame import github_users_frame
from gh_assets.defs.analysis.frame_checks import frame_checks
from gh_assets.defs.analysis.summary import github_user_summary
from gh_assets.defs.crawl.page_asset import build_github_users
from gh_assets.defs.crawl.sensors import crawl_sensors
from gh_assets.partitions import (
    PageOverlapError,
    PageWindow,
    add_missing_pages,
    default_page_keys,
    forget_pages,
    github_pages,
    pages_of_width,
)
from gh_assets.preflight import PreflightError
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings, SettingsError
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer

from .dagster_runs import FIRST, attempts, failure_line, run_page
from .replay_server import TOKEN, Replay, Reply

BAD_CREDENTIALS = Reply(401, {"message": "Bad credentials"})
# Retries that a configuration error must not use: if it did, the test would wait 10-60 s.
PATIENT_PAGES = build_github_users(Settings(page_retries=2))
ANALYSIS = [github_users_frame, github_user_summary, *frame_checks]


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on (bound by the OS, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_password(url: str, password: str) -> str:
    """``url`` with an ACL user that does not exist (a bare password passes a nopass server)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://nobody:{password}@{rest.rpartition('@')[2]}"


def refused(settings: Settings) -> tuple[str, float]:
    """The preflight's one line for ``settings``, and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(PreflightError) as raised:
        preflight.check(settings)
    message = str(raised.value)
    assert isinstance(raised.value, SettingsError) and "\n" not in message
    return message, time.monotonic() - started


# --- preflight ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_preflight_passes_when_redis_and_github_answer(standin, redis_url: str) -> None:
    preflight.check(Settings(api_url=standin.url, redis_url=redis_url))


@pytest.mark.integration
def test_preflight_names_an_unreachable_redis_within_seconds(
    standin: StandinServer, dead_port: int, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{dead_port}"
    message, seconds = refused(
        Settings(api_url=standin.url, redis_url=f"redis://:hunter2@{dead}/0")
    )
    assert message == f"REDIS_URL='redis://{dead}/0': nothing answers there (connection refused)"
    assert seconds < 5

    socket_url = f"unix://{tmp_path}/no.sock"
    message, _ = refused(Settings(api_url=standin.url, redis_url=socket_url))
    assert message == f"REDIS_URL='{socket_url}': nothing answers there (no such socket file)"


@pytest.mark.integration
def test_preflight_names_a_redis_url_or_password_redis_refuses(
    standin: StandinServer, redis_url: str
) -> None:
    url = "redis://127.0.0.1/0?socket_timeout=abc"
    message, _ = refused(Settings(api_url=standin.url, redis_url=url))
    assert message == (
        f"REDIS_URL='{url}': redis-py refuses it (Invalid value for 'socket_timeout' in "
        "connection URL.)"
    )

    wrong = with_password(redis_url, "hunter2")
    message, _ = refused(Settings(api_url=standin.url, redis_url=wrong))
    assert message.startswith(f"REDIS_URL='{preflight.safe_url(wrong)}': Redis refused the ")
    assert "hunter2" not in message

    not_redis = f"redis://127.0.0.1:{standin.url.rpartition(':')[2]}/0"  # an HTTP server
    message, _ = refused(Settings(api_url=standin.url, redis_url=not_redis))
    assert message.startswith(f"REDIS_URL='{not_redis}': what answers there is not Redis (")


@pytest.mark.integration
@pytest.mark.slow
def test_preflight_names_an_unreachable_github_within_seconds(
    redis_url: str, dead_port: int
) -> None:
    dead = f"http://127.0.0.1:{dead_port}"
    message, seconds = refused(Settings(api_url=dead, redis_url=redis_url))
    assert message == f"GITHUB_API_URL='{dead}': nothing answers there (connection refused)"
    assert seconds < 5


@pytest.mark.integration
@pytest.mark.slow
def test_preflight_names_a_refused_credential_after_one_request(
    replay: Replay, redis_url: str
) -> None:
    replay.queue(BAD_CREDENTIALS)
    message, _ = refused(Settings(api_url=replay.url, token=TOKEN, redis_url=redis_url))
    assert message == "GITHUB_TOKEN: GitHub refused the token (401 Bad credentials)"
    assert [seen.path for seen in replay.seen] == ["/rate_limit"]

    basic = f"http://octo:hunter2@{replay.url.split('://')[1]}"
    replay.queue(BAD_CREDENTIALS)
    message, _ = refused(Settings(api_url=basic, redis_url=redis_url))
    assert message == (
        "GITHUB_API_URL: GitHub refused the user and password in the URL (401 Bad credentials)"
    )
    assert replay.seen[-1].headers["authorization"].startswith("Basic ")

    replay.queue(Reply(401, {"message": "Requires authentication"}))
    message, _ = refused(Settings(api_url=replay.url, redis_url=redis_url))
    assert message == (
        f"GITHUB_API_URL='{replay.url}': the API refuses anonymous requests "
        "(401 Requires authentication); set GITHUB_TOKEN"
    )


@pytest.mark.integration
@pytest.mark.slow
def test_preflight_accepts_an_enterprise_server_without_rate_limits(
    replay: Replay, redis_url: str
) -> None:
    replay.queue(Reply(404, {"message": "Rate limiting is not enabled."}))
    preflight.check(Settings(api_url=f"{replay.url}/api/v3", token=TOKEN, redis_url=redis_url))
    assert [seen.path for seen in replay.seen] == ["/api/v3/rate_limit"]


@pytest.mark.integration
def test_preflight_refuses_anonymous_graphql_on_github_without_a_request(redis_url: str) -> None:
    message, _ = refused(Settings(detail_mode="graphql", redis_url=redis_url))
    assert message.startswith("detail_mode='graphql' needs a token") and "GITHUB_TOKEN" in message


@pytest.mark.unit
def test_the_banner_says_which_credential_without_showing_it() -> None:
    assert preflight.github_target("https://octo:hunter2@ghe.example/api/v3", None) == (
        "https://ghe.example/api/v3, with the user and password in GITHUB_API_URL"
    )
    assert preflight.github_target("https://api.github.com", TOKEN) == (
        "https://api.github.com, with GITHUB_TOKEN"
    )
    assert preflight.github_target("http://127.0.0.1:1", None) == "http://127.0.0.1:1, anonymously"


# --- in a run ----------------------------------------------------------------------------------


Resources = Callable[[StandinServer, Replay, str], dict[str, Any]]
CONFIG_ERRORS: dict[str, tuple[Resources, str]] = {
    "anonymous GraphQL on GitHub": (
        lambda standin, _, redis_url: {
            "github": GitHubResource(
                api_url=standin.url,
                detail_mode="graphql",
                graphql_url="https://api.github.com/graphql",
            ),
            "redis": RedisResource(url=redis_url),
        },
        "detail_mode='graphql' needs a token: GitHub's GraphQL API (https://api.github.com/graphql)"
        " answers anonymous requests 401. Set GITHUB_TOKEN, or use detail_mode='rest' "
        "(GH_ASSETS_DETAIL_MODE=rest).",
    ),
    "GitHub URL not http": (
        lambda _, __, redis_url: {
            "github": GitHubResource(api_url="not-a-url"),
            "redis": RedisResource(url=redis_url),
        },
        "GITHUB_API_URL='not-a-url': expected an http:// or https:// URL",
    ),
    "token refused": (
        lambda _, replay, redis_url: {
            "github": GitHubResource(api_url=replay.url, token=TOKEN),
            "redis": RedisResource(url=redis_url),
        },
        f"GITHUB_TOKEN: GitHub refused the token (401 Bad credentials); page {FIRST} was not "
        "written",
    ),
    "Redis URL redis-py refuses": (
        lambda standin, _, __: {
            "github": GitHubResource(api_url=standin.url),
            "redis": RedisResource(url="http://x"),
        },
        "REDIS_URL='http://x': redis-py refuses it (Redis URL must specify one of the following "
        "schemes (redis://, rediss://, unix://))",
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_a_configuration_error_fails_the_page_once_in_one_line(
    case: str, standin: StandinServer, replay: Replay, redis_url: str
) -> None:
    make_resources, expected = CONFIG_ERRORS[case]
    replay.route = lambda path: BAD_CREDENTIALS
    result = run_page(make_resources(standin, replay, redis_url), PATIENT_PAGES)
    assert not result.success
    assert attempts(result) == 1  # the RetryPolicy allows 3
    assert failure_line(result) == expected
    assert TOKEN not in str(result.all_events)


@pytest.mark.integration
def test_a_redis_password_redis_refuses_fails_the_page_once(standin, redis_url: str) -> None:
    wrong = with_password(redis_url, "hunter2")
    resources = {"github": GitHubResource(api_url=standin.url), "redis": RedisResource(url=wrong)}
    result = run_page(resources, PATIENT_PAGES)
    assert attempts(result) == 1
    line = failure_line(result)
    assert line.startswith(f"REDIS_URL='{preflight.safe_url(wrong)}': Redis refused the ")
    assert "hunter2" not in line


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's RetryPolicy (10 s, plus or minus 10 s of jitter) with its jitter at -10 s."""
    monkeypatch.setattr("dagster._core.definitions.policy.random", lambda: 0.0)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("no_retry_delay")
@pytest.mark.parametrize("down", ["redis", "github"])
def test_an_unreachable_service_is_retried_and_named_in_one_line(
    down: str, standin: StandinServer, redis_url: str, dead_port: int
) -> None:
    dead = f"127.0.0.1:{dead_port}"
    resources = {
        "github": GitHubResource(api_url=standin.url, max_retries=0),
        "redis": RedisResource(url=redis_url),
    }
    if down == "redis":
        resources["redis"] = RedisResource(url=f"redis://{dead}/0")
        expected = f"REDIS_URL='redis://{dead}/0': nothing answers there (connection refused)"
    else:
        resources["github"] = GitHubResource(api_url=f"http://{dead}", max_retries=0)
        expected = (
            f"GITHUB_API_URL='http://{dead}': nothing answers there (connection refused); "
            f"page {FIRST} was not written"
        )
    result = run_page(resources, build_github_users(Settings(page_retries=1)))
    assert not result.success
    assert attempts(result) == 2  # transient: the RetryPolicy ran it again
    assert failure_line(result) == expected


# --- a changed page width ----------------------------------------------------------------------

OLD_WIDTH = default_page_keys(Settings())
NEW_WIDTH = default_page_keys(Settings(page_size=100_000))
OVERLAP = (
    "GH_ASSETS_PAGE_SIZE=100000 gives page 0000000001-0000100000, which overlaps 10 registered "
    "pages of another width (0000000001-0000000100 …); keep GH_ASSETS_PAGE_SIZE=100, or forget "
    "the old pages first: gh-assets forget-pages --width 100"
)


def registered(instance: dg.DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(github_pages.name))


@pytest.mark.unit
def test_pages_of_another_width_are_refused_with_the_way_out() -> None:
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, OLD_WIDTH)
        with pytest.raises(PageOverlapError) as raised:
            add_missing_pages(instance, NEW_WIDTH)
        assert str(raised.value) == OVERLAP and isinstance(raised.value, SettingsError)
        assert registered(instance) == OLD_WIDTH  # not even the pages that do not overlap
        beyond = ["0000001051-0000001150", "0000001001-0000001100"]
        with pytest.raises(PageOverlapError, match=f"pages {beyond[1]} and {beyond[0]} overlap"):
            add_missing_pages(instance, beyond)
        assert add_missing_pages(instance, OLD_WIDTH) == []  # the same pages again: nothing new


@pytest.mark.integration
@pytest.mark.slow
def test_the_pages_sensor_warns_and_adds_no_overlapping_page(
    standin: StandinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(page_size=100_000, frontier_interval=999_999)
    (sensor,) = [s for s in crawl_sensors(settings) if s.name == "github_pages_sensor"]
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, OLD_WIDTH)
        with dg.build_sensor_context(
            instance=instance, resources={"github": GitHubResource(api_url=standin.url)}
        ) as context:
            result = sensor(context)
    (added,) = result.dynamic_partitions_requests
    assert added.partition_keys == NEW_WIDTH[1:]  # page 0 overlaps the registered pages
    logged = capsys.readouterr().err.splitlines()
    assert [line.partition(" - WARNING - ")[2] for line in logged if " - WARNING - " in line] == [
        f"{OVERLAP} (1 of the configured pages left out)"
    ]


@pytest.mark.integration
@pytest.mark.slow
def test_after_forgetting_the_old_pages_the_new_width_counts_each_user_once(
    standin: StandinServer, dataset: Dataset, redis_url: str, store: RedisStore, tmp_path: Path
) -> None:
    resources = {
        "github": GitHubResource(api_url=standin.url),
        "redis": RedisResource(url=redis_url, key_prefix=store.prefix),
        **storage_resources(str(tmp_path)),
    }
    old = [PageWindow.number(k, 100).key for k in range(3)]
    wide = PageWindow.number(0, 200).key  # the new crawl holds IDs 1-200; the old one held 1-300
    users = len(dataset.users_between(1, 200))
    pages = build_github_users(Settings(page_retries=0))
    with dg.instance_for_test() as instance:

        def crawl(key: str) -> dg.ExecuteInProcessResult:
            return dg.materialize(
                [pages], partition_key=key, instance=instance, resources=resources
            )

        add_missing_pages(instance, old)
        for key in old:
            crawl(key)
        store.defer_page(old[2], datetime.now(UTC) + timedelta(hours=1))
        with pytest.raises(PageOverlapError, match="forget-pages --width 100"):
            add_missing_pages(instance, [wide])  # overlaps 0000000001-0000000100 and 101-200

        dropped = forget_pages(
            instance, store, pages_of_width(instance, 100), keep=[PageWindow.from_key(wide)]
        )
        assert dropped == len(dataset.users_between(201, 300))  # no page would hold them
        # Held by no page now: the users the new page will claim, not those just deleted (every
        # later write of the block would read them).
        kept = {str(u.id).encode() for u in dataset.users_between(1, 200)}
        assert store.client.smembers(store.unpaged_key(0)) == kept
        orphan = dataset.users_between(201, 300)[0]
        assert store.user_id_for_login(orphan.login) is None  # its login entry went with it
        assert registered(instance) == []
        assert [store.page_meta(key) for key in old] == [{}, {}, {}]
        assert [store.page_members(key) for key in old] == [set(), set(), set()]
        assert store.client.exists(*(k for key in old for k in store.aggregate_keys(key))) == 0
        assert store.pages_fetched_at() == {} and store.deferred_pages() == {}
        assert store.user_count() == users  # the hashes the new page holds stay, ETags and all

        add_missing_pages(instance, [wide])
        meta = crawl(wide).asset_materializations_for_node("github_users")[0].metadata
        assert (meta["users_written"].value, meta["not_modified"].value) == (users, users)
        assert meta["share_not_modified"].value == 1.0
        analysis = dg.materialize(
            [pages, *ANALYSIS], selection=[github_users_frame, github_user_summary],
            instance=instance, resources=resources,
        )  # fmt: skip
    frame = analysis.asset_materializations_for_node("github_users_frame")[0].metadata
    assert frame["dagster/row_count"].value == users  # once, not twice
    summary = analysis.asset_materializations_for_node("github_user_summary")[0].metadata
    assert summary["share_not_modified"].value == 1.0  # every user the one page holds: a 304
    assert summary["accounts"].value == users  # the old pages' aggregates went with them
    checks = {e.check_name: e.passed for e in analysis.get_asset_check_evaluations()}
    assert checks["frame_rows_match_pages"] is True
