"""GraphQL detail mode: the counters query, its endpoint, and checks of its answers."""

import reprlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gh_assets.github.models import UserDetail
from gh_assets.github.validation import MAX_COUNTER, _integer, _Shape, _string, _value
from gh_assets.user_fields import DETAILS, UserField

GRAPHQL_BATCH = 100  # GitHub: "You may not provide more than 100 node ids"

# About 4 points per 100 users (each count is a connection's totalCount). An Organization has
# no followers/following/gists: REST answers those.
USER_COUNTS_QUERY = """\
query GhAssetsUserCounts($ids: [ID!]!) {{
  rateLimit {{ cost remaining resetAt }}
  nodes(ids: $ids) {{
    __typename
    ... on User {{
      databaseId
      login
{}
    }}
  }}
}}""".format("\n".join(f"      {field.selection()}" for field in DETAILS))


def graphql_endpoint(api_url: str) -> str:
    """GitHub's GraphQL URL for a REST base URL: ``https://api.github.com/graphql``;
    ``https://HOST/api/graphql`` for GitHub Enterprise ``https://HOST/api/v3``; otherwise
    ``{api_url}/graphql`` (the stand-in)."""
    api_url = api_url.rstrip("/")
    parts = urlsplit(api_url)
    if (parts.hostname or "").lower() == "api.github.com":
        return urlunsplit((parts.scheme, parts.netloc, "/graphql", "", ""))
    if parts.path.lower().endswith("/api/v3"):
        path = parts.path[: -len("/v3")] + "/graphql"
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return f"{api_url}/graphql"


def _is_github(graphql_url: str) -> bool:
    """GitHub's own GraphQL endpoints (github.com, Enterprise), which refuse anonymous calls."""
    parts = urlsplit(graphql_url)
    return (parts.hostname or "").lower() == "api.github.com" or parts.path.lower().endswith(
        "/api/graphql"
    )


def _graphql_nodes(data: Any, expected: int) -> tuple[list[Any], list[dict[str, Any]], int | None]:
    """(``data.nodes``, the errors that are not about a null node, ``rateLimit.cost``).

    An error whose path is a node that came back null (NOT_FOUND for a deleted account, as
    GitHub answers) is that node's answer; any other error is returned, to be raised.
    """
    if not isinstance(data, dict):
        raise _Shape(f"expected a GraphQL response object, got {reprlib.repr(data)}")
    errors = data.get("errors")
    if errors is not None and (
        not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors)
    ):
        raise _Shape(f"errors must be a list of objects, got {reprlib.repr(errors)}")
    payload = data.get("data")
    if payload is None:
        if errors:
            return [], errors, None
        raise _Shape("a GraphQL response with neither data nor errors")
    if not isinstance(payload, dict):
        raise _Shape(f"data must be an object, got {reprlib.repr(payload)}")
    nodes = payload.get("nodes")
    if not isinstance(nodes, list) or len(nodes) != expected:
        raise _Shape(f"data.nodes must be a list of {expected} entries, got {reprlib.repr(nodes)}")
    other = [e for e in errors or () if not _about_null_node(e, nodes)]
    cost = None
    rate = payload.get("rateLimit")
    if rate is not None:
        if not isinstance(rate, dict):
            raise _Shape(f"rateLimit must be an object, got {reprlib.repr(rate)}")
        cost = _integer(rate, "cost", 0, MAX_COUNTER)
        _integer(rate, "remaining", 0, MAX_COUNTER)
        _string(rate, "resetAt")
    return nodes, other, cost


def _about_null_node(error: dict[str, Any], nodes: list[Any]) -> bool:
    path = error.get("path")
    if not isinstance(path, list) or len(path) < 2 or path[0] != "nodes":
        return False
    index = path[1]
    return type(index) is int and 0 <= index < len(nodes) and nodes[index] is None


def _refused(error: dict[str, Any]) -> bool:
    """A GraphQL error that the same query would get again: a validation error (GitHub gives
    those an ``extensions.code``) or a type that names a permanent refusal. Others, such as
    GitHub's untyped "Something went wrong while executing your query" timeouts, may pass."""
    extensions = error.get("extensions")
    return (isinstance(extensions, dict) and "code" in extensions) or error.get("type") in (
        "ARGUMENT_LIMIT",
        "FORBIDDEN",
        "INSUFFICIENT_SCOPES",
        "MAX_NODE_LIMIT_EXCEEDED",
        "UNPROCESSABLE",
    )


def _graphql_errors(errors: list[dict[str, Any]]) -> str:
    """``message (TYPE at path)`` of each error, bounded."""
    texts = []
    for error in errors[:5]:
        message = str(error.get("message", "no message"))[:200]
        where = [str(error[k]) for k in ("type",) if error.get(k)]
        if isinstance(error.get("path"), list):
            where.append("at " + ".".join(map(str, error["path"])))
        texts.append(f"{message} ({' '.join(where)})" if where else message)
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(texts) + more


def _graphql_user(node: Any) -> UserDetail | None:
    """A ``User`` node's counters; None for a null node or any other type (REST answers those)."""
    if node is None:
        return None
    if not isinstance(node, dict):
        raise _Shape(f"expected a node object or null, got {reprlib.repr(node)}")
    kind = _string(node, "__typename")
    if kind != "User":
        return None
    return UserDetail(
        id=_integer(node, "databaseId", 1, 2**63),
        login=_string(node, "login"),
        type="User",
        **{field.name: _at(node, field) for field in DETAILS},
    )


def _at(node: dict[str, Any], field: UserField) -> int:
    """The value at ``field``'s GraphQL path in ``node``, checked as REST's would be."""
    *steps, last = field.graphql
    where = []
    for step in steps:
        node = node.get(step)  # type: ignore[assignment]
        where.append(step)
        if not isinstance(node, dict):
            raise _Shape(f"{step} must be a connection object, got {reprlib.repr(node)}")
    try:
        return _value(field, node, last)
    except _Shape as exc:
        raise _Shape(".".join(where) + "." + str(exc) if where else str(exc)) from None
