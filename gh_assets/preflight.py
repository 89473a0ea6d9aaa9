"""Reach the configured Redis and GitHub once, before the first page, so that a wrong URL or token
stops a command with one line instead of failing every page after its retries; and the one-line
descriptions of those faults, which the page asset also gives when they happen during a run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import dagster as dg
import redis
from redis.backoff import NoBackoff
from redis.exceptions import InvalidResponse, NoPermissionError
from redis.retry import Retry

from gh_assets.github import (
    CredentialRefusedError,
    GitHubClient,
    GitHubConfigError,
    GitHubError,
    GitHubUnreachableError,
    RateLimitError,
    connection_reason,
    safe_url,
    url_credentials,
)
from gh_assets.github.governor import Governor
from gh_assets.github_identity import (
    app_installations,
    blocked_line,
    budget_governor,
    installations_blocked,
    quiet_client,
)
from gh_assets.resources import RedisURLError
from gh_assets.settings import SECRETS, Settings, SettingsError
from gh_assets.storage import BLOCK, KEY_PREFIX, RedisStore, SchemaError

TIMEOUT = 3.0  # seconds per service: a host that drops packets must not hold a command long
# Redis faults a run reports in one line naming REDIS_URL. Those no retry can fix (the URL, or
# its credentials, are wrong) fail the page at once; the others are left to its RetryPolicy.
REDIS_CONFIG_ERRORS = (
    RedisURLError,
    redis.AuthenticationError,
    NoPermissionError,
    InvalidResponse,
    SchemaError,
)
REDIS_FAULTS = (*REDIS_CONFIG_ERRORS, redis.ConnectionError, redis.TimeoutError)


class PreflightError(SettingsError):
    """A configured service does not answer as it must; one line naming the variable."""


class IdentityBlocked(PreflightError):
    """GitHub blocks the credential's identity for a while: try again after it (EX_TEMPFAIL)."""

    exit_code = 75


def check(settings: Settings, timeout: float = TIMEOUT, say: Callable[[str], None] = print) -> None:
    """One PING to Redis (and a look at the key schema its data is in) and one
    ``GET /rate_limit`` to GitHub, neither retried, and a GitHub App's installations (``say``
    names them); raises ``PreflightError`` for the first that does not answer as it must."""
    check_redises(settings, timeout)
    installations = check_github(settings, timeout)
    if installations:
        say(f"GitHub App {settings.app_id}: installations {', '.join(map(str, installations))}")


def check_redises(settings: Settings, timeout: float = TIMEOUT) -> None:
    """``check_redis`` of the data's Redis, then of the shared budget's own when it has one."""
    check_redis(settings.redis_url, timeout, prefix=settings.key_prefix, block=settings.block)
    if settings.budget_redis_url:
        variable = SECRETS["budget_redis_url"]
        check_redis(settings.budget_redis_url, timeout, prefix=None, variable=variable)


