"""GitHub's secondary rate limits, per account, as the stand-in enforces them when asked to.

GitHub also refuses an account that sends too much too fast, however much primary budget it has
left: more than 100 requests in flight, more than 900 REST points (a GET: 1, a 304 and
``GET /rate_limit`` included) or 2,000 GraphQL points (a query: 1) in a minute. The refusal is a
403 (or 429) saying "You have exceeded a secondary rate limit", with the primary ``X-RateLimit-*``
headers (remaining not 0) and, only sometimes, ``Retry-After``; and sending on while refused
prolongs the refusal. None of this is announced before it happens, which is why a crawler needs
a governor, and why the stand-in reproduces it to test one.

Every limit is off until configured (``None``), so the stand-in's other tests keep sending as
fast as they like. Windows roll: a request at ``t`` is refused when the account's answered
requests of its kind in ``(t - minute, t]`` already number the limit, so no half-open window
``[s, s + minute)`` ever holds more than the limit of answered ones. A refusal starts a block of
``secondary_block`` seconds (default: one ``minute``); every request arriving in it is refused
and moves its end to ``now + secondary_block``. Refused requests use no point and no primary
budget.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gh_assets_devtools.standin.account_record import AccountRecord
from gh_assets_devtools.standin.http_server import Reply, json_reply
from gh_assets_devtools.standin.rate_limit import Budget, api_headers

SECONDARY_DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
KINDS = ("rest", "graphql")
DEFAULTS: dict[str, Any] = {
    "minute": 60.0,
    "secondary_in_flight": None,  # GitHub: 100, REST and GraphQL together
    "rest_points_per_minute": None,  # GitHub: 900
    "graphql_points_per_minute": None,  # GitHub: 2,000
    "secondary_retry_after": True,  # whether refusals carry Retry-After
    "secondary_status": 403,  # or 429
    "secondary_block": None,  # seconds; None: one minute
}


@dataclass(eq=False)
class _Account:
    """One account's windows and block, and its record."""

    record: AccountRecord = field(default_factory=AccountRecord)
    windows: dict[str, deque[float]] = field(default_factory=lambda: {k: deque() for k in KINDS})
    blocked_until: float = 0.0
    block_seconds: float = 0.0  # what each request in the block extends it by
    block_retry_after: bool = False  # whether the block's refusals carry Retry-After
    pending: deque[float | None] = field(default_factory=deque)  # refuse_next, oldest first


@dataclass(eq=False)
class Admission:
    """The verdict on one request; an admitted one must be ``release``d when answered."""

    account: str
    kind: str
    refused: bool
    retry_after: int | None = None  # seconds, for the Retry-After header of a refusal
    primary_refused: bool = False  # set by the server when the primary budget refuses it
    _state: _Account | None = None
    _arrival: list[Any] | None = None


