"""The at-scale benchmark's deployment: the code server and the webserver on a PostgreSQL
instance that queues every run and launches none, the daemon started when asked, and the
sensors' ticks read back through the webserver's GraphQL API.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.figures import BenchError
from gh_assets_devtools import services
from gh_assets_devtools.dagster_graphql import LOCATION, REPOSITORY, DagsterGraphQL
from gh_assets_devtools.deployment import _answers
from gh_assets_devtools.postgres import Postgres
from gh_assets_devtools.topology import instance_config

SENSORS = ("github_pages_sensor", "stale_pages_sensor", "refresh_analysis_sensor")
BIN = Path(sys.executable).parent

_TICKS = """
query Ticks($selector: SensorSelector!, $limit: Int) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: $limit) {
          tickId status timestamp endTimestamp runIds skipReason error { message }
        }
      }
    }
    ... on Error { message }
  }
}"""


@dataclass(frozen=True)
class Tick:
    sensor: str
    status: str
    started: float  # epoch seconds
    ended: float
    runs: int
    skip_reason: str | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def sensor_ticks(api: DagsterGraphQL, sensor: str, limit: int = 25) -> list[Tick]:
    """The sensor's finished ticks, newest first; a failed tick raises with its error."""
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "sensorName": sensor,
    }
    data = api.query(_TICKS, selector=selector, limit=limit)["sensorOrError"]
    if data["__typename"] != "Sensor":
        raise BenchError(f"{sensor}: {data}")
    ticks = []
    for row in data["sensorState"]["ticks"]:
        if row["status"] == "FAILURE":
            raise BenchError(f"{sensor}'s tick failed: {(row['error'] or {}).get('message')}")
        if row["status"] == "STARTED" or row["endTimestamp"] is None:
            continue
        ticks.append(
            Tick(
                sensor,
                row["status"],
                row["timestamp"],
                row["endTimestamp"],
                len(row["runIds"]),
                row["skipReason"],
            )
        )
    return ticks


# -- the deployment: PostgreSQL, a code server, the webserver and (when asked) the daemon --------


@dataclass
class AtScale:
    root: Path
    env: dict[str, str]
    api: DagsterGraphQL
    logs: Path
    daemons: int = 0

    @contextlib.contextmanager
    def daemon(self, timeout: float, **extra_env: str) -> Iterator[None]:
        """``dagster-daemon run`` on the instance (``extra_env`` added), until the block exits."""
        self.daemons += 1
        log = self.logs / f"daemon-{self.daemons}.log"
        with services.running(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            lambda: "following daemons" in services.log_text(log),
            log,
            timeout=timeout,
            env=self.env | extra_env,
            cwd=self.root,
            grace=30,
        ):
            yield

    def wait_ticks(self, since: float, count: int, timeout: float) -> dict[str, list[Tick]]:
        """Wait until each sensor has ``count`` ticks started after ``since``; those ticks."""

        def found() -> dict[str, list[Tick]] | None:
            ticks = {name: [t for t in sensor_ticks(self.api, name) if t.started > since]
                     for name in SENSORS}  # fmt: skip
            if all(len(found) >= count for found in ticks.values()):
                return {name: sorted(found, key=lambda t: t.started)[:count]
                        for name, found in ticks.items()}  # fmt: skip
            return None

        return services.wait_for(
            found,
            timeout=timeout,
            what=f"{count} tick(s) of each sensor",
            interval=1.0,
            state=lambda: {name: sensor_ticks(self.api, name)[:3] for name in SENSORS},
        )


def instance_yaml(postgres: Postgres) -> dict[str, Any]:
    """deploy/dagster.yaml on ``postgres``, with a run queue that queues and never launches."""
    config = instance_config()
    config["storage"] = postgres.instance_storage()
    config.pop("run_launcher", None)  # nothing is launched (no broker here): the default one
    config["concurrency"]["runs"]["max_concurrent_runs"] = 0  # queue every run, launch none
    return config


@contextlib.contextmanager
def deployment(root: Path, env: Mapping[str, str], timeout: float) -> Iterator[AtScale]:
    """The code server and the webserver on the instance ``env`` names, from ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    code_port, web_port = services.free_port(), services.free_port()
    workspace = {
        "load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": code_port, "location_name": LOCATION}}
        ]
    }
    (root / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    url = f"http://127.0.0.1:{web_port}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            services.running(
                [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1",
                 "-p", str(code_port), "-m", "gh_assets.definitions",
                 "--location-name", LOCATION],
                lambda: services.port_open(code_port),
                logs / "code-server.log",
                timeout=timeout, env=env, cwd=root, grace=20,
            )
        )  # fmt: skip
        stack.enter_context(
            services.running(
                [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                 "-w", "workspace.yaml"],
                lambda: _answers(f"{url}/server_info"),
                logs / "webserver.log",
                timeout=timeout, env=env, cwd=root, grace=20,
            )
        )  # fmt: skip
        api = stack.enter_context(DagsterGraphQL(url, timeout=600))
        services.wait_for(api.location_loaded, timeout=timeout, what="the code location")
        yield AtScale(root, dict(env), api, logs)
