"""Which pages Redis holds as written (``gh:pages``) and which it began to write but never
registered (the page is in its block's page set, ``gh:{b…}:pages``, not in ``gh:pages``: on a
Cluster, a crash between the page's script and its registration)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from gh_assets.storage.bookkeeping import PageBookkeeping

CHUNK = 5_000  # page keys per ZMSCORE


def unregistered(store: PageBookkeeping, pages: Sequence[str]) -> list[str]:
    """Those of ``pages`` that ``gh:pages`` lacks, in the order given."""
    store.check_schema()
    lacking: list[str] = []
    for first in range(0, len(pages), CHUNK):
        chunk = list(pages[first : first + CHUNK])
        scores = store.client.zmscore(store.pages_key, chunk)
        lacking += [page for page, score in zip(chunk, scores, strict=True) if score is None]
    return lacking


def write_begun(store: PageBookkeeping, pages: Sequence[str]) -> list[str]:
    """Those of ``pages`` that their block's page set holds (a write of the page ran), in the
    order given: one SMISMEMBER per block, pipelined per node."""
    store.check_schema()
    by_block: dict[int, list[str]] = defaultdict(list)
    for page in pages:
        by_block[store.page_block(page)].append(page)
    blocks = sorted(by_block)
    found = store._each(
        blocks,
        store.block_pages_key,
        lambda pipe, block: pipe.smismember(store.block_pages_key(block), by_block[block]),
    )
    begun = {
        page
        for block, flags in zip(blocks, found, strict=True)
        for page, flag in zip(by_block[block], flags, strict=True)
        if flag
    }
    return [page for page in pages if page in begun]
