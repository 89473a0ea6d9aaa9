"""The registry of per-user fields beyond a user's identity (id, login, type): what the crawl asks
GitHub for and keeps. The models, validation, the GraphQL query, the stored hash, the frame's
columns and column schema, the aggregates and the stand-in all read ``DETAILS``, so adding a field
is one entry here.

Every value is an integer in Redis (a decimal string): a count as it is, a time as epoch seconds
(10 bytes against 20 for GitHub's ISO text, and parsed by the same numpy path as the counts). A
stored hash lacking a field listed here is fetched again in full by the next crawl (no ETag).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

COUNT: Literal["count"] = "count"  # a non-negative count: summed, histogrammed, plotted by type
TIME: Literal["time"] = "time"  # a UTC instant: GitHub's ISO text, stored as epoch seconds
DTYPES = {COUNT: "int64", TIME: "datetime64[us, UTC]"}  # the frame's column per kind


@dataclass(frozen=True)
class UserField:
    """One field: its name (hash field, frame column, ``UserDetail`` attribute), its key in
    ``GET /user/{id}``, its path in a GraphQL ``User`` node, and its kind."""

    name: str
    rest: str
    graphql: tuple[str, ...]
    kind: Literal["count", "time"]
    graphql_args: str = ""  # arguments of the path's first step, e.g. ``(privacy: PUBLIC)``

    @property
    def counter(self) -> bool:
        return self.kind == COUNT

    @property
    def dtype(self) -> str:
        return DTYPES[self.kind]

    def selection(self) -> str:
        """The field's selection in a GraphQL query (a path of one or two steps)."""
        head, *inner = self.graphql
        return f"{head}{self.graphql_args}" + (f" {{ {' '.join(inner)} }}" if inner else "")


# The REST public_repos counts owned public repositories only: ownerAffiliations defaults to
# [OWNER, COLLABORATOR], which would add collaborations.
DETAILS = (
    UserField(
        "public_repos",
        "public_repos",
        ("repositories", "totalCount"),
        COUNT,
        "(privacy: PUBLIC, ownerAffiliations: [OWNER])",
    ),
    UserField("public_gists", "public_gists", ("gists", "totalCount"), COUNT, "(privacy: PUBLIC)"),
    UserField("followers", "followers", ("followers", "totalCount"), COUNT),
    UserField("following", "following", ("following", "totalCount"), COUNT),
    UserField("created_at", "created_at", ("createdAt",), TIME),  # when the account was made
)
COUNTERS = tuple(field.name for field in DETAILS if field.counter)
TIMES = tuple(field.name for field in DETAILS if not field.counter)
DETAIL_NAMES = tuple(field.name for field in DETAILS)


def epoch_seconds(text: str) -> int:
    """GitHub's ISO 8601 time (``2008-01-14T04:33:35Z``) as whole epoch seconds; ValueError for
    text that is not one, or names no time zone."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} names no time zone")
    return int(moment.timestamp())


def iso_time(seconds: int) -> str:
    """Epoch seconds as GitHub writes a time: ``2008-01-14T04:33:35Z``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
