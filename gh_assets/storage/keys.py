"""``KeyNames``: the name of every key of the schema (``schema``), from the prefix and the block
size alone: no connection, so a migration or a test can name keys without a Redis."""

from __future__ import annotations

from gh_assets.storage.schema import (
    BLOCK,
    HISTOGRAMS,
    KEY_PREFIX,
    LOGIN_BUCKETS,
    block_of,
    login_bucket,
    page_block,
)


class KeyNames:
    """Key names under ``prefix`` for blocks of ``block`` user ids (``schema.BLOCK`` unless a test
    wants pages spread over a small cluster)."""

    def __init__(self, prefix: str = KEY_PREFIX, block: int = BLOCK) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, not {block}")
        self.prefix = prefix
        self.block = block
        self.login_buckets = LOGIN_BUCKETS
        self.pages_key = f"{prefix}pages"
        self.deferred_key = f"{prefix}deferred"
        self.blocks_key = f"{prefix}blocks"
        self.schema_key = f"{prefix}schema"
        self.old_keys = (f"{prefix}ids", f"{prefix}logins")

    def block_tag(self, block: int) -> str:
        """The prefix of every key of ``block``: its hash tag picks one Cluster slot."""
        return f"{self.prefix}{{b{block}}}:"

    def block_of(self, user_id: int | str) -> int:
        return block_of(user_id, self.block)

    def page_block(self, page: str) -> int:
        return page_block(page, self.block)

    def user_key(self, user_id: int | str) -> str:
        return f"{self.block_tag(self.block_of(user_id))}user:{user_id}"

    def ids_key(self, block: int) -> str:
        """The block's id index: a sorted set of its stored user ids (score = id)."""
        return f"{self.block_tag(block)}ids"

    def block_pages_key(self, block: int) -> str:
        """The set of the block's written pages."""
        return f"{self.block_tag(block)}pages"

    def version_key(self, block: int) -> str:
        """The block's version: a counter every page write (and forgetting a page) moves, so a
        summary of the block's pages made at one version is known to be current or not."""
        return f"{self.block_tag(block)}version"

    def block_summary_key(self, block: int) -> str:
        """The block's pages' aggregates merged, as JSON, with the version they were merged at
        (``gh_assets.aggregates``): what the next summary reuses while the version holds."""
        return f"{self.block_tag(block)}summary"

    def unpaged_key(self, block: int) -> str:
        """The block's users no page holds: kept by ``forget_pages`` for the wider pages that
        replace theirs; the first write of the page whose window holds one claims it."""
        return f"{self.block_tag(block)}unpaged"

    def logins_key(self, bucket: int) -> str:
        """Login bucket ``bucket``: a hash of lower-cased login -> id."""
        return f"{self.prefix}logins:{{{bucket}}}"

    def login_key(self, login: str) -> str:
        """The login bucket holding ``login`` (any case)."""
        return self.logins_key(login_bucket(login, self.login_buckets))

    def page_key(self, page: str, part: str = "") -> str:
        return f"{self.block_tag(self.page_block(page))}page:{page}{':' + part if part else ''}"

    def aggregate_keys(self, page: str) -> list[str]:
        """The page's aggregates: its ``:agg`` hash, then one ``:hist:{name}`` per HISTOGRAMS."""
        return [
            self.page_key(page, "agg"),
            *(self.page_key(page, f"hist:{name}") for name in HISTOGRAMS),
        ]

    def page_keys(self, page: str) -> list[str]:
        """Every key a page write leaves for the page (bookkeeping, members, gone, aggregates),
        all named from the page key: what forgetting the page deletes."""
        parts = ("", "users", "gone")
        return [*(self.page_key(page, part) for part in parts), *self.aggregate_keys(page)]