class SecondaryLimits:
    """The secondary limits of every account, and the record of what each account sent."""

    def __init__(self, **config: Any) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._config = dict(DEFAULTS)
        self.configure(**config)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change the given settings (all or none: a bad one is a ValueError, an unknown one a
        TypeError); ``None`` turns a limit off. Returns the settings."""
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown secondary-limit settings: {', '.join(sorted(unknown))}")
        checked = {name: _checked(name, value) for name, value in changes.items()}
        with self._lock:
            self._config |= checked
            return dict(self._config)

    def config(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._config)

    def refuse_next(self, account: str, retry_after: float | None = None) -> dict[str, Any]:
        """Refuse ``account``'s next request and block it ``retry_after`` seconds (then with a
        ``Retry-After`` header) or ``secondary_block`` (without)."""
        if not isinstance(account, str) or not account:
            raise ValueError("account must be a non-empty string")
        if retry_after is not None:
            retry_after = _checked("secondary_block", retry_after)
        with self._lock:
            state = self._accounts.setdefault(account, _Account())
            state.pending.append(retry_after)
            return {"account": account, "pending": len(state.pending)}

    def admit(self, account: str, kind: str) -> Admission:
        """Let a request arriving now through, or refuse it (and start or extend a block)."""
        with self._lock:
            now = time.time()  # under the lock: arrivals and windows stay in order
            config = self._config
            state = self._accounts.get(account)
            if state is None:
                state = self._accounts[account] = _Account()
            record = state.record
            arrival = record.arrive(now, kind)
            window = state.windows[kind]
            while window and window[0] <= now - config["minute"]:
                window.popleft()
            block = config["secondary_block"] or config["minute"]
            if now < state.blocked_until:
                state.blocked_until = max(state.blocked_until, now + state.block_seconds)
                record.blocks[-1][1] = state.blocked_until
                record.blocks[-1][2] += 1
            elif state.pending:
                forced = state.pending.popleft()
                self._block(state, now, block if forced is None else forced, forced is not None)
            elif _over(config, state, kind):
                self._block(state, now, block, config["secondary_retry_after"])
            else:
                window.append(now)
                record.admitted(kind)
                return Admission(account, kind, False, _state=state, _arrival=arrival)
            record.secondary_refusals += 1
            arrival[2] = "secondary"
            left = state.blocked_until - now
            retry_after = max(math.ceil(left), 1) if state.block_retry_after else None
            return Admission(account, kind, True, retry_after)

    def release(self, admission: Admission) -> None:
        """An admitted request has been answered."""
        state, arrival = admission._state, admission._arrival
        if state is None or arrival is None:
            return
        with self._lock:
            state.record.in_flight -= 1
            if admission.primary_refused:
                state.record.primary_refusals += 1
                arrival[2] = "primary"

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {name: state.record.report() for name, state in sorted(self._accounts.items())}

    def reset(self) -> None:
        """Forget the records, windows, blocks and pending refusals (requests in flight stay
        counted until answered)."""
        with self._lock:
            for name, state in list(self._accounts.items()):
                if state.record.in_flight:
                    state.record.clear()
                    state.windows = {k: deque() for k in KINDS}
                    state.blocked_until = 0.0
                    state.pending.clear()
                else:
                    del self._accounts[name]

    @staticmethod
    def _block(state: _Account, now: float, seconds: float, retry_after: bool) -> None:
        state.blocked_until, state.block_seconds = now + seconds, seconds
        state.block_retry_after = retry_after
        state.record.blocks.append([now, state.blocked_until, 0])


def secondary_refusal(
    admission: Admission, budget: Budget, status: int, *, authenticated: bool
) -> Reply:
    """GitHub's secondary-limit refusal, with the primary budget's headers (its remaining is
    what it is, usually not 0: that is how a client tells this refusal from the primary one)."""
    request_id = ":".join(secrets.token_hex(n).upper() for n in (2, 3, 3, 4, 4))
    reply = json_reply(
        status,
        {
            "documentation_url": SECONDARY_DOCS,
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
            "before you try again. If you reach out to GitHub Support for help, please include "
            f"the request ID {request_id}.",
        },
    )
    graphql = admission.kind == "graphql"
    reply.headers |= api_headers(budget, authenticated=authenticated, graphql=graphql)
    reply.headers["X-GitHub-Request-Id"] = request_id
    if admission.retry_after is not None:
        reply.headers["Retry-After"] = str(admission.retry_after)
    return reply


def _over(config: dict[str, Any], state: _Account, kind: str) -> bool:
    """Whether one more request of ``kind`` breaks a limit (the window is already pruned)."""
    in_flight = config["secondary_in_flight"]
    if in_flight is not None and state.record.in_flight >= in_flight:
        return True
    points = config[f"{kind}_points_per_minute"]
    return points is not None and len(state.windows[kind]) >= points


def _checked(name: str, value: Any) -> Any:
    """``value`` as setting ``name`` takes it, or a ValueError."""
    if name == "secondary_retry_after":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if name == "secondary_status":
        if value not in (403, 429) or isinstance(value, bool):
            raise ValueError(f"{name} must be 403 or 429, got {value!r}")
        return int(value)
    if value is None and name != "minute":
        return None
    if name in ("minute", "secondary_block"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 or null, got {value!r}")
    return value
