"""``python -m bench --size tiny``: every benchmark runs and reports sane values.

No timing is asserted: the figures are for ``make bench`` on a quiet machine. What is asserted
is that each benchmark produced its figures, that they are plausible (positive rates, about one
API request per user in REST mode, compact hashes), and that the bench found nothing wrong (it
checks itself that both crawl designs stored exactly the stand-in's users, and exits non-zero
otherwise).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gh_assets_devtools.deployment import clean_environment

from .conftest import REPO

pytestmark = pytest.mark.e2e
BENCHMARKS = {
    "crawl",
    "writes",
    "frame",
    "memory",
    "cluster",
    "orchestration",
    "limits",
    "economy",
    "at_scale",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--runs", "1", "--json", str(out)],
        cwd=REPO,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=330,  # at_scale's tiny run takes about 45 s of it
        check=False,
    )
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    assert "gh_assets bench" in done.stdout and "median" in done.stdout  # the table was printed
    return json.loads(out.read_text())


def median(results: dict, benchmark: str, key: str) -> float:
    figures = results["benchmarks"][benchmark]["figures"]
    assert key in figures, f"{benchmark}: no figure {key!r} (has {sorted(figures)})"
    figure = figures[key]
    assert figure["n"] == len(figure["runs"]) >= 1
    assert figure["min"] <= figure["median"] <= figure["max"]
    return figure["median"]


def test_every_benchmark_reported(results: dict) -> None:
    benchmarks = results["benchmarks"]
    assert set(benchmarks) == BENCHMARKS
    for name, section in benchmarks.items():
        assert "error" not in section, f"{name}: {section.get('error')}"
        expected = "skipped" if name == "orchestration" else "ok"  # a deployment is too slow
        assert section["status"] == expected, name
    meta = results["meta"]
    assert meta["size"] == "tiny" and meta["runs"] == 1
    assert meta["machine"]["cores"] >= 1 and meta["machine"]["ram_gib"] > 0
    assert meta["redis_server"]["redis_version"]
    assert {"dagster", "redis", "pandas"} <= set(meta["versions"])
    assert {row["status"] for row in results["targets"]} <= {"PASS", "MISS", "n/a"}


def test_crawl_figures(results: dict) -> None:
    section = results["benchmarks"]["crawl"]
    assert section["params"]["users"] > 0
    assert median(results, "crawl", "rest.users_per_s") > 0
    assert median(results, "crawl", "original.users_per_s") > 0
    assert 1.0 <= median(results, "crawl", "rest.requests_per_user") <= 1.1
    assert 1.0 <= median(results, "crawl", "original.requests_per_user") <= 1.1
    # Nothing changed between the crawl and the re-crawl: every detail answer is a 304.
    assert median(results, "crawl", "recrawl.not_modified_share") == 100
    assert 0 < median(results, "crawl", "recrawl.charged_per_user") < 0.5
    assert median(results, "crawl", "rest_vs_original") > 0
    assert median(results, "crawl", "wide.users_per_s") > 0
    assert median(results, "crawl", "ceiling") > 0
    if "graphql" in section["params"]["project_detail_modes"]:
        assert 0 < median(results, "crawl", "graphql.requests_per_user") < 1


def test_write_figures(results: dict) -> None:
    assert median(results, "writes", "project.users_per_s") > 0
    assert median(results, "writes", "original.users_per_s") > 0
    assert median(results, "writes", "project.script_us") > 0


def test_frame_figures(results: dict) -> None:
    params = results["benchmarks"]["frame"]["params"]
    for n in params["project_sizes"]:
        assert median(results, "frame", f"project.{n}.seconds") > 0
        assert median(results, "frame", f"project.{n}.frame_mb") > 0
        assert median(results, "frame", f"project.{n}.traced_peak_mb") > 0
        assert median(results, "frame", f"project.{n}.rss_peak_mb") >= 0
    for n in params["original_sizes"]:
        assert median(results, "frame", f"original.{n}.seconds") > 0
    assert median(results, "frame", f"speedup.{params['compared_at']}") > 0


def test_memory_figures(results: dict) -> None:
    assert 100 < median(results, "memory", "hash_bytes") < 1000
    assert median(results, "memory", "used_per_user") >= median(results, "memory", "hash_bytes")
    assert median(results, "memory", "listpack_share") == 100
    assert median(results, "memory", "github_gb") > 0


def test_cluster_figures(results: dict) -> None:
    section = results["benchmarks"]["cluster"]
    params = section["params"]
    assert params["users"] == 20_000 and params["pages"] == 8 and params["primaries"] == [1, 2, 3]
    assert median(results, "cluster", "writes.single.users_per_s") > 0
    for primaries in params["primaries"]:
        assert median(results, "cluster", f"writes.cluster{primaries}.users_per_s") > 0
        assert median(results, "cluster", f"reads.cluster{primaries}.users_per_s") > 0
        assert median(results, "cluster", f"reads.cluster{primaries}_vs_single") > 0
    assert median(results, "cluster", "reads.single.users_per_s") > 0
    # 8 blocks of 2,500 IDs over 3 primaries: spread as their slots fall, every user counted.
    assert median(results, "cluster", "spread.primaries_with_users") >= 2
    fewest = median(results, "cluster", "spread.blocks_fewest")
    assert 0 <= fewest <= median(results, "cluster", "spread.blocks_most") <= 8 - fewest
    assert 100 / 3 <= median(results, "cluster", "spread.users_most_share") < 100
    for spread in section["details"]["spread"].values():
        assert sum(node["users"] for node in spread) == params["users"]
        assert sum(node["blocks"] for node in spread) == params["blocks"] == 8
        assert all(node["keys"] >= node["users"] for node in spread)  # hashes, buckets, indexes
    # The merged summary: identical to the frame's (the bench fails otherwise).
    assert median(results, "cluster", "summary.identical") == 1
    merged = median(results, "cluster", "summary.merged_s")
    assert merged > 0 and median(results, "cluster", "summary.read_aggregates_s") > 0
    assert median(results, "cluster", "summary.frame_s") > 0
    assert median(results, "cluster", "summary.end_to_end_s") > median(
        results, "cluster", "summary.frame_s"
    )
    assert median(results, "cluster", "summary.speedup") > 0
    assert median(results, "cluster", "summary.speedup_end_to_end") > 0
    assert median(results, "cluster", "summary.cluster_merged_s") > 0
    # Reuse itself is counted in test_stored_aggregates (pages read); one tiny sample each is too
    # noisy to order the first summary and the next.
    assert median(results, "cluster", "summary.unchanged_s") > 0
    assert median(results, "cluster", "summary.one_page_s") > 0
    assert any(note.startswith("This machine has") for note in section["notes"])


def test_limit_figures(results: dict) -> None:
    assert median(results, "limits", "standin.requests_per_s") > 0
    figures = results["benchmarks"]["limits"]["figures"]
    if "redis.hset.c1" in figures:
        assert median(results, "limits", "redis.hset.c1") > 0
        assert median(results, "limits", "redis.hgetall.c50") > 0
    else:
        assert any("redis-benchmark" in note for note in results["benchmarks"]["limits"]["notes"])


def test_economy_figures(results: dict) -> None:
    for key in ("acquire.p50_ms", "acquire.p99_ms", "recrawl.requests_per_minute"):
        assert median(results, "economy", key) > 0
    assert 0 < median(results, "economy", "recrawl.rate_share") <= 101
    for key in ("secondary_refusals", "primary_refusals"):  # reported, not asserted (timing)
        assert median(results, "economy", key) >= 0
    # One hour's budget buys more users per request in GraphQL mode, and far more in a re-crawl.
    first = median(results, "economy", "rest.users_per_hour")
    assert 0 < first < median(results, "economy", "graphql.users_per_hour")
    assert first < median(results, "economy", "recrawl.users_per_hour")
    assert 1.0 <= median(results, "economy", "rest.requests_per_user") <= 1.2


def test_at_scale_figures(results: dict) -> None:
    section = results["benchmarks"]["at_scale"]
    pages = section["params"]["pages"]
    assert pages == 2_000 and section["params"]["pages_per_run"] == 25
    assert median(results, "at_scale", "register.seconds") > 0
    assert median(results, "at_scale", "read_keys.seconds") > 0
    for sensor in ("github_pages_sensor", "stale_pages_sensor", "refresh_analysis_sensor"):
        assert median(results, "at_scale", f"tick.{sensor}") > 0
        assert median(results, "at_scale", f"tick_queued.{sensor}") > 0
    assert median(results, "at_scale", "status.seconds") > 0
    assert median(results, "at_scale", "status_queued.seconds") > 0
    # Both backfills queued runs (the daemon got seconds, not the whole backfill, at this size)
    # and nothing else: every run created was queued, none launched.
    for name in ("backfill", "subset"):
        found = section["details"][name]
        assert 2 <= found["runs_created"] <= found["runs_needed"] == pages // 25
        assert found["runs_queued"] >= found["runs_created"] - 1
    assert median(results, "at_scale", "backfill.run_seconds") > 0
    assert median(results, "at_scale", "subset.run_seconds") > 0
    assert median(results, "at_scale", "backfill.seconds") > 0
    assert any("Whole GitHub" in note for note in section["notes"])