def check_redis(
    url: str,
    timeout: float = TIMEOUT,
    *,
    prefix: str | None = KEY_PREFIX,
    block: int = BLOCK,
    variable: str = "REDIS_URL",
) -> None:
    """PING the Redis at ``url`` (named ``variable`` in the refusal); with a ``prefix``, refuse
    data under it in the old key schema or of another block size (``RedisStore.check_schema``:
    one EXISTS per old global key)."""
    try:
        store = RedisStore.from_url(
            url,
            prefix or KEY_PREFIX,
            block=block,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            store.client.ping()
            if prefix is not None:
                store.check_schema()
        finally:
            store.close()
    except (redis.RedisError, ValueError, SchemaError) as error:
        raise PreflightError(redis_fault(url, error, variable)) from None


def check_github(settings: Settings, timeout: float = TIMEOUT) -> list[int]:
    """``GET /rate_limit`` within the shared budget (an identity GitHub blocks is named, and
    nothing sent for it), then the App's installations; returns their ids ([] without an App)."""
    options = {"timeout": timeout, "max_retries": 0, "max_rate_limit_wait": timeout}
    governor = budget_governor(settings, timeout)
    try:
        try:
            with (
                quiet_client(),
                GitHubClient(
                    settings.api_url,
                    settings.token,
                    detail_mode=settings.detail_mode,
                    governor=governor,
                    **options,  # type: ignore[arg-type]
                ) as client,
            ):
                client.check_access()
        except RateLimitError as error:  # a spent budget is fine: a run waits or defers
            if error.secondary:
                raise IdentityBlocked(blocked_line(settings, error)) from None
        return unblocked(settings, governor, app_installations(settings, timeout))
    except GitHubConfigError as error:
        raise PreflightError(str(error)) from None
    except RateLimitError as error:
        if not error.secondary:  # the budget is spent: a run waits for the reset or defers
            return unblocked(settings, governor, app_installations(settings, timeout))
        raise IdentityBlocked(blocked_line(settings, error)) from None
    except GitHubError as error:
        fault = github_fault(error, settings.api_url, settings.token)
        where = f"GITHUB_API_URL={safe_url(settings.api_url)!r}"
        raise PreflightError(fault or f"{where}: {error}") from None


def unblocked(settings: Settings, governor: Governor | None, installations: list[int]) -> list[int]:
    """``installations``, unless GitHub blocks every one of them (``IdentityBlocked``)."""
    line = installations_blocked(settings, governor, installations)
    if line:
        raise IdentityBlocked(line)
    return installations


def redis_fault(url: str, error: Exception, variable: str = "REDIS_URL") -> str:
    """``error`` from the Redis at ``url`` as one line naming ``variable``, its password masked."""
    where = f"{variable}={safe_url(url)!r}"
    if isinstance(error, SchemaError):
        return f"{where} {error.detail}"
    text = " ".join(str(error).split())
    password = url_credentials(url)
    if password and password[1]:
        text = text.replace(password[1], "***")
    if isinstance(error, redis.AuthenticationError | NoPermissionError):
        return f"{where}: Redis refused the credentials ({text})"
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        reason = connection_reason(error)
        return f"{where}: nothing answers there ({reason})" if reason else f"{where}: {text}"
    if isinstance(error, InvalidResponse):
        return f"{where}: what answers there is not Redis ({text})"
    if isinstance(error, ValueError):
        return f"{where}: redis-py refuses it ({text})"
    return f"{where}: {type(error).__name__}: {text}"


def github_fault(error: GitHubError, api_url: str, token: str | None) -> str | None:
    """``error`` as one line naming the variable to fix, when one is to blame: GitHub cannot be
    reached, or it refused the credential. None for any other error."""
    where = f"GITHUB_API_URL={safe_url(api_url)!r}"
    if isinstance(error, GitHubUnreachableError):
        return f"{where}: nothing answers there ({error.reason})"
    if error.status != 401:
        return None
    answer = f"401 {error.detail}"
    if isinstance(error, CredentialRefusedError):
        return f"{error.which}: GitHub refused it ({answer})"
    if token:
        return f"GITHUB_TOKEN: GitHub refused the token ({answer})"
    if url_credentials(api_url):
        return f"GITHUB_API_URL: GitHub refused the user and password in the URL ({answer})"
    return f"{where}: the API refuses anonymous requests ({answer}); set GITHUB_TOKEN"


def github_target(api_url: str, token: str | None, app_id: int | None = None) -> str:
    """Where the crawl goes and with which credential, for a command's banner; no secret."""
    if app_id is not None:
        auth = f"as GitHub App {app_id} (GITHUB_APP_ID) on its installations"
        auth += " and with GITHUB_TOKEN" if token else ""
    elif token:
        auth = "with GITHUB_TOKEN"
    elif url_credentials(api_url):
        auth = "with the user and password in GITHUB_API_URL"
    else:
        auth = "anonymously"
    return f"{safe_url(api_url)}, {auth}"


def banner(settings: Settings) -> str:
    """``github_target`` of ``settings``."""
    return github_target(settings.api_url, settings.token, settings.app_id)


@contextlib.contextmanager
def redis_failures(url: str) -> Iterator[None]:
    """Inside a run: a Redis fault becomes a one-line ``dg.Failure`` naming REDIS_URL, retried
    by the page's RetryPolicy only when Redis may come back (not for a refused URL or password)."""
    try:
        yield
    except REDIS_FAULTS as error:
        raise dg.Failure(
            description=redis_fault(url, error),
            allow_retries=not isinstance(error, REDIS_CONFIG_ERRORS),
        ) from None


def github_failure(
    error: GitHubError, api_url: str, token: str | None, page: str
) -> dg.Failure | None:
    """Inside a run: ``github_fault`` as a ``dg.Failure`` of ``page``, retried by its RetryPolicy
    only when GitHub could not be reached (a refused credential stays refused); else None."""
    fault = github_fault(error, api_url, token)
    if fault is None:
        return None
    return dg.Failure(
        description=f"{fault}; page {page} was not written",
        allow_retries=isinstance(error, GitHubUnreachableError),
    )
