"""The deployment the daemon and browser tests drive: ``gh-assets dev`` on four pages of 100 IDs,
crawling a stand-in of exactly those IDs (no frontier growth), its sensors every 5 seconds."""

from __future__ import annotations

import contextlib
from pathlib import Path

from gh_assets.partitions import PageWindow
from gh_assets_devtools.deployment import StandinDeployment, standin_deployment

PAGE_SIZE = 100
PAGE_COUNT = 4
PAGES = [PageWindow.number(k, PAGE_SIZE) for k in range(PAGE_COUNT)]
KEYS = [page.key for page in PAGES]
STANDIN_SIZE = PAGE_COUNT * PAGE_SIZE
# PAGES, registered by github_pages_sensor's first tick and no more; no page stale in a test.
SETTINGS = {
    "GH_ASSETS_PAGE_SIZE": PAGE_SIZE,
    "GH_ASSETS_PAGES": PAGE_COUNT,
    "GH_ASSETS_SENSOR_INTERVAL": 5,
    "GH_ASSETS_RECRAWL_AFTER": 3600,
}


def four_pages_deployed(
    folder: Path, redis_url: str, **settings: object
) -> contextlib.AbstractContextManager[StandinDeployment]:
    """``standin_deployment`` of PAGES with SETTINGS and ``settings`` (GH_ASSETS_*) besides."""
    return standin_deployment(
        folder, redis_url, standin_size=STANDIN_SIZE, pages=KEYS, **SETTINGS | settings
    )
