"""The github_api pool's limit is written into the instance before any run starts, on one
machine (``gh-assets dev`` / ``demo``) as on many (``deploy/daemon.sh``): a fresh instance ignores
``pools.default_limit`` on its first burst of runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from gh_assets.defs.crawl.page_asset import GITHUB_POOL
from gh_assets.pool_limit import POOL_LIMIT_VARIABLE
from gh_assets.settings import SettingsError
from gh_assets_devtools import commands

from .conftest import REPO

pytestmark = pytest.mark.e2e

LOCAL_CONFIG = REPO / "devtools" / "gh_assets_devtools" / "dagster.yaml"
DEPLOY_CONFIG = REPO / "deploy" / "dagster.yaml"


def default_limit(config: Path) -> int:
    return yaml.safe_load(config.read_text())["concurrency"]["pools"]["default_limit"]


def pool(home: Path) -> Any:
    """The github_api pool as the instance in ``home`` holds it (None: not there at all)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if GITHUB_POOL not in instance.event_log_storage.get_concurrency_keys():
            return None
        return instance.event_log_storage.get_concurrency_info(GITHUB_POOL)


@pytest.fixture
def environment() -> Iterator[None]:
    """The process environment restored after the test, whatever the command under test set."""
    saved = dict(os.environ)
    os.environ.pop(POOL_LIMIT_VARIABLE, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_a_fresh_instance_has_no_limit_until_the_set_up_writes_it(
    tmp_path: Path, environment: None
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "dagster.yaml").write_text(LOCAL_CONFIG.read_text())
    assert pool(fresh) is None  # default_limit alone writes nothing into the instance

    home = tmp_path / "dagster_home"
    assert commands.prepare_instance(home) == default_limit(LOCAL_CONFIG) == 2
    info = pool(home)
    assert info is not None
    assert (info.slot_count, info.limit, info.using_default_limit) == (2, 2, False)
    assert (home / "dagster.yaml").read_text() == LOCAL_CONFIG.read_text()


def test_the_command_set_up_sets_it_before_anything_runs(
    tmp_path: Path, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gh-assets dev`` / ``demo``'s set-up (``local_environment``: the instance, Redis, the
    stand-in, the checks), without the UI or a run."""
    for name in ("DAGSTER_HOME", "REDIS_URL", "GITHUB_API_URL", "GITHUB_TOKEN"):
        os.environ.pop(name, None)
    os.environ["GH_ASSETS_DATA_DIR"] = str(tmp_path / "data")
    with commands.local_environment():
        home = Path(os.environ["DAGSTER_HOME"])
        assert home == tmp_path / "data" / "dagster_home"
        info = pool(home)
        assert info is not None and info.slot_count == info.limit == 2
    assert "Pool github_api: at most 2 page runs at once" in capsys.readouterr().out


def test_the_same_variable_as_the_daemon_overrides_it_and_a_chosen_home_keeps_its_own(
    tmp_path: Path, environment: None
) -> None:
    os.environ[POOL_LIMIT_VARIABLE] = "5"
    assert commands.prepare_instance(tmp_path / "a") == 5
    assert pool(tmp_path / "a").slot_count == 5

    del os.environ[POOL_LIMIT_VARIABLE]
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["concurrency"]["pools"]["default_limit"] = 4
    (chosen / "dagster.yaml").write_text(yaml.safe_dump(config))
    assert commands.prepare_instance(chosen, own_home=False) == 4  # its configuration is kept
    assert pool(chosen).slot_count == 4
    # A later start with another value replaces it: the limit is set on every start.
    os.environ[POOL_LIMIT_VARIABLE] = "1"
    assert commands.prepare_instance(chosen, own_home=False) == 1
    assert pool(chosen).slot_count == 1


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_limit_is_one_line_naming_the_variable(
    tmp_path: Path, environment: None, value: str
) -> None:
    os.environ[POOL_LIMIT_VARIABLE] = value
    with pytest.raises(SettingsError, match=rf"^GH_ASSETS_POOL_LIMIT='{re.escape(value)}': "):
        commands.prepare_instance(tmp_path / "home")


def test_a_zero_default_limit_is_refused_too(tmp_path: Path, environment: None) -> None:
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["concurrency"]["pools"]["default_limit"] = 0
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SettingsError, match=r"^concurrency.pools.default_limit=0 in the instance"):
        commands.prepare_instance(tmp_path, own_home=False)


def daemon_start(home: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``deploy/daemon.sh`` on the instance in ``home``, with a stand-in ``dagster-daemon`` that
    only says it ran (the real one would not return)."""
    fake = tmp_path / "fake-bin"
    fake.mkdir(exist_ok=True)
    daemon = fake / "dagster-daemon"
    daemon.write_text('#!/bin/sh\necho "dagster-daemon $*"\n')
    daemon.chmod(0o755)
    path = os.pathsep.join([str(fake), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    return subprocess.run(
        ["/bin/sh", str(REPO / "deploy" / "daemon.sh")],
        env={"PATH": path, "HOME": str(tmp_path), "DAGSTER_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_the_daemon_start_follows_the_instance_default_limit_and_the_variable(
    tmp_path: Path,
) -> None:
    """deploy/daemon.sh by the same rule and code as ``gh-assets dev``/``demo``: an edited
    ``pools.default_limit`` takes effect; GH_ASSETS_POOL_LIMIT overrides it; 0 stops it."""
    home = tmp_path / "home"
    home.mkdir()
    # The local instance (SQLite; no PostgreSQL here), with the deployment's limit edited.
    assert default_limit(DEPLOY_CONFIG) == default_limit(LOCAL_CONFIG) == 2
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["concurrency"]["pools"]["default_limit"] = 3
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))

    done = daemon_start(home, tmp_path)
    assert done.returncode == 0, done
    assert "Pool github_api: at most 3 page runs at once" in done.stdout
    assert "dagster-daemon run -w deploy/workspace.yaml" in done.stdout  # then the daemon
    assert pool(home).slot_count == 3

    done = daemon_start(home, tmp_path, GH_ASSETS_POOL_LIMIT="5")
    assert done.returncode == 0, done
    assert pool(home).slot_count == 5

    for bad in ("0", "two"):
        done = daemon_start(home, tmp_path, GH_ASSETS_POOL_LIMIT=bad)
        assert done.returncode == 2, done
        assert done.stderr.strip() == (
            f"gh-assets: GH_ASSETS_POOL_LIMIT='{bad}': expected a whole number >= 1"
        )
        assert "dagster-daemon" not in done.stdout  # the daemon never started
    assert pool(home).slot_count == 5
