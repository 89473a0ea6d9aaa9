"""Find GitHub's newest user in about ``2·log2(gap/100)`` ``GET /users`` requests.

``GET /users?since=s`` lists users with ``id > s`` in ID order. Deleted accounts leave holes in
the IDs, but "``since=s`` answers at least one user" still holds for every ``s`` below the newest
ID and for none at or above it, so the newest ID can be found by an exponential search over
``since`` (steps of 100, 200, 400, … until an empty answer) and then a binary search between the
last answered ``since`` and the first empty one. Every probe asks for a full page: it costs the
same single request as one user, a full page moves the lower bound to its last ID, and any
shorter, non-empty answer ends the search, since its last user is the newest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gh_assets.github import GitHubClient
from gh_assets.github.models import ListedUser

PROBE_SIZE = 100  # GitHub's largest per_page for GET /users
MAX_PROBES = 200  # far beyond 2·log2(2**63): only an answer that defies the API gets there

Probe = Callable[[int, int], Sequence[ListedUser]]


class FrontierError(Exception):
    """``GET /users`` answered in a way the search cannot trust (users not after ``since``, or
    never an end); searching on would loop, so the probe is given up until next time."""


@dataclass(frozen=True)
class Newest:
    """What a search found: ``id`` of the newest user (None: no user after ``since``), the
    requests it made, and ``exact`` False when it stopped early at a user at or past
    ``stop_at`` (then ``id`` is only a lower bound)."""

    id: int | None
    requests: int
    exact: bool = True


def find_newest(probe: Probe, since: int, *, stop_at: int | None = None) -> Newest:
    """The newest user with an ID above ``since``, by ``probe(since, limit)`` (one ``GET /users``
    each). ``stop_at`` ends the search at the first user seen with an ID at least that: a crawl
    with room for only a few more pages needs to know no more, and saves the requests."""
    seen: int | None = None  # the highest user ID answered so far: the newest is at least this
    empty: int | None = None  # a since that answered no user: the newest is at most this
    step = PROBE_SIZE
    at = since
    for requests in range(1, MAX_PROBES + 1):
        users = _checked(at, probe(at, PROBE_SIZE))
        if not users:
            empty = at
        elif len(users) < PROBE_SIZE:  # every user after ``at``: the last one is the newest
            return Newest(users[-1].id, requests)
        else:
            seen = users[-1].id
        if seen is None:
            return Newest(None, requests)  # the first probe, at ``since``, answered nobody
        if stop_at is not None and seen >= stop_at:
            return Newest(seen, requests, exact=False)
        if empty is None:  # exponential phase: no empty answer yet
            at = seen + step
            step *= 2
        elif empty <= seen:  # nothing above ``seen`` (or the users changed under the search)
            return Newest(seen, requests)
        elif empty - seen <= PROBE_SIZE:  # one page from ``seen`` holds every user left
            at = seen
        else:
            at = (seen + empty) // 2
    raise FrontierError(f"GET /users: no newest user found in {MAX_PROBES} requests")


def newest_user(client: GitHubClient, since: int, *, stop_at: int | None = None) -> Newest:
    """``find_newest`` over the client's ``GET /users``; its errors (``GitHubError``) pass."""
    return find_newest(client.users_after, since, stop_at=stop_at)


def _checked(since: int, users: Sequence[ListedUser]) -> Sequence[ListedUser]:
    """``users``, if their IDs rise from above ``since`` as the API promises; each probe's
    progress, and so the search's end, depends on it."""
    previous = since
    for user in users:
        if user.id <= previous:
            raise FrontierError(
                f"GET /users?since={since} answered user {user.id} after {previous}: "
                "IDs must rise from above since"
            )
        previous = user.id
    return users
