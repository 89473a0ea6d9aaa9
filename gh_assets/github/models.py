"""What the client answers: listed users, their details, and the answers that are not details."""

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class ListedUser:
    """One item of ``GET /users`` (``simple-user``): identity only, no counters."""

    id: int
    login: str
    type: str
    node_id: str | None = None


@dataclass(frozen=True)
class UserDetail:
    """``GET /user/{id}``: identity, the four public counters and the ETag to revalidate with."""

    id: int
    login: str
    type: str
    public_repos: int
    public_gists: int
    followers: int
    following: int
    etag: str | None = None  # opaque part only, without ``W/`` and quotes
    etag_auth: str | None = None  # the digest of the credential that got ``etag``


class Answer(Enum):
    """A user's answer that carries no details; compare with ``is``."""

    NOT_MODIFIED = "unchanged since the ETag was taken (304): the stored copy is still right"
    GONE = "404 for a user ID: the account was deleted (or hidden) since it was listed"

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__


NOT_MODIFIED = Answer.NOT_MODIFIED
GONE = Answer.GONE
