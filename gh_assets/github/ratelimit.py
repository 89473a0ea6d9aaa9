"""Whether an answer is a rate limit, and how long to wait for it, for REST and for GraphQL."""

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests

SECONDARY_MIN_WAIT = 60.0  # GitHub: "wait at least one minute", then back off exponentially
PRIMARY_WINDOW = 3600.0  # an exhausted budget without X-RateLimit-Reset: assume a whole window

RateLimitWait = tuple[float, datetime, bool]  # seconds to wait, reset time, secondary?


def _rate_limit(
    resp: requests.Response, body: bytes, secondary_wait: float
) -> RateLimitWait | None:
    """The wait for a 403/429 that is a rate limit, else None.

    GitHub's documented order: Retry-After; then X-RateLimit-Remaining 0 until X-RateLimit-Reset;
    then a secondary limit (by message, or any 429) for ``secondary_wait``.
    """
    now = time.time()
    exhausted = resp.headers.get("X-RateLimit-Remaining", "").strip() == "0"
    retry_after = _int_header(resp.headers, "Retry-After")
    if retry_after is not None:
        wait = float(max(retry_after, 0))
        return wait, _utc(now + wait), not exhausted
    if exhausted:
        return _until_reset(_int_header(resp.headers, "X-RateLimit-Reset"), now)
    text = body.decode("utf-8", "replace").lower()
    if resp.status_code == 429 or "secondary rate limit" in text or "abuse detection" in text:
        return secondary_wait, _utc(now + secondary_wait), True
    return None


def _graphql_rate_limit(resp: requests.Response, data: Any) -> RateLimitWait | None:
    """GraphQL's primary limit: HTTP 200 with an error of type RATE_LIMITED. Wait until
    ``rateLimit.resetAt`` if the answer has it, else ``X-RateLimit-Reset``."""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not any(
        isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors
    ):
        return None
    now = time.time()
    reset: float | None = None
    payload = data.get("data")
    rate = payload.get("rateLimit") if isinstance(payload, dict) else None
    if isinstance(rate, dict) and isinstance(rate.get("resetAt"), str):
        try:
            reset = datetime.fromisoformat(rate["resetAt"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            reset = None
    if reset is None:
        reset = _int_header(resp.headers, "X-RateLimit-Reset")
    return _until_reset(reset, now)


def _until_reset(reset: float | None, now: float) -> RateLimitWait:
    """An exhausted primary budget: wait a second past ``reset``, or a whole window if unknown."""
    if reset is None:
        return PRIMARY_WINDOW, _utc(now + PRIMARY_WINDOW), False
    return max(reset - now, 0.0) + 1.0, _utc(reset), False


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
