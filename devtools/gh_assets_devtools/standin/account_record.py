"""What each account did, kept for tests to assert on (``StandinServer.accounts_report``).

A rate-budget governor is judged by what reached GitHub: how many requests each identity sent,
how many were refused and by which limit, how many were in flight at once, and when each one
arrived, so a test can check every rolling minute itself rather than trust a counter. Arrival
times are ``time.time()`` floats; the newest ``MAX_ARRIVALS`` per account are kept.
"""

from __future__ import annotations

from collections import deque
from typing import Any

MAX_ARRIVALS = 200_000  # per account: ~20 MB at most, more than any test sends


class AccountRecord:
    """One account's counters, arrivals and secondary-limit blocks (the caller locks)."""

    def __init__(self) -> None:
        self.in_flight = 0  # live, so not cleared: requests being answered now
        self.clear()

    def clear(self) -> None:
        self.requests = {"rest": 0, "graphql": 0}  # answered: let through the secondary limits
        self.primary_refusals = 0
        self.secondary_refusals = 0
        self.peak_in_flight = self.in_flight
        self.arrivals: deque[list[Any]] = deque(maxlen=MAX_ARRIVALS)  # [at, kind, refused]
        self.arrivals_dropped = 0
        self.blocks: list[list[Any]] = []  # [start, end, requests that arrived during it]

    def arrive(self, at: float, kind: str) -> list[Any]:
        """Note a request's arrival; the entry is updated in place if it is refused."""
        if len(self.arrivals) == MAX_ARRIVALS:
            self.arrivals_dropped += 1
        arrival = [at, kind, None]
        self.arrivals.append(arrival)
        return arrival

    def admitted(self, kind: str) -> None:
        self.requests[kind] += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def report(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "primary_refusals": self.primary_refusals,
            "secondary_refusals": self.secondary_refusals,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "arrivals": [list(a) for a in self.arrivals],
            "arrivals_dropped": self.arrivals_dropped,
            "blocks": [{"start": s, "end": e, "arrivals": n} for s, e, n in self.blocks],
        }
