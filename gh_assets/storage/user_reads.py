"""``UserReads``: stored users by id (hashes, counters, ids in a window, how many), one round trip
per node; the whole store as a frame is ``frame_read``."""

from __future__ import annotations

from collections.abc import Iterable

from gh_assets.storage.bookkeeping import PageBookkeeping
from gh_assets.storage.schema import COUNTERS


class UserReads(PageBookkeeping):
    """Reads of users by id."""

    def read_users(self, user_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Stored hashes of the given ids (absent ids left out), in one round trip per node."""
        ids = list(user_ids)
        self.check_schema()
        hashes = self._each(ids, self.user_key, lambda pipe, i: pipe.hgetall(self.user_key(i)))
        return {
            user_id: {k.decode(): v.decode() for k, v in found.items()}
            for user_id, found in zip(ids, hashes, strict=True)
            if found
        }

    def ids_between(self, first_id: int, last_id: int) -> set[int]:
        """Stored user ids in an ID window, from the id indexes of its blocks."""
        self.check_schema()
        blocks = list(range(self.block_of(first_id), self.block_of(last_id) + 1))
        found = self._each(
            blocks,
            self.ids_key,
            lambda pipe, b: pipe.zrangebyscore(self.ids_key(b), first_id, last_id),
        )
        return {int(i) for ids in found for i in ids}

    def read_counters(self, user_ids: Iterable[int]) -> dict[int, list[bytes | None]]:
        """The four counters of each id (None where absent), in one round trip per node."""
        ids = list(user_ids)
        self.check_schema()
        found = self._each(
            ids, self.user_key, lambda pipe, i: pipe.hmget(self.user_key(i), COUNTERS)
        )
        return dict(zip(ids, found, strict=True))

    def user_count(self) -> int:
        self.check_schema()
        blocks = self.blocks()
        return sum(self._each(blocks, self.ids_key, lambda pipe, b: pipe.zcard(self.ids_key(b))))
