"""The code location as a ``dg`` project: ``gh_assets/defs/`` declares the objects by concern,
``build_defs`` loads them for given settings, and ``dg check defs`` loads them as Dagster does."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import dagster as dg
import pytest

from gh_assets.definitions import build_defs
from gh_assets.settings import Settings, SettingsError
from gh_assets_devtools.deployment import clean_environment

from .conftest import REPO

BIN = Path(sys.executable).parent


@pytest.mark.unit
def test_the_defs_folder_builds_every_object_for_the_settings_given() -> None:
    defs = build_defs(Settings(page_retries=3, pages_per_run=4, sensor_interval=7))
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == {
        "github_users",
        "github_users_frame",
        "github_user_summary",
    }
    # A job a defs module imports is found there too: the same object, counted once.
    assert {job.name for job in defs.jobs} == {"crawl_github_users", "refresh_user_summary"}
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


@pytest.mark.integration
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


@pytest.mark.unit
def test_settings_are_read_when_the_location_loads_and_given_ones_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GH_ASSETS_PAGE_SIZE", "abc")
    with pytest.raises(SettingsError) as raised:
        build_defs()
    assert str(raised.value) == "GH_ASSETS_PAGE_SIZE='abc': expected a whole number >= 1"
    given = build_defs(Settings(page_retries=1))  # the environment is not read at all
    assert given.resolve_assets_def("github_users").op.retry_policy.max_retries == 1


@pytest.fixture(scope="module")
def runtime_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root project's wheel, what `pip install .` (and the image) installs: built from the
    sdist, as pip does, so no stale build/ folder leaks in."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [str(BIN / "uv"), "build", "--out-dir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300, start_new_session=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("gh_assets-*.whl")
    return wheel


@pytest.mark.integration
@pytest.mark.slow
def test_an_installed_package_loads_its_definitions_without_the_repository(
    runtime_wheel: Path, tmp_path: Path
) -> None:
    """The wheel installed outside a checkout, as on a worker host, has no pyproject.toml above
    it: its own dg.toml names the project."""
    site = tmp_path / "site"
    zipfile.ZipFile(runtime_wheel).extractall(site)
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_INSTALLED],
        cwd=site,
        env=clean_environment(PYTHONPATH=site),
        capture_output=True, text=True, timeout=300, start_new_session=True,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == [
        str(site / "gh_assets" / "definitions.py"),
        "github_user_summary",
        "github_users",
        "github_users_frame",
    ]
    shipped = tomllib.loads((REPO / "gh_assets" / "dg.toml").read_text())
    checkout = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]
    assert shipped["directory_type"] == checkout["directory_type"]
    assert shipped["project"] == checkout["project"]


LOAD_INSTALLED = """
import gh_assets.definitions as d
print(d.__file__)
print(*sorted(k.to_user_string() for k in d.defs().resolve_all_asset_keys()))
"""


# The local tooling by module: the devtools package, and the stand-in and harnesses by name.
TOOLING_PARTS = {"gh_assets_devtools", "local", "standin"}
TOOLING_MODULES = {
    "commands.py", "dagster_graphql.py", "deployment.py", "postgres.py", "redis_cluster.py",
    "run_failures.py", "services.py", "shared_redis.py", "topology.py", "topology_probes.py",
}  # fmt: skip
# The installed runtime on the locked dependencies alone: no site (.pth) processing, so neither
# editable install of this checkout (gh_assets, gh_assets_devtools) is on the path.
IMPORT_RUNTIME_ONLY = """
import importlib.util, sys
import gh_assets.definitions
print(gh_assets.definitions.__file__)
print(importlib.util.find_spec("gh_assets_devtools"))
sys.argv = ["gh-assets", "demo", "--pages", "0000000001-0000000100"]
from gh_assets.cli import main
sys.exit(main())
"""


@pytest.mark.integration
@pytest.mark.slow
def test_the_runtime_wheel_carries_no_local_tooling(runtime_wheel: Path, tmp_path: Path) -> None:
    """`pip install .` (what the image installs) carries only what production runs: the stand-in,
    the harnesses and the local commands are the devtools' (devtools/), which the installed
    runtime cannot import; `gh-assets demo` there says how to get them, in one line."""
    wheel = zipfile.ZipFile(runtime_wheel)
    names = wheel.namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"gh_assets"}
    tooling = [
        name
        for name in names
        if TOOLING_PARTS & set(name.split("/")) or name.rsplit("/", 1)[-1] in TOOLING_MODULES
    ]
    assert tooling == []
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert "gh-assets = gh_assets.cli:main" in wheel.read(entry_points).decode().splitlines()
    site = tmp_path / "site"
    wheel.extractall(site)
    locked = Path(sysconfig.get_paths()["purelib"])  # the lock's packages, this checkout's not
    run = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_RUNTIME_ONLY],
        cwd=tmp_path,
        env=clean_environment(PYTHONPATH=f"{site}{os.pathsep}{locked}"),
        capture_output=True, text=True, timeout=300, start_new_session=True,
    )  # fmt: skip
    assert run.stdout.split() == [str(site / "gh_assets" / "definitions.py"), "None"], run.stderr
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "gh-assets: `gh-assets demo` needs the local tooling (gh-assets-devtools), which is not "
        "installed: `make demo` or `make dev` in a checkout installs it (or `pip install "
        "./devtools`)"
    ]
