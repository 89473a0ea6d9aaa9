"""cProfile of one call, reduced to its top functions (for targets that are missed)."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = str(Path(__file__).resolve().parents[1])


def _where(path: str, line: int, name: str) -> str:
    short = path
    for marker in ("site-packages/", REPO + "/", "/lib/python3"):
        if marker in path:
            short = path.split(marker, 1)[1]
            break
    return f"{short}:{line}({name})" if line else name


def top_functions(profile: cProfile.Profile, limit: int = 12, key: str = "tottime") -> list[str]:
    """``"12.3% tottime 0.456 s cumtime 1.234 s 1000x file:line(function)"`` lines, heaviest
    first (``key``: ``tottime`` = time in the function itself, ``cumtime`` = with callees)."""
    stats = pstats.Stats(profile)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in rows.values()) or 1.0
    index = 2 if key == "tottime" else 3
    ranked = sorted(rows.items(), key=lambda item: item[1][index], reverse=True)[:limit]
    return [
        f"{100 * row[index] / total:5.1f}% tottime {row[2]:.3f} s cumtime {row[3]:.3f} s "
        f"{row[1]}x {_where(*func)}"
        for func, row in ranked
    ]


def profile_call(fn: Callable[[], Any], limit: int = 12) -> dict[str, list[str]]:
    """Run ``fn`` under cProfile: the top functions by own time and by cumulative time."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        fn()
    finally:
        profile.disable()
    return {
        "by_own_time": top_functions(profile, limit, "tottime"),
        "by_cumulative_time": top_functions(profile, limit, "cumtime"),
    }
