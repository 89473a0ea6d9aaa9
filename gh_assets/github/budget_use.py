"""How one request uses the shared rate budget: which credential sends and when (a lease from
the governor), and what a rate-limit answer tells every process (hold back until its reset)."""

import logging

import requests

from gh_assets.github.credentials import Credential
from gh_assets.github.errors import RateLimitError
from gh_assets.github.governor import BudgetWaitTooLong, Governor, Grant, Resource
from gh_assets.github.ratelimit import RateLimitWait, _int_header
from gh_assets.github.stats import _TALLY, RequestStats

log = logging.getLogger("gh_assets.github.transport")  # the name operators' log filters know


def resource_of(method: str) -> Resource:
    """The budget a request draws on: GraphQL's POSTs or REST's GETs."""
    return "graphql" if method == "POST" else "core"


def take_budget(
    governor: Governor | None,
    credentials: list[Credential],
    *,
    method: str,
    safe: str,
    cost: int,
    etag_auth: str | None,
    max_wait: float,
    stats: RequestStats,
) -> tuple[Grant | None, Credential]:
    """The credential to send as and, with a governor, the lease that lets it send now (after
    waiting for shared budget, counted in the caller's ``request_tally``)."""
    if governor is None:
        return None, credentials[0]
    identities = list(dict.fromkeys(c.identity for c in credentials))
    preferred = next((c for c in credentials if c.digest == etag_auth), None)
    try:
        grant = governor.acquire(
            identities,
            resource_of(method),
            cost=cost,
            prefer=preferred.identity if preferred else None,
            max_wait=max_wait,
        )
    except BudgetWaitTooLong as held:
        raise RateLimitError(
            url=safe, status=0, reset_at=held.until, secondary=held.secondary, method=method
        ) from None
    stats._waited(grant.waited)
    tally = _TALLY.get()
    if tally is not None:
        tally._waited(grant.waited)
    if preferred is not None and preferred.identity == grant.identity:
        return grant, preferred
    return grant, next(c for c in credentials if c.identity == grant.identity)


def report_limit(
    governor: Governor,
    resp: requests.Response,
    limit: RateLimitWait,
    sent_as: Credential,
    slot: float | None,
    *,
    method: str,
    safe: str,
    stats: RequestStats,
) -> None:
    """Tell the governor of a rate-limit answer: a secondary limit blocks the identity for
    every process; an exhausted primary budget holds it until its reset (the release already
    read the headers; GraphQL's RATE_LIMITED may come without them)."""
    wait_for, reset_at, secondary = limit
    if secondary:
        retry_after = _int_header(resp.headers, "Retry-After")
        wait_for = governor.block(sent_as.identity, retry_after, sent_at=slot)
    elif _int_header(resp.headers, "X-RateLimit-Remaining") != 0:
        governor.exhausted(sent_as.identity, resource_of(method), reset_at)
    log.warning(
        "%s %s -> %d: %s rate limit for %s; every process holds back %.0f s",
        method,
        safe,
        resp.status_code,
        "secondary" if secondary else "primary",
        sent_as.identity,
        wait_for,
    )
    stats._add(retries=1)
