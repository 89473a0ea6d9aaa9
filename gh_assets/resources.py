"""Dagster resources: where GitHub and Redis are, configured from the environment."""

from __future__ import annotations

import hashlib
from typing import Any

import dagster as dg
from pydantic import Field, field_validator

from gh_assets.github import (
    DEFAULT_API_URL,
    DEFAULT_MAX_CONCURRENCY,
    DETAIL_MODES,
    GitHubClient,
)
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
        default=DEFAULT_MAX_CONCURRENCY,
        description="HTTP requests in flight at once from one run, list and detail requests "
        "alike. GitHub allows at most 100 concurrent requests per account; the github_api pool "
        "lets 2 runs call GitHub at once, so the default 2 x 32 = 64 stays under it.",
    )
    max_retries: int = Field(default=5, description="Retries of a request on transient faults.")
    max_rate_limit_wait: int = Field(
        default=90,
        description="Longest rate-limit wait slept inside a run; a longer one fails the page.",
    )
    # Literal["rest", "graphql"] in meaning; typed str because Dagster turns a Literal into an
    # Enum config type, which cannot take an EnvVar. The validator below enforces the values.
    detail_mode: str = Field(
        default="rest",
        description="How user counts are read: 'rest' (one conditional GET /user/{id} each) or "
        "'graphql' (one query per 100 users, about 4 of 5,000 points an hour; needs a token on "
        "GitHub; organizations still go through REST).",
    )
    graphql_url: str | None = Field(
        default=None,
        description="GraphQL endpoint; derived from api_url when unset (api.github.com/graphql, "
        "HOST/api/graphql for GitHub Enterprise, {api_url}/graphql otherwise).",
    )

    @field_validator("detail_mode", mode="before")
    @classmethod
    def _known_detail_mode(cls, value: Any) -> Any:
        if isinstance(value, dg.EnvVar):  # checked once Dagster resolves it, at run time
            return value
        if value not in DETAIL_MODES:
            raise ValueError(f"detail_mode must be one of {', '.join(DETAIL_MODES)}, got {value!r}")
        return value

    def get_client(self) -> GitHubClient:
        return GitHubClient(
            self.api_url,
            self.token or None,
            timeout=self.timeout,
            max_concurrency=self.max_concurrency,
            max_retries=self.max_retries,
            max_rate_limit_wait=self.max_rate_limit_wait,
            detail_mode="graphql" if self.detail_mode == "graphql" else "rest",
            graphql_url=self.graphql_url or None,
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
