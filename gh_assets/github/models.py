"""What the client answers: listed users, their details, and the answers that are not details."""

from dataclasses import dataclass, make_dataclass
from dataclasses import field as dataclass_field
from enum import Enum

from gh_assets.user_fields import DETAILS


@dataclass(frozen=True)
class ListedUser:
    """One item of ``GET /users`` (``simple-user``): identity only, no counters."""

    id: int
    login: str
    type: str
    node_id: str | None = None


# ``GET /user/{id}``: identity, each registry field (``user_fields.DETAILS``: a count, or a time
# in epoch seconds) and the ETag to revalidate with (its opaque part, without ``W/`` and quotes,
# and the digest of the credential that got it).
UserDetail = make_dataclass(
    "UserDetail",
    [
        ("id", int),
        ("login", str),
        ("type", str),
        *((field.name, int) for field in DETAILS),
        ("etag", str | None, dataclass_field(default=None)),
        ("etag_auth", str | None, dataclass_field(default=None)),
    ],
    frozen=True,
)
UserDetail.__module__ = __name__  # pickled and shown as gh_assets.github.models.UserDetail


class Answer(Enum):
    """A user's answer that carries no details; compare with ``is``."""

    NOT_MODIFIED = "unchanged since the ETag was taken (304): the stored copy is still right"
    GONE = "404 for a user ID: the account was deleted (or hidden) since it was listed"

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__


NOT_MODIFIED = Answer.NOT_MODIFIED
GONE = Answer.GONE
