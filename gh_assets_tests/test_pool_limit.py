"""The github_api pool's limit is written into the instance before any run starts, on one
machine (``gh-assets dev`` / ``demo``) as on many (``deploy/daemon.sh``): a fresh instance ignores
``pools.default_limit`` on its first burst of runs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from gh_assets.assets import GITHUB_POOL
from gh_assets.local import cli
from gh_assets.settings import SettingsError

from .conftest import REPO

LOCAL_CONFIG = REPO / "gh_assets" / "local" / "dagster.yaml"
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
    os.environ.pop(cli.POOL_LIMIT_VARIABLE, None)
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
    assert cli.prepare_instance(home) == default_limit(LOCAL_CONFIG) == 2
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
    with cli.local_environment():
        home = Path(os.environ["DAGSTER_HOME"])
        assert home == tmp_path / "data" / "dagster_home"
        info = pool(home)
        assert info is not None and info.slot_count == info.limit == 2
    assert "Pool github_api: at most 2 page runs at once" in capsys.readouterr().out


def test_the_same_variable_as_the_daemon_overrides_it_and_a_chosen_home_keeps_its_own(
    tmp_path: Path, environment: None
) -> None:
    os.environ[cli.POOL_LIMIT_VARIABLE] = "5"
    assert cli.prepare_instance(tmp_path / "a") == 5
    assert pool(tmp_path / "a").slot_count == 5

    del os.environ[cli.POOL_LIMIT_VARIABLE]
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["concurrency"]["pools"]["default_limit"] = 4
    (chosen / "dagster.yaml").write_text(yaml.safe_dump(config))
    assert cli.prepare_instance(chosen, own_home=False) == 4  # its configuration is kept
    assert pool(chosen).slot_count == 4
    # A later start with another value replaces it: the limit is set on every start.
    os.environ[cli.POOL_LIMIT_VARIABLE] = "1"
    assert cli.prepare_instance(chosen, own_home=False) == 1
    assert pool(chosen).slot_count == 1


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_limit_is_one_line_naming_the_variable(
    tmp_path: Path, environment: None, value: str
) -> None:
    os.environ[cli.POOL_LIMIT_VARIABLE] = value
    with pytest.raises(SettingsError, match=rf"^GH_ASSETS_POOL_LIMIT='{re.escape(value)}': "):
        cli.prepare_instance(tmp_path / "home")


def test_the_daemon_falls_back_to_the_deployment_instance_default() -> None:
    script = (REPO / "deploy" / "daemon.sh").read_text()
    fallback = re.search(r'concurrency set github_api "\$\{GH_ASSETS_POOL_LIMIT:-(\d+)\}"', script)
    assert fallback, script
    assert int(fallback[1]) == default_limit(DEPLOY_CONFIG) == default_limit(LOCAL_CONFIG)
    compose = (REPO / "docker-compose.yml").read_text()
    assert f"GH_ASSETS_POOL_LIMIT: ${{GH_ASSETS_POOL_LIMIT:-{fallback[1]}}}" in compose
