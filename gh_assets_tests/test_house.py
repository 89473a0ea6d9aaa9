"""House rules on the tests themselves, read from their source (no server): no module of
``gh_assets_tests`` imports a test module, so each test module runs, and is read, on its own;
what tests share lives in conftest.py (fixtures) or a helper module named for what it holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parent
NAME = PACKAGE.name


def imported_test_modules(source: str) -> list[str]:
    """The test modules (``test_*``) that ``source``, a module of this package, imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0 and base != NAME and not base.startswith(f"{NAME}."):
                continue  # another package's module
            base = base.removeprefix(NAME).lstrip(".")
            # ``from . import test_x`` names the module; ``from .test_x import y`` its contents.
            modules = [base] if base else [alias.name for alias in node.names]
        else:
            continue
        found += [m for m in modules if m.removeprefix(f"{NAME}.").startswith("test_")]
    return found


@pytest.mark.parametrize(
    ("source", "imported"),
    [
        ("from .test_storage import P1, page", ["test_storage"]),
        ("from . import test_github_client", ["test_github_client"]),
        ("from . import conftest, test_crawl", ["test_crawl"]),
        (f"from {NAME}.test_governor import most_in_window", ["test_governor"]),
        (f"import {NAME}.test_operations", [f"{NAME}.test_operations"]),
        ("def f():\n    from .test_crawl import stored", ["test_crawl"]),
        ("from .conftest import REPO\nfrom .page_writes import page", []),
        (f"from {NAME} import RECORDINGS\nfrom {NAME}.crawled import stored", []),
        ("from _pytest.test_x import y\nimport pytest", []),
    ],
)
def test_the_check_finds_every_form_of_importing_a_test_module(
    source: str, imported: list[str]
) -> None:
    assert imported_test_modules(source) == imported


def test_no_module_of_the_tests_imports_a_test_module() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "conftest.py" in modules and len(modules) > 20  # the package was read
    offenders = {
        str(path.relative_to(PACKAGE)): imported
        for path in modules
        if (imported := imported_test_modules(path.read_text()))
    }
    assert offenders == {}, (
        "test modules import other test modules; move what they share to conftest.py "
        f"(fixtures) or a helper module: {offenders}"
    )
