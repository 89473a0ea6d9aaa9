"""``Forgetting``: maintenance that removes data (``gh-assets forget-pages``): users with their
login entries, and pages' bookkeeping while their users stay, held by no page until re-crawled."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from gh_assets.storage.logins import LoginEntries
from gh_assets.storage.schema import ascii_lower, login_bucket


class Forgetting(LoginEntries):
    """Deletes users and forgets pages; not meant to race page writes."""

    def delete_users(self, user_ids: Sequence[int]) -> int:
        """Delete users with their id and login entries (a login entry only while it still points
        at them); a maintenance step, not meant to race page writes. Returns how many existed."""
        if not user_ids:
            return 0
        self.check_schema()
        logins = self._each(
            user_ids, self.user_key, lambda pipe, i: pipe.hget(self.user_key(i), "login")
        )
        deleted = self._each(
            user_ids,
            self.user_key,
            lambda pipe, i: (
                pipe.delete(self.user_key(i)),
                pipe.zrem(self.ids_key(self.block_of(i)), i),
                pipe.srem(self.unpaged_key(self.block_of(i)), i),
            ),
            replies=3,
        )
        removals: dict[int, list[str]] = defaultdict(list)
        for login, user_id in zip(logins, user_ids, strict=True):
            if login:
                lower = ascii_lower(login.decode())
                removals[login_bucket(lower, self.login_buckets)] += [lower, str(user_id)]
        self._update_logins({}, removals)
        return sum(existed for existed, _, _ in deleted)

    def forget_pages(self, pages: Sequence[str]) -> None:
        """Delete pages' bookkeeping (``page_keys``) and their entries in their blocks' page
        sets, ``gh:pages`` and ``gh:deferred``. Their users stay (``delete_users`` removes
        them), recorded as held by no page (``unpaged_key``) until the page whose window holds
        them is written, which keeps or deletes them as it finds them on GitHub; so do their
        blocks in ``gh:blocks``, which the users kept may still be in. Members without a hash
        (``delete_users`` removed them first) are not kept: every later write of the block would
        read them."""
        if not pages:
            return
        self.check_schema()
        members = self._each(
            pages, self.page_key, lambda p, page: p.smembers(self.page_key(page, "users"))
        )
        ids = sorted({int(i) for found in members for i in found})
        exists = self._each(ids, self.user_key, lambda pipe, i: pipe.exists(self.user_key(i)))
        alive = {i for i, found in zip(ids, exists, strict=True) if found}
        kept = {
            p: [i for i in found if int(i) in alive]
            for p, found in zip(pages, members, strict=True)
        }
        self._each(
            [page for page in pages if kept[page]],
            self.page_key,
            lambda pipe, page: pipe.sadd(self.unpaged_key(self.page_block(page)), *kept[page]),
        )

        def forget(pipe: Any, page: str) -> tuple[Any, ...]:
            block = self.page_block(page)
            return (
                pipe.delete(*self.page_keys(page)),
                pipe.srem(self.block_pages_key(block), page),
                pipe.incr(self.version_key(block)),
            )

        self._each(pages, self.page_key, forget, replies=3)
        self.client.zrem(self.pages_key, *pages)
        self.client.zrem(self.deferred_key, *pages)
