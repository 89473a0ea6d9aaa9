"""Operational settings, read from the environment of the code location (see README)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

WEEK = 7 * 24 * 3600
ZERO_OK = {"GH_ASSETS_MAX_RATE_LIMIT_WAIT", "GH_ASSETS_PAGE_RETRIES", "GH_ASSETS_FRONTIER_INTERVAL"}


@dataclass(frozen=True)
class Settings:
    """Every ``GH_ASSETS_*`` knob of the crawl, with its default."""

    page_size: int = 100  # GH_ASSETS_PAGE_SIZE: user IDs per page (partition)
    pages: int = 10  # GH_ASSETS_PAGES: pages registered from ID 1 on
    max_pages: int = 100_000  # GH_ASSETS_MAX_PAGES: growth stops here (Dagster's advice)
    pages_per_run: int = 1  # GH_ASSETS_PAGES_PER_RUN: pages a backfill puts in one run
    recrawl_after: int = WEEK  # GH_ASSETS_RECRAWL_AFTER: seconds before a page is stale
    recrawl_batch: int = 10  # GH_ASSETS_RECRAWL_BATCH: pages a sensor or schedule tick requests
    sensor_interval: int = 60  # GH_ASSETS_SENSOR_INTERVAL: seconds between sensor ticks
    frontier_interval: int = 3600  # GH_ASSETS_FRONTIER_INTERVAL: seconds between growth probes
    max_rate_limit_wait: int = 90  # GH_ASSETS_MAX_RATE_LIMIT_WAIT: longest wait slept in a run
    page_retries: int = 2  # GH_ASSETS_PAGE_RETRIES: re-tries of a page run after a fault

    @classmethod
    def from_env(cls) -> Settings:
        values = {}
        for field in fields(cls):
            name = f"GH_ASSETS_{field.name.upper()}"
            raw = os.environ.get(name, "").strip()
            if raw:
                values[field.name] = _whole_number(name, raw, minimum=0 if name in ZERO_OK else 1)
        return cls(**values)


def _whole_number(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {raw!r}")
    return value
