"""What a GraphQL query costs, priced before it runs, as GitHub documents it.

Every connection selected under a parent costs one request per parent (``nodes`` has one parent
per id, ``node`` and ``user`` one); nothing here nests connections, so no ``first``/``last``
multiplies it. ``cost = max(1, round(requests / 100))`` (half up): 100 users with four
``totalCount``s cost 4 points. ``nodeCount`` is the number of parents. The HTTP layer
(``server.py``) charges the cost against a separate GraphQL budget, and fails a query that names
a failing ID, so pricing also collects the database ids a query names.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution.values import get_argument_values

from gh_assets_devtools.standin.data import Dataset
from gh_assets_devtools.standin.graphql_schema import decode_node_id

MAX_NODE_IDS = 100  # GitHub: "You may not provide more than 100 node ids"
CONNECTION_REQUESTS_PER_POINT = 100


@dataclass
class Prepared:
    """A parsed, validated query with its cost, ready to charge and execute."""

    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any]  # as sent; execution coerces them again
    cost: int
    node_count: int
    database_ids: list[int] = field(default_factory=list)  # ids the query names (fail_ids)


def price(
    schema: GraphQLSchema,
    dataset: Dataset,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any],
    coerced: dict[str, Any],
) -> Prepared | GraphQLError:
    """The query with its cost, or the ``ARGUMENT_LIMIT`` error of ``nodes`` given too many ids."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    query_type = schema.query_type
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
                return GraphQLError(
                    f"You may not provide more than {MAX_NODE_IDS} node ids; "
                    f"you provided {len(ids)}.",
                    node,
                    path=[key],
                    extensions={"type": "ARGUMENT_LIMIT"},
                )
        else:
            ids = [args["id"]] if name == "node" else []
        for value in ids:
            decoded = decode_node_id(value)
            if decoded is not None:
                database_ids.append(decoded[1])
        if name == "user" and (user := dataset.by_login(args["login"])) is not None:
            database_ids.append(user.id)
        parents = len(ids) if name != "user" else 1
        parents_total += parents
        connections = _connections(
            node.selection_set, get_named_type(definition.type), schema, fragments
        )
        requests += parents * connections
    cost = max(1, math.floor(requests / CONNECTION_REQUESTS_PER_POINT + 0.5))
    return Prepared(document, operation, variables, cost, parents_total, database_ids)


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
