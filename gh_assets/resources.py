"""Dagster resources: where GitHub and Redis are. ``from_settings`` builds them for the code
location; tests construct them directly."""

from __future__ import annotations

import hashlib
from typing import Literal

import dagster as dg
from pydantic import Field

from gh_assets.github import (
    DEFAULT_API_URL,
    DEFAULT_MAX_CONCURRENCY,
    GitHubClient,
    url_credentials,
)
from gh_assets.settings import DEFAULT_REDIS_URL, Settings
from gh_assets.storage import RedisStore


class GitHubResource(dg.ConfigurableResource):
    """GitHub's REST API, or any server that speaks it (GitHub Enterprise, the local stand-in)."""

    api_url: str = Field(
        default=DEFAULT_API_URL,
        description="REST base URL, e.g. https://HOST/api/v3 for GitHub Enterprise.",
    )
    token: str | None = Field(
        default=None,
        repr=False,
        description="Personal access or app token; anonymous when unset (60 requests/hour).",
    )
    timeout: float = Field(default=30.0, description="Seconds before one HTTP request gives up.")
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY,
        description="HTTP requests in flight at once from one run, list and detail alike.",
    )
    max_retries: int = Field(default=5, description="Retries of a request on transient faults.")
    max_rate_limit_wait: int = Field(
        default=90,
        description="Longest rate-limit wait slept inside a run; a longer one fails the page.",
    )
    detail_mode: Literal["rest", "graphql"] = Field(
        default="rest",
        description="How user counts are read: 'rest' (one conditional GET /user/{id} each) or "
        "'graphql' (one query per 100 users; needs a token on GitHub; organizations use REST).",
    )
    graphql_url: str | None = Field(
        default=None,
        description="GraphQL endpoint; derived from api_url when unset.",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubResource:
        return cls(
            api_url=settings.secret("api_url"),
            token=settings.secret("token"),
            detail_mode=settings.detail_mode,
            max_concurrency=settings.max_concurrency,
            max_retries=settings.max_retries,
            max_rate_limit_wait=settings.max_rate_limit_wait,
        )

    def get_client(self) -> GitHubClient:
        return GitHubClient(
            self.api_url,
            self.token or None,
            timeout=self.timeout,
            max_concurrency=self.max_concurrency,
            max_retries=self.max_retries,
            max_rate_limit_wait=self.max_rate_limit_wait,
            detail_mode=self.detail_mode,
            graphql_url=self.graphql_url,
        )

    @property
    def credential_id(self) -> str:
        """Names the credential behind stored ETags (valid only for the token that got them)
        without revealing it: a short digest of the token (or of the user and password in
        ``api_url``), or ``anonymous``."""
        basic = url_credentials(self.api_url)
        secret = self.token or (":".join(basic) if basic else None)
        if not secret:
            return "anonymous"
        return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


class RedisURLError(ValueError):
    """redis-py refuses the URL (e.g. a query option it cannot parse); no retry can fix it."""


class RedisResource(dg.ConfigurableResource):
    """The Redis database that holds one hash per user (see ``gh_assets.storage``)."""

    url: str = Field(
        default=DEFAULT_REDIS_URL,
        repr=False,
        description="redis://, rediss:// or unix:// URL; may carry a password or ACL user.",
    )
    key_prefix: str = Field(default="gh:", description="Prefix of every key the project writes.")

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisResource:
        return cls(url=settings.secret("redis_url"), key_prefix=settings.key_prefix)

    def get_store(self) -> RedisStore:
        try:
            return RedisStore.from_url(self.url, self.key_prefix)
        except ValueError as error:
            raise RedisURLError(str(error)) from None
