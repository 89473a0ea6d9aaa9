"""``gh-assets``: run the crawl headless (``demo``), open the Dagster UI (``dev``), forget
pages before changing their width (``forget-pages``), open the exploration notebook in
JupyterLab (``notebook``), or convert a store in the old Redis key schema (``migrate``), locally;
and write the github_api pool's limit into ``DAGSTER_HOME``'s instance (``set-pool-limit``, the
scale-out daemon's start, ``deploy/daemon.sh``), by the rule ``demo`` and ``dev`` follow.

The local ones honour ``REDIS_URL``, ``GITHUB_API_URL`` and ``GITHUB_TOKEN``. What is not
configured is started here: a Redis server persisting under the data folder (shared by the
commands running at once, stopped by the last), and, when neither ``GITHUB_TOKEN`` nor
``GITHUB_API_URL`` is set, the offline GitHub stand-in. Settings and both servers are checked
before anything else starts; one Ctrl-C or SIGTERM stops the command and what it started, a
second forces it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from gh_assets import preflight
from gh_assets.github import safe_url
from gh_assets.local import services
from gh_assets.local.pool_limit import POOL_LIMIT_VARIABLE, limit_source, pool_limit, set_pool_limit
from gh_assets.local.run_failures import SILENT_RUN, failure_line, rerun_advice
from gh_assets.local.shared_redis import shared_redis
from gh_assets.partitions import PageWindow, default_page_keys, page_keys
from gh_assets.settings import Settings, SettingsError
from gh_assets.storage import SchemaError

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")
NOTEBOOK = Path("notebooks/explore.ipynb")  # relative to the project's folder, where make runs
STOPPED = 130  # the exit status of a command stopped by a signal, as shells report Ctrl-C
stopping = False  # set by the first SIGINT/SIGTERM


STANDIN_MINUTE = 1  # seconds: the local stand-in's "minute", so a demo is not paced to 870/min
GITHUB_SECONDARY_LIMITS = [
    "--secondary-in-flight", "100",
    "--rest-points-per-minute", "900",
    "--graphql-points-per-minute", "2000",
]  # fmt: skip


def say(message: str) -> None:
    print(message, flush=True)


def data_dir() -> Path:
    return Path(os.environ.get("GH_ASSETS_DATA_DIR", ".data")).resolve()


@contextlib.contextmanager
def local_environment() -> Iterator[Settings]:
    """Point DAGSTER_HOME, REDIS_URL and GITHUB_API_URL at something, starting what is missing;
    yield the settings, once both servers answered."""
    configured = Settings.from_env()  # a bad setting stops here, before anything starts
    root = data_dir()
    own_home = not os.environ.get("DAGSTER_HOME")
    if own_home:
        os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    home = Path(os.environ["DAGSTER_HOME"])
    limit = prepare_instance(home, own_home=own_home)
    say(f"Dagster instance: {home}")
    if limit is not None:
        say(f"Pool github_api: at most {limit} page runs at once ({limit_source()})")
    with contextlib.ExitStack() as stack:
        if os.environ.get("REDIS_URL"):
            say("Redis: REDIS_URL from the environment")
        else:
            os.environ["REDIS_URL"] = stack.enter_context(shared_redis(root / "redis", say))
        if any(os.environ.get(f"GITHUB_{name}") for name in ("TOKEN", "API_URL", "APP_ID")):
            say(f"GitHub: {preflight.banner(configured)}")
        else:
            size = int(os.environ.get("GH_ASSETS_STANDIN_SIZE", "1000"))
            # GitHub's secondary limits, enforced by the stand-in, and the crawl's shared budget
            # kept to them, on a minute of one second unless GH_ASSETS_RATE_MINUTE says else.
            minute = os.environ.setdefault("GH_ASSETS_RATE_MINUTE", str(STANDIN_MINUTE))
            limits = ["--minute", minute, *GITHUB_SECONDARY_LIMITS]
            extra = limits + shlex.split(os.environ.get("GH_ASSETS_STANDIN_ARGS", ""))
            url = stack.enter_context(
                services.standin_server(root / "logs", size=size, extra_args=extra)
            )
            os.environ["GITHUB_API_URL"] = url
            say(
                f"GitHub: no GITHUB_TOKEN or GITHUB_API_URL set, so crawling the offline stand-in "
                f"at {url} (generated data, IDs 1-{size}), not api.github.com; it enforces "
                f"GitHub's secondary limits per {minute} s instead of per minute"
            )
        settings = Settings.from_env()  # now naming the servers started above
        preflight.check(settings, say=say)
        yield settings


def prepare_instance(home: Path, *, own_home: bool = True) -> int | None:
    """Set up the instance in ``home`` before anything runs on it, one command at a time (two
    creating a fresh SQLite instance at once race on its schema, "table ... already exists"):
    the project's dagster.yaml copied in (``own_home``: the project's folder; a chosen home keeps
    its own configuration unless it has none), the storage created, and the github_api pool's
    limit written into it (see ``set_pool_limit``). Returns that limit (None: none configured)."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    with services.exclusive(home / ".gh-assets.lock"):  # commands starting at once take turns
        if own_home or not config.exists():  # never overwrite the configuration of a chosen home
            config.write_text(INSTANCE_CONFIG.read_text())
        with dg.DagsterInstance.from_config(str(home)) as instance:
            return set_pool_limit(instance)


