"""The assets run in-process (``dg.materialize``) and what a run tells: a page crawled, the
analysis, one page run on a throwaway instance; the checks' verdicts, a page's attempts and its
one-line failure. Shared by the operations', the stored faults', the cluster's and the
configuration faults' tests."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster import DagsterEventType

from gh_assets.defs.analysis.frame import github_users_frame
from gh_assets.defs.analysis.frame_checks import frame_checks
from gh_assets.defs.analysis.summary import github_user_summary, summary_checks
from gh_assets.partitions import PageWindow, add_missing_pages

from .conftest import github_users

ASSETS = [github_users, github_users_frame, github_user_summary, *frame_checks, *summary_checks]
FIRST = PageWindow.number(0, 100).key


def crawl(
    instance: dg.DagsterInstance, resources: dict[str, Any], key: str
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS, selection=[github_users], partition_key=key, instance=instance,
        resources=resources, raise_on_error=False,
    )  # fmt: skip


def analyse(instance: dg.DagsterInstance, resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS, selection=dg.AssetSelection.assets(github_users_frame, github_user_summary),
        instance=instance, resources=resources, raise_on_error=False,
    )  # fmt: skip


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def run_page(resources: dict[str, Any], pages: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    """Page ``FIRST`` of ``pages`` run once on an instance of its own."""
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, [FIRST])
        return dg.materialize(
            [pages], partition_key=FIRST, instance=instance, resources=resources,
            raise_on_error=False,
        )  # fmt: skip


def attempts(result: dg.ExecuteInProcessResult) -> int:
    restarts = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_RESTARTED]
    return 1 + len(restarts)


def failure_line(result: dg.ExecuteInProcessResult) -> str:
    """The failed page's description (what the UI and ``gh-assets demo`` show), one line, with
    no underlying traceback chained to it."""
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    while error.cause is not None:  # a retried step: RetryRequestedFromPolicy, then the Failure
        error = error.cause
    assert error.cls_name == "Failure"
    description = failure.step_failure_data.user_failure_data.description
    assert "\n" not in description
    return description
