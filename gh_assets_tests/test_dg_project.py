"""The code location as a ``dg`` project: ``gh_assets/defs/`` declares the objects by concern,
``build_defs`` loads them for given settings, and ``dg check defs`` loads them as Dagster does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from gh_assets.definitions import build_defs
from gh_assets.local.deployment import clean_environment
from gh_assets.settings import Settings, SettingsError

from .conftest import REPO

BIN = Path(sys.executable).parent


def test_the_defs_folder_builds_every_object_for_the_settings_given() -> None:
    defs = build_defs(Settings(page_retries=3, pages_per_run=4, sensor_interval=7))
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == {
        "github_users",
        "github_users_frame",
        "github_user_summary",
    }
    assert sorted(job.name for job in defs.jobs) == ["crawl_github_users", "refresh_user_summary"]
    assert sorted(s.name for s in defs.schedules) == [
        "daily_summary_schedule",
        "weekly_recrawl_schedule",
    ]
    pages = defs.resolve_assets_def("github_users")
    assert pages.op.retry_policy.max_retries == 3
    assert pages.backfill_policy.max_partitions_per_run == 4
    assert {s.name: s.minimum_interval_seconds for s in defs.sensors} == {
        "github_pages_sensor": 7,
        "stale_pages_sensor": 7,
        "refresh_analysis_sensor": 7,
    }
    # The GitHub resource budgets in the data's Redis, nested and bound by name.
    resources = build_defs(Settings.from_env({"REDIS_URL": "redis://:pw@h:1/0"})).resources
    assert resources["github"].budget_redis.url == dg.EnvVar("REDIS_URL")
    assert resources["redis"].url == dg.EnvVar("REDIS_URL")


def dg_check_defs(**env: object) -> subprocess.CompletedProcess:
    """``dg check defs`` from the repository, on this virtualenv, in its own process group."""
    return subprocess.run(
        [str(BIN / "dg"), "check", "defs"],
        cwd=REPO,
        env=clean_environment(VIRTUAL_ENV=BIN.parent, PATH=f"{BIN}:{os.environ['PATH']}", **env),
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )


@pytest.mark.slow
def test_dg_check_defs_loads_the_project_and_names_a_bad_setting_in_one_line() -> None:
    good = dg_check_defs()
    assert good.returncode == 0, good.stderr
    assert "All definitions loaded successfully." in good.stdout + good.stderr
    bad = dg_check_defs(GH_ASSETS_PAGE_SIZE="abc")
    assert bad.returncode == 1
    named = [line for line in (bad.stdout + bad.stderr).splitlines() if "'abc'" in line]
    assert named == [
        "gh_assets.settings.SettingsError: GH_ASSETS_PAGE_SIZE='abc': expected a whole number >= 1"
    ]


def test_settings_are_read_when_the_location_loads_and_given_ones_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GH_ASSETS_PAGE_SIZE", "abc")
    with pytest.raises(SettingsError) as raised:
        build_defs()
    assert str(raised.value) == "GH_ASSETS_PAGE_SIZE='abc': expected a whole number >= 1"
    given = build_defs(Settings(page_retries=1))  # the environment is not read at all
    assert given.resolve_assets_def("github_users").op.retry_policy.max_retries == 1
