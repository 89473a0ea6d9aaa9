"""The preflight's look at who the crawl sends as: the shared budget that says whether GitHub
blocks that identity, and a GitHub App's installations, found before the first page so that a
wrong App id or key is one line, not a failed page run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from gh_assets.github import GitHubConfigError, RateLimitError, safe_url
from gh_assets.github.app_auth import GitHubApp, load_private_key
from gh_assets.github.credentials import split_tokens, token_credential
from gh_assets.github.errors import _in
from gh_assets.github.governor import Governor
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings


def budget_governor(settings: Settings, timeout: float) -> Governor | None:
    """The governor a page run would use (the budget in ``GH_ASSETS_BUDGET_REDIS_URL``, else
    ``REDIS_URL``), so the preflight honours and records the same blocks."""
    url = settings.budget_redis_url or settings.redis_url
    budget = RedisResource(url=url, key_prefix=settings.key_prefix)
    resource = GitHubResource(
        budget_redis=budget, rate_minute=settings.rate_minute, timeout=timeout
    )
    return resource.get_governor()


@contextlib.contextmanager
def quiet_client() -> Iterator[None]:
    """The client's warnings (a block it records) stay out of a command's output: the
    preflight's one line says it all."""
    logger = logging.getLogger("gh_assets.github")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def app_installations(settings: Settings, timeout: float) -> list[int]:
    """The ids of the configured App's installations the crawl will use ([] without an App):
    one JWT, one ``GET /app/installations``. Raises ``GitHubConfigError`` for a key or an id
    that cannot work, and as the App's requests do (401: ``CredentialRefusedError``)."""
    if settings.app_id is None or not settings.app_private_key:
        return []
    pem = load_private_key(settings.app_private_key)
    app = GitHubApp(str(settings.app_id), pem, settings.api_url, timeout=timeout)
    found = app.installation_ids()
    if not found:
        raise GitHubConfigError(
            f"GITHUB_APP_ID={settings.app_id}: the GitHub App has no installation: install it "
            "on an account, or check GITHUB_APP_ID"
        )
    wanted = list(settings.app_installation_ids)
    unknown = [str(i) for i in wanted if i not in found]
    if unknown:
        raise GitHubConfigError(
            f"GITHUB_APP_INSTALLATION_IDS: {', '.join(unknown)} not among the installations of "
            f"GitHub App {settings.app_id} ({', '.join(map(str, found))})"
        )
    return wanted or found


def blocked_line(settings: Settings, error: RateLimitError) -> str:
    """One line: which credential GitHub blocks, until when, and what every command and page
    run does meanwhile (send nothing for it; deferred pages run after it)."""
    tokens = split_tokens(settings.token)
    if tokens:
        who = f"GITHUB_TOKEN #1 ({token_credential(tokens[0]).digest})"
    else:
        who = f"anonymous requests to GITHUB_API_URL={safe_url(settings.api_url)!r}"
    return block_line(who, error.reset_at)


def installations_blocked(
    settings: Settings, governor: Governor | None, installations: list[int]
) -> str | None:
    """``block_line`` when GitHub blocks every installation the crawl would use, as the shared
    budget holds it (no request sent), naming the one free first; None while one can send."""
    if governor is None or not installations:
        return None
    left = {i: governor.block_left(GitHubApp.identity(i)) for i in installations}
    first = min(installations, key=left.__getitem__)
    if left[first] == 0:
        return None
    until = datetime.now(UTC) + timedelta(seconds=left[first])
    return block_line(f"GitHub App {settings.app_id} installation {first}", until)


def block_line(who: str, until: datetime) -> str:
    """The one line of a block: who, until when, and what every command and run does meanwhile."""
    seconds = max(0.0, (until - datetime.now(UTC)).total_seconds())
    return (
        f"{who}: GitHub blocks it (secondary rate limit) until {until:%Y-%m-%dT%H:%M:%SZ} "
        f"({_in(seconds)}); nothing is sent for it until then, by any command or page run "
        "(stale_pages_sensor runs the pages deferred meanwhile after it): run this again then"
    )
