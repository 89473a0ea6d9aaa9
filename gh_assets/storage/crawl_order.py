"""When a crawl of a page started, by Redis's clock: of two crawls of one page that overlap (a
backfill beside a sensor's run, a task delivered twice), the later-started one's data is kept,
whichever finishes last (``write_page.lua`` refuses the older write)."""

from __future__ import annotations

from datetime import UTC, datetime

from gh_assets.storage.connection import Connection

# TIME on the node holding the page's block (its key routes the call): the node whose script
# compares the start when the page is written, so every host of a crawl shares one clock.
_NOW = "local now = redis.call('TIME') return now[1] * 1000000 + now[2]"


def crawl_started(store: Connection, page: str) -> int:
    """Now, in microseconds since the epoch by the Redis holding ``page``: a crawl's start, for
    ``PageWrite.started``."""
    return int(store.client.eval(_NOW, 1, store.page_key(page)))


def started_at(micros: int | str) -> datetime:
    """A crawl's start as stored (``started`` of the page's bookkeeping), as a UTC time."""
    return datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
