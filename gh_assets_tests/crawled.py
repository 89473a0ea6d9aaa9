"""What a crawl must store and what it stored: ``truth`` from the stand-in's data, ``stored`` read
back from Redis, both over the given windows and on the fields the stand-in's users carry."""

from __future__ import annotations

from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset
from gh_assets_devtools.standin.data import STORED_FIELDS

WINDOW = PageWindow(101, 200)


def truth(dataset: Dataset, *windows: PageWindow) -> dict[int, dict[str, str]]:
    """What Redis must hold for ``windows``, straight from the stand-in's data."""
    return {i: u for w in windows for i, u in dataset.truth(w.first_id, w.last_id).items()}


def stored(store: RedisStore, *windows: PageWindow) -> dict[int, dict[str, str]]:
    """The users the pages of ``windows`` index, on ``STORED_FIELDS`` (id, login, type and
    ``user_fields.DETAILS``)."""
    members = [m for w in windows for m in store.page_members(w.key)]
    return {
        i: {k: v for k, v in h.items() if k in STORED_FIELDS}
        for i, h in store.read_users(members).items()
    }
