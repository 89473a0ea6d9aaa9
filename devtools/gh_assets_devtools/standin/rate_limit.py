"""GitHub's primary rate limit as the stand-in enforces and reports it.

One ``RateLimiter`` per budget (REST calls, GraphQL points), the ``X-RateLimit-*`` and other
headers every API answer carries, the 403 an exhausted budget gets and the ``/rate_limit`` body:
the crawler's throttling is tested against exactly these.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from gh_assets_devtools.standin.http_server import Reply, json_reply

API_VERSION = "2022-11-28"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"


@dataclass(frozen=True)
class Budget:
    """One credential's rate-limit window as the ``X-RateLimit-*`` headers report it."""

    limit: int
    used: int
    reset: int  # epoch seconds
    resource: str = "core"  # or "graphql": GitHub keeps a separate budget for each

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "X-RateLimit-Used": str(self.used),
            "X-RateLimit-Resource": self.resource,
        }


class RateLimiter:
    """GitHub's primary limit: ``limit`` calls (or GraphQL points) per fixed window from a
    credential's first call."""

    def __init__(self, limit: int, window: float, resource: str = "core") -> None:
        self.resource = resource
        self._lock = threading.Lock()
        self._windows: dict[str, list[float]] = {}  # credential -> [window start, used]
        self.configure(limit, window, reset=True)

    def configure(self, limit: int | None, window: float | None, *, reset: bool) -> None:
        with self._lock:
            if limit is not None:
                if limit < 0:
                    raise ValueError(f"limit must be >= 0, got {limit}")
                self.limit = limit
            if window is not None:
                if window <= 0:
                    raise ValueError(f"window must be > 0, got {window}")
                self.window = window
            if reset:
                self._windows.clear()

    def spend(
        self, who: str, cost: int, *, whole: bool = False, limit: int | None = None
    ) -> tuple[Budget, bool]:
        """Charge ``cost`` if the budget is not exhausted (``whole``: if all of ``cost`` fits,
        as for a GraphQL query's points); (budget after, whether allowed). ``limit`` replaces
        the common one for this credential (a GitHub App installation has a budget of its own
        size)."""
        now = time.time()
        with self._lock:
            cap = self.limit if limit is None else limit
            state = self._windows.get(who)
            if state is None or now >= state[0] + self.window:
                state = self._windows[who] = [now, 0]
            allowed = state[1] + cost <= cap if whole else state[1] < cap
            if allowed:
                state[1] += cost
            reset = int(state[0] + self.window)
            return Budget(cap, int(state[1]), reset, self.resource), allowed


def api_headers(budget: Budget, *, authenticated: bool, graphql: bool = False) -> dict[str, str]:
    return {
        "X-GitHub-Media-Type": "github.v4; format=json" if graphql else "github.v3; format=json",
        "x-github-api-version-selected": API_VERSION,
        **budget.headers(),
        "Cache-Control": f"{'private' if authenticated else 'public'}, max-age=60, s-maxage=60",
        "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
    }


def rate_limited(budget: Budget, who: str) -> Reply:
    """The primary-limit 403; ``who`` is an IP or "user", never the credential."""
    body = {
        "message": f"API rate limit exceeded for {who}. (But here's the good news: "
        "Authenticated requests get a higher rate limit. "
        "Check out the documentation for more details.)",
        "documentation_url": RATE_LIMIT_DOCS,
    }
    reply = json_reply(403, body)
    reply.headers |= api_headers(budget, authenticated=who == "user")
    return reply


def rate_limit_body(budget: Budget, graphql: Budget) -> dict[str, Any]:
    """``rate-limit-overview``; search is not served here, so its budget is always untouched."""
    core, points = (
        {"limit": b.limit, "used": b.used, "remaining": b.remaining, "reset": b.reset}
        for b in (budget, graphql)
    )
    search = {"limit": 30, "used": 0, "remaining": 30, "reset": int(time.time()) + 60}
    return {"resources": {"core": core, "search": search, "graphql": points}, "rate": core}
