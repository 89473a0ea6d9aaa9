"""A local deployment (``gh-assets dev``: webserver + daemon) that tests and the bench start, drive
over GraphQL and always stop, the clean environment any such subprocess gets, and a deployment
crawling a stand-in of its own (what the daemon and browser tests share)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import redis
import requests

from gh_assets.storage import RedisStore
from gh_assets_devtools import services
from gh_assets_devtools.dagster_graphql import DagsterGraphQL
from gh_assets_devtools.standin import StandinAdmin

if TYPE_CHECKING:
    from dagster import AssetKey

REPO = Path(__file__).resolve().parents[2]  # where workspace.yaml is
# Settings of the caller's shell that must not leak into a subprocess: where data and tokens go.
SCRUBBED = (
    "REDIS_URL",
    "GITHUB_API_URL",
    "GITHUB_TOKEN",
    "GITHUB_APP_",
    "DAGSTER_HOME",
    "GH_ASSETS_",
)
T = TypeVar("T")


def clean_environment(**settings: object) -> dict[str, str]:
    """This process's environment without any SCRUBBED variable, plus ``settings``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    return kept | {name: str(value) for name, value in settings.items()}


@dataclass
class Deployment:
    """A running ``gh-assets dev``: its webserver's URL and GraphQL client, its log."""

    process: subprocess.Popen
    url: str  # the webserver, e.g. http://127.0.0.1:PORT
    log_path: Path
    api: DagsterGraphQL
    groups: set[int] = field(default_factory=set)  # process groups seen under gh-assets

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def wait_for(
        self,
        check: Callable[[], T | None],
        *,
        timeout: float,
        what: str,
        interval: float = 1.0,
        state: Callable[[], object] | None = None,
    ) -> T:
        """``services.wait_for``, failing at once with the log's tail if gh-assets exits."""

        def exited() -> str | None:
            # dagster dev runs in a group of its own: known while gh-assets lives, it is
            # stopped even if gh-assets dies first.
            self.groups |= services.groups_under(self.process.pid)
            if self.process.poll() is None:
                return None
            return f"gh-assets dev exited with {self.process.returncode}:\n{self.log_tail()}"

        return services.wait_for(
            check, timeout=timeout, what=what, interval=interval, state=state, abort=exited
        )

    def wait_for_partitions(
        self, asset: AssetKey, keys: Sequence[str], timeout: float
    ) -> list[str]:
        """Wait until ``asset`` has the partitions ``keys`` (github_pages_sensor adds them); all
        its partition keys then."""

        def registered() -> list[str] | None:
            found = self.api.partitions(asset)["keys"]
            return found if set(keys) <= set(found) else None

        return self.wait_for(
            registered,
            timeout=timeout,
            what=f"{len(keys)} partitions of {asset.to_user_string()}",
            state=lambda: self.api.partitions(asset),
            interval=2.0,
        )


@contextlib.contextmanager
def running_deployment(
    log_dir: Path, env: Mapping[str, str], *, ready_timeout: float = 180.0
) -> Iterator[Deployment]:
    """``gh-assets dev`` on a free port, from the repository root, with exactly ``env``, until
    its code location has loaded; stopped on exit with every process it started (SIGTERM, then
    SIGKILL after 30 s), even when the body fails."""
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("gh-assets")), "dev", "--port", str(port)]
    groups: set[int] = set()
    with (
        services.running(
            command,
            lambda: _answers(f"{url}/server_info"),
            log_dir / "gh-assets-dev.log",
            timeout=ready_timeout,
            env=env,
            cwd=REPO,
            grace=30.0,
            groups=groups,
        ) as process,
        DagsterGraphQL(url) as api,
    ):
        deployment = Deployment(process, url, log_dir / "gh-assets-dev.log", api, groups)
        deployment.wait_for(api.location_loaded, timeout=ready_timeout, what="the code location")
        yield deployment


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class StandinDeployment:
    """A deployment crawling its own stand-in into a fresh key prefix of a Redis."""

    deployment: Deployment
    standin: StandinAdmin
    store: RedisStore


@contextlib.contextmanager
def standin_deployment(
    folder: Path,
    redis_url: str,
    *,
    standin_size: int,
    pages: Sequence[str],
    **settings: object,
) -> Iterator[StandinDeployment]:
    """A stand-in of ``standin_size`` IDs and ``gh-assets dev`` crawling it into ``redis_url``
    under a key prefix of its own, with ``settings`` (GH_ASSETS_*) besides, once ``pages`` are
    registered (by github_pages_sensor: the deployment is checked to register no more). Every
    key under the prefix is deleted on exit, with the processes stopped, even when the body
    fails."""
    prefix = f"{folder.name}-{uuid.uuid4().hex[:12]}:"
    environ = clean_environment(
        DAGSTER_HOME=folder / "dagster_home",
        REDIS_URL=redis_url,
        GH_ASSETS_KEY_PREFIX=prefix,
        GH_ASSETS_RATE_MINUTE=1,  # GitHub's minute, shortened: the budget does not bind here
        **settings,
    )
    try:
        with (
            services.standin_server(folder / "standin", size=standin_size) as standin_url,
            StandinAdmin(standin_url) as standin,
            running_deployment(folder / "logs", environ | {"GITHUB_API_URL": standin_url}) as found,
        ):
            store = RedisStore.from_url(redis_url, prefix)
            try:
                # Dagster's import: only where needed
                from gh_assets.defs.crawl.page_asset import USERS_KEY

                registered = found.wait_for_partitions(USERS_KEY, list(pages), timeout=120)
                if registered != list(pages):
                    raise AssertionError(f"pages registered: {registered}, not {list(pages)}")
                yield StandinDeployment(found, standin, store)
            finally:
                store.close()
    finally:
        with redis.Redis.from_url(redis_url) as client:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
