"""docker-compose.yml, deploy/ and the project's pins agree (no Docker engine runs where the tests
do: gh_assets_tests/test_topology.py starts the same topology with native processes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from dataclasses import fields
from pathlib import Path

import pytest
import redis
import yaml
from celery import states

from gh_assets.pool_limit import POOL_LIMIT_VARIABLE
from gh_assets.settings import Settings
from gh_assets.worker import (
    BACKEND_VARIABLE,
    BROKER_VARIABLE,
    DEFAULT_VISIBILITY_TIMEOUT,
    REQUIRED,
    VISIBILITY_VARIABLE,
    build_app,
    celery_config,
    missing_settings,
)

from .conftest import REPO

SERVICES = {"postgres", "redis", "broker", "standin", "code", "webserver", "daemon", "worker"}
DAGSTER_SERVICES = ("code", "webserver", "daemon", "worker")
# Read where runs execute beside gh_assets/settings.py's own: the pool's limit (the daemon's
# start), the workers' visibility timeout, and Dagster's flag for very wide runs
# (docs/configuration.md).
MORE_SETTINGS = {
    POOL_LIMIT_VARIABLE,
    VISIBILITY_VARIABLE,
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS",
}


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        if match := re.fullmatch(r"(dagster[\w-]*)==([\d.]+)", requirement):
            found[match[1]] = match[2]
    return found


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.mark.unit
def test_dagster_packages_ride_one_release_train() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = pins(project["dependencies"])
    assert set(core) == {"dagster", "dagster-webserver", "dagster-graphql"}
    assert len(set(core.values())) == 1
    version = core["dagster"]
    assert version.startswith("1.13.")
    library = "0.29." + version.split(".")[2]
    extras = {name: pins(found) for name, found in project["optional-dependencies"].items()}
    for extra in ("scale", "test"):
        libraries = {k: v for k, v in extras[extra].items() if k != "dagster-dg-cli"}
        assert libraries == {"dagster-celery": library, "dagster-postgres": library}, extra
    for extra in ("dev", "test"):  # dg, Dagster's project CLI, rides the core packages' train
        assert extras[extra]["dagster-dg-cli"] == version, extra
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG GH_ASSETS_EXTRAS=scale\n" in dockerfile  # the extras, at uv.lock's versions:
    assert "uv export --project /src --locked --no-emit-project" in dockerfile


@pytest.mark.unit
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


@pytest.mark.unit
def test_compose_passes_every_setting_to_every_dagster_service() -> None:
    """docs/scaling-out.md: every GH_ASSETS_* reaches the containers. Unset in the shell running
    compose, a setting arrives empty, which the code reads as unset: its default."""
    names = {spec.metadata["env"] for spec in fields(Settings) if "env" in spec.metadata}
    assert {"GITHUB_TOKEN", "GH_ASSETS_PAGE_SIZE", "GH_ASSETS_FRONTIER_INTERVAL"} <= names
    names |= MORE_SETTINGS
    services = compose()["services"]
    for service in DAGSTER_SERVICES:
        env = services[service]["environment"]
        assert not names - set(env), (service, sorted(names - set(env)))
        for name in names - {"GH_ASSETS_ASSET_STORAGE"}:  # the volume's mount point
            assert re.fullmatch(rf"\$\{{{name}:-[^}}]*\}}", env[name]), (service, name, env[name])
    empty = dict.fromkeys(names, "")
    assert Settings.from_env(empty) == Settings()
    assert celery_config(empty)["broker_transport_options"]["visibility_timeout"] == (
        DEFAULT_VISIBILITY_TIMEOUT
    )


@pytest.mark.unit
def test_the_daemon_sets_the_pool_limit_at_start() -> None:
    script = (REPO / "deploy" / "daemon.sh").read_text()
    assert "\ngh-assets set-pool-limit\n" in script  # the project's own rule, not a copy of it
    assert "POOL_LIMIT:-" not in script
    assert script.index("set-pool-limit") < script.index("exec dagster-daemon run")


@pytest.mark.unit
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
    # A run may wait in the broker as long as the run before it on its worker lasts.
    assert monitoring["start_timeout_seconds"] >= monitoring["max_runtime_seconds"]
    source = launcher["config"]["config_source"]
    visibility = source["broker_transport_options"]
    assert visibility["visibility_timeout"] > monitoring["max_runtime_seconds"]
    worker = celery_config({})
    assert (
        worker["broker_transport_options"]["visibility_timeout"] == visibility["visibility_timeout"]
    )
    # Task states never expire, on either side (Celery's default: a day).
    assert source["result_expires"] == worker["result_expires"] == 0
    assert worker["task_acks_late"] and worker["worker_prefetch_multiplier"] == 1
    assert instance["run_retries"]["enabled"] and instance["run_retries"]["max_retries"] >= 1
    assert instance["compute_logs"]["class"] == "NoOpComputeLogManager"


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_without_redis_url_refuses_to_start() -> None:
    assert missing_settings(dict.fromkeys(REQUIRED, "x") | {BROKER_VARIABLE: "redis://b"}) is None
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


@pytest.mark.unit
def test_a_worker_refuses_a_broker_other_than_redis() -> None:
    """RabbitMQ is not tested, and the workers' delivery settings are the Redis transport's."""
    settings = dict.fromkeys(REQUIRED, "x")
    secret = "amqp://guest:s3cr3t@rabbit:5672//"
    problem = missing_settings(settings | {BROKER_VARIABLE: secret})
    assert problem == (
        "gh_assets worker: CELERY_BROKER_URL must be a standalone Redis (redis:// or rediss://; "
        "RabbitMQ and other brokers are not supported)"
    )
    for url in ("redis://broker:6379/0", "rediss://:pw@broker:6380/0"):
        assert missing_settings(settings | {BROKER_VARIABLE: url}) is None


@pytest.mark.integration
def test_a_started_run_keeps_its_state_in_the_result_backend(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker writes when a run starts (task_track_started) and what run monitoring reads,
    on a real Redis: no TTL, so a run of any length is still STARTED, not PENDING (UNKNOWN)."""
    from dagster_celery.launcher import CeleryRunLauncher

    for name in (BROKER_VARIABLE, BACKEND_VARIABLE):  # Celery prefers these to its arguments
        monkeypatch.delenv(name, raising=False)
    app = build_app({BROKER_VARIABLE: redis_url, BACKEND_VARIABLE: redis_url})
    assert app.conf.result_expires == 0
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    source = instance["run_launcher"]["config"]["config_source"]
    launcher = CeleryRunLauncher("dagster", redis_url, redis_url, config_source=source)
    task_id = f"test-{uuid.uuid4().hex}"
    key = f"celery-task-meta-{task_id}"
    client = redis.Redis.from_url(redis_url)
    try:
        app.backend.store_result(task_id, {"pid": 1, "hostname": "worker@test"}, states.STARTED)
        assert client.ttl(key) == -1  # a key without a TTL
        assert launcher.celery.AsyncResult(task_id).state == states.STARTED
        assert launcher.celery.backend.expires == 0
    finally:
        client.delete(key)
        client.close()


