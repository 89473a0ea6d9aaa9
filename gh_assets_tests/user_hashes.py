"""User hashes with the counters the aggregates count, as a crawl stores them: the aggregates'
tests' material (test_aggregates, test_stored_aggregates)."""

from __future__ import annotations

from gh_assets.storage import COUNTERS

CREATED_2008 = 1199145600  # 2008-01-01T00:00:00Z


def account(
    user_id: int, kind: str = "User", created_at: int | None = 0, **counters: int
) -> dict[str, str]:
    """A user hash; ``created_at`` epoch seconds (default: about 35 days after the previous
    ID's, from 2008 on), None for a hash an older release wrote."""
    values = {name: 0 for name in COUNTERS} | counters
    if created_at is not None:
        values["created_at"] = created_at or CREATED_2008 + user_id * 3_000_000
    return {"id": str(user_id), "login": f"login{user_id}", "type": kind} | {
        name: str(value) for name, value in values.items()
    }
