"""The scale-out deployment of ``docker-compose.yml`` as native processes, for the tests (no
Docker engine runs where they do): PostgreSQL, a broker Redis, a data Redis, the GitHub stand-in,
the code server, the daemon (``deploy/daemon.sh``), the webserver and Celery workers
(``python -m gh_assets.worker``), each Dagster process a "host" of its own, with its own working
directory, ``HOME``, ``TMPDIR`` and ``DAGSTER_HOME`` holding ``deploy/dagster.yaml``. Only the
asset storage folder is shared, as the compose file's volume is.

Every process runs in its own process group and is stopped (SIGTERM, then SIGKILL) when the
context exits, even when the body fails.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from gh_assets.local import services
from gh_assets.local.dagster_graphql import LOCATION, REPOSITORY, DagsterGraphQL
from gh_assets.local.deployment import REPO, _answers, clean_environment
from gh_assets.storage.schema import CRAWL_TIME_FIELDS, HISTORY_KEYS

DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
CELERY_TASK_TAG = "dagster-celery/task_id"
SQLITE_MAGIC = b"SQLite format 3\x00"
POSTGRES_USER = "dagster"
POSTGRES_DB = "dagster"


# -- PostgreSQL --------------------------------------------------------------------------------


def postgres_binaries() -> Path:
    """The folder holding ``initdb`` and ``postgres`` (Debian's newest, else on PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    raise services.ServiceError(
        "no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql"
    )


def _unprivileged() -> tuple[list[str], int, int] | None:
    """PostgreSQL refuses to run as root: a ``setpriv`` prefix to another user, with its ids."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            prefix = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                "--",
            ]
            return prefix, user.pw_uid, user.pw_gid
    raise services.ServiceError("running as root and no 'postgres' or 'nobody' user to run as")


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    database: str

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=database or self.database,
            connect_timeout=3,
        )

    def query(self, sql: str, *args: object) -> list[tuple]:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def create_database(self, name: str) -> Postgres:
        """A new, empty database ``name`` on this server (a plain identifier), to connect to."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        with contextlib.closing(self.connect()) as conn:
            conn.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name}")
        return Postgres(self.host, self.port, self.user, name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (connections to it are ended first)."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        with contextlib.closing(self.connect("postgres")) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def instance_storage(self) -> dict[str, Any]:
        """The ``storage:`` block of a Dagster instance on this database (psycopg2, as
        deploy/dagster.yaml; trust authentication, so the password is not checked)."""
        return {
            "postgres": {
                "postgres_db": {
                    "scheme": "postgresql+psycopg2",
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": "unused-with-trust",
                    "db_name": self.database,
                }
            }
        }


@contextlib.contextmanager
def postgres_server(log_dir: Path) -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (``initdb`` in a temporary folder, a free loopback port,
    trust authentication) holding an empty database ``dagster``; deleted on exit."""
    binaries = postgres_binaries()
    runner = _unprivileged()
    # A folder of its own, in /tmp when running as root: the unprivileged user cannot enter
    # root's pytest folders (nor, maybe, root's TMPDIR).
    parent = "/tmp" if runner and os.path.isdir("/tmp") else None
    folder = Path(tempfile.mkdtemp(prefix="gh-assets-postgres-", dir=parent))
    try:
        prefix: list[str] = []
        if runner:
            prefix, uid, gid = runner
            os.chown(folder, uid, gid)
        data = folder / "data"
        initdb = [
            *prefix, str(binaries / "initdb"), "-D", str(data), "-U", POSTGRES_USER,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        done = subprocess.run(
            initdb,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
            cwd=folder,
        )
        if done.returncode != 0:
            raise services.ServiceError(f"initdb failed: {done.stdout}{done.stderr}")
        port = services.free_port()
        server = Postgres("127.0.0.1", port, POSTGRES_USER, "postgres")
        command = [
            *prefix, str(binaries / "postgres"), "-D", str(data), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=300",
        ]  # fmt: skip

        def answers() -> bool:
            try:
                server.connect().close()
            except Exception:
                return False
            return True

        with services.running(
            command, answers, log_dir / "postgres.log", timeout=60, cwd=folder, grace=15
        ):
            yield server.create_database(POSTGRES_DB)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


# -- what the deployment's crawl is compared with ----------------------------------------------


def crawl_in_process(
    standin_url: str, redis_url: str, prefix: str, keys: Sequence[str], page_size: int
) -> None:
    """A single-machine crawl of pages ``keys``: ``dg.materialize`` in this process, on a
    temporary instance, into ``redis_url`` under ``prefix``."""
    import dagster as dg

    from gh_assets.assets import build_github_users
    from gh_assets.partitions import add_missing_pages
    from gh_assets.resources import GitHubResource, RedisResource
    from gh_assets.settings import Settings

    asset = build_github_users(Settings(page_size=page_size, page_retries=0))
    resources = {
        "github": GitHubResource(api_url=standin_url, max_retries=1),
        "redis": RedisResource(url=redis_url, key_prefix=prefix),
    }
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, list(keys))
        for key in keys:
            result = dg.materialize(
                [asset], partition_key=key, instance=instance, resources=resources
            )
            if not result.success:
                raise RuntimeError(f"the single-machine crawl of {key} failed")


def redis_snapshot(redis_url: str, prefix: str) -> dict[str, object]:
    """Every key under ``prefix`` (named without it) with its value, comparable across crawls:
    hashes without CRAWL_TIME_FIELDS, sets and sorted sets as member sets (a sorted set's scores
    are ids or times), strings as they are; the blocks' HISTORY_KEYS left out."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    snapshot: dict[str, object] = {}
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            if key.rsplit(":", 1)[-1] in HISTORY_KEYS:
                continue
            kind = client.type(key)
            if kind == "hash":
                value: object = {
                    k: v for k, v in client.hgetall(key).items() if k not in CRAWL_TIME_FIELDS
                }
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "zset":
                value = set(client.zrange(key, 0, -1))
            elif kind == "string":
                value = client.get(key)
            else:
                value = kind
            snapshot[key[len(prefix) :]] = value
    finally:
        client.close()
    return snapshot


_LAST_MATERIALIZATION = """
query Last($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries { label ... on PathMetadataEntry { path } }
      }
    }
  }
}"""


def last_materialization(api: DagsterGraphQL, path: Sequence[str]) -> dict[str, Any] | None:
    """The latest materialization of an asset: ``run_id`` and its ``path`` metadata, if any."""
    data = api.query(_LAST_MATERIALIZATION, path=list(path))["assetOrError"]
    events = (data or {}).get("assetMaterializations") or []
    if not events:
        return None
    paths = [e["path"] for e in events[0]["metadataEntries"] if e.get("path")]
    return {"run_id": events[0]["runId"], "path": paths[0] if paths else None}


_LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def launch_assets(api: DagsterGraphQL, *paths: Sequence[str]) -> str:
    """Launch a run of the given unpartitioned assets (as *Materialize* in the UI); its id."""
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": list(path)} for path in paths],
        },
        "mode": "default",
    }
    data = api.query(_LAUNCH_RUN, params=params)["launchRun"]
    if data["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun: {data}")
    return data["run"]["runId"]