@pytest.mark.unit
def test_a_worker_needs_the_broker_backend_and_instance_of_the_daemon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def env_names(node: object) -> set[str]:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                return {node["env"]}
            return set().union(*map(env_names, node.values()))
        return set()

    read = env_names(yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text()))
    assert {BROKER_VARIABLE, BACKEND_VARIABLE, "DAGSTER_POSTGRES_HOST"} <= read
    assert read <= set(REQUIRED)
    complete = dict.fromkeys(REQUIRED, "x") | {BROKER_VARIABLE: "redis://broker"}
    for name in read:
        problem = missing_settings({k: v for k, v in complete.items() if k != name})
        assert problem and "\n" not in problem and name in problem, (name, problem)
    problem = missing_settings(complete | {VISIBILITY_VARIABLE: "2h"})
    assert problem == f"gh_assets worker: {VISIBILITY_VARIABLE}='2h': expected a whole number >= 1"
    # No fallback to the broker: a worker's states would go where the daemon never reads.
    for name in (BROKER_VARIABLE, BACKEND_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    assert build_app({BROKER_VARIABLE: "redis://broker:6379/0"}).conf.result_backend is None


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [["-m", "gh_assets.worker"], ["-m", "celery", "-A", "gh_assets.worker", "worker"]],
    ids=["python -m gh_assets.worker", "celery -A gh_assets.worker worker"],
)
def test_a_worker_without_the_result_backend_refuses_to_start(
    command: list[str], tmp_path: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DAGSTER_HOME": "/nonexistent",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "GH_ASSETS_ASSET_STORAGE": "/shared",
        BROKER_VARIABLE: "redis://127.0.0.1:1/0",  # nothing listens: a start would hang
    }
    done = subprocess.run(
        [sys.executable, *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done
    # Celery's own warning about running as root may come first; the refusal is the last line.
    line = done.stderr.strip().splitlines()[-1]
    refusal = f"gh_assets worker: refusing to start without {BACKEND_VARIABLE} ("
    assert line.startswith(refusal), line
    assert "DAGSTER_POSTGRES_HOST, DAGSTER_POSTGRES_PORT" in line


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) or ``docker-compose``, whichever this machine has."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.integration
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
