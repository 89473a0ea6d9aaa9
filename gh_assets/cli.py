"""``gh-assets``: the upkeep commands production runs, and the door to the local ones.

Here: forget pages before changing their width (``forget-pages``), convert a store in the old
Redis key schema (``migrate``), and write the github_api pool's limit into ``DAGSTER_HOME``'s
instance (``set-pool-limit``, the scale-out daemon's start, ``deploy/daemon.sh``). The local
commands, the crawl headless (``demo``), the Dagster UI (``dev``) and the exploration notebook
(``notebook``), start servers of their own and live in the devtools package (``devtools/``,
``gh_assets_devtools``), which the image does not install: without it they say how to get it.

They honour ``REDIS_URL``, ``GITHUB_API_URL`` and ``GITHUB_TOKEN``; with the devtools installed,
what is not configured is started as ``demo`` starts it. One Ctrl-C or SIGTERM stops a command
and what it started, a second forces it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import sys
from collections.abc import Iterator
from types import ModuleType

from gh_assets import preflight
from gh_assets.github import safe_url
from gh_assets.partitions import PageWindow, default_page_keys, page_keys
from gh_assets.pool_limit import POOL_LIMIT_VARIABLE, limit_dagster_home
from gh_assets.settings import Settings, SettingsError
from gh_assets.storage import SchemaError

DEVTOOLS = "gh_assets_devtools"  # the local tooling's package (devtools/ in the repository)
STOPPED = 130  # the exit status of a command stopped by a signal, as shells report Ctrl-C
stopping = False  # set by the first SIGINT/SIGTERM


def say(message: str) -> None:
    print(message, flush=True)


def devtools(needed_for: str) -> ModuleType:
    """``gh_assets_devtools.commands``, or one line saying how to get it."""
    try:
        from gh_assets_devtools import commands
    except ModuleNotFoundError as error:
        if error.name != DEVTOOLS:
            raise
        raise SettingsError(
            f"{needed_for} needs the local tooling (gh-assets-devtools), which is not installed: "
            "`make demo` or `make dev` in a checkout installs it (or `pip install ./devtools`)"
        ) from None
    return commands


def devtools_installed() -> bool:
    return importlib.util.find_spec(DEVTOOLS) is not None


@contextlib.contextmanager
def environment() -> Iterator[Settings]:
    """The configured instance, Redis and GitHub, checked; with the devtools installed, what is
    missing started as ``demo`` starts it. Yields the settings."""
    if devtools_installed():
        with devtools("gh-assets").local_environment() as settings:
            yield settings
        return
    settings = Settings.from_env()  # a bad setting stops here, before anything starts
    for variable in ("DAGSTER_HOME", "REDIS_URL"):
        if not os.environ.get(variable, "").strip():
            devtools(f"{variable} is not set; starting a local one")  # raises: it is not installed
    preflight.check(settings, say=say)
    yield settings


def set_pool_limit_command() -> int:
    """``gh-assets set-pool-limit``: run by ``deploy/daemon.sh`` before the daemon, on every
    start (``gh_assets.pool_limit.limit_dagster_home``)."""
    say(limit_dagster_home())
    return 0


def forget(width: int | None, pages: list[str] | None) -> int:
    """Unregister pages of one width (or the named ones) and their bookkeeping, keeping the
    users that the configured pages will hold, so the page width can change."""
    with environment() as settings:
        import dagster as dg

        from gh_assets.partitions import forget_pages, pages_of_width
        from gh_assets.storage import RedisStore

        instance = dg.DagsterInstance.get()
        keys = pages_of_width(instance, width) if width else pages or []
        keep = [PageWindow.from_key(key) for key in default_page_keys(settings)]
        store = RedisStore.from_url(settings.redis_url, settings.key_prefix, block=settings.block)
        dropped = forget_pages(instance, store, keys, keep=keep)
        say(
            f"Forgot {len(keys)} pages and {dropped} users outside the configured pages "
            f"({settings.pages} of {settings.page_size} IDs); crawl them with: make demo"
        )
    return 0


def migrate() -> int:
    """Convert the data under ``GH_ASSETS_KEY_PREFIX`` from the old Redis key schema into the
    block schema, in place (``gh_assets.storage.migrate``); resumable. ``REDIS_URL``, or the
    project's own Redis (the devtools') when it is unset. No GitHub is needed."""
    settings = Settings.from_env()  # a bad setting stops here, before anything starts
    from gh_assets.storage import RedisStore
    from gh_assets.storage.migrate import MigrationError, migrate, old_keys_present

    with contextlib.ExitStack() as stack:
        if os.environ.get("REDIS_URL"):
            say("Redis: REDIS_URL from the environment")
            url = settings.redis_url
            preflight.check_redis(url, prefix=None)  # it answers; the old schema is expected
        else:
            local = devtools("REDIS_URL is not set; starting a local Redis")
            url = stack.enter_context(local.project_redis())
        store = RedisStore.from_url(url, settings.key_prefix, block=settings.block)
        stack.callback(store.close)
        where = f"REDIS_URL={safe_url(url)!r}, prefix {settings.key_prefix!r}"
        if not old_keys_present(store):
            store.check_schema()  # another block size: one line
            say(f"{where}: nothing to migrate, the data is in the block key schema already")
            return 0
        say(f"Migrating {where} into blocks of {store.block:,} IDs ...")
        try:
            migrate(store, say=lambda line: say(f"  {line}"))
        except MigrationError as error:
            raise SettingsError(str(error)) from None
        store.check_schema()
        say("Done: every store now reads this data (a crash above is finished by running it again)")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    """The first signal stops the command through its context managers (servers included);
    a second one kills what it started and exits at once."""
    global stopping
    if stopping:
        services = sys.modules.get(f"{DEVTOOLS}.services")  # loaded once it started a server
        if services is not None:
            services.kill_live_groups()
        os._exit(STOPPED)
    stopping = True
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # SIGTERM and SIGINT (even when a parent ignored it) unwind the stack, so every server
    # started here is stopped by its context manager.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    parser = argparse.ArgumentParser(
        prog="gh-assets", description="gh_assets: the crawl headless, the Dagster UI, and upkeep"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="crawl the default pages, then print the summary")
    run_demo.add_argument("--pages", help="comma-separated page keys to crawl, not the defaults")
    run_dev = commands.add_parser("dev", help="open the Dagster UI (dg dev)")
    run_dev.add_argument("--port", type=int, default=int(os.environ.get("DAGSTER_PORT", "3000")))
    run_forget = commands.add_parser(
        "forget-pages", help="unregister old pages, e.g. before changing GH_ASSETS_PAGE_SIZE"
    )
    which = run_forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--width", type=int, help="forget every registered page of this width")
    which.add_argument("--pages", help="comma-separated page keys to forget")
    commands.add_parser(
        "migrate",
        help="convert the data in REDIS_URL from the old key schema (gh:ids, gh:logins) into "
        "the block schema, in place; run it again to finish an interrupted one",
    )
    commands.add_parser(
        "set-pool-limit",
        help=f"write the github_api pool's limit ({POOL_LIMIT_VARIABLE}, else the instance's "
        "pools.default_limit) into the instance of DAGSTER_HOME, as deploy/daemon.sh does",
    )
    commands.add_parser(
        "notebook",
        help="open notebooks/explore.ipynb in JupyterLab on the local instance and Redis; other "
        "options go to jupyter lab (e.g. --no-browser)",
    )
    args, lab_args = parser.parse_known_args(argv)
    if lab_args and args.command != "notebook":
        parser.error(f"unrecognized arguments: {' '.join(lab_args)}")
    try:
        pages = page_keys(args.pages) if getattr(args, "pages", None) is not None else None
        if args.command == "forget-pages":
            return forget(args.width, pages)
        if args.command == "migrate":
            return migrate()
        if args.command == "set-pool-limit":
            return set_pool_limit_command()
        local = devtools(f"`gh-assets {args.command}`")
        if args.command == "demo":
            return local.demo(pages)
        if args.command == "notebook":
            return local.notebook(lab_args)
        return local.dev(args.port)
    except SettingsError as error:  # a setting, a server that does not answer, a page overlap
        print(f"gh-assets: {error}", file=sys.stderr, flush=True)
        return getattr(error, "exit_code", 2)  # 75 (EX_TEMPFAIL): GitHub blocks the identity
    except SchemaError as error:  # data this release must not read (another block size)
        print(f"gh-assets: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        say("Stopped by a signal; every server this command started is stopped.")
        return STOPPED


if __name__ == "__main__":
    sys.exit(main())