def set_pool_limit_command() -> int:
    """``gh-assets set-pool-limit``: the github_api pool's limit written into the instance of
    ``DAGSTER_HOME`` (``GH_ASSETS_POOL_LIMIT``, else its ``pools.default_limit``), as ``demo`` and
    ``dev`` do; run by ``deploy/daemon.sh`` before the daemon, on every start. No limit, or a
    storage without pools, is refused: the scale-out crawl relies on the pool."""
    import dagster as dg

    from gh_assets.assets import GITHUB_POOL

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
    say(f"Pool {GITHUB_POOL}: at most {limit} page runs at once ({limit_source()})")
    return 0


def demo(pages: list[str] | None) -> int:
    """Crawl every page in its own run, then refresh the frame and the summary; print them."""
    keys = pages or default_page_keys(Settings.from_env())  # pages: checked by page_keys
    with local_environment() as settings:
        import dagster as dg

        from gh_assets.definitions import build_defs

        warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy, on a terminal
        from gh_assets.jobs import crawl_job, summary_job
        from gh_assets.partitions import add_missing_pages

        instance = dg.DagsterInstance.get()
        add_missing_pages(instance, keys, chosen=bool(pages))
        defs = build_defs(settings)
        crawl = defs.resolve_job_def(crawl_job.name)
        say(f"Crawling {len(keys)} pages ({keys[0]} .. {keys[-1]})")
        failed: dict[str, str] = {}
        for number, key in enumerate(keys, 1):
            started = time.monotonic()
            result = crawl.execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False, run_config=SILENT_RUN
            )
            if stopping:
                say(f"Stopped by a signal during page {key}; the pages before it are stored.")
                return STOPPED
            prefix = f"[{number}/{len(keys)}] page {key}:"
            if result.success:
                meta = result.asset_materializations_for_node("github_users")[0].metadata
                say(
                    f"{prefix} {meta['users_written'].value} users, {meta['users_gone'].value} "
                    f"gone, {meta['api_requests'].value} requests, "
                    f"{time.monotonic() - started:.1f} s"
                )
            else:
                failed[key] = failure_line(result, "github_users", data_dir() / "logs")
                say(f"{prefix} FAILED: {failed[key]}")
        if failed:
            say(rerun_advice(settings, list(failed), len(keys)))
            return 1
        say("Refreshing github_users_frame and github_user_summary")
        result = defs.resolve_job_def(summary_job.name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=SILENT_RUN
        )
        if stopping:
            return STOPPED
        if not result.success:
            say(f"Summary FAILED: {failure_line(result, None, data_dir() / 'logs')}")
            return 1
        say("\n" + result.output_for_node("github_user_summary").render())
    say(
        "\nOpen the Dagster UI on the same instance and data with:  make dev"
        "  (then browse http://127.0.0.1:3000)"
    )
    return 0


