"""The search for GitHub's newest user: exact, and about 2·log2(gap/100) + 3 requests."""

from __future__ import annotations

import bisect
import json
import math
import random
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from gh_assets.defs.crawl.sensors import crawl_sensors
from gh_assets.frontier import FrontierError, Newest, Probe, find_newest, newest_user
from gh_assets.github import GitHubClient
from gh_assets.github.models import ListedUser
from gh_assets.partitions import github_pages, pages_up_to
from gh_assets.resources import GitHubResource
from gh_assets.settings import Settings
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.admin import StandinAdmin


def newest_of(dataset: Dataset) -> int:
    """The dataset's true newest ID: the highest one whose account exists (not deleted)."""
    return next(i for i in range(dataset.size, 0, -1) if dataset.user(i) is not None)


def list_requests(standin: StandinServer) -> int:
    return standin.stats()["requests"]["by_route"].get("list", 0)


def bound(gap: int) -> float:
    """The requests the search may make for a gap of ``gap`` IDs: exponential plus binary."""
    return 2 * math.log2(max(gap, 100) / 100) + 3


@pytest.fixture(scope="module")
def big() -> Iterator[StandinServer]:
    with StandinServer(Dataset(size=12_000, seed=11)) as server:
        yield server


@pytest.mark.integration
@pytest.mark.parametrize("gap", [10_000, 10_003, 9_998])
def test_a_newest_user_10000_ids_past_the_frontier_is_found_exactly(
    big: StandinServer, gap: int
) -> None:
    newest = newest_of(big.dataset)
    big.reset_stats()
    with GitHubClient(big.url) as client:
        found = newest_user(client, newest - gap)
    assert found == Newest(newest, list_requests(big))
    assert found.requests <= bound(gap) < 17


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["ids", "users"])
@pytest.mark.parametrize("gap", [0, 1, 99, 100, 101])
def test_small_gaps_in_ids_or_users_give_the_newest_exactly(
    standin: StandinServer, dataset: Dataset, client: GitHubClient, kind: str, gap: int
) -> None:
    newest = newest_of(dataset)
    ids = [u.id for u in dataset.users_between(newest - 500, newest)]
    frontier = newest - gap if kind == "ids" else ids[-gap - 1]  # gap users after the frontier
    found = newest_user(client, frontier)
    assert found == Newest(newest if frontier < newest else None, list_requests(standin))
    assert found.requests <= bound(newest - frontier)


@pytest.mark.integration
def test_a_deleted_newest_user_leaves_the_one_before(
    standin: StandinServer, dataset: Dataset, client: GitHubClient
) -> None:
    newest = newest_of(dataset)
    with StandinAdmin(standin.url) as admin:
        admin.delete_user(newest)
    assert newest_of(dataset) < newest
    assert newest_user(client, newest - 300).id == newest_of(dataset)
    assert newest_user(client, newest_of(dataset)).id is None


def probe_over(ids: list[int]) -> tuple[list[int], Probe]:
    """A fake ``GET /users`` over sorted ``ids``, and the list of the ``since`` it was asked."""
    asked: list[int] = []

    def probe(since: int, limit: int) -> list[ListedUser]:
        asked.append(since)
        start = bisect.bisect_right(ids, since)
        return [ListedUser(i, f"u{i}", "User") for i in ids[start : start + limit]]

    return asked, probe


@pytest.mark.unit
@pytest.mark.parametrize("seed", range(12))
def test_the_search_is_exact_and_logarithmic_over_ids_with_holes(seed: int) -> None:
    rng = random.Random(seed)
    keep = rng.choice([0.02, 0.3, 0.66, 1.0])  # sparse to dense, with a long hole or two
    holes = [(a, a + rng.randrange(1, 5_000)) for a in rng.sample(range(200_000), 2)]
    ids = [
        i
        for i in range(1, 200_001)
        if rng.random() < keep and not any(a <= i <= b for a, b in holes)
    ]
    for since in [0, ids[-1] - 1, ids[-1], ids[-1] + 7, *rng.sample(range(ids[-1]), 8)]:
        asked, probe = probe_over(ids)
        found = find_newest(probe, since)
        assert found == Newest(ids[-1] if since < ids[-1] else None, len(asked))
        assert found.requests <= bound(ids[-1] - since), (since, asked)


@pytest.mark.unit
def test_stop_at_ends_the_search_at_the_first_user_that_far() -> None:
    ids = list(range(1, 1_000_001, 3))
    asked, probe = probe_over(ids)
    found = find_newest(probe, 0, stop_at=2_000)
    assert not found.exact and 2_000 <= found.id <= ids[-1] and found.requests == len(asked) < 6
    assert find_newest(probe, ids[-1] - 30, stop_at=1).exact  # a short page is exact anyway


