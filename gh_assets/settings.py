"""Every setting of the code location, read from its environment once, where the definitions are
built (``gh_assets.definitions``), and handed to what needs it. docs/configuration.md lists
them (gh_assets_tests/test_docs.py keeps it complete)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from gh_assets.asset_storage_check import storage_fault
from gh_assets.github import (
    CREDENTIALS_CONFLICT,
    DEFAULT_API_URL,
    DEFAULT_MAX_CONCURRENCY,
    DETAIL_MODES,
    safe_url,
    url_credentials,
)
from gh_assets.github.client import (
    DEFAULT_DETAIL_MODE,
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    DEFAULT_MAX_RETRIES,
)
from gh_assets.github.credentials import split_tokens
from gh_assets.github.governor import GovernorLimits
from gh_assets.storage.schema import BLOCK, KEY_PREFIX

WEEK = 7 * 24 * 3600
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
REDIS_SCHEMES = ("redis", "rediss", "unix")
# Settings holding a secret: resources bind them by name (dg.EnvVar), so the UI never shows them;
# the API URL only when it carries a user and password.
SECRETS = {
    "token": "GITHUB_TOKEN",
    "app_private_key": "GITHUB_APP_PRIVATE_KEY",
    "redis_url": "REDIS_URL",
    "budget_redis_url": "GH_ASSETS_BUDGET_REDIS_URL",
    "api_url": "GITHUB_API_URL",
}
HIDDEN = ("token", "app_private_key")  # never shown, not even in a refusal
_LIMITS = GovernorLimits()  # the shared budget's defaults live with the governor


class SettingsError(ValueError):
    """A setting's value is unusable; the message is one line naming the variable."""


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not raw.isdecimal() or int(raw) < minimum:
            raise SettingsError(f"a whole number >= {minimum}")
        return int(raw)

    return parse


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise SettingsError(f"one of {', '.join(choices)}")
        return raw

    return parse


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if not parts or parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise SettingsError(f"a {' or '.join(s + '://' for s in schemes)} URL")
        return raw.rstrip("/") if parts.scheme.startswith("http") else raw

    return parse


def _text(raw: str) -> str:
    return raw


def _tokens(raw: str) -> str:
    """One token or several, comma-separated: commas alone would crawl anonymously."""
    if not split_tokens(raw):
        raise SettingsError("one or more tokens, comma-separated")
    return raw


