"""``PageBookkeeping``: what Redis records about pages (their members, gone ids, metadata, the
times they were written or deferred to, the answers a stopped page kept) and the blocks holding
data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from gh_assets.storage.cluster_steps import ClusterSteps
from gh_assets.storage.schema_check import SchemaCheck

STAGED_SECONDS = 3 * 3600  # longer than GitHub's hourly reset, short enough to stay fresh
GONE_MARK = "gone"


class PageBookkeeping(ClusterSteps, SchemaCheck):
    """Reads of the pages' bookkeeping, deferrals, and answers staged for a page's re-run."""

    def stage_answers(self, page: str, answers: Mapping[int, Mapping[str, str] | None]) -> None:
        """Keep answers a page got before an error stopped it (a user's hash, or None: gone), for
        ``STAGED_SECONDS``: its re-run reuses them instead of paying GitHub for them again (the
        page is still written whole, by its re-run; that write drops them)."""
        if not answers:
            return
        self.check_schema()
        key = self.page_key(page, "staged")
        mapping = {
            str(i): GONE_MARK if a is None else json.dumps(dict(a)) for i, a in answers.items()
        }
        with self.client.pipeline(transaction=True) as pipe:  # one key: one slot
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, STAGED_SECONDS)
            pipe.execute()

    def staged_answers(self, page: str) -> dict[int, dict[str, str] | None]:
        """The answers ``stage_answers`` kept for ``page`` (None: the user is gone)."""
        self.check_schema()
        found = self.client.hgetall(self.page_key(page, "staged"))
        return {
            int(i): None if raw == GONE_MARK.encode() else json.loads(raw)
            for i, raw in found.items()
        }

    def page_members(self, page: str) -> set[int]:
        self.check_schema()
        return {int(member) for member in self.client.smembers(self.page_key(page, "users"))}

    def page_gone(self, page: str) -> set[int]:
        self.check_schema()
        return {int(member) for member in self.client.smembers(self.page_key(page, "gone"))}

    def page_meta(self, page: str) -> dict[str, str]:
        self.check_schema()
        found = self.client.hgetall(self.page_key(page))
        return {k.decode(): v.decode() for k, v in found.items()}

    def pages(self) -> list[str]:
        """Every written page (``gh:pages``), oldest first."""
        return [page.decode() for page in self.client.zrange(self.pages_key, 0, -1)]

    def pages_meta(self) -> dict[str, dict[str, str]]:
        """Every crawled page's bookkeeping, oldest first, in one round trip per node."""
        self.check_schema()
        pages = self.pages()
        found = self._each(pages, self.page_key, lambda pipe, p: pipe.hgetall(self.page_key(p)))
        return {
            page: {k.decode(): v.decode() for k, v in meta.items()}
            for page, meta in zip(pages, found, strict=True)
        }

    def pages_fetched_at(self) -> dict[str, datetime]:
        """Every crawled page with the time it was last written, oldest first."""
        self.check_schema()
        return {
            page.decode(): datetime.fromtimestamp(score, UTC)
            for page, score in self.client.zrange(self.pages_key, 0, -1, withscores=True)
        }

    def stale_pages(self, before: datetime, limit: int) -> list[str]:
        """Up to ``limit`` pages last written before ``before``, oldest first."""
        self.check_schema()
        found = self.client.zrangebyscore(
            self.pages_key, "-inf", f"({before.timestamp()}", start=0, num=limit
        )
        return [page.decode() for page in found]

    def defer_page(self, page: str, until: datetime) -> None:
        """Mark a page to run again after ``until`` (the reset of a long rate limit)."""
        self.check_schema()
        self.client.zadd(self.deferred_key, {page: until.timestamp()})

    def deferred_pages(self) -> dict[str, datetime]:
        """Pages waiting for a rate-limit reset, with the time each may run again."""
        self.check_schema()
        return {
            page.decode(): datetime.fromtimestamp(score, UTC)
            for page, score in self.client.zrange(self.deferred_key, 0, -1, withscores=True)
        }

    def blocks(self) -> list[int]:
        """The blocks holding data (``gh:blocks``), ascending."""
        return [int(block) for block in self.client.zrange(self.blocks_key, 0, -1)]

    def block_pages(self, block: int) -> list[str]:
        """The block's written pages, in ID order."""
        return sorted(m.decode() for m in self.client.smembers(self.block_pages_key(block)))

    def page_user_total(self) -> int:
        """Users stored over all pages, by the pages' own bookkeeping."""
        self.check_schema()
        pages = self.pages()
        found = self._each(
            pages, self.page_key, lambda pipe, p: pipe.hget(self.page_key(p), "users")
        )
        return sum(int(users or 0) for users in found)
