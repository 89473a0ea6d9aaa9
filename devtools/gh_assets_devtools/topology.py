"""The scale-out deployment of ``docker-compose.yml`` as native processes, for the tests (no
Docker engine runs where they do): PostgreSQL, a broker Redis, a data Redis, the GitHub stand-in,
the code server, the daemon (``deploy/daemon.sh``), the webserver and Celery workers
(``python -m gh_assets.worker``), each Dagster process a "host" of its own, with its own working
directory, ``HOME``, ``TMPDIR`` and ``DAGSTER_HOME`` holding ``deploy/dagster.yaml``. Only the
asset storage folder is shared, as the compose file's volume is.

Every process runs in its own process group and is stopped (SIGTERM, then SIGKILL) when the
context exits, even when the body fails. PostgreSQL is ``postgres``'s; what the tests compare a
running topology with is ``topology_probes``'s.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from gh_assets_devtools import services
from gh_assets_devtools.dagster_graphql import DagsterGraphQL
from gh_assets_devtools.deployment import REPO, _answers, clean_environment
from gh_assets_devtools.postgres import Postgres, postgres_server

DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
CELERY_TASK_TAG = "dagster-celery/task_id"
SQLITE_MAGIC = b"SQLite format 3\x00"


# -- hosts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """One machine of the deployment: its own working directory, home, temp dir and instance."""

    name: str
    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def create(self, instance: Mapping[str, Any]) -> Host:
        for folder in (self.work, self.home, self.root / "tmp", self.dagster_home):
            folder.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(dict(instance), sort_keys=False)
        (self.dagster_home / "dagster.yaml").write_text(text)
        return self

    def env(self, shared: Mapping[str, str]) -> dict[str, str]:
        return dict(shared) | {
            "HOME": str(self.home),
            "TMPDIR": str(self.root / "tmp"),
            "DAGSTER_HOME": str(self.dagster_home),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def sqlite_files(self) -> list[Path]:
        """Every SQLite database under this host's folders (by the file's magic header)."""
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and path.stat().st_size >= len(SQLITE_MAGIC):
                with open(path, "rb") as handle:
                    if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
                        found.append(path)
        return found


def instance_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``deploy/dagster.yaml`` with ``overrides`` merged in (mappings merged key by key)."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())

    def merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
        for key, value in extra.items():
            if isinstance(value, Mapping) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = copy.deepcopy(value)

    merge(config, overrides or {})
    return config


# -- the topology ------------------------------------------------------------------------------


@dataclass
class Topology:
    root: Path
    postgres: Postgres
    broker_url: str
    backend_url: str
    data_url: str
    standin_url: str
    storage: Path  # GH_ASSETS_ASSET_STORAGE: the one folder every host shares
    webserver_url: str
    api: DagsterGraphQL
    hosts: dict[str, Host]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def task_result(self, task_id: str) -> dict[str, Any] | None:
        """The Celery result backend's record of a task (state, worker, result), None if none."""
        client = redis.Redis.from_url(self.backend_url)
        try:
            raw = client.get(f"celery-task-meta-{task_id}")
        finally:
            client.close()
        return json.loads(raw) if raw else None

    def task_worker(self, task_id: str) -> str | None:
        """Which worker host ran (or runs) a task, from the result backend: a finished task's
        ``worker`` (result_extended), a started one's ``hostname``."""
        meta = self.task_result(task_id) or {}
        node = meta.get("worker") or (meta.get("result") or {}).get("hostname")
        return node.split("@", 1)[0] if isinstance(node, str) else None

    def kill(self, name: str) -> None:
        """SIGKILL a host's process group at once: a lost machine."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(timeout=30)

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def log_tails(self, chars: int = 3000) -> dict[str, str]:
        tails = {}
        for name, host in self.hosts.items():
            try:
                tails[name] = host.log.read_text(errors="replace")[-chars:]
            except FileNotFoundError:
                tails[name] = "(no log)"
        return tails


def _worker_ready(log: Path) -> bool:
    try:
        return " ready." in log.read_text(errors="replace")
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def running_topology(
    root: Path,
    settings: Mapping[str, object],
    *,
    workers: Sequence[str] = ("worker-a", "worker-b"),
    pool_limit: int = 1,
    instance_overrides: Mapping[str, Any] | None = None,
    standin_size: int = 1000,
    ready_timeout: float = 180.0,
) -> Iterator[Topology]:
    """Start the whole deployment under ``root``; yield it once the code location has loaded and
    every worker is ready; stop everything on exit. ``settings``: the ``GH_ASSETS_*`` the code
    location and every worker share (as the compose file's ``x-dagster-env``)."""
    logs = root / "services"
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(postgres_server(logs))
        broker = stack.enter_context(services.redis_server(root / "broker", persist=False))
        data = stack.enter_context(services.redis_server(root / "data", persist=False))
        standin = stack.enter_context(services.standin_server(logs, size=standin_size))
        storage = root / "shared-storage"
        storage.mkdir(parents=True)
        base = broker.rsplit("/", 1)[0]
        shared = clean_environment(
            **settings,
            REDIS_URL=data,
            GITHUB_API_URL=standin,
            GH_ASSETS_ASSET_STORAGE=storage,
            GH_ASSETS_POOL_LIMIT=pool_limit,
            DAGSTER_POSTGRES_HOST=postgres.host,
            DAGSTER_POSTGRES_PORT=postgres.port,
            DAGSTER_POSTGRES_USER=postgres.user,
            DAGSTER_POSTGRES_PASSWORD="unused-with-trust",
            DAGSTER_POSTGRES_DB=postgres.database,
            CELERY_BROKER_URL=f"{base}/0",
            CELERY_RESULT_BACKEND=f"{base}/1",
            PYTHONUNBUFFERED=1,
        )
        instance = instance_config(instance_overrides)
        names = ["code", "daemon", "webserver", *workers]
        hosts = {name: Host(name, root / "hosts" / name).create(instance) for name in names}
        code_port, web_port = services.free_port(), services.free_port()
        workspace = {
            "load_from": [
                {
                    "grpc_server": {
                        "host": "127.0.0.1",
                        "port": code_port,
                        "location_name": "gh_assets",
                    }
                }
            ]
        }
        for name in ("daemon", "webserver"):
            (hosts[name].work / "workspace.yaml").write_text(yaml.safe_dump(workspace))

        def start(name: str, command: list[str], ready, **extra: str) -> subprocess.Popen:
            host = hosts[name]
            return stack.enter_context(
                services.running(
                    command,
                    ready,
                    host.log,
                    timeout=ready_timeout,
                    env=host.env(shared | extra),
                    cwd=host.work,
                    grace=20,
                )
            )

        processes = {}
        processes["code"] = start(
            "code",
            [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1",
             "-p", str(code_port), "-m", "gh_assets.definitions", "--location-name", "gh_assets"],
            lambda: services.port_open(code_port),
        )  # fmt: skip
        # The start-up step of docker-compose.yml's daemon: the pool's limit, then the daemon.
        processes["daemon"] = start(
            "daemon",
            ["/bin/sh", str(DEPLOY / "daemon.sh")],
            lambda: "following daemons" in services.log_text(hosts["daemon"].log),
            DAGSTER_WORKSPACE="workspace.yaml",
        )
        web_url = f"http://127.0.0.1:{web_port}"
        processes["webserver"] = start(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
             "-w", "workspace.yaml"],
            lambda: _answers(f"{web_url}/server_info"),
        )  # fmt: skip
        for name in workers:
            processes[name] = start(
                name,
                [sys.executable, "-m", "gh_assets.worker", "--hostname", f"{name}@%h"],
                lambda name=name: _worker_ready(hosts[name].log),
            )
        # On exit, every worker is asked to stop at once (an idle one finishes its BRPOP first,
        # up to gh_assets.worker.BRPOP_SECONDS); each is then stopped in turn as usual.
        stack.callback(_terminate, [processes[name] for name in workers])
        api = stack.enter_context(DagsterGraphQL(web_url))
        services.wait_for(
            api.location_loaded, timeout=ready_timeout, what="the code location", interval=1
        )
        yield Topology(
            root=root,
            postgres=postgres,
            broker_url=f"{base}/0",
            backend_url=f"{base}/1",
            data_url=data,
            standin_url=standin,
            storage=storage,
            webserver_url=web_url,
            api=api,
            hosts=hosts,
            processes=processes,
        )


def _terminate(processes: Sequence[subprocess.Popen]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
