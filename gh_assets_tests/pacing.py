"""``most_in_window``: how a pace is measured, shared by the governor's and the shared budget's
tests."""

from __future__ import annotations


def most_in_window(times: list[float], window: float) -> int:
    """The most of ``times`` in any half-open window [t, t + window)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most
