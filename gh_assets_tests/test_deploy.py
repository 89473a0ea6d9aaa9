"""docker-compose.yml and the project's pins agree (no Docker engine runs where the tests do)."""

from __future__ import annotations

import re
import tomllib

import yaml

from .conftest import REPO


def dagster_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        if match := re.fullmatch(r"(dagster[\w-]*)==([\d.]+)", requirement):
            pins[match[1]] = match[2]
    return pins


def test_dagster_packages_ride_one_release_train() -> None:
    pins = dagster_pins()
    assert set(pins) == {"dagster", "dagster-webserver", "dagster-graphql"}
    assert len(set(pins.values())) == 1
    core = pins["dagster"]
    assert core.startswith("1.13.")
    library = "0.29." + core.split(".")[2]
    dockerfile = (REPO / "Dockerfile").read_text()
    libraries = re.findall(r"dagster-[a-z]+==([\d.]+)", dockerfile)
    assert libraries and set(libraries) == {library}


def test_compose_runs_the_code_location_webserver_and_daemon() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "code", "webserver", "daemon"} <= set(services)
    assert "gh_assets.definitions" in services["code"]["command"]
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["grpc_server"]["host"] == "code"
    assert str(location["grpc_server"]["port"]) in services["code"]["command"]
    for name in ("code", "webserver", "daemon"):
        env = services[name]["environment"]
        assert env["REDIS_URL"].endswith("redis://redis:6379/0}")
        assert "DAGSTER_POSTGRES_HOST" in env
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert "postgres" in instance["storage"]
