"""Checks that an answer has the shape GitHub documents, before anything uses it."""

import reprlib
from collections.abc import Callable
from typing import Any, TypeVar

from gh_assets.github.errors import MalformedResponseError
from gh_assets.github.models import ListedUser, UserDetail
from gh_assets.user_fields import DETAILS, UserField, epoch_seconds

T = TypeVar("T")

MAX_COUNTER = 10**9  # far above any real account; larger means a broken or hostile server


class _Shape(ValueError):
    """A body that does not match the documented schema."""


def _parse(parser: Callable[[Any], T], data: Any, safe: str) -> T:
    try:
        return parser(data)
    except _Shape as exc:
        raise MalformedResponseError(str(exc), url=safe, status=200) from None


def _listed_user(item: Any) -> ListedUser:
    if not isinstance(item, dict):
        raise _Shape(f"expected a user object, got {reprlib.repr(item)}")
    node_id = item.get("node_id")
    return ListedUser(
        id=_integer(item, "id", 1, 2**63),
        login=_string(item, "login"),
        type=_string(item, "type"),
        node_id=node_id if isinstance(node_id, str) else None,
    )


def _user_detail(data: Any) -> UserDetail:
    listed = _listed_user(data)
    return UserDetail(
        id=listed.id,
        login=listed.login,
        type=listed.type,
        **{field.name: _value(field, data, field.rest) for field in DETAILS},
    )


def _value(field: UserField, item: dict[str, Any], key: str) -> int:
    """``item[key]`` as the registry's ``field`` keeps it: a bounded count, or epoch seconds."""
    if field.counter:
        return _integer(item, key, 0, MAX_COUNTER)
    text = _string(item, key)
    try:
        return epoch_seconds(text)
    except ValueError:
        raise _Shape(f"{key} must be an ISO 8601 time, got {reprlib.repr(text)}") from None


def _integer(item: dict[str, Any], key: str, low: int, high: int) -> int:
    value = item.get(key)
    if type(value) is not int or not low <= value < high:  # bool is an int subclass: refuse it
        raise _Shape(f"{key} must be an integer in [{low}, {high}), got {reprlib.repr(value)}")
    return value


def _string(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise _Shape(f"{key} must be a non-empty string, got {reprlib.repr(value)}")
    return value


def _etag(value: str | None) -> str | None:
    """The opaque part of ``W/"abc"`` or ``"abc"``: short enough to keep Redis hashes compact."""
    if not value:
        return None
    value = value.strip().removeprefix("W/").strip('"')
    return value or None
