"""Dagster resources: where GitHub and Redis are, configured from the environment."""

from __future__ import annotations

import hashlib

import dagster as dg
from pydantic import Field

from gh_assets.github import DEFAULT_API_URL, GitHubClient
from gh_assets.storage import RedisStore

DEFAULT_REDIS_URL = "redis://localhost:6379/0"


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
        default=8,
        description="Detail requests in flight at once (GitHub allows at most 100 concurrent).",
    )
    max_retries: int = Field(default=5, description="Retries of a request on transient faults.")
    max_rate_limit_wait: float = Field(
        default=90.0,
        description="Longest rate-limit wait slept inside a run; a longer one fails the page.",
    )

    def get_client(self) -> GitHubClient:
        return GitHubClient(
            self.api_url,
            self.token or None,
            timeout=self.timeout,
            max_concurrency=self.max_concurrency,
            max_retries=self.max_retries,
            max_rate_limit_wait=self.max_rate_limit_wait,
        )

    @property
    def credential_id(self) -> str:
        """Names the credential behind stored ETags (they are only valid for the token that got
        them) without revealing it: a short digest of the token, or ``anonymous``."""
        if not self.token:
            return "anonymous"
        return "sha256:" + hashlib.sha256(self.token.encode()).hexdigest()[:12]


class RedisResource(dg.ConfigurableResource):
    """The Redis database that holds one hash per user (see ``gh_assets.storage``)."""

    url: str = Field(
        default=DEFAULT_REDIS_URL,
        repr=False,
        description="redis://, rediss:// or unix:// URL; may carry a password or ACL user.",
    )
    key_prefix: str = Field(default="gh:", description="Prefix of every key the project writes.")

    def get_store(self) -> RedisStore:
        return RedisStore.from_url(self.url, self.key_prefix)
