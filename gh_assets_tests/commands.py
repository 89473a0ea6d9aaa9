"""``gh-assets`` run as a user runs it: its own process group, the project's folder, an
environment without the developer's settings, a data folder of the test's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gh_assets_devtools.deployment import clean_environment

from .conftest import REPO

GH_ASSETS = str(Path(sys.executable).with_name("gh-assets"))


def gh_assets(args: list[str], data: Path, **env: object) -> subprocess.CompletedProcess:
    """``gh-assets ARGS`` with ``GH_ASSETS_DATA_DIR=data`` and ``env``, run to its end."""
    return subprocess.run(
        [GH_ASSETS, *args],
        cwd=REPO,
        env=clean_environment(GH_ASSETS_DATA_DIR=data, **env),
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
