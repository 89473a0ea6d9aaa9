"""Asset checks: each stored page is whole and consistent, and the frame agrees with the pages."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from gh_assets.partitions import PageWindow
from gh_assets.resources import RedisResource
from gh_assets.storage import COUNTERS, RedisStore

PAGE_CHECKS = (
    dg.AssetCheckSpec(
        "counters_valid",
        asset="github_users",
        description="Every user hash of the page has the four counters as integers >= 0.",
    ),
    dg.AssetCheckSpec(
        "users_accounted_for",
        asset="github_users",
        description="Users listed = users written + users gone, for every page of the run.",
    ),
    dg.AssetCheckSpec(
        "index_matches_hashes",
        asset="github_users",
        description="The page's member set equals the stored ids of its ID window.",
    ),
)


def audit_pages(store: RedisStore, windows: Sequence[PageWindow]) -> list[dg.AssetCheckResult]:
    """Read back what the run wrote and grade it; one result per check over all its pages."""
    bad_counters: dict[str, list[int]] = {}
    unaccounted: dict[str, str] = {}
    mismatched: dict[str, str] = {}
    for window in windows:
        page = window.key
        members = store.page_members(page)
        for user_id, values in store.read_counters(members).items():
            if not all(value is not None and value.isdigit() for value in values):
                bad_counters.setdefault(page, []).append(user_id)
        meta = store.page_meta(page)
        listed, users, gone = (int(meta.get(k, -1)) for k in ("listed", "users", "gone"))
        if listed != users + gone or users != len(members):
            unaccounted[page] = (
                f"listed {listed}, written {users} ({len(members)} stored), gone {gone}"
            )
        indexed = store.ids_between(window.first_id, window.last_id)
        if indexed != members:
            mismatched[page] = (
                f"{len(members - indexed)} members without a hash, "
                f"{len(indexed - members)} hashes outside the index"
            )
    pages = {"pages": len(windows)}
    return [
        dg.AssetCheckResult(
            check_name="counters_valid",
            passed=not bad_counters,
            metadata=pages | {"invalid_users": str(bad_counters)[:1000]} if bad_counters else pages,
        ),
        dg.AssetCheckResult(
            check_name="users_accounted_for",
            passed=not unaccounted,
            metadata=pages | {"pages_off": str(unaccounted)[:1000]} if unaccounted else pages,
        ),
        dg.AssetCheckResult(
            check_name="index_matches_hashes",
            passed=not mismatched,
            metadata=pages | {"pages_off": str(mismatched)[:1000]} if mismatched else pages,
        ),
    ]


@dg.asset_check(
    asset="github_users_frame",
    blocking=True,
    description="Ids and logins are unique: one row per account.",
)
def frame_ids_and_logins_unique(github_users_frame: pd.DataFrame) -> dg.AssetCheckResult:
    duplicate_ids = int(github_users_frame["id"].duplicated().sum())
    duplicate_logins = int(github_users_frame["login"].str.lower().duplicated().sum())
    return dg.AssetCheckResult(
        passed=duplicate_ids == 0 and duplicate_logins == 0,
        metadata={"duplicate_ids": duplicate_ids, "duplicate_logins": duplicate_logins},
    )


@dg.asset_check(
    asset="github_users_frame",
    blocking=True,
    description="No counter is null or negative.",
)
def frame_counters_complete(github_users_frame: pd.DataFrame) -> dg.AssetCheckResult:
    counters = github_users_frame[list(COUNTERS)]
    nulls = int(counters.isna().sum().sum())
    negatives = int((counters < 0).sum().sum())
    return dg.AssetCheckResult(
        passed=nulls == 0 and negatives == 0, metadata={"nulls": nulls, "negatives": negatives}
    )


@dg.asset_check(
    asset="github_users_frame",
    blocking=True,
    description="The frame has as many rows as the pages in Redis say they hold.",
)
def frame_rows_match_pages(
    github_users_frame: pd.DataFrame, redis: RedisResource
) -> dg.AssetCheckResult:
    expected = redis.get_store().page_user_total()
    return dg.AssetCheckResult(
        passed=len(github_users_frame) == expected,
        metadata={"rows": len(github_users_frame), "users_in_pages": expected},
    )


frame_checks = [frame_ids_and_logins_unique, frame_counters_complete, frame_rows_match_pages]
