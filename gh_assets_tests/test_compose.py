"""docker-compose.yml built and run on a real Docker engine (gh_assets_tests/compose_stack.py):
the project's Dockerfile, two workers, a backfill launched through the webserver's GraphQL, Redis
compared with the stand-in field by field, Parquet read from the shared volume, and a worker
container killed mid-run. Skips, in one line, where no Docker engine can run.
``make test-compose`` runs this module alone."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import redis
import yaml

from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.dagster_graphql import DagsterGraphQL, Run
from gh_assets_devtools.services import wait_for
from gh_assets_devtools.standin import StandinAdmin
from gh_assets_devtools.standin.data import STORED_FIELDS
from gh_assets_devtools.topology import CELERY_TASK_TAG
from gh_assets_tests.compose_stack import (
    REPO,
    ComposeStack,
    DockerUnavailable,
    build_base_images,
    build_image,
    docker_engine,
    missing_tools,
)

from .backfills import backfill_succeeds

pytestmark = pytest.mark.e2e

PAGE_SIZE = 100
PAGES = [PageWindow.number(k, PAGE_SIZE) for k in range(7)]
BACKFILLED, LAST = PAGES[:6], PAGES[6]  # the 7th page is crawled while a worker is killed
MAX_RUNTIME = 30  # run_monitoring.max_runtime_seconds here (deploy/dagster.yaml: an hour)
HOME = "/opt/dagster/home/dagster.yaml"  # the instance file in the image
SETTINGS = {
    "GITHUB_TOKEN": "ghp" + "_composeTESTtoken0123456789abcdefABCDE",  # the stand-in's any token
    "GH_ASSETS_PAGE_SIZE": str(PAGE_SIZE),
    "GH_ASSETS_PAGES": str(len(PAGES)),
    "GH_ASSETS_SENSOR_INTERVAL": "5",
    "GH_ASSETS_RECRAWL_AFTER": "3600",
    "GH_ASSETS_PAGE_RETRIES": "0",
    "GH_ASSETS_POOL_LIMIT": "2",
}


def instance_file(folder: Path) -> Path:
    """deploy/dagster.yaml with run monitoring shortened, so a lost run is retried in seconds."""
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    config["run_monitoring"] |= {"max_runtime_seconds": MAX_RUNTIME, "poll_interval_seconds": 2}
    path = folder / "dagster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def override(instance: Path) -> dict[str, object]:
    """The test's compose override: the short instance file in every Dagster service; a stand-in
    of exactly the test's pages (none found beyond them); and the stack's own bridge network
    marked internal (nothing leaves this machine, no host port)."""
    mount = {"volumes": [f"{instance}:{HOME}:ro"]}
    services: dict[str, object] = {n: mount for n in ("code", "webserver", "daemon", "worker")}
    command = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["standin"]
    command = list(command["command"])
    command[command.index("--size") + 1] = str(len(PAGES) * PAGE_SIZE)
    services["standin"] = {"command": command}
    return {"services": services, "networks": {"default": {"internal": True}}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    if missing_tools():
        pytest.skip(f"no Docker here: install {' '.join(missing_tools())} (Debian) as root")
    workdir = tmp_path_factory.mktemp("compose")
    with contextlib.ExitStack() as stack_of:
        try:
            env = stack_of.enter_context(docker_engine(workdir))
        except DockerUnavailable as error:
            pytest.skip(f"{error}: run as root with docker.io installed")
        build_base_images(env)
        build_image(env, workdir)
        env |= SETTINGS
        found = ComposeStack("ghassetstest", override(instance_file(workdir)), env, workdir)
        found.compose("down", "-v", "--remove-orphans")  # a previous run's leftovers
        try:
            found.compose("up", "-d", "--no-build", "--scale", "worker=2", timeout=900)
            api = DagsterGraphQL(f"http://{found.address('webserver')}:3000", timeout=60)
            wait(found, lambda: answers(api), 300, "the webserver and the code location")
            found.api = api
            yield found
        finally:
            with contextlib.suppress(Exception):
                (workdir / "compose.log").write_text(found.logs(chars=200_000))
            found.compose("down", "-v", "--remove-orphans", timeout=300)


def answers(api: DagsterGraphQL) -> bool:
    with contextlib.suppress(Exception):
        return api.location_loaded()
    return False


def state(stack: ComposeStack, **extra: object) -> dict[str, object]:
    seen: dict[str, object] = dict(extra)
    with contextlib.suppress(Exception):
        seen["runs"] = [run.brief() for run in stack.api.runs(limit=20)]
        seen["partitions"] = stack.api.partitions(USERS_KEY)
    seen["health"] = stack.health()
    seen["logs"] = stack.logs(["daemon", "worker"], 3000)
    return seen


def wait(stack: ComposeStack, check, timeout: float, what: str, interval: float = 2.0):
    return wait_for(
        check, timeout=timeout, what=what, interval=interval, state=lambda: state(stack)
    )


def worker_of(stack: ComposeStack, run: Run) -> str | None:
    """The worker container that ran (or runs) ``run``: Celery's result backend names the
    worker ``worker@<hostname>``, and the hostname is the container's."""
    with redis.Redis(stack.address("broker"), 6379, db=1) as backend:
        raw = backend.get(f"celery-task-meta-{run.tags[CELERY_TASK_TAG]}")
    meta = json.loads(raw) if raw else {}
    node = meta.get("worker") or (meta.get("result") or {}).get("hostname") or ""
    return stack.hostnames("worker").get(node.split("@", 1)[-1])


