"""The documentation holds together: README.md and docs/*.md link only to files and headings that
exist, every file that cites a page of docs/ names one that exists, and every environment
variable the package reads is in docs/configuration.md. No server: the files alone.

Markdown is parsed by markdown-it-py (what Dagster's ``rich`` renders with), so links inside code
are not links; anchors are GitHub's heading slugs."""

from __future__ import annotations

import ast
import itertools
import re
from functools import cache
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from .conftest import REPO

pytestmark = pytest.mark.unit

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONFIGURATION = REPO / "docs" / "configuration.md"
# What the package reads from the environment: string constants of these shapes.
VARIABLE = re.compile(r"(GH_ASSETS|GITHUB|REDIS|DAGSTER|CELERY)_[A-Z0-9_]*[A-Z0-9]")
# A page of docs/ (or README's heading) cited from code, comments or configuration.
CITED = re.compile(r"(?<![\w/.-])(docs/[\w-]+\.md|README\.md)(#[\w-]+)?")
CITING = ("gh_assets", "gh_assets_tests", "bench", "deploy", ".ci")
CITING_FILES = ("Makefile", "Dockerfile", "docker-compose.yml", "pyproject.toml", ".dockerignore")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def tokens(page: Path) -> list:
    return MarkdownIt("commonmark").enable("table").parse(page.read_text())


@cache
def anchors(page: Path) -> frozenset[str]:
    found: list[str] = []
    stream = tokens(page)
    for opening, inline in itertools.pairwise(stream):
        if opening.type == "heading_open":
            text = "".join(child.content for child in inline.children or ())
            base = slug(text)
            found.append(base if base not in found else f"{base}-{found.count(base)}")
    return frozenset(found)


def links(page: Path) -> list[str]:
    """Every link and image target of a page, code excluded."""
    targets = []
    for token in tokens(page):
        for child in token.children or ():
            if child.type == "link_open":
                targets.append(str(child.attrs["href"]))
            elif child.type == "image":
                targets.append(str(child.attrs["src"]))
    return targets


def broken(source: Path, target: str) -> str | None:
    """Why a relative link from ``source`` leads nowhere, or None when it resolves."""
    if re.match(r"[a-z]+:", target):
        return None  # http(s), mailto: outside the repository
    path, _, anchor = target.partition("#")
    file = (source.parent / path).resolve() if path else source
    if not file.exists():
        return f"{target}: no file {file}"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"{target}: no heading #{anchor} in {file}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_resolves(page: Path) -> None:
    found = links(page)
    assert found, page  # the parser saw the page's links
    faults = [fault for target in found if (fault := broken(page, target))]
    assert not faults, faults


def test_broken_links_are_found(tmp_path: Path) -> None:
    """The check itself: a missing file and a missing heading are both reported."""
    page = tmp_path / "page.md"
    page.write_text("# Sensors and schedules (*Automation* in the UI)\n\n## 100,000 pages\n")
    assert anchors(page) == {"sensors-and-schedules-automation-in-the-ui", "100000-pages"}
    assert broken(page, "#100000-pages") is None
    assert broken(page, "page.md#100000-pages") is None
    assert "no heading #scaling-out" in str(broken(page, "page.md#scaling-out"))
    assert "no file" in str(broken(page, "missing.md"))


def test_code_cites_only_pages_that_exist() -> None:
    files = [REPO / name for name in CITING_FILES if (REPO / name).exists()]
    for folder in CITING:
        files += [f for f in (REPO / folder).rglob("*") if f.is_file()]
    faults = []
    for file in set(files) - {Path(__file__).resolve()}:  # this module cites broken ones
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue  # compiled or binary
        for match in CITED.finditer(text):
            if fault := broken(REPO / "README.md", match.group(0).removeprefix("README.md")):
                faults.append(f"{file.relative_to(REPO)}: {fault}")
    assert not faults, faults


def read_variables() -> set[str]:
    """Every environment variable's name written in the package."""
    names = set()
    for module in (REPO / "gh_assets").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and VARIABLE.fullmatch(str(node.value)):
                names.add(node.value)
    return names


def test_every_variable_is_in_the_configuration_table() -> None:
    names = read_variables()
    assert {"GITHUB_TOKEN", "REDIS_URL", "GH_ASSETS_PAGE_SIZE", "CELERY_BROKER_URL"} <= names
    rows = [line for line in CONFIGURATION.read_text().splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([A-Z0-9_]+)`", row.split(" | ")[0])}
    assert not names - listed, sorted(names - listed)
    readme = {
        name
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith("| `")
        for name in re.findall(r"^\| `([A-Z0-9_]+)`", line)
    }
    assert readme and not readme - listed, sorted(readme - listed)  # the essentials are a subset
