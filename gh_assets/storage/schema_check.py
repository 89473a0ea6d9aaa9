"""``SchemaCheck``: a store refuses, in one line naming REDIS_URL, a Redis holding gh_assets data
it must not read or write (the old key schema, or blocks of another size)."""

from __future__ import annotations

import json

from gh_assets.storage.connection import Connection


class SchemaError(RuntimeError):
    """The Redis holds gh_assets data this store must not read or write: the old key schema
    (``gh-assets migrate`` converts it), or blocks of another size. One line naming REDIS_URL."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"REDIS_URL={where!r} {detail}")
        self.where = where
        self.detail = detail


class SchemaCheck(Connection):
    """The schema the data was written with (``gh:schema``), checked on the store's first use."""

    def check_schema(self) -> None:
        """Refuse (``SchemaError``, one line) a Redis holding gh_assets data in the old key
        schema (``gh:ids``, ``gh:logins``: run ``gh-assets migrate``) or written with another
        block size. One round trip, on the first use of the store only."""
        if self._checked:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for key in self.old_keys:
                pipe.exists(key)
            pipe.get(self.schema_key)
            *old, stored = pipe.execute()
        found = [key for key, exists in zip(self.old_keys, old, strict=True) if exists]
        if found:
            raise SchemaError(
                self._url(),
                f"holds gh_assets data in the old key schema ({found[0]}): run gh-assets migrate",
            )
        if stored is not None:
            self._check_stored_schema(stored)
        self._checked = True

    def _check_stored_schema(self, stored: bytes | str) -> None:
        text = stored.decode() if isinstance(stored, bytes) else stored
        try:
            found = json.loads(text)
            block, buckets = int(found["block"]), int(found["login_buckets"])
        except (ValueError, KeyError, TypeError):
            raise SchemaError(
                self._url(), f"holds {self.schema_key} = {text[:60]!r}, not a gh_assets schema"
            ) from None
        if (block, buckets) != (self.block, self.login_buckets):
            raise SchemaError(
                self._url(),
                f"holds gh_assets data in blocks of {block:,} IDs and {buckets:,} login "
                f"buckets ({self.schema_key}); this store uses {self.block:,} and "
                f"{self.login_buckets:,}",
            )
