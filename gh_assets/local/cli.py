"""``gh-assets``: run the crawl headless (``demo``) or open the Dagster UI (``dev``) locally.

Both honour ``REDIS_URL``, ``GITHUB_API_URL`` and ``GITHUB_TOKEN``. What is not configured is
started here and stopped on exit: a Redis server persisting under the data folder, and, when
neither ``GITHUB_TOKEN`` nor ``GITHUB_API_URL`` is set, the offline GitHub stand-in.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gh_assets.local import services
from gh_assets.partitions import PageWindow, default_page_keys
from gh_assets.settings import Settings

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def say(message: str) -> None:
    print(message, flush=True)


def data_dir() -> Path:
    return Path(os.environ.get("GH_ASSETS_DATA_DIR", ".data")).resolve()


@contextlib.contextmanager
def local_environment() -> Iterator[None]:
    """Point DAGSTER_HOME, REDIS_URL and GITHUB_API_URL at something, starting what is missing."""
    root = data_dir()
    own_home = not os.environ.get("DAGSTER_HOME")
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(root / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if own_home or not config.exists():  # never overwrite the configuration of a chosen home
        config.write_text(INSTANCE_CONFIG.read_text())
    say(f"Dagster instance: {home}")
    with contextlib.ExitStack() as stack:
        if os.environ.get("REDIS_URL"):
            say("Redis: REDIS_URL from the environment")
        else:
            os.environ["REDIS_URL"] = stack.enter_context(_project_redis(root / "redis"))
        if os.environ.get("GITHUB_TOKEN") or os.environ.get("GITHUB_API_URL"):
            where = os.environ.get("GITHUB_API_URL", "https://api.github.com")
            auth = "with GITHUB_TOKEN" if os.environ.get("GITHUB_TOKEN") else "anonymously"
            say(f"GitHub: {where}, {auth}")
        else:
            size = int(os.environ.get("GH_ASSETS_STANDIN_SIZE", "1000"))
            extra = shlex.split(os.environ.get("GH_ASSETS_STANDIN_ARGS", ""))
            url = stack.enter_context(
                services.standin_server(root / "logs", size=size, extra_args=extra)
            )
            os.environ["GITHUB_API_URL"] = url
            say(
                f"GitHub: no GITHUB_TOKEN or GITHUB_API_URL set, so crawling the offline stand-in "
                f"at {url} (generated data, IDs 1-{size}), not api.github.com"
            )
        yield


@contextlib.contextmanager
def _project_redis(folder: Path) -> Iterator[str]:
    """The project's own Redis server; a second command running at the same time shares it."""
    folder.mkdir(parents=True, exist_ok=True)
    url_file = folder / "url"
    with open(folder / "owner.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            url = url_file.read_text().strip()
            say(f"Redis: sharing the project's server at {url}, started by another gh-assets")
            yield url
            return
        with services.redis_server(folder) as url:
            url_file.write_text(url)
            say(f"Redis: started the project's server at {url} (data in {folder})")
            try:
                yield url
            finally:
                url_file.unlink(missing_ok=True)


def demo(pages: list[str] | None) -> int:
    """Crawl every page in its own run, then refresh the frame and the summary; print them."""
    keys = pages or default_page_keys(Settings.from_env())  # a bad setting stops here, early
    for key in keys:
        PageWindow.from_key(key)  # a clear error before anything starts
    with local_environment():
        import dagster as dg

        from gh_assets.definitions import build_defs
        from gh_assets.jobs import crawl_job, summary_job
        from gh_assets.partitions import add_missing_pages

        instance = dg.DagsterInstance.get()
        add_missing_pages(instance, keys)
        defs = build_defs(Settings.from_env())  # with the servers local_environment started
        crawl = defs.resolve_job_def(crawl_job.name)
        say(f"Crawling {len(keys)} pages ({keys[0]} .. {keys[-1]})")
        failed: dict[str, str] = {}
        for number, key in enumerate(keys, 1):
            started = time.monotonic()
            result = crawl.execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_RUN
            )
            prefix = f"[{number}/{len(keys)}] page {key}:"
            if result.success:
                meta = result.asset_materializations_for_node("github_users")[0].metadata
                say(
                    f"{prefix} {meta['users_written'].value} users, {meta['users_gone'].value} "
                    f"gone, {meta['api_requests'].value} requests, "
                    f"{time.monotonic() - started:.1f} s"
                )
            else:
                failed[key] = _failure(result, "github_users")
                say(f"{prefix} FAILED: {failed[key]}")
        if failed:
            listed = ",".join(failed)
            say(
                f"\n{len(failed)} of {len(keys)} pages failed; the other pages are stored. "
                f"Re-run only the failed ones with:\n  make demo PAGES={listed}\n"
                f"(or .venv/bin/gh-assets demo --pages {listed})"
            )
            return 1
        say("Refreshing github_users_frame and github_user_summary")
        result = defs.resolve_job_def(summary_job.name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN
        )
        if not result.success:
            say(f"Summary FAILED: {_failure(result)}")
            return 1
        say("\n" + result.output_for_node("github_user_summary").render())
    say(
        "\nOpen the Dagster UI on the same instance and data with:  make dev"
        "  (then browse http://127.0.0.1:3000)"
    )
    return 0


def _failure(result, node: str | None = None) -> str:
    """The root cause of a failed step, in one line."""
    for event in result.get_step_failure_events():
        if node and event.node_name != node:
            continue
        error = event.step_failure_data.error
        while error.cause is not None:
            error = error.cause
        return f"{error.cls_name}: {error.message.strip()}"
    return "the run failed before any step (see the Dagster UI)"


def dev(port: int) -> int:
    """``dagster dev`` on the project's instance, Redis and GitHub (or stand-in)."""
    with local_environment():
        command = [
            sys.executable, "-m", "dagster", "dev",
            "-w", "workspace.yaml",
            "--host", "127.0.0.1",
            "--port", str(port),
        ]  # fmt: skip
        say(f"Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops it and the local servers)")
        process = subprocess.Popen(command, start_new_session=True)
        try:
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            services.stop_process_group(process, grace=20)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # SIGTERM and SIGINT (even when a parent ignored it) unwind the stack, so every server
    # started here is stopped by its context manager.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    parser = argparse.ArgumentParser(prog="gh-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="crawl the default pages, then print the summary")
    run_demo.add_argument(
        "--pages", help="comma-separated page keys to crawl instead of the default pages"
    )
    run_dev = commands.add_parser("dev", help="open the Dagster UI (dagster dev)")
    run_dev.add_argument("--port", type=int, default=int(os.environ.get("DAGSTER_PORT", "3000")))
    args = parser.parse_args(argv)
    if args.command == "demo":
        pages = (
            [key.strip() for key in args.pages.split(",") if key.strip()] if args.pages else None
        )
        return demo(pages)
    return dev(args.port)


if __name__ == "__main__":
    sys.exit(main())
