"""The stand-in's counters of API requests: by status, by route, and the most answered at once
(what a test reads to see how hard the client pressed)."""

import threading
from collections import Counter
from typing import Any

from gh_assets_devtools.standin import rest_api

GRAPHQL_PATH = "/graphql"


class RequestCounts:
    """Thread-safe: every connection's thread counts its own request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_status: Counter[str] = Counter()
        self._by_route: Counter[str] = Counter()
        self._in_flight = self._peak_in_flight = 0  # API requests being answered, and the most

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def answered(self, status: int, path: str) -> None:
        with self._lock:
            self._by_status[str(status)] += 1
            self._by_route[route_name(path)] += 1

    def report(self) -> dict[str, Any]:
        with self._lock:
            by_status, by_route = dict(self._by_status), dict(self._by_route)
            peak = self._peak_in_flight
        return {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_route": by_route,
            "peak_in_flight": peak,  # API requests answered at the same time, at most
        }

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._by_route.clear()
            self._peak_in_flight = self._in_flight


def route_name(path: str) -> str:
    """The route a request path counts under."""
    if path == "/users":
        return "list"
    if rest_api.USER_PATH.fullmatch(path) or rest_api.ID_PATH.fullmatch(path):
        return "user"
    if path == GRAPHQL_PATH:
        return "graphql"
    if path == "/user":
        return "authenticated_user"
    if path == "/app" or path.startswith("/app/"):
        return "app"
    return "rate_limit" if path == "/rate_limit" else "other"