def _yes_no(raw: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if raw.lower() not in words:
        raise SettingsError("true or false (1/0, yes/no)")
    return words[raw.lower()]


def _storage(raw: str) -> str:
    """A base URI (``s3://bucket/prefix``) as given; a local path made absolute, since runs may
    start in another working directory. Either refused now if it cannot hold the files."""
    base = raw if "://" in raw else os.path.abspath(raw)
    fault = storage_fault(base)
    if fault:
        raise SettingsError(fault)
    return base


def _ids(raw: str) -> tuple[int, ...]:
    ids = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not ids or not all(part.isdecimal() and int(part) > 0 for part in ids):
        raise SettingsError("whole numbers >= 1, comma-separated")
    return tuple(int(part) for part in ids)


def _env(name: str, parse: Callable[[str], Any], **options: Any) -> Any:
    """A dataclass field read from environment variable ``name`` by ``parse``."""
    return field(metadata={"env": name, "parse": parse}, **options)


@dataclass(frozen=True, repr=False)
class Settings:
    """The crawl's configuration; defaults are what an unset variable means."""

    api_url: str = _env("GITHUB_API_URL", _url("https", "http"), default=DEFAULT_API_URL)
    token: str | None = _env("GITHUB_TOKEN", _tokens, default=None, repr=False)  # one or several
    app_id: int | None = _env("GITHUB_APP_ID", _whole(1), default=None)
    app_private_key: str | None = _env("GITHUB_APP_PRIVATE_KEY", _text, default=None, repr=False)
    app_installation_ids: tuple[int, ...] = _env("GITHUB_APP_INSTALLATION_IDS", _ids, default=())
    detail_mode: str = _env(
        "GH_ASSETS_DETAIL_MODE", _one_of(*DETAIL_MODES), default=DEFAULT_DETAIL_MODE
    )
    max_concurrency: int = _env(
        "GH_ASSETS_MAX_CONCURRENCY", _whole(1), default=DEFAULT_MAX_CONCURRENCY
    )
    max_retries: int = _env("GH_ASSETS_MAX_RETRIES", _whole(0), default=DEFAULT_MAX_RETRIES)
    max_rate_limit_wait: int = _env(
        "GH_ASSETS_MAX_RATE_LIMIT_WAIT", _whole(0), default=DEFAULT_MAX_RATE_LIMIT_WAIT
    )
    # The shared budget per identity (gh_assets.github.governor); 0 points: no pacing.
    rest_points_per_minute: int = _env(
        "GH_ASSETS_REST_POINTS_PER_MINUTE", _whole(0), default=_LIMITS.rest_points_per_minute
    )
    graphql_points_per_minute: int = _env(
        "GH_ASSETS_GRAPHQL_POINTS_PER_MINUTE", _whole(0), default=_LIMITS.graphql_points_per_minute
    )
    max_in_flight: int = _env("GH_ASSETS_MAX_IN_FLIGHT", _whole(1), default=_LIMITS.max_in_flight)
    # Tests shorten it.
    rate_minute: int = _env("GH_ASSETS_RATE_MINUTE", _whole(1), default=int(_LIMITS.minute))
    redis_url: str = _env("REDIS_URL", _url(*REDIS_SCHEMES), default=DEFAULT_REDIS_URL, repr=False)
    # The shared rate budget's own Redis (e.g. one that never waits behind page writes, or is
    # kept apart from a data store that may be flushed); unset: the data's, REDIS_URL.
    budget_redis_url: str | None = _env(
        "GH_ASSETS_BUDGET_REDIS_URL", _url(*REDIS_SCHEMES), default=None, repr=False
    )
    key_prefix: str = _env("GH_ASSETS_KEY_PREFIX", _text, default=KEY_PREFIX)
    # On a Redis Cluster, the frame reads each shard from a replica (checks never do).
    frame_from_replicas: bool = _env("GH_ASSETS_FRAME_FROM_REPLICAS", _yes_no, default=False)
    # Where asset values go as Parquet; unset: the Dagster instance's storage folder.
    asset_storage: str | None = _env("GH_ASSETS_ASSET_STORAGE", _storage, default=None)
    page_size: int = _env("GH_ASSETS_PAGE_SIZE", _whole(1), default=100)
    pages: int = _env("GH_ASSETS_PAGES", _whole(1), default=10)
    max_pages: int = _env("GH_ASSETS_MAX_PAGES", _whole(1), default=100_000)
    pages_per_run: int = _env("GH_ASSETS_PAGES_PER_RUN", _whole(1), default=1)
    page_retries: int = _env("GH_ASSETS_PAGE_RETRIES", _whole(0), default=2)
    recrawl_after: int = _env("GH_ASSETS_RECRAWL_AFTER", _whole(1), default=WEEK)
    recrawl_batch: int = _env("GH_ASSETS_RECRAWL_BATCH", _whole(1), default=10)
    sensor_interval: int = _env("GH_ASSETS_SENSOR_INTERVAL", _whole(1), default=60)
    frontier_interval: int = _env("GH_ASSETS_FRONTIER_INTERVAL", _whole(0), default=3600)
    # IDs per block of the Redis key schema (gh_assets.storage.schema): not a variable, since
    # stored data keeps its block size; tests lower it to spread pages over a small cluster.
    block: int = field(default=BLOCK)
    # Which secret settings came from the environment: those are bound by name, not by value.
    from_environment: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # requests would send the URL's Basic auth instead of the token: refuse to guess.
        if self.token and url_credentials(self.api_url):
            raise SettingsError(CREDENTIALS_CONFLICT.format(url=safe_url(self.api_url)))
        if self.block % self.page_size:
            divisors = [w for w in (100, 200, 500, 1000, 2500, 5000, 10000) if self.block % w == 0]
            shown = ", ".join(map(str, divisors)) or "1"
            raise SettingsError(
                f"GH_ASSETS_PAGE_SIZE='{self.page_size}': expected a divisor of {self.block} "
                f"(a page lies in one block of IDs of the Redis key schema), e.g. {shown}"
            )
        if self.pages > self.max_pages:
            raise SettingsError(
                f"GH_ASSETS_PAGES='{self.pages}': expected at most GH_ASSETS_MAX_PAGES "
                f"({self.max_pages}), where the crawl stops adding pages"
            )
        if (self.app_id is None) != (self.app_private_key is None):
            raise SettingsError(
                "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY go together: set both or neither"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every variable; the first bad one raises a one-line SettingsError."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.metadata.get("env")
            raw = environ.get(name, "").strip() if name else ""
            if not raw:
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except SettingsError as expected:
                shown = "(set, not shown)" if spec.name in HIDDEN else repr(safe_url(raw))
                raise SettingsError(f"{name}={shown}: expected {expected}") from None
        bound = frozenset(
            SECRETS[name]
            for name in SECRETS
            if name in values and (name != "api_url" or url_credentials(values[name]))
        )
        return cls(**values, from_environment=bound)

    def __repr__(self) -> str:
        """Every setting but the secrets: no token, no Redis URL, the API URL masked."""
        shown = {spec.name: getattr(self, spec.name) for spec in fields(self) if spec.repr}
        shown["api_url"] = safe_url(self.api_url)
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    def secret(self, name: str) -> Any:
        """The value a resource field gets for secret setting ``name``: its variable, bound by
        name when the value came from the environment (so Dagster shows no value), else itself."""
        variable = SECRETS[name]
        return _env_var(variable) if variable in self.from_environment else getattr(self, name)


def _env_var(name: str) -> Any:
    import dagster as dg  # the settings stay importable without Dagster (e.g. by the bench)

    return dg.EnvVar(name)


# The settings the definitions being loaded read (``load``); unset: the environment's.
_LOADING: ContextVar[Settings | None] = ContextVar("gh_assets_settings", default=None)


@contextmanager
def loading(settings: Settings) -> Iterator[Settings]:
    """While the code location loads: ``settings`` is what ``at_load()`` answers (tests build
    definitions for settings of their own this way, ``definitions.build_defs``)."""
    token = _LOADING.set(settings)
    try:
        yield settings
    finally:
        _LOADING.reset(token)


def at_load() -> Settings:
    """The settings of the definitions being loaded: those of ``loading``, else the
    environment's, read now (never at import, so ``dg check defs`` names a bad one in a line)."""
    return _LOADING.get() or Settings.from_env()
