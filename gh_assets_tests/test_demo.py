"""``make demo`` end to end, in a temporary copy of the project, as a newcomer runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gh_assets.partitions import PageWindow
from gh_assets.storage import COUNTERS, RedisStore
from gh_assets_devtools.deployment import clean_environment
from gh_assets_devtools.redis_cluster import redis_cluster
from gh_assets_devtools.standin import Dataset

from .conftest import REPO

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in tracked:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    return copy


def make_demo(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``make demo`` as a newcomer's shell runs it (no settings but ``env``), in this venv."""
    venv = Path(sys.prefix)
    return subprocess.run(
        # -o: use this venv as it is (never re-point its editable install at the copy)
        ["make", "-o", f"{venv}/.installed-runtime", "demo", f"VENV={venv}", *args],
        cwd=project,
        env=clean_environment(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_make_demo_offline_matches_the_stand_in_and_recovers_a_failed_page(project: Path) -> None:
    pages = [PageWindow.number(k, 100) for k in range(10)]
    broken = pages[4]
    dataset = Dataset(size=1000, seed=0)  # what the demo's stand-in serves by default
    victim = dataset.users_between(broken.first_id, broken.last_id)[0].id

    failed = make_demo(
        project,
        GH_ASSETS_STANDIN_ARGS=f"--fail-ids {victim}-{victim}",
        GH_ASSETS_MAX_RETRIES="1",  # the fault is permanent: fail the page soon
        GH_ASSETS_PAGE_RETRIES="0",
    )
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert f"[5/10] page {broken.key}: FAILED" in failed.stdout
    assert "1 of 10 pages failed" in failed.stdout
    assert f"make demo PAGES={broken.key}" in failed.stdout
    assert failed.stdout.count(" users, 0 gone,") == 9

    rerun = make_demo(project, f"PAGES={broken.key}")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "[1/1] page" in rerun.stdout
    assert "offline stand-in" in rerun.stdout

    full = make_demo(project)
    assert full.returncode == 0, full.stdout + full.stderr
    assert full.stdout.count(" users, 0 gone,") == 10
    assert "Top 10 by followers" in full.stdout

    users = dataset.users_between(1, 1000)
    storage = project / ".data" / "dagster_home" / "storage"
    counters = pd.read_parquet(storage / "github_user_summary" / "counters.parquet")
    for name in COUNTERS:
        values = np.array([getattr(u, name) for u in users])
        row = counters.loc[name]
        assert (row["count"], row["sum"], row["max"]) == (len(users), values.sum(), values.max())
        assert row["mean"] == pytest.approx(values.mean())
        assert row["p99"] == pytest.approx(np.percentile(values, 99))
    assert f"Counters over {len(users):,} accounts" in full.stdout
    assert (project / ".data" / "redis" / "appendonlydir").is_dir()  # the data persists


def test_make_demo_with_redis_url_naming_a_cluster_node(project: Path, tmp_path: Path) -> None:
    with redis_cluster(tmp_path / "cluster") as cluster:
        done = make_demo(project, REDIS_URL=cluster.nodes[2].url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count(" users, 0 gone,") == 10
        users = Dataset(size=1000, seed=0).users_between(1, 1000)
        assert f"Counters over {len(users):,} accounts" in done.stdout
        store = RedisStore.from_url(cluster.nodes[0].url)
        try:
            assert store.cluster and store.user_count() == store.page_user_total() == len(users)
            assert {int(i) for i in store.ids_between(1, 1000)} == {u.id for u in users}
        finally:
            store.close()
    assert not (project / ".data" / "redis").exists()  # the project's own Redis never started
