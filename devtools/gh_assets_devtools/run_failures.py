"""A failed run of ``gh-assets demo`` told in one line, its full trace kept in a file: Dagster's
console prints some 70 lines of stack per failed page, which buried the pages that worked."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from gh_assets.settings import Settings
from gh_assets.storage import RedisStore

# The page runs' console shows nothing below CRITICAL: the command prints one line per page.
SILENT_RUN = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def cause(result: dg.ExecuteInProcessResult, node: str | None = None) -> str:
    """The root cause of ``result``'s failed step (of ``node`` when given), in one line: the
    asset's own ``dg.Failure`` description, else the innermost exception."""
    for event in result.get_step_failure_events():
        if node and event.node_name != node:
            continue
        failure = event.step_failure_data
        if failure.user_failure_data and failure.user_failure_data.description:
            return " ".join(failure.user_failure_data.description.split())
        error = failure.error
        while error.cause is not None:
            error = error.cause
        # format_exception_only: "module.Class: message", on one line here.
        return " ".join(error.message.split()) or error.cls_name
    return "the run failed before any step"


def keep_trace(result: dg.ExecuteInProcessResult, folder: Path) -> Path:
    """Write every error ``result``'s run met (retries included), with its stack and causes, to
    ``folder/run-<run id>.log``; return that file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{result.run_id}.log"
    parts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            parts.append(f"{event.event_type_value} {event.step_key or ''}\n{error.to_string()}")
    path.write_text("\n".join(parts) or "no error recorded\n")
    return path


def failure_line(result: dg.ExecuteInProcessResult, node: str | None, folder: Path) -> str:
    """``cause`` and where the full trace is."""
    return f"{cause(result, node)} (full trace: {keep_trace(result, folder)})"


def rerun_advice(settings: Settings, failed: list[str], total: int) -> str:
    """The demo's closing advice for its ``failed`` pages. Those waiting for GitHub's rate limit
    (``gh:deferred``) are said to wait until its end: stale_pages_sensor runs them then, and
    nothing sent before would be taken."""
    store = RedisStore.from_url(settings.redis_url, settings.key_prefix, block=settings.block)
    try:
        waiting = [at for page, at in store.deferred_pages().items() if page in failed]
    finally:
        store.close()
    listed = ",".join(failed)
    advice = f"\n{len(failed)} of {total} pages failed; the other pages are stored. "
    if waiting:
        advice += (
            f"{len(waiting)} of them wait for GitHub's rate limit until "
            f"{max(waiting):%Y-%m-%dT%H:%M:%SZ}: under make dev, stale_pages_sensor runs them "
            "then by itself, or re-run them after that time. "
        )
    return advice + (
        f"Re-run only the failed ones with:\n  make demo PAGES={listed}\n"
        f"(or .venv/bin/gh-assets demo --pages {listed})"
    )
