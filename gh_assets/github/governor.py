"""One rate budget per GitHub identity, shared through Redis by every process that calls GitHub.

GitHub's limits hold per account (or App installation), whatever process or host sends: at
most 100 requests in flight, 900 REST points and 2,000 GraphQL points a minute (secondary), and
an hourly primary budget. ``Governor.acquire`` is called before each request and ``release``
after it; between them the request holds a lease that expires on its own, so a process killed
mid-request gives its slot back. No maintained library does this (the Python limiters keep no
leases, use client clocks, or require redis<8; see the field notes), so it is ours: one Lua
script (``governor.lua``), time from Redis, every key under one hash tag (Redis Cluster works).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Literal

import redis

from gh_assets.github.ratelimit import _int_header, _utc

Resource = Literal["core", "graphql"]
_SCRIPT = resources.files(__package__).joinpath("governor.lua").read_text()
RECENT = 100_000  # acquire timings and slots kept for inspection
DOOR_POLL_MAX = 1.0  # longest sleep between two acquire attempts: new budget is noticed by then
# Seconds a primary window is held past its reset: GitHub's clock may be a few seconds behind
# Redis's, and a refill at the reset by Redis's clock would send into the old window.
RESET_MARGIN = 5.0


@dataclass(frozen=True)
class GovernorLimits:
    """What the governor holds every identity to. ``minute`` is GitHub's minute in seconds:
    tests and the bench shorten it, and every time below scales with it."""

    rest_points_per_minute: int = 870  # GitHub: 900; a margin for clock and network jitter
    graphql_points_per_minute: int = 1_900  # GitHub: 2,000
    max_in_flight: int = 50  # GitHub: 100 for an account, across REST and GraphQL
    lease_seconds: float = 60.0  # longer than any request may take (the client's timeout)
    minute: float = 60.0
    horizon_minutes: float = 1 / 30  # a grant may reserve a pacing slot this far ahead
    block_min_minutes: float = 1.0  # GitHub: "wait at least one minute", then doubling
    cooldown_minutes: float = 10.0  # the rate stays halved this long after a block ends
    forget_minutes: float = 60.0  # a block this long after the last one starts at one minute
    lowered_factor: float = 2.0
    primary_floor: int = 0  # primary points no request may take (e.g. kept for a person)
    reset_margin: float = RESET_MARGIN  # clock skew, not scaled by ``minute``

    def interval(self, resource: Resource) -> float:
        """Seconds per point at the configured rate; 0 when the rate is 0 (no pacing)."""
        rate = self.rest_points_per_minute if resource == "core" else self.graphql_points_per_minute
        # A microsecond over minute/rate: times are kept to the microsecond, and rounding must
        # never fit rate + 1 slots into one minute.
        return self.minute / rate + 1e-6 if rate > 0 else 0.0


@dataclass(frozen=True)
class Grant:
    """Leave to send one request as ``identity``; give it back with ``Governor.release``."""

    identity: str
    lease: str
    waited: float  # seconds spent waiting for budget, the pacing delay included
    slot: float  # the Redis time the request was allotted; sent as soon after as can be


class BudgetWaitTooLong(Exception):
    """Every identity is held for longer than the caller may wait."""

    def __init__(self, seconds: float, reason: str, until: datetime) -> None:
        super().__init__(f"every identity is held by its {reason} limit for {seconds:.0f} s")
        self.seconds, self.reason, self.until = seconds, reason, until

    @property
    def secondary(self) -> bool:
        return self.reason != "primary"


class Governor:
    """The shared budgets of ``identities``' requests, kept in Redis under ``key_prefix``.

    Thread-safe. One thread of a process at a time waits at the door for a grant, so a process
    polls Redis once per wait however many of its threads want to send.
    """

    def __init__(
        self,
        client: redis.Redis,
        limits: GovernorLimits,
        key_prefix: str,  # the data's (gh_assets.storage.schema.KEY_PREFIX unless configured)
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = limits
        self._tag = key_prefix + "{governor}"  # the braces: one hash tag, one Cluster slot
        self._redis = client
        self._script = client.register_script(_SCRIPT)
        self._door = threading.Lock()
        self._sleep = sleep
        # The latest acquire script calls' durations and grants' slots (tests, the bench).
        self.acquire_seconds: deque[float] = deque(maxlen=RECENT)
        self.slots: deque[float] = deque(maxlen=RECENT)

    def keys(self, identity: str) -> list[str]:
        return [f"{self._tag}:{identity}", f"{self._tag}:{identity}:leases"]

    def _call(self, name: str, keys: Sequence[str], *args: object) -> list[object] | bytes:
        return self._script(keys=list(keys), args=[name, *args])

    def acquire(
        self,
        identities: Sequence[str],
        resource: Resource,
        *,
        cost: int = 1,
        points: int = 1,
        prefer: str | None = None,
        max_wait: float = float("inf"),
    ) -> Grant:
        """A lease on the identity that can send soonest (``prefer`` when it can, else the one
        whose primary budget resets first), after waiting for it; raises ``BudgetWaitTooLong``
        when every identity is held for more than ``max_wait`` seconds."""
        limits = self.limits
        keys = [key for identity in identities for key in self.keys(identity)]
        preferred = identities.index(prefer) + 1 if prefer in identities else 0
        started = time.monotonic()
        while True:
            with self._door:
                while True:
                    tick = time.perf_counter()
                    answer = self._call(
                        "acquire",
                        keys,
                        resource,
                        points,
                        cost,
                        limits.interval(resource),
                        limits.max_in_flight,
                        limits.lease_seconds,
                        limits.horizon_minutes * limits.minute,
                        uuid.uuid4().hex,
                        preferred,
                        limits.primary_floor,
                        limits.lowered_factor,
                        limits.reset_margin,
                        limits.minute,
                    )
                    self.acquire_seconds.append(time.perf_counter() - tick)  # thread-safe
                    assert isinstance(answer, list)
                    if answer[0] == 1:
                        break
                    wait, reason = float(answer[1]), _text(answer[2])
                    if wait > max_wait:
                        raise BudgetWaitTooLong(wait, reason, _utc(float(answer[3]) + wait))
                    self._sleep(min(wait, DOOR_POLL_MAX))
            identity = identities[int(answer[1]) - 1]
            lease, delay = _text(answer[3]), float(answer[2])
            slot = float(answer[4]) + delay
            if delay > 0:
                self._sleep(delay)  # outside the door: the next thread takes the next slot
            if delay <= 0 or self.block_left(identity) == 0:
                self.slots.append(slot)
                return Grant(identity, lease, time.monotonic() - started, slot)
            # Blocked while waiting for the slot: send nothing, wait with everyone else.
            self._call("release", self.keys(identity), lease, 0, "", "", "", "")

    def release(self, grant: Grant, headers: Mapping[str, str] | None, *, charged: bool) -> None:
        """End ``grant``'s lease and correct the primary budget from the answer's ``headers``
        (None: no answer); ``charged`` says the request counts (a 304 does not). An answer
        without rate-limit headers (a proxy's, an edge error's) says nothing of the budget: a
        server without limits (GitHub Enterprise can be run so) never sends any, so none is
        ever known and none is kept."""
        budget = _budget(headers)
        self._call("release", self.keys(grant.identity), grant.lease, int(charged), *budget)

    def observe(self, identity: str, headers: Mapping[str, str]) -> None:
        """Learn an identity's primary budget from an answer sent outside a lease."""
        self._call("observe", self.keys(identity), *_budget(headers))

    def exhausted(self, identity: str, resource: Resource, reset_at: datetime) -> None:
        """A primary-limit refusal without headers (GraphQL's RATE_LIMITED): nothing is left
        until ``reset_at``."""
        known = self._redis.hget(self.keys(identity)[0], f"{resource}:limit")
        limit = max(int(float(_text(known))), 1) if known else 1  # below 1: an older release's
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset_at.timestamp())),
            "X-RateLimit-Resource": resource,
        }
        self.observe(identity, headers)

    def block(
        self, identity: str, retry_after: float | None, *, sent_at: float | None = None
    ) -> float:
        """A secondary-limit answer for ``identity``: every process stops sending for it until
        the block ends (``retry_after``, else at least a minute, doubling, with jitter), and its
        rate stays lowered a while after. Returns the seconds until the block ends.

        ``sent_at`` (the request's slot): a refusal of a request sent before the latest block
        began belongs to that block's episode (the requests in flight when it began) and does
        not double it again; it can only lengthen it to its own ``retry_after``."""
        limits = self.limits
        left = self._call(
            "block",
            self.keys(identity)[:1],
            -1 if retry_after is None else retry_after,
            "" if sent_at is None else f"{sent_at:.6f}",
            limits.block_min_minutes * limits.minute,
            random.random(),
            limits.cooldown_minutes * limits.minute,
            limits.forget_minutes * limits.minute,
        )
        return float(_text(left))

    def block_left(self, identity: str) -> float:
        """Seconds left of the identity's block by Redis's clock (0: none); sends nothing."""
        return float(_text(self._call("blocked", self.keys(identity)[:1])))

    def identity_of(self, credential: str, renew: float | None = None) -> str | None:
        """The identity remembered for the credential named ``credential`` (a digest); with
        ``renew``, remembered that many seconds from now (a memory in use never runs out)."""
        key = f"{self._tag}:credential:{credential}"
        found = self._redis.get(key) if renew is None else self._redis.getex(key, ex=int(renew))
        return None if found is None else _text(found)

    def remember_identity(self, credential: str, identity: str, seconds: float) -> None:
        self._redis.set(f"{self._tag}:credential:{credential}", identity, ex=int(seconds))

    def state(self, identity: str) -> dict[str, float]:
        """The identity's stored fields, and ``R:reserved``: the primary points its live leases
        hold per resource R (for tests, the bench and operators)."""
        hash_key, leases = self.keys(identity)
        raw = self._redis.hgetall(hash_key)
        state = {_text(k): float(_text(v)) for k, v in raw.items()}
        state["core:reserved"] = state["graphql:reserved"] = 0.0
        seconds, micros = self._redis.time()
        for lease in self._redis.zrangebyscore(leases, f"({seconds}.{micros:06d}", "+inf"):
            resource, cost, _ = _text(lease).split("|", 2)
            state[f"{resource}:reserved"] += float(cost)
        return state


def _budget(headers: Mapping[str, str] | None) -> tuple[str, str, str, str]:
    """``limit, remaining, reset, resource`` as the release script reads them: empty strings
    unless the answer had all three rate-limit headers."""
    if headers is None:
        return "", "", "", ""
    limit = _int_header(headers, "X-RateLimit-Limit")
    remaining = _int_header(headers, "X-RateLimit-Remaining")
    reset = _int_header(headers, "X-RateLimit-Reset")
    if limit is None or remaining is None or reset is None:
        return "", "", "", ""
    resource = headers.get("X-RateLimit-Resource", "core").strip().lower() or "core"
    return str(limit), str(remaining), str(reset), resource


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
