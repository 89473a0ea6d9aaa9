"""A backfill driven over the webserver's GraphQL API as the scale-out tests (the native topology,
the compose stack) check it: launched, finished, one successful run a page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import AssetKey

    from gh_assets_devtools.dagster_graphql import DagsterGraphQL, Run


def backfill_succeeds(
    api: DagsterGraphQL,
    asset: AssetKey,
    keys: Sequence[str],
    *,
    timeout: float,
    state: Callable[..., object],
) -> list[Run]:
    """Backfill the sorted partition ``keys`` of ``asset``: its runs, each a success of one key.
    ``state(**extra)``: what the deployment shows, for the message when it does not."""
    backfill_id = api.launch_backfill(asset, keys)
    status = api.wait_backfill(backfill_id, timeout=timeout, state=state)
    assert status == "COMPLETED_SUCCESS", state(status=status)
    runs = api.backfill_runs(backfill_id)
    assert sorted(run.partition for run in runs) == list(keys), [r.brief() for r in runs]
    assert all(run.status == "SUCCESS" for run in runs), [r.brief() for r in runs]
    return runs
