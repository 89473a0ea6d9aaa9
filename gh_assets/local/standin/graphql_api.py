"""GitHub's GraphQL API (``POST /graphql``) for the stand-in, executed by graphql-core.

The schema is a faithful subset of GitHub's public one (field names, types, nullability and
defaults from ``@octokit/graphql-schema``; see ``github-recordings/schemas``): ``node``, ``nodes``,
``user`` and ``rateLimit`` on ``Query``, the ``Node`` interface, ``User`` with the four counted
connections, and ``Organization``, which, as on GitHub, has no followers, following or gists.

Node ids are the ``node_id`` the REST answers carry (``base64("04:User{id}")``). Answers follow
GitHub's conventions: an id that resolves to nothing is a ``null`` node plus an error of type
``NOT_FOUND`` next to the data; more than 100 ids fail the query (``ARGUMENT_LIMIT``); invalid
queries get GitHub-worded validation errors and no ``data``.

Counts that a careless query would get wrong are made to differ on purpose: ``repositories``
with the default ``ownerAffiliations`` (OWNER, COLLABORATOR) adds a deterministic number (>= 1)
of public repositories the account collaborates on to the owned ones that REST's
``public_repos`` counts, and ``gists`` without ``privacy: PUBLIC`` adds secret gists (>= 1).

Cost, as GitHub documents it: every connection selected under a parent costs one request per
parent (``nodes`` has one parent per id, ``node`` and ``user`` one); nothing here nests
connections, so no ``first``/``last`` multiplies it. ``cost = max(1, round(requests / 100))``
(half up): 100 users with four ``totalCount``s cost 4 points. ``nodeCount`` is the number of
parents. The HTTP layer (``server.py``) charges the cost against a separate GraphQL budget.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute,
    get_named_type,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values

from gh_assets.local.standin.data import Dataset, StandinUser

MAX_NODE_IDS = 100  # GitHub: "You may not provide more than 100 node ids"
CONNECTION_REQUESTS_PER_POINT = 100
DOCUMENTATION_URL = "https://docs.github.com/graphql"

SDL = '''
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
  """The Node ID of the User object"""
  id: ID!
  """Identifies the primary key from the database."""
  databaseId: Int
  """The username used to login."""
  login: String!
  """The user's public profile name."""
  name: String
  """Identifies the date and time when the object was created."""
  createdAt: DateTime!
  """Identifies the date and time when the object was last updated."""
  updatedAt: DateTime!
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
  """The Node ID of the Organization object"""
  id: ID!
  """Identifies the primary key from the database."""
  databaseId: Int
  """The organization's login name."""
  login: String!
  """The organization's public profile name."""
  name: String
  """Identifies the date and time when the object was created."""
  createdAt: DateTime!
  """Identifies the date and time when the object was last updated."""
  updatedAt: DateTime!
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
'''

_LEGACY_ID = re.compile(r"0?(\d{1,2}):(User|Organization)([1-9][0-9]{0,17})")
_UNDEFINED_FIELD = re.compile(r"Cannot query field '(\w+)' on type '(\w+)'\.")


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


@dataclass(frozen=True)
class RateLimitState:
    """What ``rateLimit`` reports: the budget after this query was charged."""

    cost: int
    limit: int
    remaining: int
    used: int
    reset: int  # epoch seconds
    node_count: int


@dataclass
class Prepared:
    """A parsed, validated query with its cost, ready to charge and execute."""

    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any]  # as sent; execution coerces them again
    cost: int
    node_count: int
    database_ids: list[int] = field(default_factory=list)  # ids the query names (fail_ids)


@dataclass(frozen=True)
class Refused:
    """A query refused before execution: HTTP status and GitHub-style body."""

    status: int
    payload: dict[str, Any]


class GraphQLApi:
    """The schema bound to a dataset; thread-safe (resolvers only read the dataset)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.schema: GraphQLSchema = build_schema(SDL)
        self._bind()

    # -- the two steps the HTTP layer runs ---------------------------------------------------

    def prepare(self, body: bytes) -> Prepared | Refused:
        """Parse the request body, validate the query, coerce variables and price it."""
        try:
            request = _json_object(body)
        except ValueError:
            return Refused(
                400, {"message": "Problems parsing JSON", "documentation_url": DOCUMENTATION_URL}
            )
        query, variables = request.get("query"), request.get("variables")
        operation_name = request.get("operationName")
        if not isinstance(query, str) or not query.strip():
            return _refused("A query attribute must be specified and must be a string.")
        if variables is None:
            variables = {}
        if not isinstance(variables, dict):
            return _refused("Variables must be an object (or null).")
        if operation_name is not None and not isinstance(operation_name, str):
            return _refused("operationName must be a string (or null).")
        try:
            document = parse(query)
        except GraphQLError as error:
            return Refused(200, {"errors": [_format(error)]})
        errors = validate(self.schema, document)
        if errors:
            return Refused(200, {"errors": [_format(e) for e in errors]})
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            message = (
                f"No operation named '{operation_name}'"
                if operation_name
                else "An operation name is required"
            )
            return _refused(message)
        if operation.operation.value != "query":
            return _refused(f"Schema is not configured for {operation.operation.value}s")
        coerced = get_variable_values(self.schema, operation.variable_definitions or [], variables)
        if isinstance(coerced, list):
            return Refused(200, {"errors": [_format(e) for e in coerced]})
        return self._price(document, operation, variables, coerced)

    def execute(self, prepared: Prepared, rate_limit: RateLimitState) -> dict[str, Any]:
        """Run the query: ``{"data": ...}`` plus ``"errors"`` when some fields failed."""
        result = execute(
            self.schema,
            prepared.document,
            context_value=rate_limit,
            variable_values=prepared.variables,
            operation_name=prepared.operation.name.value if prepared.operation.name else None,
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_format(e) for e in result.errors]
        return payload

    # -- pricing -------------------------------------------------------------------------------

    def _price(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any],
        coerced: dict[str, Any],
    ) -> Prepared | Refused:
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        query_type = self.schema.query_type
        assert query_type is not None
        requests = parents_total = 0
        database_ids: list[int] = []
        for node in _fields(operation.selection_set, fragments):
            name = node.name.value
            if name not in ("node", "nodes", "user"):
                continue  # rateLimit, __typename, introspection: free
            definition = query_type.fields[name]
            args = get_argument_values(definition, node, coerced)
            if name == "nodes":
                ids = args["ids"]
                if len(ids) > MAX_NODE_IDS:
                    key = node.alias.value if node.alias else name
                    error = GraphQLError(
                        f"You may not provide more than {MAX_NODE_IDS} node ids; "
                        f"you provided {len(ids)}.",
                        node,
                        path=[key],
                        extensions={"type": "ARGUMENT_LIMIT"},
                    )
                    return Refused(200, {"data": None, "errors": [_format(error)]})
            else:
                ids = [args["id"]] if name == "node" else []
            for value in ids:
                decoded = decode_node_id(value)
                if decoded is not None:
                    database_ids.append(decoded[1])
            if name == "user" and (user := self.dataset.by_login(args["login"])) is not None:
                database_ids.append(user.id)
            parents = len(ids) if name != "user" else 1
            parents_total += parents
            connections = _connections(
                node.selection_set, get_named_type(definition.type), self.schema, fragments
            )
            requests += parents * connections
        cost = max(1, math.floor(requests / CONNECTION_REQUESTS_PER_POINT + 0.5))
        return Prepared(document, operation, variables, cost, parents_total, database_ids)

    # -- resolvers -----------------------------------------------------------------------------

    def _bind(self) -> None:
        schema = self.schema
        query = schema.query_type
        assert query is not None
        query.fields["node"].resolve = lambda _, __, id: self._node(id)
        query.fields["nodes"].resolve = lambda _, __, ids: [self._node(i) for i in ids]
        query.fields["user"].resolve = lambda _, __, login: self._user(login)
        query.fields["rateLimit"].resolve = _rate_limit
        node = schema.get_type("Node")
        node.resolve_type = lambda account, *_: account.type  # type: ignore[union-attr]
        for name in ("User", "Organization"):
            account = schema.get_type(name)
            assert isinstance(account, GraphQLObjectType)
            fields = account.fields
            fields["id"].resolve = lambda account, _: node_id(account)
            fields["databaseId"].resolve = lambda account, _: account.id
            fields["createdAt"].resolve = lambda account, _: account.created_at
            fields["updatedAt"].resolve = lambda account, _: account.updated_at
        user = schema.get_type("User")
        assert isinstance(user, GraphQLObjectType)
        user.fields["followers"].resolve = lambda u, _: {"totalCount": u.followers}
        user.fields["following"].resolve = lambda u, _: {"totalCount": u.following}
        user.fields["gists"].resolve = self._gists
        user.fields["repositories"].resolve = self._repositories

    def _node(self, value: str) -> StandinUser | GraphQLError:
        """The account behind a global id; a NOT_FOUND error (a null node) otherwise."""
        decoded = decode_node_id(value)
        account = None if decoded is None else self.dataset.user(decoded[1])
        if account is None or decoded is None or account.type != decoded[0]:
            return GraphQLError(
                f"Could not resolve to a node with the global id of '{value}'",
                extensions={"type": "NOT_FOUND"},
            )
        return account

    def _user(self, login: str) -> StandinUser | GraphQLError:
        account = self.dataset.by_login(login)
        if account is None or account.type != "User":
            raise GraphQLError(
                f"Could not resolve to a User with the login of '{login}'.",
                extensions={"type": "NOT_FOUND"},
            )
        return account

    def _gists(self, user: StandinUser, _: GraphQLResolveInfo, privacy: str | None = None) -> Any:
        secret = 1 + self._extra(user, "secret-gists", 3)
        count = {"PUBLIC": user.public_gists, "SECRET": secret}.get(
            privacy or "ALL", user.public_gists + secret
        )
        return {"totalCount": count}

    def _repositories(
        self,
        user: StandinUser,
        _: GraphQLResolveInfo,
        privacy: str | None = None,
        ownerAffiliations: list[str | None] | None = None,  # GraphQL's argument name
    ) -> Any:
        if privacy == "PRIVATE":
            return {"totalCount": 0}  # another account's private repositories are not visible
        public = {
            "OWNER": user.public_repos,
            "COLLABORATOR": 1 + self._extra(user, "collaborations", 5),
            "ORGANIZATION_MEMBER": 1 + self._extra(user, "org-repositories", 4),
        }
        affiliations = {a for a in ownerAffiliations or () if a} or {"OWNER", "COLLABORATOR"}
        return {"totalCount": sum(public[a] for a in affiliations)}

    def _extra(self, user: StandinUser, salt: str, modulo: int) -> int:
        """A deterministic number in ``[0, modulo)`` for the account, independent of REST data."""
        digest = hashlib.blake2b(f"{self.dataset.seed}:{salt}:{user.id}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % modulo


def _rate_limit(_: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    state: RateLimitState = info.context
    return {
        "cost": state.cost,
        "limit": state.limit,
        "remaining": state.remaining,
        "used": state.used,
        "nodeCount": state.node_count,
        "resetAt": datetime.fromtimestamp(state.reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _fields(
    selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of a selection set, with inline fragments and fragment spreads expanded."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, fragments)


def _connections(
    selection_set: SelectionSetNode | None,
    parent: GraphQLNamedType,
    schema: GraphQLSchema,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> int:
    """Connections selected per parent object, whatever type condition selects them."""
    count = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            fields = getattr(parent, "fields", {})
            definition = fields.get(selection.name.value)
            if definition is not None and get_named_type(definition.type).name.endswith(
                "Connection"
            ):
                count += 1
        elif isinstance(selection, InlineFragmentNode | FragmentSpreadNode):
            if isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is None:
                    continue
                condition, inner = fragment.type_condition, fragment.selection_set
            else:
                condition, inner = selection.type_condition, selection.selection_set
            scope = schema.get_type(condition.name.value) if condition else parent
            count += _connections(inner, scope or parent, schema, fragments)
    return count


def _json_object(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _refused(message: str) -> Refused:
    return Refused(200, {"errors": [{"message": message}]})


def _format(error: GraphQLError) -> dict[str, Any]:
    """GitHub's error shape: ``type`` at the top level, validation errors in its own words."""
    message = error.message
    formatted: dict[str, Any] = {}
    extensions = dict(error.extensions or {})
    kind = extensions.pop("type", None)
    if kind:
        formatted["type"] = kind
    if error.path:
        formatted["path"] = list(error.path)
    if error.locations:
        formatted["locations"] = [{"line": x.line, "column": x.column} for x in error.locations]
    if match := _UNDEFINED_FIELD.match(message):
        field_name, type_name = match[1], match[2]
        message = f"Field '{field_name}' doesn't exist on type '{type_name}'"
        extensions |= {"code": "undefinedField", "typeName": type_name, "fieldName": field_name}
    formatted["message"] = message
    if extensions:
        formatted["extensions"] = extensions
    return formatted
