"""The at-scale benchmark's figures and notes: each step's rows, and from the backfills' cost per
run and per page, the page widths and pages per run that keep a whole-GitHub crawl within the
targets.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
from collections.abc import Mapping
from typing import Any

from bench.at_scale_deployment import SENSORS
from bench.at_scale_steps import PAGES_PER_RUN, SUBSET_EVENTS, Submission
from bench.figures import Section

GITHUB_IDS = 250_000_000
TICK_TARGET, STATUS_TARGET, BACKFILL_TARGET = 5.0, 3.0, 600.0  # seconds (issue 13)
# Page widths tried, in IDs: each divides 100,000, so a page lies in one block of the key schema.
WIDTHS = (2_500, 5_000, 10_000, 20_000, 25_000, 50_000, 100_000)
PER_RUN_CHOICES = (25, 50, 100, 200, 250, 500)  # pages per run tried


def add_figures(section: Section, m: Mapping[str, Any]) -> None:
    pages = m["pages"]
    n = f"{pages:,}"
    section.add("register.seconds", f"register {n} pages: add_missing_pages (chunks of 5,000)",
                "s", m["register"])  # fmt: skip
    one_seconds, one_error = m["one_call"]
    if one_error is None:
        section.add("register.one_call_seconds", f"register {n} pages: one call", "s",
                    one_seconds)  # fmt: skip
    else:
        section.notes.append(f"One call of {n} keys on PostgreSQL failed: {one_error}")
    section.add("register.sqlite_seconds", f"register {n} pages on SQLite (chunks of 5,000)",
                "s", m["sqlite_chunked"])  # fmt: skip
    sqlite_seconds, sqlite_error = m["sqlite_one_call"]
    section.notes.append(
        f"One add_dynamic_partitions call of {n} keys on SQLite {sqlite3.sqlite_version} "
        f"(its variable limit depends on the build: chunks are safe everywhere): "
        + (f"fails after {sqlite_seconds:.1f} s ({sqlite_error})" if sqlite_error
           else f"succeeded in {sqlite_seconds:.1f} s")
    )  # fmt: skip
    section.add("read_keys.seconds", f"read the {n} keys back (get_dynamic_partitions)", "s",
                m["read_keys"], digits=2)  # fmt: skip
    section.details["bookkeeping_write_seconds"] = round(m["bookkeeping"], 2)

    for name in SENSORS:
        section.add(f"tick.{name}", f"one tick of {name}", "s",
                    [t.seconds for t in m["ticks_idle"][name]], digits=2)  # fmt: skip
    section.add("status.seconds", "partition status of github_users (the UI's query)", "s",
                m["status_idle"], digits=2)  # fmt: skip

    b: Submission = m["backfill"]
    what = f"backfill of {n} pages, {PAGES_PER_RUN}/run ({b.expected:,} runs)"
    section.add("backfill.launch_seconds", f"{what}: launchPartitionBackfill", "s", b.launch,
                digits=2)  # fmt: skip
    section.add("backfill.pickup_seconds", f"{what}: daemon start -> first run", "s", b.pickup)
    section.add("backfill.run_seconds", f"{what}: daemon's seconds per run created", "s",
                b.per_run, digits=3)  # fmt: skip
    section.add("backfill.runs_in_window", f"{what}: runs queued in {b.window:.0f} s", "runs",
                b.runs, digits=0)  # fmt: skip
    label = "launch -> all runs queued" if b.complete else "launch -> all queued (projected)"
    section.add("backfill.seconds", f"{what}: {label}", "s", b.seconds)
    c: Submission = m["subset"]
    section.add("subset.run_seconds",
                f"the same, one planned event per run ({SUBSET_EVENTS}): s per run",
                "s", c.per_run, digits=3)  # fmt: skip
    label = "launch -> all runs queued" if c.complete else "launch -> all queued (projected)"
    section.add("subset.seconds", f"the same, one planned event per run: {label}", "s",
                c.seconds)  # fmt: skip
    for name, found in (("backfill", b), ("subset", c)):
        section.details[name] = {
            "backfill_id": found.backfill_id, "planned_events": found.planned,
            "runs_needed": found.expected, "runs_created": found.runs,
            "runs_queued": found.queued, "complete": found.complete, "window_s": found.window,
            "submit_s": round(found.submit, 2),
            "seconds_per_run_first_and_last_third": [round(x, 3) for x in found.thirds],
        }  # fmt: skip

    queued_runs = m["queued_runs"]
    materializing = statistics.median(found for _, found in m["status_queued"])
    state = f"{queued_runs:,} runs queued, {materializing:,.0f} pages materializing"
    for name in SENSORS:
        section.add(f"tick_queued.{name}", f"one tick of {name}, {state}", "s",
                    [t.seconds for t in m["ticks_queued"][name]], digits=2)  # fmt: skip
    section.add("status_queued.seconds", f"partition status, {state}", "s",
                [seconds for seconds, _ in m["status_queued"]], digits=2)  # fmt: skip
    section.details["ticks"] = {
        phase: {
            name: [{"seconds": round(t.seconds, 3), "status": t.status, "runs": t.runs,
                    "skip_reason": t.skip_reason} for t in ticks]
            for name, ticks in m[phase].items()
        }
        for phase in ("ticks_idle", "ticks_queued")
    }  # fmt: skip
    _advice(section, m)


def submission_seconds(pages: int, per_run: int, run_cost: float, page_cost: float) -> float:
    """Seconds the backfill daemon takes to queue ``pages`` pages, ``per_run`` a run."""
    return math.ceil(pages / per_run) * run_cost + pages * page_cost


def _advice(section: Section, m: Mapping[str, Any]) -> None:
    """Notes: where Dagster is the limit, and the page widths and pages per run that keep a
    whole-GitHub crawl within the targets."""
    pages = m["pages"]
    b, c = m["backfill"], m["subset"]
    # Per run, the same fixed work either way; per page, one planned event (stored over a
    # connection of its own) that Dagster's switch folds into one per run.
    run_cost = min(c.per_run, b.per_run)
    page_cost = max(0.0, b.per_run - run_cost) / (PAGES_PER_RUN - 1)
    early, late = b.thirds
    section.details["model"] = {"run_cost_s": run_cost, "page_cost_s": page_cost}
    section.notes.append(
        f"Dagster is the limit of the backfill, not the project's code: its daemon creates and "
        f"queues a run of {PAGES_PER_RUN} pages in {b.per_run:.2f} s ({early:.2f} s in the "
        f"first third of the runs, {late:.2f} s in the last), {run_cost:.2f} s per run and "
        f"{page_cost * 1000:.0f} ms per page. Per run it resolves the run's page range by "
        f"reading every registered page key ({m['read_keys']:.2f} s for {pages:,}), once for "
        f"the asset and again for each of its checks' planned events; per page it stores one "
        f"ASSET_MATERIALIZATION_PLANNED event, and each statement opens a PostgreSQL "
        f"connection of its own (dagster-postgres pools none outside the webserver). "
        f"{SUBSET_EVENTS}=true on the daemon stores one planned event per run instead "
        f"({c.per_run:.2f} s a run), but then, says Dagster's source "
        f"(dagster/_core/storage/event_log/base.py), a failed run's pages are not marked failed."
    )
    tick = max(section.figure(f"{phase}.{sensor}").median
               for phase in ("tick", "tick_queued") for sensor in SENSORS)  # fmt: skip
    status = max(section.figure(key).median for key in ("status.seconds", "status_queued.seconds"))
    section.notes.append(
        f"At {pages:,} pages the slowest sensor tick took {tick:.2f} s (target 5 s) and the "
        f"partition status {status:.2f} s (3 s)."
    )
    # Fewer registered pages make a run cheaper (fewer keys to read): the cost per run measured
    # here bounds it from above for any crawl of at most as many pages.
    within = tick <= TICK_TARGET and status <= STATUS_TARGET
    if not within:
        section.notes.append(
            f"The sensor ticks or the partition status miss their targets at {pages:,} pages: "
            f"a whole-GitHub crawl needs fewer, wider pages than measured here."
        )
    plans = []
    for subset in (False, True):
        for width in WIDTHS:
            crawl = math.ceil(GITHUB_IDS / width)
            if crawl > pages or not within:
                continue
            cost = 0.0 if subset else page_cost
            per_run = next((k for k in PER_RUN_CHOICES if submission_seconds(
                crawl, k, run_cost, cost) <= BACKFILL_TARGET), None)  # fmt: skip
            if per_run is not None:
                seconds = submission_seconds(crawl, per_run, run_cost, cost)
                plans.append((subset, width, crawl, per_run, seconds))
    section.details["plans"] = [
        {"subset_events": s, "page_width": w, "pages": p, "pages_per_run": k, "queue_s_at_most": q}
        for s, w, p, k, q in plans
    ]
    for subset in (False, True):
        found = [plan for plan in plans if plan[0] is subset][:3]
        how = f"with {SUBSET_EVENTS}=true" if subset else "as configured (a planned event a page)"
        if not found:
            section.notes.append(f"Whole GitHub {how}: no page width of the ones tried fits.")
            continue
        options = "; ".join(
            f"GH_ASSETS_PAGE_SIZE={width} ({crawl:,} pages) with GH_ASSETS_PAGES_PER_RUN>={per} "
            f"(<= {seconds:.0f} s)"
            for _, width, crawl, per, seconds in found
        )
        section.notes.append(
            f"Whole GitHub ({GITHUB_IDS / 1e6:.0f} M IDs) {how}, every run queued within 10 "
            f"minutes (an upper bound from these costs): {options}."
        )