@pytest.mark.unit
def test_an_answer_that_ignores_since_is_refused_not_looped_on() -> None:
    first_page = [ListedUser(i, f"u{i}", "User") for i in range(1, 101)]
    with pytest.raises(FrontierError, match=r"since=5000 answered user 1 after 5000"):
        find_newest(lambda since, limit: first_page, 5_000)


@pytest.mark.integration
def test_the_sensor_adds_every_page_up_to_the_newest_within_the_cap(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = Dataset(size=5_000, seed=3)
    newest = newest_of(dataset)
    with StandinServer(dataset) as standin, dg.instance_for_test() as instance:

        def tick(cursor: str | None, **settings: int) -> dg.SensorResult:
            (sensor,) = [
                s
                for s in crawl_sensors(Settings(page_size=100, pages=10, **settings))
                if s.name == "github_pages_sensor"
            ]
            github = {"github": GitHubResource(api_url=standin.url)}
            with dg.build_sensor_context(instance=instance, resources=github, cursor=cursor) as cx:
                result = sensor(cx)
            for request in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(github_pages.name, request.partition_keys)
            return result

        first = tick(None, max_pages=30, frontier_interval=0)  # room for 20 grown pages
        grown = pages_up_to(1_000, 3_000, 100, 20)
        assert [k for r in first.dynamic_partitions_requests for k in r.partition_keys][10:] == (
            grown
        )
        capsys.readouterr()
        standin.reset_stats()
        # The cap raised: the grown pages crawled, and every page up to the newest added at once.
        second = tick(first.cursor, frontier_interval=0, recrawl_batch=20)
        assert [r.partition_key for r in second.run_requests] == grown
        (added,) = second.dynamic_partitions_requests
        assert added.partition_keys == pages_up_to(3_000, newest, 100, 1_000)
        requests = list_requests(standin)
        assert f"frontier: newest user ID {newest} after ID 3000, found in {requests} requests" in (
            capsys.readouterr().err
        )
        third = tick(second.cursor, frontier_interval=0, recrawl_batch=100)  # nothing beyond
        assert third.dynamic_partitions_requests == []
        assert list_requests(standin) == requests + 1


@pytest.mark.integration
def test_a_probe_failing_midway_adds_nothing_and_is_tried_next_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(page_size=100, pages=10, frontier_interval=0)
    (sensor,) = [s for s in crawl_sensors(settings) if s.name == "github_pages_sensor"]
    dataset = Dataset(size=5_000, seed=3)
    with StandinServer(dataset, fail_ids=[(2_000, 5_000)]) as standin:
        github = {"github": GitHubResource(api_url=standin.url, max_retries=0)}
        with dg.instance_for_test() as instance:
            with dg.build_sensor_context(instance=instance, resources=github) as context:
                (added,) = sensor(context).dynamic_partitions_requests
            assert len(added.partition_keys) == 10  # the configured pages only
            assert list_requests(standin) > 1  # the search got past its first probe
            warned = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
            assert len(warned) == 1 and "frontier probe failed, trying again next time" in warned[0]

            standin.heal()
            instance.add_dynamic_partitions(github_pages.name, added.partition_keys)
            with dg.build_sensor_context(instance=instance, resources=github) as context:
                (added,) = sensor(context).dynamic_partitions_requests
            assert added.partition_keys == pages_up_to(1_000, newest_of(dataset), 100, 1_000)


@pytest.mark.unit
def test_grown_pages_are_requested_a_batch_at_a_time_while_few_crawls_wait() -> None:
    (sensor,) = [
        s
        for s in crawl_sensors(Settings(page_size=100, pages=1, recrawl_batch=4))
        if s.name == "github_pages_sensor"
    ]
    pending = pages_up_to(100, 1_000, 100, 100)  # 9 pages found by an earlier probe
    cursor = json.dumps({"probed_at": time.time(), "pending": [101, 901, 100]})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(github_pages.name, ["0000000001-0000000100", *pending])

        def tick(cursor: str) -> dg.SensorResult:
            github = {"github": GitHubResource(api_url="http://127.0.0.1:9")}  # never called
            with dg.build_sensor_context(instance=instance, resources=github, cursor=cursor) as cx:
                return sensor(cx)

        first = tick(cursor)
        assert [r.partition_key for r in first.run_requests] == pending[:4]
        for key in pending[:3]:  # three of them are still waiting to start: one more fits
            waiting = dg.DagsterRunStatus.NOT_STARTED
            instance.add_run(dg.DagsterRun(job_name="crawl_job", status=waiting, tags={"p": key}))
        second = tick(first.cursor)
        assert [r.partition_key for r in second.run_requests] == pending[4:5]
        assert json.loads(second.cursor)["pending"] == [601, 901, 100]
