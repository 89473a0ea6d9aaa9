"""``AggregateReads``: the pages' stored aggregates (``page_aggregates``, written with each page)
and each block's kept merge of them, what ``gh_assets.aggregates`` reads instead of users."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from gh_assets.storage.bookkeeping import PageBookkeeping

AGGREGATE_PAGES_PER_STEP = 200  # pages whose aggregates one pipelined round trip reads


class StoredAggregates(NamedTuple):
    """One page's aggregates as stored (``schema``), read in one atomic step with its member
    count (``SCARD`` of its member set): ``agg`` the ``:agg`` hash, ``histograms`` each
    counter's ``:hist:`` hash (COUNTERS order), raw bytes as Redis gives them."""

    page: str
    members: int
    agg: dict[bytes, bytes]
    histograms: list[dict[bytes, bytes]]


class AggregateReads(PageBookkeeping):
    """Reads of the pages' aggregates; the blocks' merges, read and kept."""

    def read_aggregates(
        self, pages: Sequence[str] | None = None, per_step: int = AGGREGATE_PAGES_PER_STEP
    ) -> Iterator[StoredAggregates]:
        """The stored aggregates of ``pages`` (default: every page in ``gh:pages``, oldest first),
        ``per_step`` pages per pipelined round trip (per node). Each page is read in one atomic
        step, whole as its last write left it, with its member count (a page written meanwhile
        is seen before or after, never half); pages are independent, so no step spans two."""
        self.check_schema()
        if pages is None:
            pages = self.pages()

        def read(pipe: Any, page: str) -> Any:
            keys = [self.page_key(page, "users"), *self.aggregate_keys(page)]
            return self._read_aggregates(keys=keys, client=pipe)

        for first in range(0, len(pages), per_step):
            chunk = pages[first : first + per_step]
            replies = self._each(chunk, self.page_key, read)
            for page, (members, agg, *histograms) in zip(chunk, replies, strict=True):
                yield StoredAggregates(page, members, _pairs(agg), [_pairs(h) for h in histograms])

    def block_summaries(self, blocks: Sequence[int]) -> list[tuple[int, bytes | None]]:
        """Per block, its version now and its stored summary (None when none is stored), read
        together (one slot)."""
        found = self._each(
            blocks,
            self.version_key,
            lambda pipe, b: (pipe.get(self.version_key(b)), pipe.get(self.block_summary_key(b))),
            replies=2,
        )
        return [(int(version or 0), stored) for version, stored in found]

    def block_version(self, block: int) -> int:
        return int(self.client.get(self.version_key(block)) or 0)

    def store_block_summary(self, block: int, text: str) -> None:
        """Keep ``text`` (the block's merged aggregates with their version) for later summaries."""
        self.client.set(self.block_summary_key(block), text)


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash as a script returns it (field, value, ...) as a dict, like ``HGETALL``'s."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