def assert_redis_equals_the_standin(stack: ComposeStack, windows: list[PageWindow]) -> int:
    """Every window's users in the data Redis equal the stand-in's, field by field."""
    store = RedisStore.from_url(f"redis://{stack.address('redis')}:6379/0")
    users = 0
    with StandinAdmin(f"http://{stack.address('standin')}:8080") as standin:
        for window in windows:
            truth = standin.truth(window.first_id, window.last_id)
            assert store.page_members(window.key) == set(truth), window.key
            found = store.read_users(truth)
            stored = {u: {k: found[u].get(k) for k in STORED_FIELDS} for u in found}
            differs = {
                u: (stored.get(u), want) for u, want in truth.items() if stored.get(u) != want
            }
            assert not differs, f"{window.key}: Redis != stand-in for {differs}"
            users += len(truth)
    return users


@pytest.mark.timeout(2400)
def test_1_a_backfill_runs_on_both_worker_containers(stack: ComposeStack) -> None:
    api, keys = stack.api, [w.key for w in BACKFILLED]
    started = time.time()
    registered = lambda: {w.key for w in PAGES} <= set(api.partitions(USERS_KEY)["keys"])  # noqa: E731
    wait(stack, registered, 120, "the pages sensor to register the pages")
    runs = backfill_succeeds(api, USERS_KEY, keys, timeout=600, state=partial(state, stack))
    assert set(keys) <= set(api.partitions(USERS_KEY)["materialized"])
    ran_on = {run.partition: worker_of(stack, run) for run in runs}
    assert set(ran_on.values()) == set(stack.containers("worker")), ran_on
    users = assert_redis_equals_the_standin(stack, BACKFILLED)
    assert users > 6 * 50

    # The analysis refreshes on its own after the batch, on a worker; its Parquet files are on
    # the shared volume, readable outside the containers.
    batch_end = max(run.ended for run in runs)
    volume = stack.docker("volume", "inspect", "-f", "{{.Mountpoint}}", f"{stack.name}_assets")
    summary_file = Path(volume.strip()) / "github_user_summary" / "counters.parquet"
    frame_file = Path(volume.strip()) / "github_users_frame.parquet"

    def analysed() -> bool:
        found = api.runs(created_after=batch_end, statuses=["SUCCESS"])
        return any(r.partition is None for r in found) and summary_file.exists()

    wait(stack, analysed, 300, "the analysis to refresh after the backfill")
    frame = pd.read_parquet(frame_file)
    assert len(frame) == users and frame["id"].is_unique, frame.head()
    assert len(pd.read_parquet(summary_file)) > 0
    print(f"\ncompose: {len(keys)} pages on {sorted(set(ran_on.values()))} in "
          f"{time.time() - started:.0f} s; {users} users equal the stand-in's")  # fmt: skip


