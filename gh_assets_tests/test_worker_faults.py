"""A run worker (``python -m gh_assets.worker``) tries each service it needs once when it starts
and refuses in one line naming the variable (issue 19, item 14): a dead broker is no longer
retried for minutes, a dead data Redis, result backend or PostgreSQL no longer found by the first
run, a missing ``scale`` extra no longer a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gh_assets_devtools import services

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRACE = 60  # seconds a refusal may take at most here; the old worker retried for minutes
PASSWORD = "pg-hunter2"
# deploy/dagster.yaml's variables (named here, not imported, so the tests run on any release).
POSTGRES = {
    "host": "DAGSTER_POSTGRES_HOST",
    "port": "DAGSTER_POSTGRES_PORT",
    "user": "DAGSTER_POSTGRES_USER",
    "password": "DAGSTER_POSTGRES_PASSWORD",
    "dbname": "DAGSTER_POSTGRES_DB",
}


def start_worker(env: dict[str, str], cwd: Path, *code: str) -> tuple[int, list[str]]:
    """Run the worker (or ``python -c code``) in its own process group; its exit status and
    stderr lines. Still running after GRACE seconds fails the test (and stops it)."""
    command = ["-c", *code] if code else ["-m", "gh_assets.worker"]
    worker = subprocess.Popen(
        [sys.executable, *command],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = worker.communicate(timeout=GRACE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not refuse within {GRACE} s")
    finally:
        services.stop_process_group(worker)
    return worker.returncode, stderr.splitlines()


@pytest.fixture
def worker_env(redis_url: str, key_prefix: str, tmp_path: Path) -> dict[str, str]:
    """Everything a worker needs, every Redis answering (the test's), PostgreSQL on a dead port."""
    imports = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    return imports | {  # the code under test, and nothing else of this process's environment
        "PATH": "/usr/bin:/bin",
        "REDIS_URL": redis_url,
        "GH_ASSETS_KEY_PREFIX": key_prefix,
        "GH_ASSETS_ASSET_STORAGE": str(tmp_path / "assets"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        POSTGRES["host"]: "127.0.0.1",
        POSTGRES["port"]: str(services.free_port()),
        POSTGRES["user"]: "dagster",
        POSTGRES["password"]: PASSWORD,
        POSTGRES["dbname"]: "dagster",
    }


@pytest.mark.parametrize(
    "variable",
    ["CELERY_BROKER_URL", "REDIS_URL", "CELERY_RESULT_BACKEND", "GH_ASSETS_BUDGET_REDIS_URL"],
)
def test_a_redis_the_worker_needs_that_does_not_answer_is_one_line_naming_it(
    worker_env: dict[str, str], tmp_path: Path, variable: str
) -> None:
    dead = f"redis://127.0.0.1:{services.free_port()}/0"
    status, lines = start_worker(worker_env | {variable: dead}, tmp_path)
    assert status == 2
    assert lines == [
        f"gh_assets worker: {variable}='{dead}': nothing answers there (connection refused)"
    ]


def test_a_postgresql_that_does_not_answer_is_one_line_naming_its_variables(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    status, lines = start_worker(worker_env, tmp_path)
    assert status == 2
    (line,) = lines
    port = worker_env[POSTGRES["port"]]
    assert line.startswith(
        f"gh_assets worker: DAGSTER_POSTGRES_HOST='127.0.0.1', DAGSTER_POSTGRES_PORT='{port}', "
        "DAGSTER_POSTGRES_USER='dagster', DAGSTER_POSTGRES_DB='dagster': PostgreSQL refused or "
        f'did not answer (connection to server at "127.0.0.1", port {port} failed: '
    ), line
    assert PASSWORD not in line


def test_without_the_scale_extra_the_worker_says_what_to_install(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    # Celery made unimportable, as on a host installed without the extra.
    hide_celery = (
        "import runpy, sys; sys.modules['celery'] = None; "
        "runpy.run_module('gh_assets.worker', run_name='__main__', alter_sys=True)"
    )
    status, lines = start_worker(worker_env, tmp_path, hide_celery)
    assert status == 2
    assert lines == [
        "gh_assets worker: celery is not installed here: pip install 'gh_assets[scale]'"
    ]


def test_a_worker_whose_services_all_answer_starts_and_a_missing_database_is_named(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    from gh_assets.worker_checks import service_fault
    from gh_assets_devtools.postgres import postgres_server

    with postgres_server(tmp_path) as postgres:
        env = worker_env | {
            POSTGRES["host"]: postgres.host,
            POSTGRES["port"]: str(postgres.port),
            POSTGRES["user"]: postgres.user,
            POSTGRES["dbname"]: postgres.database,
        }
        assert service_fault(env, ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")) is None
        line = service_fault(env | {POSTGRES["dbname"]: "nowhere"}, ())
    assert line == (
        f"gh_assets worker: DAGSTER_POSTGRES_HOST='{postgres.host}', "
        f"DAGSTER_POSTGRES_PORT='{postgres.port}', DAGSTER_POSTGRES_USER='{postgres.user}', "
        "DAGSTER_POSTGRES_DB='nowhere': PostgreSQL refused or did not answer (connection to "
        f'server at "{postgres.host}", port {postgres.port} failed: FATAL: database "nowhere" '
        "does not exist)"
    )
