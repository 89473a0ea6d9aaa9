"""A page's partial aggregates (``gh:{b…}:page:{page}:agg`` and its value histograms), computed
with Python's exact integers before the page's write stores them (``schema``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from gh_assets.storage.schema import COUNTERS, HISTOGRAMS, PAGE_TOP, TIMES


def page_aggregates(
    users: Sequence[Mapping[str, str]],
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A page's partial aggregates as stored (``schema``): the ``:agg`` hash, each counter's
    value histogram and each time's histogram of UTC years (HISTOGRAMS order), decimal strings
    of Python integers (a sum of squares outgrows int64 and a Lua double). Empty for a page
    without users.

    A user listed twice counts once, as its last entry (what the page write stores).
    """
    latest = {user["id"]: user for user in users}
    if not latest:
        return {}, [{} for _ in HISTOGRAMS]
    accounts: Counter[str] = Counter()
    first: dict[str, int] = {}
    by_type: Counter[tuple[str, str]] = Counter()
    values: dict[str, list[int]] = {counter: [] for counter in COUNTERS}
    for user in latest.values():
        kind, user_id = user["type"], int(user["id"])
        accounts[kind] += 1
        first[kind] = min(first.get(kind, user_id), user_id)
        for counter in COUNTERS:
            value = int(user[counter])
            values[counter].append(value)
            by_type[counter, kind] += value
    agg = {"users": len(latest)}
    agg |= {f"type:{kind}": count for kind, count in accounts.items()}
    agg |= {f"first:{kind}": user_id for kind, user_id in first.items()}
    for counter, found in values.items():
        agg |= {
            f"{counter}:count": len(found),
            f"{counter}:sum": sum(found),
            f"{counter}:sumsq": sum(value * value for value in found),
            f"{counter}:min": min(found),
            f"{counter}:max": max(found),
        }
        agg |= {f"{counter}:sum:{kind}": by_type[counter, kind] for kind in accounts}
    top = sorted(latest.values(), key=lambda u: (-int(u["followers"]), int(u["id"])))[:PAGE_TOP]
    agg["top"] = json.dumps(
        [[str(int(u["id"])), u["login"], u["type"], str(int(u["followers"]))] for u in top]
    )
    for name in TIMES:  # a hash an older release wrote may lack it: not counted
        values[name] = [_year(user[name]) for user in latest.values() if name in user]
    histograms = [
        {str(value): str(count) for value, count in sorted(Counter(values[name]).items())}
        for name in HISTOGRAMS
    ]
    return {field: str(value) for field, value in agg.items()}, histograms


def _year(seconds: str) -> int:
    """The UTC year of stored epoch seconds (what the frame's ``.dt.year`` gives)."""
    return datetime.fromtimestamp(int(seconds), UTC).year