def dev(port: int) -> int:
    """``dg dev`` (pyproject.toml's [tool.dg] project, on this virtualenv) on the project's
    instance, Redis and GitHub (or stand-in)."""
    if _missing("dagster_dg_cli"):
        raise SettingsError("dg is not installed here: run `make dev`")
    with local_environment():
        os.environ["VIRTUAL_ENV"] = sys.prefix  # dg then sees its project's venv as active
        dg_dev = [str(Path(sys.executable).with_name("dg")), "dev", "--use-active-venv"]
        command = [*dg_dev, "--host", "127.0.0.1", "--port", str(port)]
        say(f"Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops it and the local servers)")
        return _foreground(command)


def notebook(lab_args: list[str]) -> int:
    """JupyterLab on ``notebooks/explore.ipynb``, its kernels on this virtualenv and on the data
    ``demo`` and ``dev`` keep: their instance unless DAGSTER_HOME is set, REDIS_URL or else the
    project's Redis, leased while JupyterLab runs. Neither GitHub nor the stand-in is needed."""
    settings = Settings.from_env()  # a bad setting stops here, before anything starts
    if _missing("jupyterlab"):
        raise SettingsError("JupyterLab is not installed here: run `make notebook`")
    if not NOTEBOOK.exists():
        raise SettingsError(f"{NOTEBOOK} is not here: run from the project's folder")
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(data_dir() / "dagster_home")
    say(f"Dagster instance: {os.environ['DAGSTER_HOME']}")
    with contextlib.ExitStack() as stack:
        if os.environ.get("REDIS_URL"):
            say("Redis: REDIS_URL from the environment")
            preflight.check_redis(
                settings.redis_url, prefix=settings.key_prefix, block=settings.block
            )
        else:
            os.environ["REDIS_URL"] = stack.enter_context(shared_redis(data_dir() / "redis", say))
        say(f"JupyterLab: opening {NOTEBOOK}  (Ctrl-C stops it, and the Redis if it started it)")
        # Jupyter refuses to run as root unless told; the project's machines all work as root.
        as_root = ["--allow-root"] if os.geteuid() == 0 else []
        command = [sys.executable, "-m", "jupyterlab", str(NOTEBOOK), *as_root, *lab_args]
        return _foreground(command)


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _foreground(command: list[str]) -> int:
    """Run ``command`` in its own process group until it exits or a signal stops this one."""
    process = subprocess.Popen(command, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        services.stop_process_group(process, grace=20)


def forget(width: int | None, pages: list[str] | None) -> int:
    """Unregister pages of one width (or the named ones) and their bookkeeping, keeping the
    users that the configured pages will hold, so the page width can change."""
    with local_environment() as settings:
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
    project's own Redis when it is unset. No GitHub is needed."""
    settings = Settings.from_env()  # a bad setting stops here, before anything starts
    from gh_assets.storage import RedisStore
    from gh_assets.storage.migrate import MigrationError, migrate, old_keys_present

    with contextlib.ExitStack() as stack:
        if os.environ.get("REDIS_URL"):
            say("Redis: REDIS_URL from the environment")
            url = settings.redis_url
            preflight.check_redis(url, prefix=None)  # it answers; the old schema is expected
        else:
            url = stack.enter_context(shared_redis(data_dir() / "redis", say))
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
        help=f"open {NOTEBOOK} in JupyterLab on the local instance and Redis; other options "
        "go to jupyter lab (e.g. --no-browser)",
    )
    args, lab_args = parser.parse_known_args(argv)
    if lab_args and args.command != "notebook":
        parser.error(f"unrecognized arguments: {' '.join(lab_args)}")
    try:
        pages = page_keys(args.pages) if getattr(args, "pages", None) is not None else None
        if args.command == "demo":
            return demo(pages)
        if args.command == "forget-pages":
            return forget(args.width, pages)
        if args.command == "notebook":
            return notebook(lab_args)
        if args.command == "migrate":
            return migrate()
        if args.command == "set-pool-limit":
            return set_pool_limit_command()
        return dev(args.port)
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
