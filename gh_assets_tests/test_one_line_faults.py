"""Faults of ``gh-assets`` that must be one line (issue 19, item 13): a failed page, bad page
keys, a GITHUB_TOKEN of commas, more pages than GH_ASSETS_MAX_PAGES."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import dagster as dg
import pytest

from gh_assets.partitions import add_missing_pages
from gh_assets_devtools.commands import prepare_instance

from .commands import gh_assets

pytestmark = pytest.mark.e2e

PAGE_KEY_HINT = (
    "(expected its first and last user ID, 10 digits each, the first not above the last, "
    "like 0000000001-0000000100)"
)


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["demo", "--pages", "5-1"], {}, f"not a page key: '5-1' {PAGE_KEY_HINT}"),
        (
            ["demo", "--pages", "0000000009-0000000001"],
            {},
            f"not a page key: '0000000009-0000000001' {PAGE_KEY_HINT}",
        ),
        (["forget-pages", "--pages", "zzz"], {}, f"not a page key: 'zzz' {PAGE_KEY_HINT}"),
        (
            ["demo", "--pages", ","],
            {},
            "--pages ',': expected page keys like 0000000001-0000000100",
        ),
        (
            ["demo"],
            {"GITHUB_TOKEN": ",,", "GITHUB_API_URL": "http://127.0.0.1:1"},
            "GITHUB_TOKEN=(set, not shown): expected one or more tokens, comma-separated",
        ),
        (
            ["demo"],
            {"GH_ASSETS_PAGES": "11", "GH_ASSETS_MAX_PAGES": "10"},
            "GH_ASSETS_PAGES='11': expected at most GH_ASSETS_MAX_PAGES (10), where the crawl "
            "stops adding pages",
        ),
    ],
    ids=["5-1", "last-before-first", "forget-zzz", "no-key", "token-of-commas", "pages-over-max"],
)
def test_a_bad_page_key_or_setting_is_one_line_before_anything_starts(
    tmp_path: Path, args: list[str], env: dict[str, str], line: str
) -> None:
    result = gh_assets(args, tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""  # nothing started: no banner, no server
    assert result.stderr.splitlines() == [f"gh-assets: {line}"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{file}/assets", "a folder ({file} is a file, not a folder)"),
        pytest.param(
            "s3://bucket/prefix",
            "an fsspec URI this host can open (s3:// needs the s3fs package: pip install s3fs)",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed here"
            ),
        ),
    ],
    ids=["under-a-file", "s3-without-s3fs"],
)
def test_asset_storage_that_cannot_hold_the_files_is_refused_before_the_crawl(
    tmp_path: Path, value: str, expected: str
) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    value, expected = value.format(file=file), expected.format(file=file)
    result = gh_assets(["demo"], tmp_path / "data", GH_ASSETS_ASSET_STORAGE=value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"gh-assets: GH_ASSETS_ASSET_STORAGE={value!r}: expected {expected}"
    ]


def test_pages_of_another_width_name_the_pages_not_an_unset_variable(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    prepare_instance(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        add_missing_pages(instance, ["0000000001-0000000100"])
    result = gh_assets(["demo", "--pages", "0000000001-0000000050"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "gh-assets: --pages 0000000001-0000000050 is 50 IDs wide and overlaps 1 registered page "
        "of 100 IDs (0000000001-0000000100); name pages of 100 IDs instead, or forget the old "
        "pages first: gh-assets forget-pages --width 100"
    ]
    assert "GH_ASSETS_PAGE_SIZE" not in result.stdout + result.stderr  # the user never set it
    assert "Crawling" not in result.stdout


def test_a_failed_page_is_one_line_with_its_cause_and_where_the_trace_is(tmp_path: Path) -> None:
    result = gh_assets(
        ["demo"],
        tmp_path,
        GH_ASSETS_PAGES=2,
        GH_ASSETS_PAGE_RETRIES=0,
        GH_ASSETS_MAX_RETRIES=0,
        GH_ASSETS_STANDIN_ARGS="--fail-ids 150-160",  # the stand-in answers 502 for these
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Stack Trace" not in output and "Traceback" not in output
    assert re.search(r"^\[1/2\] page 0000000001-0000000100: 67 users, ", output, re.M), output
    (failed,) = [line for line in output.splitlines() if "FAILED" in line]
    match = re.fullmatch(
        r"\[2/2\] page 0000000101-0000000200: FAILED: gh_assets\.github\.errors\.GitHubHTTPError: "
        r"GET http://127\.0\.0\.1:\d+/user/1[56]\d -> 502: giving up after 1 attempts: server "
        r"error 502 Bad Gateway \(full trace: (.+)\)",
        failed,
    )
    assert match, failed
    trace = Path(match[1])
    assert trace.parent == tmp_path / "logs"
    text = trace.read_text()
    assert "Stack Trace:" in text and "crawl_page" in text and "GitHubHTTPError" in text
    assert "demo --pages 0000000101-0000000200" in output  # the way to re-run it, as before
