"""GitHub's GraphQL API (``POST /graphql``) for the stand-in, executed by graphql-core.

This module takes a request body through parsing, validation and pricing (``graphql_cost``) to
execution against the schema (``graphql_schema``), with the resolvers that read the dataset.

Answers follow GitHub's conventions: an id that resolves to nothing is a ``null`` node plus an
error of type ``NOT_FOUND`` next to the data; more than 100 ids fail the query
(``ARGUMENT_LIMIT``); invalid queries get GitHub-worded validation errors and no ``data``.

Counts that a careless query would get wrong are made to differ on purpose: ``repositories``
with the default ``ownerAffiliations`` (OWNER, COLLABORATOR) adds a deterministic number (>= 1)
of public repositories the account collaborates on to the owned ones that REST's
``public_repos`` counts, and ``gists`` without ``privacy: PUBLIC`` adds secret gists (>= 1).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from gh_assets_devtools.standin.data import Dataset, StandinUser
from gh_assets_devtools.standin.graphql_cost import Prepared, price
from gh_assets_devtools.standin.graphql_schema import SDL, decode_node_id, node_id
from gh_assets_devtools.standin.rate_limit import Budget

DOCUMENTATION_URL = "https://docs.github.com/graphql"
_UNDEFINED_FIELD = re.compile(r"Cannot query field '(\w+)' on type '(\w+)'\.")


@dataclass(frozen=True)
class RateLimitState:
    """What ``rateLimit`` reports: the query's price and the budget after it was charged."""

    budget: Budget
    cost: int
    node_count: int


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
        priced = price(self.schema, self.dataset, document, operation, variables, coerced)
        if isinstance(priced, GraphQLError):
            return Refused(200, {"data": None, "errors": [_format(priced)]})
        return priced

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
    budget = state.budget
    return {
        "cost": state.cost,
        "limit": budget.limit,
        "remaining": budget.remaining,
        "used": budget.used,
        "nodeCount": state.node_count,
        "resetAt": datetime.fromtimestamp(budget.reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


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
