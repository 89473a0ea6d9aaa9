"""The libraries stand apart from the Dagster layer: the GitHub client, the storage and the
aggregates import no Dagster, so a notebook, a script or the bench uses them with redis and pandas
alone. No server: each check is a fresh interpreter importing every module of the libraries."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# Every module of these packages (walked) and these modules must load without Dagster.
LIBRARIES = ("gh_assets.github", "gh_assets.storage")
MODULES = (
    "gh_assets",
    "gh_assets.aggregates",
    "gh_assets.aggregate_merge",
    "gh_assets.aggregate_totals",
    "gh_assets.block_merges",
    "gh_assets.summary",
)
# Prints the modules it imported that Dagster's packages hold, one per line.
IMPORT_ALL = """
import importlib, pkgutil, sys
names = list(sys.argv[1:])
for library in {libraries!r}:
    package = importlib.import_module(library)
    names += [m.name for m in pkgutil.walk_packages(package.__path__, library + ".")]
for name in names:
    importlib.import_module(name)
print(len(names))
for name in sorted(m for m in sys.modules if m.split(".")[0].startswith("dagster")):
    print(name)
"""


def dagster_modules_imported(*extra: str) -> tuple[int, list[str]]:
    """How many library modules a fresh interpreter imported (``extra`` too), and which Dagster
    modules that loaded."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL.format(libraries=LIBRARIES), *MODULES, *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    count, *dagster = done.stdout.splitlines()
    return int(count), dagster


def test_the_libraries_import_no_dagster() -> None:
    count, dagster = dagster_modules_imported()
    assert count > 30  # every module of storage and github was walked, not just the packages
    assert dagster == []


@pytest.mark.slow
@pytest.mark.parametrize("module", ["gh_assets.resources", "gh_assets.definitions"])
def test_the_check_sees_a_dagster_import(module: str) -> None:
    """The check itself can fail: a module of the Dagster layer does load Dagster."""
    _, dagster = dagster_modules_imported(module)
    assert "dagster" in dagster
