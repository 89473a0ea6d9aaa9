"""What each stored page is checked for: whole and consistent, read back from Redis. Apart from
the page asset, so the notebook's ``explore`` names failing pages without the asset's code."""

from collections.abc import Sequence

from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore

# The page asset's checks: name -> what passing means.
PAGE_CHECKS = {
    "counters_valid": "Every user hash of the page has the four counters as integers >= 0.",
    "users_accounted_for": "Users listed = users written + users gone, for every page of the run.",
    "index_matches_hashes": "The page's member set equals the stored ids of its ID window.",
}


def page_findings(store: RedisStore, windows: Sequence[PageWindow]) -> dict[str, dict[str, str]]:
    """What each page check finds wrong, per check: page -> what is off (empty: all pass)."""
    findings: dict[str, dict[str, str]] = {name: {} for name in PAGE_CHECKS}
    for window in windows:
        page = window.key
        members = store.page_members(page)
        bad = [
            user_id
            for user_id, values in store.read_counters(members).items()
            if not all(value is not None and value.isdigit() for value in values)
        ]
        if bad:
            findings["counters_valid"][page] = f"invalid counters: users {sorted(bad)[:20]}"
        meta = store.page_meta(page)
        listed, users, gone = (int(meta.get(k, -1)) for k in ("listed", "users", "gone"))
        if listed != users + gone or users != len(members):
            findings["users_accounted_for"][page] = (
                f"listed {listed}, written {users} ({len(members)} stored), gone {gone}"
            )
        indexed = store.ids_between(window.first_id, window.last_id)
        if indexed != members:
            findings["index_matches_hashes"][page] = (
                f"{len(members - indexed)} members without a hash, "
                f"{len(indexed - members)} hashes outside the index"
            )
    return findings
