"""The economy benchmark's crawls against the stand-in: GitHub's limits per account as it
enforces them, the two identities, the shortened clock, one crawl until its pages are done or a
rate limit stops it (with the governor's record), and an account's primary budgets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from gh_assets.crawl import PageReport, crawl_pages
from gh_assets.github import GitHubClient, RateLimitError
from gh_assets.github.governor import Governor
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore

# GitHub's limits per account, as the stand-in enforces them (on the shortened clock).
GITHUB_IN_FLIGHT = 100
GITHUB_REST_PER_MINUTE = 900
GITHUB_GRAPHQL_PER_MINUTE = 2_000
CLIENT_MAX_WAIT = 90.0  # GitHubClient's default max_rate_limit_wait, in GitHub's seconds
USER_AGENT = "gh-assets-bench"
TOKENS = {"rest": "tok-economy-rest", "graphql": "tok-economy-graphql"}
LOGINS = {"rest": "economy-rest", "graphql": "economy-graphql"}


@dataclass(frozen=True)
class Clock:
    """GitHub's time, shortened ``k`` times."""

    k: float

    @property
    def minute(self) -> float:
        return 60.0 / self.k

    @property
    def hour(self) -> float:
        return 3600.0 / self.k


@dataclass
class Crawl:
    """One crawl: the pages it wrote, the rate limit that stopped it, the governor's record."""

    reports: list[PageReport]
    seconds: float
    stopped: RateLimitError | None
    slots: list[float]  # Redis time of each grant, sorted
    acquire_seconds: list[float]
    staged: int  # users of the pages the stop left unfinished, paid for and kept for the re-run

    @property
    def users(self) -> int:
        """Users paid for: written, or staged for their page's re-run (which asks no more)."""
        return sum(report.written for report in self.reports) + self.staged

    @property
    def windows(self) -> list[PageWindow]:
        return [PageWindow.from_key(report.page) for report in self.reports]


def crawl(
    url: str,
    token: str,
    governor: Governor,
    store: RedisStore,
    windows: Sequence[PageWindow],
    clock: Clock,
    **client_options: Any,
) -> Crawl:
    """``crawl_pages`` over ``windows`` until they are done or a rate limit stops it."""
    reports: list[PageReport] = []
    stopped: RateLimitError | None = None
    wait = CLIENT_MAX_WAIT / clock.k
    started = time.perf_counter()
    with GitHubClient(
        url, token, governor=governor, max_rate_limit_wait=wait, **client_options
    ) as client:
        try:
            reports.extend(crawl_pages(client, store, windows))
        except RateLimitError as error:
            stopped = error
    seconds = time.perf_counter() - started
    done = {report.page for report in reports}
    staged = sum(
        sum(answer is not None for answer in store.staged_answers(window.key).values())
        for window in windows
        if window.key not in done
    )
    return Crawl(
        reports, seconds, stopped, sorted(governor.slots), list(governor.acquire_seconds), staged
    )


def budgets(url: str, token: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The stand-in's primary budgets of ``token``'s account (``GET /rate_limit``): its body's
    resources and its headers."""
    answer = requests.get(
        f"{url}/rate_limit",
        headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["resources"], dict(answer.headers)
