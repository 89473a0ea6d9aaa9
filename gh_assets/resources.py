"""Dagster resources: where GitHub and Redis are. ``from_settings`` builds them for the code
location (secrets and connection strings bound by name, ``dg.EnvVar``); tests construct them
directly. Defaults are those of what each field configures (``Settings``, ``GovernorLimits``,
the key schema), never written here again."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from gh_assets.github import DEFAULT_API_URL, DEFAULT_MAX_CONCURRENCY, GitHubClient
from gh_assets.github.app_auth import GitHubApp, load_private_key
from gh_assets.github.client import DEFAULT_TIMEOUT
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.settings import DEFAULT_REDIS_URL, Settings
from gh_assets.storage import BLOCK, KEY_PREFIX, RedisStore

_LIMITS = GovernorLimits()
_SETTINGS = Settings()  # what an unset variable means


class RedisURLError(ValueError):
    """redis-py refuses the URL (e.g. a query option it cannot parse); no retry can fix it."""


class RedisResource(dg.ConfigurableResource):
    """The Redis database (or Redis Cluster: ``url`` may name any of its nodes) that holds one
    hash per user (see ``gh_assets.storage``)."""

    url: str = Field(
        default=DEFAULT_REDIS_URL,
        repr=False,
        description="redis://, rediss:// or unix:// URL; may carry a password or ACL user.",
    )
    key_prefix: str = Field(
        default=KEY_PREFIX, description="Prefix of every key the project writes."
    )
    block: int = Field(
        default=BLOCK,
        description="User IDs per block of the key schema (stored with the data; tests lower "
        "it to spread pages over a small cluster).",
    )

    frame_from_replicas: bool = Field(
        default=_SETTINGS.frame_from_replicas,
        description="On a Redis Cluster, read the users frame from replicas (each shard from a "
        "replica whose link is up), sparing the primaries; checks always read primaries.",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisResource:
        return cls(
            url=settings.secret("redis_url"),
            key_prefix=settings.key_prefix,
            block=settings.block,
            frame_from_replicas=settings.frame_from_replicas,
        )

    def get_store(self) -> RedisStore:
        try:
            return RedisStore.from_url(self.url, self.key_prefix, block=self.block)
        except ValueError as error:
            raise RedisURLError(str(error)) from None


class GitHubResource(dg.ConfigurableResource):
    """GitHub's REST API, or any server that speaks it (GitHub Enterprise, the local stand-in)."""

    api_url: str = Field(
        default=DEFAULT_API_URL,
        description="REST base URL, e.g. https://HOST/api/v3 for GitHub Enterprise.",
    )
    token: str | None = Field(
        default=None,
        repr=False,
        description="Personal access token, or several comma-separated (tokens of one account "
        "share its budget); anonymous when unset (60 requests/hour).",
    )
    app_id: int | None = Field(default=None, description="GitHub App id (with the key below).")
    app_private_key: str | None = Field(
        default=None, repr=False, description="GitHub App private key: PEM text or a file path."
    )
    app_installation_ids: list[int] = Field(
        default=[], description="The App's installations to use; every one when empty."
    )
    budget_redis: RedisResource | None = Field(
        default=None,
        description="The Redis holding the rate budget every process shares (its url: "
        "GH_ASSETS_BUDGET_REDIS_URL, else the data's REDIS_URL; its key_prefix the data's); "
        "without it each client keeps to itself.",
    )
    rest_points_per_minute: int = Field(
        default=_LIMITS.rest_points_per_minute,
        description="REST points per minute per identity, every process together (GitHub: "
        "900); 0: no pacing.",
    )
    graphql_points_per_minute: int = Field(
        default=_LIMITS.graphql_points_per_minute,
        description="GraphQL points per minute per identity (GitHub: 2,000); 0: no pacing.",
    )
    max_in_flight: int = Field(
        default=_LIMITS.max_in_flight,
        description="Requests in flight per identity, every process together (GitHub: 100).",
    )
    rate_minute: float = Field(
        default=_LIMITS.minute, description="Seconds in GitHub's minute (tests shorten it)."
    )
    timeout: float = Field(
        default=DEFAULT_TIMEOUT, description="Seconds before one HTTP request gives up."
    )
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY,
        description="HTTP requests in flight at once from one run, list and detail alike.",
    )
    max_retries: int = Field(
        default=_SETTINGS.max_retries, description="Retries of a request on transient faults."
    )
    max_rate_limit_wait: int = Field(
        default=_SETTINGS.max_rate_limit_wait,
        description="Longest rate-limit wait slept inside a run; a longer one fails the page.",
    )
    detail_mode: Literal["rest", "graphql"] = Field(
        default=_SETTINGS.detail_mode,
        description="How user counts are read: 'rest' (one conditional GET /user/{id} each) or "
        "'graphql' (one query per 100 users; needs a token on GitHub; organizations use REST).",
    )
    graphql_url: str | None = Field(
        default=None,
        description="GraphQL endpoint; derived from api_url when unset.",
    )

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: RedisResource | None = None
    ) -> GitHubResource:
        """The resource ``settings`` describe; its budget in ``redis`` (the data's), unless
        GH_ASSETS_BUDGET_REDIS_URL names a Redis of its own."""
        redis = redis or RedisResource.from_settings(settings)
        if settings.budget_redis_url:
            redis = RedisResource(
                url=settings.secret("budget_redis_url"), key_prefix=settings.key_prefix
            )
        return cls(
            api_url=settings.secret("api_url"),
            token=settings.secret("token"),
            detail_mode=settings.detail_mode,
            max_concurrency=settings.max_concurrency,
            max_retries=settings.max_retries,
            max_rate_limit_wait=settings.max_rate_limit_wait,
            app_id=settings.app_id,
            app_private_key=settings.secret("app_private_key"),
            app_installation_ids=list(settings.app_installation_ids),
            budget_redis=redis,
            rest_points_per_minute=settings.rest_points_per_minute,
            graphql_points_per_minute=settings.graphql_points_per_minute,
            max_in_flight=settings.max_in_flight,
            rate_minute=settings.rate_minute,
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
            governor=self.get_governor(),
            app=self._app(),
            installation_ids=self.app_installation_ids,
        )

    def get_governor(self) -> Governor | None:
        """The budget shared through Redis, or None without ``budget_redis``."""
        if self.budget_redis is None:
            return None
        limits = GovernorLimits(
            rest_points_per_minute=self.rest_points_per_minute,
            graphql_points_per_minute=self.graphql_points_per_minute,
            max_in_flight=self.max_in_flight,
            lease_seconds=self.timeout + 30,
            minute=self.rate_minute,
        )
        store = self.budget_redis.get_store()
        return Governor(store.client, limits, self.budget_redis.key_prefix)

    def _app(self) -> GitHubApp | None:
        if self.app_id is None or not self.app_private_key:
            return None
        pem = load_private_key(self.app_private_key)
        return GitHubApp(str(self.app_id), pem, self.api_url, timeout=self.timeout)
