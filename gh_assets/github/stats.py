"""Counting requests: per client (``RequestStats``) and per block of work (``request_tally``)."""

import contextvars
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from gh_assets.github.ratelimit import _int_header, _utc


@dataclass
class RequestStats:
    """Cumulative counters of one client, updated from all its threads."""

    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    rate_limit_remaining: int | None = None
    rate_limit_reset: datetime | None = None
    graphql_points: int = 0  # sum of rateLimit.cost over answered GraphQL queries
    graphql_remaining: int | None = None  # the GraphQL budget (its own; REST's is above)
    graphql_reset: datetime | None = None
    budget_wait: float = 0.0  # seconds requests waited for shared budget (the governor)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # not a field: keeps asdict() and copies working

    def _add(self, *, sent: int = 0, not_modified: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += sent
            self.not_modified += not_modified
            self.retries += retries

    def _observe(self, headers: Mapping[str, str]) -> None:
        """Remember the budget the latest answer reported; None when it reported none.

        GraphQL answers (``X-RateLimit-Resource: graphql``) report the separate points budget.
        """
        reset = _int_header(headers, "X-RateLimit-Reset")
        remaining = _int_header(headers, "X-RateLimit-Remaining")
        reset_at = None if reset is None else _utc(reset)
        with self._lock:
            if headers.get("X-RateLimit-Resource", "").strip().lower() == "graphql":
                self.graphql_remaining, self.graphql_reset = remaining, reset_at
            else:
                self.rate_limit_remaining, self.rate_limit_reset = remaining, reset_at

    def _waited(self, seconds: float) -> None:
        with self._lock:
            self.budget_wait += seconds

    def _graphql_cost(self, cost: int) -> None:
        with self._lock:
            self.graphql_points += cost


class RequestTally:
    """Requests sent inside one ``request_tally()`` block, from whatever thread of it.

    Client-wide ``RequestStats`` cannot say which page a request was for once pages overlap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.budget_wait = 0.0  # seconds its requests waited for shared budget, summed

    def _add(self) -> None:
        with self._lock:
            self.requests += 1

    def _waited(self, seconds: float) -> None:
        with self._lock:
            self.budget_wait += seconds


_TALLY: contextvars.ContextVar[RequestTally | None] = contextvars.ContextVar(
    "gh_assets_request_tally", default=None
)


@contextmanager
def request_tally() -> Iterator[RequestTally]:
    """Count every request (retries included) sent in this context: the client's worker threads
    run in a copy of the caller's context, so requests made for the caller are counted too."""
    tally = RequestTally()
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)
