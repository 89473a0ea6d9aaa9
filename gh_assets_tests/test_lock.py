"""uv.lock: the one lock every install takes (Makefile's `uv sync --locked`, the Dockerfile's
`uv export --locked`), so a fresh machine gets the versions CI tested."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.integration

UV = Path(sys.executable).with_name("uv")  # the Makefile installs it into the virtualenv


def test_every_extra_is_in_the_one_lock() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (project,) = [p for p in lock["package"] if p["name"] == "gh-assets"]
    assert set(project["optional-dependencies"]) == set(extras)
    pinned = {p["name"]: p["version"] for p in lock["package"]}
    assert pinned["dagster"] == "1.13.27" and pinned["dagster-celery"] == "0.29.27"
    assert "s3fs" in pinned and "dagster-postgres" in pinned


def test_the_lock_matches_pyproject() -> None:
    """A pyproject.toml edited without `uv lock` fails here (and in `make`), not on a user's
    machine with other versions."""
    assert UV.exists(), f"{UV} is missing: `make install` puts uv into the virtualenv"
    done = subprocess.run(
        [str(UV), "lock", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"UV_SYSTEM_CERTS": "1"},
    )
    assert done.returncode == 0, done.stderr
