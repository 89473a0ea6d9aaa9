"""Helpers for driving the real local deployment (``gh-assets dev``) as a person does.

``running_deployment`` starts the webserver and the daemon as native processes and always stops
every process they started; ``GraphQL`` talks to the webserver's ``/graphql`` endpoint (what the
UI does); ``Standin`` steers the GitHub stand-in through its ``/_standin`` admin endpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ASSET = "github_users"
LOCATION = "gh_assets"
REPOSITORY = "__repository__"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
BACKFILL_TAG = "dagster/backfill"
TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

T = TypeVar("T")


# -- polling ---------------------------------------------------------------------------------


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    state: Callable[[], object] | None = None,
    interval: float = 1.0,
) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds.

    The failure message says what was awaited and, from ``state()``, what was seen last.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            seen = ""
            if state is not None:
                try:
                    seen = f"\nlast state: {_pretty(state())}"
                except Exception as error:  # the message must still come out
                    seen = f"\n(reading the state failed: {error!r})"
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(interval)


def _pretty(value: object) -> str:
    try:
        return json.dumps(value, indent=1, sort_keys=True, default=str)[:6000]
    except TypeError:
        return repr(value)[:6000]


# -- the webserver's GraphQL API -------------------------------------------------------------

_ERROR_FIELDS = "__typename ... on Error { message }"

_LAUNCH_BACKFILL = f"""
mutation Launch($params: LaunchBackfillParams!) {{
  launchPartitionBackfill(backfillParams: $params) {{
    ... on LaunchBackfillSuccess {{ backfillId }}
    {_ERROR_FIELDS}
  }}
}}"""

_REEXECUTE_BACKFILL = f"""
mutation Reexecute($params: ReexecutionParams!) {{
  reexecutePartitionBackfill(reexecutionParams: $params) {{
    ... on LaunchBackfillSuccess {{ backfillId }}
    {_ERROR_FIELDS}
  }}
}}"""

_BACKFILL = f"""
query Backfill($id: String!) {{
  partitionBackfillOrError(backfillId: $id) {{
    ... on PartitionBackfill {{ id status numPartitions error {{ message }} }}
    {_ERROR_FIELDS}
  }}
}}"""

_PARTITIONS = f"""
query Partitions($path: [String!]!) {{
  assetNodeOrError(assetKey: {{path: $path}}) {{
    ... on AssetNode {{
      partitionKeys
      assetPartitionStatuses {{
        ... on DefaultPartitionStatuses {{
          materializedPartitions failedPartitions materializingPartitions
        }}
      }}
    }}
    {_ERROR_FIELDS}
  }}
}}"""

_RUNS = f"""
query Runs($filter: RunsFilter, $limit: Int) {{
  runsOrError(filter: $filter, limit: $limit) {{
    ... on Runs {{
      results {{
        runId status jobName creationTime startTime endTime
        tags {{ key value }}
      }}
    }}
    {_ERROR_FIELDS}
  }}
}}"""

_RUN_ERRORS = f"""
query RunErrors($runId: ID!) {{
  logsForRun(runId: $runId, limit: 1000) {{
    ... on EventConnection {{
      events {{
        __typename
        ... on MessageEvent {{ message }}
        ... on ErrorEvent {{ error {{ className message causes {{ className message }} }} }}
      }}
    }}
    {_ERROR_FIELDS}
  }}
}}"""

_WORKSPACE = f"""
query Workspace {{
  workspaceOrError {{
    ... on Workspace {{
      locationEntries {{
        name loadStatus
        locationOrLoadError {{ __typename ... on PythonError {{ message }} }}
      }}
    }}
    {_ERROR_FIELDS}
  }}
}}"""

_SENSOR = f"""
query Sensor($selector: SensorSelector!) {{
  sensorOrError(sensorSelector: $selector) {{
    ... on Sensor {{
      name
      sensorState {{
        status
        ticks(limit: 5) {{ timestamp status runIds skipReason error {{ message }} }}
      }}
    }}
    {_ERROR_FIELDS}
  }}
}}"""


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    job: str
    created: float
    started: float | None
    ended: float | None
    tags: Mapping[str, str]

    @property
    def partition(self) -> str | None:
        """The page of a page run: its ``dagster/partition`` tag, or the one page of a ranged
        run (a backfill under ``BackfillPolicy.multi_run`` tags a range even of one page);
        ``FIRST...LAST`` for a range of several pages; None for an unpartitioned run."""
        if PARTITION_TAG in self.tags:
            return self.tags[PARTITION_TAG]
        first, last = self.tags.get(RANGE_START_TAG), self.tags.get(RANGE_END_TAG)
        if first is None or last is None:
            return None
        return first if first == last else f"{first}...{last}"

    @classmethod
    def from_graphql(cls, row: Mapping[str, Any]) -> Run:
        return cls(
            run_id=row["runId"],
            status=row["status"],
            job=row["jobName"],
            created=row["creationTime"],
            started=row["startTime"],
            ended=row["endTime"],
            tags={tag["key"]: tag["value"] for tag in row["tags"]},
        )

    def brief(self) -> dict[str, object]:
        return {
            "run": self.run_id[:8],
            "status": self.status,
            "job": self.job,
            "partition": self.partition,
            "created": round(self.created, 1),
            "backfill": self.tags.get(BACKFILL_TAG),
        }


class GraphQLError(AssertionError):
    """The API answered with ``errors`` or with an error member of a result union."""


class GraphQL:
    """The few calls of the webserver's GraphQL API the tests need, as the UI makes them."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.url = f"{base_url}/graphql"
        self.timeout = timeout
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def query(self, text: str, **variables: object) -> dict[str, Any]:
        resp = self.session.post(
            self.url, json={"query": text, "variables": variables}, timeout=self.timeout
        )
        if resp.status_code != 200:
            raise GraphQLError(f"POST {self.url} -> {resp.status_code}: {resp.text[:2000]}")
        body = resp.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {_pretty(body['errors'])}")
        return body["data"]

    @staticmethod
    def _member(result: Mapping[str, Any], expected: str) -> Mapping[str, Any]:
        """The expected member of a result union; any other (an error) fails loudly."""
        if result.get("__typename") != expected:
            detail = result.get("message", "")
            raise GraphQLError(f"expected {expected}, got {result.get('__typename')}: {detail}")
        return result

    # the code location -----------------------------------------------------------------------
    def location_loaded(self, name: str = LOCATION) -> bool:
        """Whether the code location is loaded; raises with its error if it failed to load."""
        data = self._member(self.query(_WORKSPACE)["workspaceOrError"], "Workspace")
        for entry in data["locationEntries"]:
            if entry["name"] != name or entry["loadStatus"] != "LOADED":
                continue
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise GraphQLError(f"code location {name} failed to load: {loaded['message']}")
            return True
        return False

    # backfills -------------------------------------------------------------------------------
    def launch_backfill(self, asset: str = ASSET) -> str:
        params = {"assetSelection": [{"path": [asset]}], "allPartitions": True}
        data = self.query(_LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
        return self._member(data, "LaunchBackfillSuccess")["backfillId"]

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        params = {"parentRunId": backfill_id, "strategy": strategy}
        data = self.query(_REEXECUTE_BACKFILL, params=params)["reexecutePartitionBackfill"]
        return self._member(data, "LaunchBackfillSuccess")["backfillId"]

    def backfill(self, backfill_id: str) -> Mapping[str, Any]:
        data = self.query(_BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        return self._member(data, "PartitionBackfill")

    def backfill_status(self, backfill_id: str) -> str:
        return self.backfill(backfill_id)["status"]

    # assets ----------------------------------------------------------------------------------
    def partitions(self, asset: str = ASSET) -> dict[str, list[str]]:
        """``keys`` and the materialized/failed/materializing partitions of ``asset``."""
        node = self._member(self.query(_PARTITIONS, path=[asset])["assetNodeOrError"], "AssetNode")
        statuses = node.get("assetPartitionStatuses") or {}
        return {
            "keys": list(node.get("partitionKeys") or []),
            "materialized": sorted(statuses.get("materializedPartitions", [])),
            "failed": sorted(statuses.get("failedPartitions", [])),
            "materializing": sorted(statuses.get("materializingPartitions", [])),
        }

    # runs ------------------------------------------------------------------------------------
    def runs(
        self,
        *,
        job: str | None = None,
        tags: Mapping[str, str] | None = None,
        statuses: list[str] | None = None,
        created_after: float | None = None,
        limit: int = 500,
    ) -> list[Run]:
        """Runs matching the filter, oldest first."""
        run_filter: dict[str, object] = {}
        if job:
            run_filter["pipelineName"] = job
        if tags:
            run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if statuses:
            run_filter["statuses"] = statuses
        if created_after is not None:
            run_filter["createdAfter"] = created_after
        data = self._member(
            self.query(_RUNS, filter=run_filter, limit=limit)["runsOrError"], "Runs"
        )
        return sorted((Run.from_graphql(row) for row in data["results"]), key=lambda r: r.created)

    def run_events(self, run_id: str) -> list[Mapping[str, Any]]:
        """A run's events: ``__typename``, ``message`` and, for errors, ``error``."""
        data = self.query(_RUN_ERRORS, runId=run_id)["logsForRun"]
        return self._member(data, "EventConnection")["events"]

    def run_error_messages(self, run_id: str) -> list[str]:
        """Every error message (and its causes) and failure message logged by a run."""
        messages: list[str] = []
        for event in self.run_events(run_id):
            if not event["__typename"].endswith("FailureEvent"):
                continue
            if event.get("message"):
                messages.append(event["message"])
            error = event.get("error")
            if error:
                messages.append(f"{error['className']}: {error['message']}")
                messages += [f"{c['className']}: {c['message']}" for c in error["causes"]]
        return messages

    # sensors ---------------------------------------------------------------------------------
    def sensor(self, name: str) -> Mapping[str, Any]:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }
        data = self.query(_SENSOR, selector=selector)["sensorOrError"]
        return self._member(data, "Sensor")


# -- the GitHub stand-in's admin endpoints ---------------------------------------------------


class Standin:
    """Steers the stand-in process over HTTP (``/_standin/...``); reads its ground truth."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, body: object | None = None, **params) -> Any:
        resp = self.session.request(
            method, f"{self.url}/_standin/{path}", json=body, params=params or None, timeout=30
        )
        if resp.status_code != 200:
            raise AssertionError(f"{method} /_standin/{path} -> {resp.status_code}: {resp.text}")
        return resp.json()

    def fail_ids(self, *ranges: tuple[int, int]) -> dict[str, Any]:
        return self._call("POST", "faults", {"fail_ids": [list(r) for r in ranges]})

    def heal(self) -> dict[str, Any]:
        return self._call("POST", "heal", {})

    def rate_limit(self, limit: int, window: float, *, reset: bool = True) -> dict[str, Any]:
        return self._call("POST", "rate-limit", {"limit": limit, "window": window, "reset": reset})

    def update_user(self, user_id: int, **changes: object) -> dict[str, Any]:
        return self._call("POST", f"users/{user_id}", changes)

    def users(self, first: int, last: int) -> list[dict[str, Any]]:
        """Ground truth: what a crawl of IDs ``first..last`` must store."""
        return self._call("GET", "users", first=first, last=last)

    def state(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def reset_stats(self) -> dict[str, Any]:
        return self._call("POST", "reset-stats", {})

    def spend(self, count: int, user_id: int = 1) -> requests.Response:
        """Spend ``count`` calls of the anonymous budget from this machine's IP, as any other
        anonymous client on it would (``GET /user/{id}`` without ETag); the last answer."""
        resp = None
        for _ in range(count):
            resp = self.session.get(f"{self.url}/user/{user_id}", timeout=30)
            if resp.status_code != 200:
                raise AssertionError(f"GET /user/{user_id} -> {resp.status_code}: {resp.text}")
        assert resp is not None
        return resp


# -- processes -------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of a live process, from /proc; None once gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[2])


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> process group."""
    table = {pid: stat for pid in _all_pids() if (stat := _proc_stat(pid))}
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (_, ppid, pgid) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = pgid
                frontier.append(pid)
    return found


def live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run: ``os.killpg(pgid, 0)`` must raise
    ProcessLookupError once none is left; zombies waiting for a reaper do not count."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:  # pragma: no cover - a group we may not signal is not ours
        return []
    return [
        pid
        for pid in _all_pids()
        if (stat := _proc_stat(pid)) and stat[2] == pgid and stat[0] not in ("Z", "X")
    ]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_groups_gone(groups: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        alive = {pgid for pgid in groups if live_members(pgid)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@dataclass
class Deployment:
    """The running ``gh-assets dev``: its URLs, processes and log."""

    process: subprocess.Popen
    url: str  # the webserver, e.g. http://127.0.0.1:PORT
    log_path: Path
    groups: set[int]  # process groups seen under gh-assets (its own and dagster dev's)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def remember_groups(self) -> None:
        """Record the process groups of every process under gh-assets while they are alive,
        so they can be stopped even if gh-assets itself dies first."""
        self.groups |= set(descendants(self.process.pid).values())


def stop_deployment(deployment: Deployment, grace: float = 20.0) -> None:
    """SIGTERM gh-assets' group, wait ``grace``, SIGKILL it; then make sure every group it
    started (``dagster dev`` runs in its own) is gone too. Raises if any process survives."""
    process = deployment.process
    with contextlib.suppress(Exception):
        deployment.remember_groups()
    own = process.pid  # started with start_new_session: its pid is its group
    _signal_group(own, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(own, signal.SIGKILL)
        process.wait(timeout=10)
    others = deployment.groups - {own}
    alive = _wait_groups_gone(others, timeout=5.0)
    for pgid in alive:  # gh-assets did not stop them (it was killed): stop them here
        _signal_group(pgid, signal.SIGTERM)
    alive = _wait_groups_gone(alive, timeout=10.0)
    for pgid in alive:
        _signal_group(pgid, signal.SIGKILL)
    survivors = _wait_groups_gone(deployment.groups | {own}, timeout=10.0)
    if survivors:
        detail = {pgid: live_members(pgid) for pgid in survivors}
        raise AssertionError(f"processes survived the deployment's stop: {detail}")


@contextlib.contextmanager
def running_deployment(
    log_dir: Path, env: Mapping[str, str], *, port: int, ready_timeout: float = 120.0
) -> Iterator[Deployment]:
    """``gh-assets dev --port PORT`` from the repository root, until ``/server_info`` answers;
    always stopped on exit, with every process it started."""
    log_path = log_dir / "gh-assets-dev.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "gh-assets"), "dev", "--port", str(port)],
            cwd=REPO,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deployment = Deployment(process, f"http://127.0.0.1:{port}", log_path, {process.pid})
    try:
        deadline = time.monotonic() + ready_timeout
        while not _answers(f"{deployment.url}/server_info"):
            deployment.remember_groups()
            if process.poll() is not None:
                raise AssertionError(
                    f"gh-assets dev exited with {process.returncode}; log tail:\n"
                    f"{deployment.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the webserver did not answer /server_info in {ready_timeout:.0f} s; "
                    f"log tail:\n{deployment.log_tail()}"
                )
            time.sleep(0.5)
        deployment.remember_groups()
        yield deployment
    finally:
        stop_deployment(deployment)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False