@pytest.mark.timeout(900)
def test_2_a_killed_worker_container_s_run_is_retried_on_the_other(stack: ComposeStack) -> None:
    api, started = stack.api, time.time()
    with StandinAdmin(f"http://{stack.address('standin')}:8080") as standin:
        standin.set_faults(latency_ms=1500)  # a page run now lasts several seconds
        standin.reset_stats()
        try:
            api.launch_backfill(USERS_KEY, [LAST.key])

            def in_flight() -> tuple[Run, str] | None:
                runs = [r for r in api.runs(created_after=started) if r.partition == LAST.key]
                run = runs[0] if runs else None
                if not run or run.status != "STARTED" or CELERY_TASK_TAG not in run.tags:
                    return None
                host = worker_of(stack, run)
                calls = sum(standin.stats()["requests"]["by_status"].values())
                return (run, host) if host and calls >= 1 else None

            run, victim = wait(stack, in_flight, 180, f"{LAST.key}'s run to call GitHub", 0.3)
            stack.docker("kill", victim)
            killed_at = time.time()
        finally:
            standin.set_faults(latency_ms=0)
    (survivor,) = set(stack.containers("worker")) - {victim}

    def materialized() -> Run | None:
        runs = [r for r in api.runs(created_after=started) if r.partition == LAST.key]
        return next((r for r in runs if r.status == "SUCCESS"), None)

    retry = wait(stack, materialized, MAX_RUNTIME + 240, f"{LAST.key} to be materialized again")
    runs = [r for r in api.runs(created_after=started) if r.partition == LAST.key]
    assert [r.status for r in runs] == ["FAILURE", "SUCCESS"], [r.brief() for r in runs]
    assert runs[0].run_id == run.run_id
    assert retry.tags.get("dagster/parent_run_id") == run.run_id, retry.tags
    assert worker_of(stack, retry) == survivor
    assert stack.inspect(victim)["State"]["Running"] is False  # no restart hid the loss
    assert any("maximum runtime" in m for m in api.run_error_messages(run.run_id))
    assert_redis_equals_the_standin(stack, [LAST])
    print(f"\ncompose: {victim} killed mid-run; {LAST.key} done by {survivor} "
          f"{retry.ended - killed_at:.0f} s later, with no action")  # fmt: skip


def test_3_a_github_app_key_file_on_the_host_reaches_every_service(
    stack: ComposeStack, tmp_path: Path, app_key_pem: str
) -> None:
    """GITHUB_APP_PRIVATE_KEY_FILE (a path on the compose host) is mounted read-only as a
    secret, and the image's entrypoint names it as GITHUB_APP_PRIVATE_KEY."""
    pem = app_key_pem
    host_file = tmp_path / "app.pem"
    host_file.write_text(pem)
    probe = (
        "import hashlib, os; from gh_assets.github.app_auth import load_private_key as load; "
        "v = os.environ['GITHUB_APP_PRIVATE_KEY']; "
        "print(v, hashlib.sha256(load(v).strip().encode()).hexdigest())"
    )
    out = stack.compose(
        "run", "--rm", "--no-deps", "worker", "python", "-c", probe,
        GITHUB_APP_PRIVATE_KEY_FILE=str(host_file),
    )  # fmt: skip
    digest = hashlib.sha256(pem.strip().encode()).hexdigest()
    assert out.split() == ["/run/secrets/github_app_private_key", digest]
    # Without it, nothing is named (the secret is empty) and the setting stays unset.
    out = stack.compose("run", "--rm", "--no-deps", "worker", "sh", "-c",
                        'echo "key=${GITHUB_APP_PRIVATE_KEY:-unset}"')  # fmt: skip
    assert out.split() == ["key=unset"]
