"""The local commands of ``gh-assets`` (``gh_assets.cli`` dispatches to them): run the crawl
headless (``demo``), open the Dagster UI (``dev``), open the exploration notebook in JupyterLab
(``notebook``); and the local environment the upkeep commands (``forget-pages``, ``migrate``)
use when the devtools are installed.

They honour ``REDIS_URL``, ``GITHUB_API_URL`` and ``GITHUB_TOKEN``. What is not configured is
started here: a Redis server persisting under the data folder (shared by the commands running at
once, stopped by the last), and, when neither ``GITHUB_TOKEN`` nor ``GITHUB_API_URL`` is set, the
offline GitHub stand-in. Settings and both servers are checked before anything else starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from gh_assets import cli, preflight
from gh_assets.cli import STOPPED, say
from gh_assets.partitions import default_page_keys
from gh_assets.pool_limit import limit_source, set_pool_limit
from gh_assets.settings import Settings, SettingsError
from gh_assets_devtools import services
from gh_assets_devtools.run_failures import SILENT_RUN, failure_line, rerun_advice
from gh_assets_devtools.shared_redis import shared_redis

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")
NOTEBOOK = Path("notebooks/explore.ipynb")  # relative to the project's folder, where make runs


STANDIN_MINUTE = 1  # seconds: the local stand-in's "minute", so a demo is not paced to 870/min
GITHUB_SECONDARY_LIMITS = [
    "--secondary-in-flight", "100",
    "--rest-points-per-minute", "900",
    "--graphql-points-per-minute", "2000",
]  # fmt: skip


def data_dir() -> Path:
    return Path(os.environ.get("GH_ASSETS_DATA_DIR", ".data")).resolve()


def project_redis() -> contextlib.AbstractContextManager[str]:
    """The project's own Redis, persisting under the data folder, shared by the commands running
    at once; yields its URL."""
    return shared_redis(data_dir() / "redis", say)


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
            os.environ["REDIS_URL"] = stack.enter_context(project_redis())
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


def demo(pages: list[str] | None) -> int:
    """Crawl every page in its own run, then refresh the frame and the summary; print them."""
    keys = pages or default_page_keys(Settings.from_env())  # pages: checked by page_keys
    with local_environment() as settings:
        import dagster as dg

        from gh_assets.definitions import build_defs

        warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy, on a terminal
        from gh_assets.defs.analysis.refresh import summary_job
        from gh_assets.defs.crawl.jobs import crawl_job
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
            if cli.stopping:
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
        if cli.stopping:
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
            os.environ["REDIS_URL"] = stack.enter_context(project_redis())
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
