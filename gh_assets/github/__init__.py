"""GitHub client for the users crawl: paging, conditional requests, retries, rate limits.

Only what the crawl needs: list users by ID window (``GET /users``) and read each one's counters
by ID (``GET /user/{id}``, which survives renames, with ETags so unchanged users cost no rate
limit; or, in GraphQL detail mode, a query for many users at once). Works against
api.github.com, GitHub Enterprise (``https://HOST/api/v3``) and the local stand-in.
"""

from gh_assets.github.client import (
    CREDENTIALS_CONFLICT,
    DEFAULT_API_URL,
    DETAIL_MODES,
    DetailMode,
    GitHubClient,
)
from gh_assets.github.concurrency import DEFAULT_MAX_CONCURRENCY, request_rank
from gh_assets.github.errors import (
    CredentialRefusedError,
    GitHubConfigError,
    GitHubError,
    GitHubHTTPError,
    GitHubUnreachableError,
    MalformedResponseError,
    RateLimitError,
    connection_reason,
)
from gh_assets.github.graphql import GRAPHQL_BATCH, USER_COUNTS_QUERY, graphql_endpoint
from gh_assets.github.models import GONE, NOT_MODIFIED, Answer, ListedUser, UserDetail
from gh_assets.github.stats import RequestStats, RequestTally, request_tally
from gh_assets.github.urls import safe_url, url_credentials

__all__ = [
    "CREDENTIALS_CONFLICT",
    "DEFAULT_API_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DETAIL_MODES",
    "GONE",
    "GRAPHQL_BATCH",
    "NOT_MODIFIED",
    "USER_COUNTS_QUERY",
    "Answer",
    "CredentialRefusedError",
    "DetailMode",
    "GitHubClient",
    "GitHubConfigError",
    "GitHubError",
    "GitHubHTTPError",
    "GitHubUnreachableError",
    "ListedUser",
    "MalformedResponseError",
    "RateLimitError",
    "RequestStats",
    "RequestTally",
    "UserDetail",
    "connection_reason",
    "graphql_endpoint",
    "request_rank",
    "request_tally",
    "safe_url",
    "url_credentials",
]
