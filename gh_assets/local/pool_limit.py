"""The github_api pool's limit (page runs calling GitHub at once): read from
``GH_ASSETS_POOL_LIMIT`` or the instance's ``pools.default_limit``, and written into the instance
before any run starts (``demo``, ``dev`` and ``set-pool-limit`` share this)."""

from __future__ import annotations

import os

from gh_assets.settings import SettingsError

POOL_LIMIT_VARIABLE = "GH_ASSETS_POOL_LIMIT"


def pool_limit(instance) -> int | None:
    """The github_api pool's limit: ``GH_ASSETS_POOL_LIMIT`` when set, else the instance's
    ``concurrency.pools.default_limit`` (locally gh_assets/local/dagster.yaml's, scaled out
    deploy/dagster.yaml's: deploy/daemon.sh runs ``set-pool-limit``); None when neither is set.
    Below 1, either is refused: no page run would ever start."""
    raw = os.environ.get(POOL_LIMIT_VARIABLE, "").strip()
    if not raw:
        configured = instance.global_op_concurrency_default_limit
        if configured is not None and configured < 1:  # 0 would hold every page run back
            raise SettingsError(
                f"concurrency.pools.default_limit={configured} in the instance's dagster.yaml: "
                f"expected a whole number >= 1 (or set {POOL_LIMIT_VARIABLE})"
            )
        return configured
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{POOL_LIMIT_VARIABLE}={raw!r}: expected a whole number >= 1")
    return int(raw)


def set_pool_limit(instance) -> int | None:
    """Write the github_api pool's limit into the instance, as ``dagster instance concurrency set
    github_api N`` does. A fresh instance ignores ``pools.default_limit`` on its first burst of
    runs (the limit is read before the pool exists), so it is set before any run starts."""
    from gh_assets.assets import GITHUB_POOL

    limit = pool_limit(instance)
    if limit is None or not instance.event_log_storage.supports_global_concurrency_limits:
        return None
    instance.event_log_storage.set_concurrency_slots(GITHUB_POOL, limit)
    return limit


def limit_source() -> str:
    """Where the limit came from, for the line a command prints."""
    if os.environ.get(POOL_LIMIT_VARIABLE, "").strip():
        return POOL_LIMIT_VARIABLE
    return "the instance's pools.default_limit"
