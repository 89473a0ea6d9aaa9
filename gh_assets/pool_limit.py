"""The github_api pool's limit (page runs calling GitHub at once): read from
``GH_ASSETS_POOL_LIMIT`` or the instance's ``pools.default_limit``, and written into the instance
before any run starts (``demo``, ``dev`` and ``set-pool-limit`` share this; the first two are in
the devtools, the last runs in production)."""

from __future__ import annotations

import os

from gh_assets.settings import SettingsError

POOL_LIMIT_VARIABLE = "GH_ASSETS_POOL_LIMIT"


def pool_limit(instance) -> int | None:
    """The github_api pool's limit: ``GH_ASSETS_POOL_LIMIT`` when set, else the instance's
    ``concurrency.pools.default_limit`` (locally the devtools' dagster.yaml, scaled out
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
    from gh_assets.defs.crawl.page_asset import GITHUB_POOL

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


def limit_dagster_home() -> str:
    """``gh-assets set-pool-limit``: the limit written into the instance of ``DAGSTER_HOME``, as
    ``demo`` and ``dev`` do; the line to print. No limit, or a storage without pools, is refused:
    the scale-out crawl relies on the pool."""
    import dagster as dg

    from gh_assets.defs.crawl.page_asset import GITHUB_POOL

    if not os.environ.get("DAGSTER_HOME", "").strip():
        raise SettingsError("DAGSTER_HOME is not set: the instance whose pool to limit")
    with dg.DagsterInstance.get() as instance:
        limit = pool_limit(instance)
        if limit is None:
            raise SettingsError(
                f"no limit for the {GITHUB_POOL} pool: set {POOL_LIMIT_VARIABLE} or "
                "concurrency.pools.default_limit in the instance's dagster.yaml"
            )
        if not instance.event_log_storage.supports_global_concurrency_limits:
            raise SettingsError(
                f"the instance's storage does not support pools: {GITHUB_POOL} cannot be limited"
            )
        set_pool_limit(instance)
    return f"Pool {GITHUB_POOL}: at most {limit} page runs at once ({limit_source()})"
