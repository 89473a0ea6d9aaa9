"""docker-compose.yml, deploy/ and the project's pins agree (no Docker engine runs where the tests
do: gh_assets_tests/test_topology.py starts the same topology with native processes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

from gh_assets.worker import REQUIRED, celery_config, missing_settings

from .conftest import REPO

SERVICES = {"postgres", "redis", "broker", "standin", "code", "webserver", "daemon", "worker"}


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        if match := re.fullmatch(r"(dagster[\w-]*)==([\d.]+)", requirement):
            found[match[1]] = match[2]
    return found


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_dagster_packages_ride_one_release_train() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = pins(project["dependencies"])
    assert set(core) == {"dagster", "dagster-webserver", "dagster-graphql"}
    assert len(set(core.values())) == 1
    version = core["dagster"]
    assert version.startswith("1.13.")
    library = "0.29." + version.split(".")[2]
    for extra in ("scale", "test"):
        libraries = pins(project["optional-dependencies"][extra])
        assert libraries == {"dagster-celery": library, "dagster-postgres": library}, extra
    assert '".[scale]"' in (REPO / "Dockerfile").read_text()


def test_compose_runs_the_scale_out_topology() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    assert "gh_assets.definitions" in services["code"]["command"]
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["grpc_server"]["host"] == "code"
    assert str(location["grpc_server"]["port"]) in services["code"]["command"]
    for name in ("code", "webserver", "daemon", "worker"):
        service = services[name]
        env = service["environment"]
        assert env["REDIS_URL"].endswith("redis://redis:6379/0}")
        assert env["CELERY_BROKER_URL"].endswith("redis://broker:6379/0}")
        assert {"DAGSTER_POSTGRES_HOST", "DAGSTER_HOME", *REQUIRED} <= set(env)
        # The asset storage every host reaches: one volume, mounted where the setting points.
        assert f"assets:{env['GH_ASSETS_ASSET_STORAGE']}" in service["volumes"], name
        assert "healthcheck" in service, name
    assert "deploy/daemon.sh" in services["daemon"]["command"]
    assert services["worker"]["command"][:3] == ["python", "-m", "gh_assets.worker"]
    assert "ports" not in services["worker"]  # scalable: --scale worker=N
    for name in ("postgres", "redis", "broker"):
        assert "healthcheck" in services[name], name


def test_the_daemon_sets_the_pool_limit_at_start() -> None:
    script = (REPO / "deploy" / "daemon.sh").read_text()
    assert 'dagster instance concurrency set github_api "${GH_ASSETS_POOL_LIMIT' in script
    assert script.index("concurrency set") < script.index("exec dagster-daemon run")


def test_the_instance_runs_on_postgres_and_celery() -> None:
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    launcher = instance["run_launcher"]
    assert (launcher["module"], launcher["class"]) == (
        "dagster_celery.launcher",
        "CeleryRunLauncher",
    )
    assert launcher["config"]["backend"] == {"env": "CELERY_RESULT_BACKEND"}  # shared, not rpc://
    monitoring = instance["run_monitoring"]
    assert monitoring["max_resume_run_attempts"] == 0
    visibility = launcher["config"]["config_source"]["broker_transport_options"]
    assert visibility["visibility_timeout"] > monitoring["max_runtime_seconds"]
    worker = celery_config({})
    assert (
        worker["broker_transport_options"]["visibility_timeout"] == visibility["visibility_timeout"]
    )
    assert worker["task_acks_late"] and worker["worker_prefetch_multiplier"] == 1
    assert instance["run_retries"]["enabled"] and instance["run_retries"]["max_retries"] >= 1
    assert instance["compute_logs"]["class"] == "NoOpComputeLogManager"


def test_a_worker_without_redis_url_refuses_to_start() -> None:
    assert missing_settings(dict.fromkeys(REQUIRED, "x")) is None
    problem = missing_settings({"GH_ASSETS_ASSET_STORAGE": "/shared", "DAGSTER_HOME": "/h"})
    assert problem and "\n" not in problem and "REDIS_URL" in problem
    env = {"PATH": "/usr/bin:/bin", "DAGSTER_HOME": "/nonexistent", "CELERY_BROKER_URL": "x"}
    done = subprocess.run(
        [sys.executable, "-m", "gh_assets.worker"],
        env=env | {"GH_ASSETS_ASSET_STORAGE": "/shared"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gh_assets worker: refusing to start without REDIS_URL"), line


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) or ``docker-compose``, whichever this machine has."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_accepts_the_file() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client here: the topology test covers the services")
    done = subprocess.run(
        [*command, "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
