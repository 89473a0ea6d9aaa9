"""Shared fixtures: a real Redis server, the GitHub stand-in over real HTTP, a scripted GitHub
(``replay``) and a Dagster instance with the assets' resources for in-process runs.

The tests start their own Redis server on a free port; ``GH_ASSETS_TEST_REDIS_URL`` names another
one instead. Either way each test writes under a key prefix of its own and deletes only that.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import redis

from gh_assets.asset_storage import storage_resources
from gh_assets.defs.crawl.page_asset import build_github_users
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow, add_missing_pages
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings
from gh_assets.storage import RedisStore
from gh_assets_devtools.services import redis_server
from gh_assets_devtools.standin import Dataset, StandinServer

from .github_app import Keys, make_keys
from .replay_server import Replay, replay_server

REPO = Path(__file__).resolve().parents[1]
# Faults injected on purpose fail a page at once, not after minutes of retry delays; the retry
# policy itself is tested on its definition.
TEST_SETTINGS = Settings(page_retries=0)
github_users = build_github_users(TEST_SETTINGS)
STANDIN_SIZE = 1000
STANDIN_SEED = 7
KEYS = [PageWindow.number(k, 100).key for k in range(3)]  # the pages ``instance`` registers


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    named = os.environ.get("GH_ASSETS_TEST_REDIS_URL")
    if named:
        yield named
        return
    with redis_server(tmp_path_factory.mktemp("redis"), persist=False) as url:
        yield url


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url, key_prefix)
    yield store
    store.client.close()


@pytest.fixture
def dataset() -> Dataset:
    return Dataset(size=STANDIN_SIZE, seed=STANDIN_SEED)


@pytest.fixture
def standin(dataset: Dataset) -> Iterator[StandinServer]:
    with StandinServer(dataset) as server:
        yield server


@pytest.fixture
def client(standin: StandinServer) -> Iterator[GitHubClient]:
    with GitHubClient(standin.url, backoff_base=0.01, backoff_max=0.05) as github:
        yield github


@pytest.fixture
def gql(standin: StandinServer) -> Iterator[GitHubClient]:
    """A client of the stand-in in GraphQL detail mode."""
    with GitHubClient(
        standin.url, detail_mode="graphql", backoff_base=0.01, backoff_max=0.05
    ) as github:
        yield github


@pytest.fixture(scope="module")
def keys() -> Keys:
    """A GitHub App's RSA keys (``github_app.make_keys``), made once a module."""
    return make_keys()


@pytest.fixture(scope="session")
def app_key_pem() -> str:
    """A GitHub App's private key as GitHub hands it out (PEM, PKCS#1), made once a session."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def replay() -> Iterator[Replay]:
    """The scripted GitHub over real HTTP (``replay_server``)."""
    with replay_server() as state:
        yield state


@pytest.fixture
def waits() -> list[float]:
    """The sleeps of ``make_client``'s clients, recorded instead of slept."""
    return []


@pytest.fixture
def make_client(replay: Replay, waits: list[float]) -> Iterator[Callable[..., GitHubClient]]:
    """Clients on the replay server whose sleeps are recorded in ``waits`` instead of slept."""
    clients: list[GitHubClient] = []

    def make(api_url: str | None = None, **kwargs: Any) -> GitHubClient:
        kwargs.setdefault("max_retries", 3)
        kwargs.setdefault("timeout", 5.0)
        client = GitHubClient(api_url or replay.url, **kwargs)
        client._sleep = waits.append
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def resources(standin: StandinServer, redis_url: str, key_prefix: str, tmp_path: Path) -> dict:
    """The assets' resources on the stand-in and the test's Redis prefix; a rate limit fails a
    page at once (no wait)."""
    return {
        "github": GitHubResource(api_url=standin.url, max_retries=1, max_rate_limit_wait=0),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
        **storage_resources(str(tmp_path / "storage")),
    }


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance with the pages of ``KEYS`` registered."""
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, KEYS)
        yield instance


# pyproject.toml's markers; docs/testing.md says which tier runs where.
TIERS = ("unit", "integration", "e2e")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is in exactly one tier, so what `make check` selects by tier cannot quietly
    lose a new test or run one twice; checked before `-m` deselects anything."""
    wrong = []
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            found = " and ".join(tiers) or "no tier"
            wrong.append(f"{item.nodeid}: {found}; mark it with one of {', '.join(TIERS)}")
    if wrong:
        raise pytest.UsageError("\n".join(wrong))


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit test that connects a socket, binds one (starts a server) or starts a process fails
    at once saying so: it belongs in the integration tier."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refused(what: str) -> Callable[..., None]:
        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"a unit test {what}: mark it integration (docs/testing.md)")

        return refuse

    monkeypatch.setattr(socket.socket, "connect", refused("connects a socket"))
    monkeypatch.setattr(socket.socket, "connect_ex", refused("connects a socket"))
    monkeypatch.setattr(socket.socket, "bind", refused("starts a server"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refused("starts a process"))
