"""Typed columns from ``HMGET`` replies, a batch at a time, and the DataFrame they make.

The CPU side of the bulk read (``bulk_read`` does the wire): numpy parses each batch at once, and
only a batch with something wrong in it is looked at row by row, to name the key, user and field.
"""

from __future__ import annotations

import contextlib
import reprlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from gh_assets.storage.schema import FRAME_FIELDS, TIMES
from gh_assets.user_fields import DETAIL_NAMES

_INT64 = np.iinfo(np.int64)
_NO_TIME = b"-1"  # a time missing from a stored hash (a stored one is never negative)


class LeftOut(NamedTuple):
    """Ids of the index the read made no row for: no hash at all, or a hash without a login."""

    no_hash: list[int]
    no_login: list[int]


class FrameBuilder:
    """Typed columns of ``HMGET`` replies (``bulk_read.HASH_FIELDS``), a batch at a time.

    ``type`` and ``fetched_at`` take few distinct values (a page's users share a timestamp): each
    batch keeps only their codes, and the distinct values are decoded and parsed once, by
    ``frame``. Errors name the user's key (``user_key(id)``), its id and the field.
    """

    def __init__(self, user_key: Callable[[str], str] | None = None) -> None:
        self.user_key = user_key or str
        self.columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("id", *DETAIL_NAMES, "type", "fetched_at")
        }
        self.logins: list[str] = []
        self.kinds: dict[bytes, int] = {}
        self.stamps: dict[bytes | None, int] = {}
        self.no_hash: list[bytes] = []
        self.no_login: list[bytes] = []

    def add(self, ids: Sequence[bytes], rows: Sequence[Sequence[bytes | None]]) -> None:
        """One batch: the ids read from the index and their ``HMGET`` replies.

        A user without a login (no hash at all, e.g. deleted by a page write since its id was
        read, or a damaged one) is set aside for ``left_out``; a missing or non-integer counter
        or a missing type is an error.
        """
        if not rows:
            return
        logins, kinds, *details, fetched = zip(*rows, strict=True)
        if None in logins:  # rare: only then is each row looked at
            kept = []
            for i, login in enumerate(logins):
                if login is not None:
                    kept.append(i)
                elif any(value is not None for value in rows[i]):
                    self.no_login.append(ids[i])
                else:
                    self.no_hash.append(ids[i])
            if kept:
                self.add([ids[i] for i in kept], [rows[i] for i in kept])
            return
        if None in kinds:
            raise ValueError(f"{self._where(ids[kinds.index(None)])} has no 'type'")
        self.columns["id"].append(self._column("id", ids, ids))
        for name, values in zip(DETAIL_NAMES, details, strict=True):
            if name in TIMES:  # missing in a hash an older release wrote: NaT (-1 here)
                values = [_NO_TIME if value is None else value for value in values]
            self.columns[name].append(self._column(name, values, ids))
        self.logins += [login.decode() for login in logins]
        self.columns["type"].append(_codes(kinds, self.kinds))
        self.columns["fetched_at"].append(_codes(fetched, self.stamps))

    def frame(self) -> pd.DataFrame:
        """Every batch added, in order, as one typed DataFrame."""
        data: dict[str, Any] = {
            name: np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            for name, parts in self.columns.items()
        }
        data["login"] = pd.array(self.logins, dtype="str")
        kinds = [kind.decode() for kind in self.kinds]  # in order of first appearance
        data["type"] = pd.Categorical.from_codes(data["type"], kinds).reorder_categories(
            sorted(kinds)
        )
        stamps = [stamp.decode() if stamp else None for stamp in self.stamps]
        parsed = pd.to_datetime(stamps, format="ISO8601", utc=True).as_unit("us")
        data["fetched_at"] = parsed.take(data["fetched_at"])  # a missing fetched_at: NaT
        for name in TIMES:  # epoch seconds
            seconds = data[name].astype("datetime64[s]")
            seconds[data[name] < 0] = np.datetime64("NaT")
            data[name] = pd.to_datetime(seconds, utc=True).as_unit("us")
        return pd.DataFrame({name: data[name] for name in FRAME_FIELDS}, copy=False)

    def left_out(self) -> LeftOut:
        """The ids set aside so far, as integers."""
        return LeftOut(list(map(int, self.no_hash)), list(map(int, self.no_login)))

    def _where(self, user_id: bytes) -> str:
        shown = user_id.decode("ascii", "replace")
        return f"{self.user_key(shown)} (user {shown})"

    def _column(
        self, name: str, values: Sequence[bytes | None], ids: Sequence[bytes]
    ) -> np.ndarray:
        """``_integers``, its error (rare) naming the first bad value's key, user and field."""
        try:
            return _integers(values)
        except (ValueError, OverflowError):
            pass
        for user_id, value in zip(ids, values, strict=True):
            if problem := _integer_problem(name, value):
                where = "the id index" if name == "id" else self._where(user_id)
                raise ValueError(f"{where} {problem}")
        raise ValueError(f"stored users have a non-integer {name!r}")  # pragma: no cover


def frame_from_batches(
    batches: Iterable[tuple[Sequence[bytes], Sequence[Sequence[bytes | None]]]],
) -> pd.DataFrame:
    """The typed DataFrame of ``(ids, HMGET replies)`` batches, in their order (ids left out are
    not reported: ``read_frame`` does that)."""
    builder = FrameBuilder()
    for ids, rows in batches:
        builder.add(ids, rows)
    return builder.frame()


def _codes(values: Sequence[Any], table: dict[Any, int]) -> np.ndarray:
    """Each value's index in ``table`` (new values are appended to it), as int32."""
    for value in dict.fromkeys(values):  # the few distinct values, found in C
        table.setdefault(value, len(table))
    return np.fromiter(map(table.__getitem__, values), dtype=np.int32, count=len(values))


def _integers(values: Sequence[bytes | None]) -> np.ndarray:
    """Decimal strings as int64, parsed by numpy in one C call (3x ``map(int)``), strictly.

    numpy's text parser stops at junk and clips overflow to the int64 bounds, so it gets only
    digits and minus signs with one space between values, and any batch it reads short or
    clipped is parsed again by ``int``, which is exact; raises ValueError or OverflowError.
    """
    if None in values:
        raise ValueError("a value is missing")
    joined = b" ".join(values)  # type: ignore[arg-type]  # no None, checked above
    parsed = None
    if (
        values
        and not joined.translate(None, b"0123456789- ")
        and joined.count(b" ") == len(values) - 1
    ):
        with contextlib.suppress(ValueError, DeprecationWarning):  # its "unmatched data"
            parsed = np.fromstring(joined, dtype=np.int64, sep=" ")
    if (
        parsed is None
        or len(parsed) != len(values)
        or parsed.max() == _INT64.max
        or parsed.min() == _INT64.min
    ):
        return np.fromiter(map(int, values), dtype=np.int64, count=len(values))  # type: ignore[arg-type]
    return parsed


def _integer_problem(name: str, value: bytes | None) -> str | None:
    """What keeps one stored value from an int64 column, as ``_integers`` reads it, or None."""
    if value is None:
        return f"has no {name!r}"
    try:
        number = int(value)
    except ValueError:
        return f"has a non-integer {name!r}: {_shown(value)}"
    if not _INT64.min <= number <= _INT64.max:
        return f"has {name!r} beyond int64: {_shown(value)}"
    return None


def _shown(value: bytes) -> str:
    """A stored value for a one-line message: decoded, quoted, escaped and cut short."""
    return reprlib.repr(value.decode("utf-8", "replace"))
