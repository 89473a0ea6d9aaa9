"""Fixtures shared by the stand-in's test modules (test_standin*.py): the stand-ins they start and
the session that calls them. A module imports each fixture it takes as ``from .standin_fixtures
import http as http`` (the alias marks a re-export, so the linter keeps the import), and
``dataset`` with ``server``, or ``server`` would serve conftest's ``dataset``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from gh_assets_devtools.standin import Dataset, StandinAdmin, StandinServer

UA = "gh-assets-tests"
SIZE = 3000
SEED = 11


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["User-Agent"] = UA
        yield session


@pytest.fixture
def dataset() -> Dataset:
    return Dataset(size=SIZE, seed=SEED)


@pytest.fixture
def server(dataset: Dataset, request: pytest.FixtureRequest) -> StandinServer:
    standin = StandinServer(dataset, rate_limit=1000, seed=SEED).start()
    request.addfinalizer(standin.stop)
    return standin


@pytest.fixture
def admin(server: StandinServer) -> Iterator[StandinAdmin]:
    """The admin endpoints over HTTP, as a test in another process steers the stand-in."""
    with StandinAdmin(server.url) as client:
        yield client


@pytest.fixture
def start(request: pytest.FixtureRequest) -> Callable[..., StandinServer]:
    """Start a stand-in with these options; it stops when the test ends."""

    def start(**options: Any) -> StandinServer:
        server = StandinServer(Dataset(size=300, seed=3), **options).start()
        request.addfinalizer(server.stop)
        return server

    return start
