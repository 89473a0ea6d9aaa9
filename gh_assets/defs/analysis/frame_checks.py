"""The frame's checks: it agrees with the pages it was read from. Blocking: a failing one stops
github_user_summary from being recomputed in that run."""

import functools

import dagster as dg
import pandas as pd

from gh_assets.defs.analysis.frame import github_users_frame
from gh_assets.storage import COUNTERS, READ_REPORT, ReadReport, ascii_lower

# A failing frame check stops github_user_summary from being recomputed in that run.
_frame_check = functools.partial(dg.asset_check, asset=github_users_frame, blocking=True)


@_frame_check(description="Ids and logins are unique: one row per account.")
def frame_ids_and_logins_unique(github_users_frame: pd.DataFrame) -> dg.AssetCheckResult:
    duplicate_ids = int(github_users_frame["id"].duplicated().sum())
    # Lower-cased as the login index does: two logins it keeps apart are not duplicates.
    logins = github_users_frame["login"].map(ascii_lower)
    duplicate_logins = int(logins.duplicated().sum())
    return dg.AssetCheckResult(
        passed=duplicate_ids == 0 and duplicate_logins == 0,
        metadata={"duplicate_ids": duplicate_ids, "duplicate_logins": duplicate_logins},
    )


@_frame_check(description="No counter is null or negative.")
def frame_counters_complete(github_users_frame: pd.DataFrame) -> dg.AssetCheckResult:
    counters = github_users_frame[list(COUNTERS)]
    nulls = int(counters.isna().sum().sum())
    negatives = int((counters < 0).sum().sum())
    return dg.AssetCheckResult(
        passed=nulls == 0 and negatives == 0, metadata={"nulls": nulls, "negatives": negatives}
    )


@_frame_check(description="The frame has as many rows as the pages in Redis held when it was read.")
def frame_rows_match_pages(github_users_frame: pd.DataFrame) -> dg.AssetCheckResult:
    # The total was taken with the read's id snapshot: page runs since then change nothing here.
    report = _read_report(github_users_frame)
    rows, held = len(github_users_frame), report["pages_users"]
    deleted = report["deleted_during_read"]  # rows the pages held, deleted before they were read
    passed = rows + deleted == held
    description = f"{rows:,} rows{', as' if passed else ' but'} the pages hold {held:,} users"
    if deleted:
        description += f" ({deleted:,} deleted by page writes during the read)"
    return dg.AssetCheckResult(
        passed=passed,
        description=description,
        metadata={"rows": rows, "users_in_pages": held, "deleted_during_read": deleted},
    )


@_frame_check(description="Every indexed id had a hash with a login: the read left no user out.")
def frame_every_indexed_user_read(github_users_frame: pd.DataFrame) -> dg.AssetCheckResult:
    report = _read_report(github_users_frame)
    kinds = {"hash": ("no_hash", "no_hash_count"), "login": ("no_login", "no_login_count")}
    found = {kind: (report[ids], report[count]) for kind, (ids, count) in kinds.items()}
    left_out = sum(count for _, count in found.values())
    parts = [
        f"{count:,} without a {kind} ({_first_few(ids, count)})"
        for kind, (ids, count) in found.items()
        if count
    ]
    metadata: dict[str, int | str] = {}
    for kind, (ids, count) in found.items():
        metadata |= {f"no_{kind}_count": count, f"no_{kind}_ids": ", ".join(map(str, ids))}
    return dg.AssetCheckResult(
        passed=not left_out,
        description=f"{left_out:,} indexed users are not in the frame: {', '.join(parts)}"
        if left_out
        else f"all {report['indexed']:,} indexed users read",
        metadata=metadata,
    )


def _read_report(frame: pd.DataFrame) -> ReadReport:
    """What ``RedisStore.read_frame`` recorded on the frame (it survives pickling)."""
    if READ_REPORT not in frame.attrs:
        raise ValueError(
            f"the frame has no attrs[{READ_REPORT!r}]: it was not made by RedisStore.read_frame"
        )
    return frame.attrs[READ_REPORT]


def _first_few(ids: list[int], count: int) -> str:
    shown = ", ".join(map(str, ids)) + (", …" if count > len(ids) else "")
    return f"id{'s' if count > 1 else ''} {shown}"


frame_checks = [
    frame_ids_and_logins_unique,
    frame_counters_complete,
    frame_rows_match_pages,
    frame_every_indexed_user_read,
]
