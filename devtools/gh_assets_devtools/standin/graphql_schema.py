"""The subset of GitHub's GraphQL schema the stand-in serves, and the global ids of its nodes.

Field names, types, nullability and defaults are GitHub's (from ``@octokit/graphql-schema``; see
``github-recordings/schemas``): ``node``, ``nodes``, ``user`` and ``rateLimit`` on ``Query``, the
``Node`` interface, ``User`` with the four counted connections, and ``Organization``, which, as on
GitHub, has no followers, following or gists. Tests check the crawler's queries against ``SDL``.

Node ids are the ``node_id`` the REST answers carry (``base64("04:User{id}")``), so they live
here for both APIs.
"""

from __future__ import annotations

import base64
import binascii
import re
from string import Template

from gh_assets_devtools.standin.data import StandinUser


def _account(kind: str, login: str, name: str) -> str:
    """The fields User and Organization share, with GitHub's descriptions."""
    return f'''  """The Node ID of the {kind} object"""
  id: ID!
  """Identifies the primary key from the database."""
  databaseId: Int
  """{login}"""
  login: String!
  """{name}"""
  name: String
  """Identifies the date and time when the object was created."""
  createdAt: DateTime!
  """Identifies the date and time when the object was last updated."""
  updatedAt: DateTime!'''


SDL = Template('''
"""An object with an ID."""
interface Node {
  """ID of the object."""
  id: ID!
}

"""An ISO-8601 encoded UTC date string."""
scalar DateTime

"""The privacy of a Gist"""
enum GistPrivacy {
  """Gists that are public and secret"""
  ALL
  """Public"""
  PUBLIC
  """Secret"""
  SECRET
}

"""The privacy of a repository"""
enum RepositoryPrivacy {
  """Private"""
  PRIVATE
  """Public"""
  PUBLIC
}

"""The affiliation of a user to a repository"""
enum RepositoryAffiliation {
  """Repositories that the user has been added to as a collaborator."""
  COLLABORATOR
  """Repositories that the user has access to through being a member of an organization."""
  ORGANIZATION_MEMBER
  """Repositories that are owned by the authenticated user."""
  OWNER
}

"""The connection type for User."""
type FollowerConnection {
  """Identifies the total count of items in the connection."""
  totalCount: Int!
}

"""The connection type for User."""
type FollowingConnection {
  """Identifies the total count of items in the connection."""
  totalCount: Int!
}

"""The connection type for Gist."""
type GistConnection {
  """Identifies the total count of items in the connection."""
  totalCount: Int!
}

"""A list of repositories owned by the subject."""
type RepositoryConnection {
  """Identifies the total count of items in the connection."""
  totalCount: Int!
}

"""Represents the client's rate limit."""
type RateLimit {
  """The point cost for the current query counting against the rate limit."""
  cost: Int!
  """The maximum number of points the client is permitted to consume in a 60 minute window."""
  limit: Int!
  """The maximum number of nodes this query may return"""
  nodeCount: Int!
  """The number of points remaining in the current rate limit window."""
  remaining: Int!
  """The time at which the current rate limit window resets in UTC epoch seconds."""
  resetAt: DateTime!
  """The number of points used in the current rate limit window."""
  used: Int!
}

"""A user is an individual's account on GitHub that owns repositories and can make new content."""
type User implements Node {
$user
  """A list of users the given user is followed by."""
  followers: FollowerConnection!
  """A list of users the given user is following."""
  following: FollowingConnection!
  """A list of the Gists the user has created."""
  gists(
    """Filters Gists according to privacy."""
    privacy: GistPrivacy
  ): GistConnection!
  """A list of repositories that the user owns."""
  repositories(
    """If non-null, filters repositories according to privacy."""
    privacy: RepositoryPrivacy
    """Array of owner's affiliation options for repositories returned from the connection."""
    ownerAffiliations: [RepositoryAffiliation] = [OWNER, COLLABORATOR]
  ): RepositoryConnection!
}

"""An account on GitHub, with one or more owners, that has repositories, members and teams."""
type Organization implements Node {
$organization
}

"""The query root of GitHub's GraphQL interface."""
type Query {
  """Fetches an object given its ID."""
  node(
    """ID of the object."""
    id: ID!
  ): Node
  """Lookup nodes by a list of IDs."""
  nodes(
    """The list of node IDs."""
    ids: [ID!]!
  ): [Node]!
  """The client's rate limit information."""
  rateLimit: RateLimit
  """Lookup a user by login."""
  user(
    """The user's login."""
    login: String!
  ): User
}
''').substitute(
    user=_account("User", "The username used to login.", "The user's public profile name."),
    organization=_account(
        "Organization", "The organization's login name.", "The organization's public profile name."
    ),
)

_LEGACY_ID = re.compile(r"0?(\d{1,2}):(User|Organization)([1-9][0-9]{0,17})")


def node_id(user: StandinUser) -> str:
    """The global id GitHub's REST answers show as ``node_id`` (the legacy, pre-2021 format)."""
    kind = "04:User" if user.type == "User" else "012:Organization"
    return base64.b64encode(f"{kind}{user.id}".encode()).decode()


def decode_node_id(value: str) -> tuple[str, int] | None:
    """(type name, database id) of an id ``node_id`` made, or None for any other string."""
    try:
        text = base64.b64decode(value.encode("ascii"), validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    match = _LEGACY_ID.fullmatch(text)
    if match is None or int(match[1]) != len(match[2]):
        return None
    return match[2], int(match[3])
