"""The calls of the Dagster webserver's GraphQL API (``/graphql``, what the UI calls) that the
tests and the bench make: backfills, runs, partition statuses, sensors, the code location."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gh_assets_devtools.services import LocalClient, wait_for

if TYPE_CHECKING:
    from dagster import AssetKey

LOCATION = "gh_assets"  # workspace.yaml's location_name
REPOSITORY = "__repository__"  # what Dagster names a code location's one Definitions
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
BACKFILL_TAG = "dagster/backfill"
SENSOR_TAG = "dagster/sensor_name"
SUCCESSFUL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS"}
TERMINAL_BACKFILL = SUCCESSFUL_BACKFILL | {"COMPLETED_FAILED", "FAILED", "CANCELED"}

_ERROR = "__typename ... on Error { message }"

# A mutation that starts a backfill (a new one, or a re-execution): formatted with the
# mutation's field, its argument's name and its parameters' input type.
_START_BACKFILL = """
mutation StartBackfill($params: {params_type}!) {{
  {field}({argument}: $params) {{
    ... on LaunchBackfillSuccess {{ backfillId }}
    {error}
  }}
}}"""

_BACKFILL = f"""
query Backfill($id: String!) {{
  partitionBackfillOrError(backfillId: $id) {{
    ... on PartitionBackfill {{ id status numPartitions error {{ message }} }}
    {_ERROR}
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
    {_ERROR}
  }}
}}"""

_MATERIALIZATIONS = f"""
query Materializations($path: [String!]!, $limit: Int) {{
  assetOrError(assetKey: {{path: $path}}) {{
    ... on Asset {{ assetMaterializations(limit: $limit) {{ timestamp partition runId }} }}
    {_ERROR}
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
    {_ERROR}
  }}
}}"""

_RUN_EVENTS = f"""
query RunEvents($runId: ID!) {{
  logsForRun(runId: $runId, limit: 1000) {{
    ... on EventConnection {{
      events {{
        __typename
        ... on MessageEvent {{ message }}
        ... on ErrorEvent {{ error {{ className message causes {{ className message }} }} }}
      }}
    }}
    {_ERROR}
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
    {_ERROR}
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
    {_ERROR}
  }}
}}"""


class GraphQLError(RuntimeError):
    """The API answered with ``errors``, or with an error member of a result union."""


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str  # DagsterRunStatus's name: QUEUED, STARTED, SUCCESS, FAILURE, ...
    job: str
    created: float  # epoch seconds
    started: float | None
    ended: float | None
    tags: Mapping[str, str]

    @property
    def partition(self) -> str | None:
        """A page run's page: its partition tag, or its range's one page (a multi-run backfill
        tags a range even of one page); ``FIRST...LAST`` for several; None if unpartitioned."""
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
        """The fields a failure message shows."""
        return {
            "run": self.run_id[:8],
            "status": self.status,
            "job": self.job,
            "partition": self.partition,
            "created": round(self.created, 1),
            "backfill": self.tags.get(BACKFILL_TAG),
        }


class DagsterGraphQL(LocalClient):
    """The GraphQL API of the webserver at ``base_url``."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        super().__init__(base_url, timeout)

    def query(self, text: str, **variables: object) -> dict[str, Any]:
        resp = self.call("POST", "/graphql", {"query": text, "variables": variables})
        if resp.status_code != 200:
            raise GraphQLError(f"POST /graphql -> {resp.status_code}: {resp.text[:2000]}")
        body = resp.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    @staticmethod
    def _member(result: Mapping[str, Any], expected: str) -> Mapping[str, Any]:
        """The expected member of a result union; any other (an error) raises."""
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
    def launch_backfill(self, asset: AssetKey, partitions: Sequence[str] | None = None) -> str:
        """A backfill of ``partitions`` of ``asset`` (all of them when None); its id."""
        params: dict[str, object] = {"assetSelection": [{"path": asset.path}]}
        if partitions is None:
            params["allPartitions"] = True
        else:
            params["partitionNames"] = list(partitions)
        return self._start_backfill(
            "launchPartitionBackfill", "backfillParams", "LaunchBackfillParams", params
        )

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        params = {"parentRunId": backfill_id, "strategy": strategy}
        return self._start_backfill(
            "reexecutePartitionBackfill", "reexecutionParams", "ReexecutionParams", params
        )

    def _start_backfill(
        self, field: str, argument: str, params_type: str, params: Mapping[str, object]
    ) -> str:
        """Run the mutation ``field`` that starts a backfill; the backfill's id."""
        query = _START_BACKFILL.format(
            field=field, argument=argument, params_type=params_type, error=_ERROR
        )
        data = self.query(query, params=params)[field]
        return self._member(data, "LaunchBackfillSuccess")["backfillId"]

    def backfill(self, backfill_id: str) -> Mapping[str, Any]:
        data = self.query(_BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        return self._member(data, "PartitionBackfill")

    def wait_backfill(
        self,
        backfill_id: str,
        *,
        timeout: float,
        interval: float = 1.0,
        state: Callable[[], object] | None = None,
    ) -> str:
        """Poll until the backfill is over; its final status (see TERMINAL_BACKFILL)."""

        def over() -> str | None:
            status = self.backfill(backfill_id)["status"]
            return status if status in TERMINAL_BACKFILL else None

        return wait_for(
            over,
            timeout=timeout,
            what=f"backfill {backfill_id} to finish",
            interval=interval,
            state=state or (lambda: self.backfill(backfill_id)),
        )

    def backfill_runs(self, backfill_id: str) -> list[Run]:
        return self.runs(tags={BACKFILL_TAG: backfill_id})

    # assets ----------------------------------------------------------------------------------
    def partitions(self, asset: AssetKey) -> dict[str, list[str]]:
        """``keys`` and the materialized, failed and materializing partitions of ``asset``."""
        data = self.query(_PARTITIONS, path=asset.path)["assetNodeOrError"]
        node = self._member(data, "AssetNode")
        statuses = node.get("assetPartitionStatuses") or {}
        return {
            "keys": list(node.get("partitionKeys") or []),
            "materialized": sorted(statuses.get("materializedPartitions") or []),
            "failed": sorted(statuses.get("failedPartitions") or []),
            "materializing": sorted(statuses.get("materializingPartitions") or []),
        }

    def last_materialized(self, asset: AssetKey) -> float | None:
        """When ``asset`` (any partition) was last materialized, epoch seconds; None if never."""
        data = self.query(_MATERIALIZATIONS, path=asset.path, limit=1)["assetOrError"]
        events = self._member(data, "Asset")["assetMaterializations"]
        return int(events[0]["timestamp"]) / 1000 if events else None

    # runs ------------------------------------------------------------------------------------
    def runs(
        self,
        *,
        job: str | None = None,
        tags: Mapping[str, str] | None = None,
        statuses: Sequence[str] | None = None,
        created_after: float | None = None,
        limit: int = 1000,
    ) -> list[Run]:
        """Runs matching the filter, oldest first."""
        run_filter: dict[str, object] = {}
        if job:
            run_filter["pipelineName"] = job
        if tags:
            run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if statuses:
            run_filter["statuses"] = list(statuses)
        if created_after is not None:
            run_filter["createdAfter"] = created_after
        data = self.query(_RUNS, filter=run_filter, limit=limit)["runsOrError"]
        rows = self._member(data, "Runs")["results"]
        return sorted(map(Run.from_graphql, rows), key=lambda run: run.created)

    def run_events(self, run_id: str) -> list[Mapping[str, Any]]:
        """A run's events: ``__typename``, ``message`` and, for errors, ``error``."""
        data = self.query(_RUN_EVENTS, runId=run_id)["logsForRun"]
        return self._member(data, "EventConnection")["events"]

    def run_error_messages(self, run_id: str) -> list[str]:
        """Every failure message a run logged, with its errors and their causes."""
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
        """A sensor's status and its last 5 ticks."""
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }
        data = self.query(_SENSOR, selector=selector)["sensorOrError"]
        return self._member(data, "Sensor")
