"""Settings: read once from the environment, checked with one clear line, secrets kept by name."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from gh_assets.definitions import build_defs
from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.settings import Settings, SettingsError

from .conftest import REPO

# Built at run time so no token-shaped literal sits in the repository for scanners to flag.
FAKE_TOKEN = "ghp" + "_NotARealTokenButSecretAnyway123456"


@pytest.mark.unit
def test_unset_variables_mean_the_defaults_and_set_ones_are_parsed() -> None:
    assert Settings.from_env({}) == Settings()
    settings = Settings.from_env(
        {"GH_ASSETS_PAGE_SIZE": "2500", "GH_ASSETS_MAX_RATE_LIMIT_WAIT": "0",
         "GITHUB_API_URL": "https://ghe.example/api/v3/", "GH_ASSETS_DETAIL_MODE": "graphql"}
    )  # fmt: skip
    assert (settings.page_size, settings.max_rate_limit_wait) == (2500, 0)
    assert (settings.api_url, settings.detail_mode) == ("https://ghe.example/api/v3", "graphql")
    budget = Settings.from_env(
        {"GH_ASSETS_REST_POINTS_PER_MINUTE": "0", "GH_ASSETS_MAX_IN_FLIGHT": "20",
         "GITHUB_APP_ID": "77", "GITHUB_APP_PRIVATE_KEY": "/keys/app.pem",
         "GITHUB_APP_INSTALLATION_IDS": "11, 12"}
    )  # fmt: skip
    assert (budget.rest_points_per_minute, budget.max_in_flight) == (0, 20)
    assert (budget.app_id, budget.app_installation_ids) == (77, (11, 12))
    assert Settings.from_env({"GH_ASSETS_FRAME_FROM_REPLICAS": "Yes"}).frame_from_replicas is True
    assert Settings.from_env({"GH_ASSETS_FRAME_FROM_REPLICAS": "0"}).frame_from_replicas is False


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GH_ASSETS_PAGE_SIZE", "abc", "GH_ASSETS_PAGE_SIZE='abc': expected a whole number >= 1"),
        (
            "GH_ASSETS_PAGE_SIZE",
            "300",
            "GH_ASSETS_PAGE_SIZE='300': expected a divisor of 100000 (a page lies in one block of "
            "IDs of the Redis key schema), e.g. 100, 200, 500, 1000, 2500, 5000, 10000",
        ),
        ("GH_ASSETS_PAGES", "0", "GH_ASSETS_PAGES='0': expected a whole number >= 1"),
        ("GH_ASSETS_MAX_RETRIES", "-1", "GH_ASSETS_MAX_RETRIES='-1': expected a whole number >= 0"),
        ("GH_ASSETS_DETAIL_MODE", "soap", "GH_ASSETS_DETAIL_MODE='soap': expected one of rest, "),
        ("GITHUB_API_URL", "not-a-url", "GITHUB_API_URL='not-a-url': expected a https:// or "),
        ("REDIS_URL", "http://x", "REDIS_URL='http://x': expected a redis:// or rediss:// or "),
        ("REDIS_URL", "redis://:hunter2@h:port/0", "REDIS_URL='redis://h:port/0': expected"),
        (
            "GH_ASSETS_BUDGET_REDIS_URL",
            "http://:hunter2@h/0",
            "GH_ASSETS_BUDGET_REDIS_URL='http://h/0': expected a redis:// or rediss:// or ",
        ),
        ("GH_ASSETS_MAX_IN_FLIGHT", "0", "GH_ASSETS_MAX_IN_FLIGHT='0': expected a whole number"),
        ("GITHUB_APP_INSTALLATION_IDS", "1,x", "GITHUB_APP_INSTALLATION_IDS='1,x': expected whole"),
        (
            "GH_ASSETS_FRAME_FROM_REPLICAS",
            "on",
            "GH_ASSETS_FRAME_FROM_REPLICAS='on': expected true",
        ),
        ("GITHUB_APP_ID", "12", "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY go together"),
        ("GITHUB_APP_PRIVATE_KEY", "hunter2", "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY go"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value) and "hunter2" not in str(raised.value)


@pytest.mark.unit
def test_a_password_in_the_api_url_beside_a_token_is_refused() -> None:
    environ = {"GITHUB_API_URL": "https://octo:hunter2@ghe.example/api/v3/"}
    assert Settings.from_env(environ).api_url == "https://octo:hunter2@ghe.example/api/v3"
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ | {"GITHUB_TOKEN": FAKE_TOKEN})
    assert str(raised.value) == (
        "GITHUB_API_URL='https://ghe.example/api/v3' carries a user and password and GITHUB_TOKEN"
        " is set too: which credential would be sent is ambiguous; keep only one of them"
    )
    with pytest.raises(SettingsError):  # built in code, as the tests do, it is refused too
        Settings(api_url="https://octo:hunter2@ghe.example", token=FAKE_TOKEN)


@pytest.mark.unit
def test_secrets_are_bound_by_name_never_by_value() -> None:
    environ = {
        "GITHUB_TOKEN": FAKE_TOKEN,
        "REDIS_URL": "redis://:pw@127.0.0.1:1/0",
        "GITHUB_APP_ID": "77",
        "GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----hunter2",
    }
    settings = Settings.from_env(environ)
    assert FAKE_TOKEN not in repr(settings) and ":pw@" not in repr(settings)
    assert "hunter2" not in repr(settings)
    resources = build_defs(settings).resources
    assert resources["github"].token == dg.EnvVar("GITHUB_TOKEN")
    assert resources["github"].app_private_key == dg.EnvVar("GITHUB_APP_PRIVATE_KEY")
    assert resources["github"].budget_redis.url == dg.EnvVar("REDIS_URL")
    assert resources["redis"].url == dg.EnvVar("REDIS_URL")
    apart = Settings.from_env(environ | {"GH_ASSETS_BUDGET_REDIS_URL": "redis://:pw2@b:6379/1"})
    assert ":pw2@" not in repr(apart)
    bound = build_defs(apart).resources["github"].budget_redis.url
    assert bound == dg.EnvVar("GH_ASSETS_BUDGET_REDIS_URL")
    assert build_defs(Settings()).resources["github"].token is None  # anonymous
    assert resources["github"].api_url == "https://api.github.com"  # no secret in it: shown

    basic = Settings.from_env({"GITHUB_API_URL": "https://octo:hunter2@ghe.example/api/v3"})
    assert build_defs(basic).resources["github"].api_url == dg.EnvVar("GITHUB_API_URL")
    assert "hunter2" not in repr(basic) and "api_url='https://ghe.example/api/v3'" in repr(basic)


@pytest.mark.unit
def test_settings_reach_the_definitions() -> None:
    defs = build_defs(Settings(page_retries=4, pages_per_run=25, sensor_interval=5))
    users = defs.get_assets_def(USERS_KEY)
    assert users.op.retry_policy.max_retries == 4
    assert users.backfill_policy.max_partitions_per_run == 25
    assert users.op.pool == "github_api"
    sensors = {sensor.name: sensor.minimum_interval_seconds for sensor in defs.sensors}
    assert set(sensors.values()) == {5} and len(sensors) == 3


@pytest.mark.unit
def test_asset_storage_is_a_uri_or_an_absolute_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = Settings.from_env({"GH_ASSETS_ASSET_STORAGE": "shared/assets"})
    assert local.asset_storage == str(tmp_path / "shared" / "assets")  # runs may start elsewhere
    # A URI as given (fsspec's in-memory filesystem: s3:// would need s3fs installed).
    remote = Settings.from_env({"GH_ASSETS_ASSET_STORAGE": "memory://bucket/gh"})
    resources = build_defs(remote).resources
    assert resources["io_manager"].base_path == resources["summary_io_manager"].base_path
    assert resources["io_manager"].base_path == "memory://bucket/gh"
    assert build_defs(Settings()).resources["io_manager"].base_path is None  # the instance's


@pytest.mark.integration
@pytest.mark.slow
def test_the_code_location_loads_with_every_variable_set() -> None:
    validate = validate_location(
        GITHUB_TOKEN=FAKE_TOKEN,
        GH_ASSETS_MAX_CONCURRENCY="4",
        GH_ASSETS_MAX_RETRIES="2",
        GH_ASSETS_MAX_RATE_LIMIT_WAIT="5",
        GH_ASSETS_DETAIL_MODE="graphql",
        GH_ASSETS_KEY_PREFIX="x:",
        REDIS_URL="redis://:pw@127.0.0.1:1/0",
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert FAKE_TOKEN not in validate.stdout + validate.stderr
    assert ":pw@" not in validate.stdout + validate.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_a_bad_variable_stops_the_code_location_with_its_name() -> None:
    validate = validate_location(GH_ASSETS_PAGE_SIZE="abc")
    assert validate.returncode != 0
    assert "GH_ASSETS_PAGE_SIZE='abc': expected a whole number >= 1" in validate.stdout


def validate_location(**env: str) -> subprocess.CompletedProcess:
    """``dagster definitions validate`` on the code location, with ``env`` over this one's."""
    return subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "gh_assets.definitions"],
        cwd=REPO,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=180,
    )
