"""The Dagster UI in a real browser, looked at and clicked as an operator would.

``gh-assets dev`` runs as in test_daemon.py (the tests' Redis under a key prefix of its own, the
stand-in as a separate process). A backfill of the 4 pages, driven over GraphQL, fails on page 3
(one of its users answers 502); the fault is healed and the automation refreshes the analysis.
Then Chromium (Debian's package, through Playwright) opens the UI on a fresh profile: the
first-visit dialog is dismissed, the lineage shows the three assets, the partitions view counts
3 materialized pages and 1 failed, the summary's counters are what pandas computes from Redis and
its plots load, and "Re-execute from failure" clicked on the backfill's page turns page 3 green.
Every step leaves a screenshot in the folder the test prints. ``GH_ASSETS_UPDATE_SCREENSHOT=1``
also rewrites docs/summary-asset.png (the summary's metadata with its follower plot open).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from gh_assets.defs.crawl.page_asset import USERS_KEY
from gh_assets.partitions import PageWindow
from gh_assets.storage import COUNTERS, RedisStore
from gh_assets.summary import summarize
from gh_assets_devtools.dagster_graphql import SENSOR_TAG, DagsterGraphQL
from gh_assets_devtools.deployment import Deployment
from gh_assets_devtools.standin import StandinAdmin
from gh_assets_tests.browser import Browser, chromium, dismiss_first_visit_dialog, loaded_width

from .four_pages import PAGE_COUNT, PAGES, four_pages_deployed

# The deployment's start, a backfill with a failure and the automation come first: minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FAILING = PAGES[2]  # page 3
ASSETS = ("github_users", "github_users_frame", "github_user_summary")
SUMMARY = "/assets/github_user_summary"
REFRESH_SENSOR = "refresh_analysis_sensor"
UNFINISHED = {"QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING"}
PARTITION_KEY = re.compile(r"^\d{10}-\d{10}$")
STATUS_COUNT = re.compile(r"^(\w+) \((\d+)\)$")  # a partitions view checkbox: "Failed (1)"
# One row of an asset's metadata table, by its key (the first cell).
ENTRY = "xpath=//tr[td[1][normalize-space()='{}']]"
# The rows that show an image, inline or behind the link Dagster shows for long Markdown.
IMAGE_ENTRIES = "xpath=//tr[td][.//img or .//a[normalize-space()='[Show Markdown]']]"
DOC_PLOT = "follower_distribution"
DOC_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "summary-asset.png"
UPDATE_SCREENSHOT = "GH_ASSETS_UPDATE_SCREENSHOT"


@dataclass
class Env:
    deployment: Deployment
    standin: StandinAdmin
    store: RedisStore
    backfill_id: str  # the backfill in which page 3 failed

    @property
    def api(self) -> DagsterGraphQL:
        return self.deployment.api

    def url(self, path: str) -> str:
        return f"{self.deployment.url}{path}"

    def truth(self, window: PageWindow) -> set[int]:
        return set(self.standin.truth(window.first_id, window.last_id))


# -- the deployment, its failed backfill, the browser ----------------------------------------


@pytest.fixture(scope="module")
def env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with four_pages_deployed(
        tmp_path_factory.mktemp("browser"),
        redis_url,
        GH_ASSETS_PAGE_RETRIES=0,  # the failing page fails at once
    ) as found:
        failed = backfill_with_a_failing_page(found.deployment, found.standin)
        yield Env(found.deployment, found.standin, found.store, failed)


def backfill_with_a_failing_page(deployment: Deployment, standin: StandinAdmin) -> str:
    """A backfill of every page over GraphQL while one user of page 3 answers 502 (not the first
    of its window: the list request succeeds, that detail fails); healed once it is over."""
    users = standin.truth(FAILING.first_id, FAILING.last_id)
    victim = min(user_id for user_id in users if user_id > FAILING.first_id)
    standin.set_faults(fail_ids=[(victim, victim)])
    try:
        backfill_id = deployment.api.launch_backfill(USERS_KEY)
        status = deployment.api.wait_backfill(backfill_id, timeout=300, interval=2)
    finally:
        standin.heal()
    parts = deployment.api.partitions(USERS_KEY)
    assert status == "COMPLETED_FAILED", (status, parts, deployment.log_tail())
    assert parts["failed"] == [FAILING.key], parts
    return backfill_id


@pytest.fixture
def analysis_fresh(env: Env) -> None:
    """The automation has refreshed github_users_frame and github_user_summary since the pages
    last changed, and nothing of theirs is queued or running: the summary is of what Redis holds."""
    changed = env.api.last_materialized(USERS_KEY)

    def refreshed() -> list[str] | None:
        runs = env.api.runs(tags={SENSOR_TAG: REFRESH_SENSOR}, created_after=changed)
        if not runs or runs[-1].status != "SUCCESS" or {r.status for r in runs} & UNFINISHED:
            return None
        return [run.run_id for run in runs]

    env.deployment.wait_for(
        refreshed,
        timeout=240,
        what="the automation to refresh the analysis after the pages changed",
        interval=2,
        state=lambda: [run.brief() for run in env.api.runs(created_after=changed)],
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium on a fresh profile, started before the deployment: without it, fail at once."""
    tmp = tmp_path_factory.mktemp("browser")
    with chromium(tmp / "profile", tmp / "screenshots") as found:
        print(f"\nscreenshots of each step: {found.shots}")
        yield found


@pytest.fixture(scope="module")
def ui(browser: Browser, env: Env) -> Browser:
    """The UI's home page, its first-visit dialog dismissed by its button."""
    with browser.step("home") as page:
        page.goto(env.url("/"))
        title = dismiss_first_visit_dialog(browser)
    print(f"dismissed the first-visit dialog {title!r}")
    return browser


# -- what the pages show -------------------------------------------------------------------------


def partition_counts(page: Page) -> dict[str, int]:
    """The partitions view's count per status, from its checkboxes ("Materialized (3)")."""
    boxes = page.locator("label").filter(has_text=STATUS_COUNT)
    boxes.first.wait_for()
    return {m[1]: int(m[2]) for m in map(STATUS_COUNT.match, boxes.all_inner_texts()) if m}


def metadata_table(page: Page, key: str) -> dict[str, dict[str, str]]:
    """A table of the asset's metadata as shown: first column's text -> {column: text}."""
    table = page.locator(ENTRY.format(key)).locator("table")
    table.locator("tbody tr").first.wait_for()
    columns = table.locator("thead th").all_inner_texts()
    rows = [row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all()]
    return {cells[0]: dict(zip(columns, cells, strict=True)) for cells in rows}


def shown_plots(ui: Browser) -> dict[str, list[int]]:
    """Every image the asset's metadata shows, by key, with each one's loaded width: inline
    ones, and those behind "[Show Markdown]" (Dagster 1.13 renders Markdown metadata of 1,000
    characters or more, so any PNG, only in a dialog the link opens)."""
    page = ui.page
    page.locator(ENTRY.format("accounts")).wait_for()  # the metadata has rendered
    found: dict[str, list[int]] = {}
    for row in page.locator(IMAGE_ENTRIES).all():
        key = row.locator("xpath=td[1]").inner_text().strip()
        found[key] = [loaded_width(image) for image in row.locator("img").all()]
        link = row.get_by_text("[Show Markdown]", exact=True)
        if not link.count():
            continue
        link.click()
        dialog = page.get_by_role("dialog")
        dialog.locator(".dagster-markdown").wait_for()  # Markdown renders once its code loads
        found[key] += [loaded_width(image) for image in dialog.locator("img").all()]
        ui.shot(f"plot-{key}")
        if key == DOC_PLOT and os.environ.get(UPDATE_SCREENSHOT) == "1":
            DOC_SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=DOC_SCREENSHOT, animations="disabled")
            print(f"wrote {DOC_SCREENSHOT} ({DOC_SCREENSHOT.stat().st_size:,} bytes)")
        dialog.get_by_role("button", name="Close").click()
        dialog.wait_for(state="hidden")
    return found


# -- what the operator looks at, in the order of the operator's guide --------------------------


def test_1_lineage_shows_the_three_assets(ui: Browser, env: Env) -> None:
    with ui.step("lineage") as page:
        page.get_by_role("link", name=re.compile(r"Lineage$")).click()  # the main navigation
        page.get_by_role("button", name="panel_show_right", exact=True).click()  # hide the tree
        page.get_by_role("button", name="settings", exact=True).click()  # the graph's settings
        page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
        nodes = page.locator("foreignObject")  # the graph's nodes
        nodes.get_by_text(ASSETS[0], exact=True).wait_for()
        # A double-click on the graph's background (below the search field) zooms it to fit.
        search = page.get_by_text("Search and filter assets").bounding_box()
        assert search is not None, ui.where()
        page.mouse.dblclick(search["x"] + 10, search["y"] + search["height"] + 40)
        for name in ASSETS:
            expect(
                nodes.get_by_text(name, exact=True), f"{name} on screen; {ui.where()}"
            ).to_be_in_viewport(ratio=1)


def test_2_partitions_view_counts_the_failed_page(ui: Browser, env: Env) -> None:
    with ui.step("partitions-after-backfill") as page:
        page.goto(env.url("/assets/github_users?view=partitions"))
        counts = partition_counts(page)
        want = {"Failed": 1, "Materialized": PAGE_COUNT - 1, "Materializing": 0, "Missing": 0}
        assert counts == want, f"{counts}; {ui.where()}"
    with ui.step("partitions-failed-only") as page:
        for status in ("Materialized", "Materializing", "Missing"):  # leave Failed checked
            page.locator("label").filter(has_text=re.compile(rf"^{status} \(")).click()
        listed = page.get_by_text(PARTITION_KEY).filter(visible=True)
        expect(listed, f"the failed pages; {ui.where()}").to_have_text([FAILING.key])


def test_3_summary_counters_are_what_pandas_computes(
    ui: Browser, env: Env, analysis_fresh: None
) -> None:
    frame = env.store.read_frame()
    expected = summarize(frame).counters
    with ui.step("summary-counters") as page:
        page.goto(env.url(SUMMARY))
        shown = metadata_table(page, "counters")
        page.locator(ENTRY.format("counters")).scroll_into_view_if_needed()
        accounts = page.locator(ENTRY.format("accounts")).locator("xpath=td[last()]").inner_text()
    assert accounts.strip() == str(len(frame)), f"accounts {accounts!r}; {ui.where()}"
    assert sorted(shown) == sorted(COUNTERS), f"{shown}; {ui.where()}"
    for counter in COUNTERS:
        for statistic, value in expected.loc[counter].items():
            text = shown[counter][str(statistic)]
            where = f"{counter} {statistic}: shown {text!r}, pandas {value!r}; {ui.where()}"
            if float(value).is_integer():  # counts, sums, maxima: the very text
                assert text == str(int(value)), where
            else:  # the metadata rounds to 3 decimals
                assert float(text) == pytest.approx(float(value), abs=1e-3), where
    followers = shown["followers"]
    print(f"summary: followers sum {followers['sum']}, max {followers['max']}, as pandas says")


def test_4_summary_plots_load(ui: Browser, env: Env, analysis_fresh: None) -> None:
    with ui.step("summary-plots") as page:
        page.goto(env.url(SUMMARY))
        plots = shown_plots(ui)
    print(f"summary plots and their widths: {plots}")
    assert DOC_PLOT in plots, f"{plots}; {ui.where()}"
    for key, widths in plots.items():
        assert widths, f"{key} shows no image; {ui.where()}"
        assert all(width > 0 for width in widths), f"{key} did not load: {widths}; {ui.where()}"
    if os.environ.get(UPDATE_SCREENSHOT) == "1":
        size = DOC_SCREENSHOT.stat().st_size
        assert size < 150_000, f"{DOC_SCREENSHOT} is {size:,} bytes; {ui.where()}"


def test_5_reexecute_from_failure_in_the_ui_turns_the_page_green(ui: Browser, env: Env) -> None:
    with ui.step("backfill-reexecuted") as page:
        page.goto(env.url(f"/runs/b/{env.backfill_id}"))
        page.get_by_role("button", name="expand_more").click()  # the backfill's actions
        page.get_by_role("menuitem", name=re.compile("Re-execute from failure")).click()
        toast = page.get_by_text(re.compile(r"^Created backfill \w+$"))
        backfill_id = toast.inner_text().split()[-1]
    with ui.step("reexecution-done") as page:
        status = env.api.wait_backfill(backfill_id, timeout=300, interval=2)
        assert status == "COMPLETED_SUCCESS", f"backfill {backfill_id}: {status}; {ui.where()}"
        page.goto(env.url(f"/runs/b/{backfill_id}"))
        targeted = page.get_by_text(FAILING.key, exact=True)  # its partition selection
        expect(targeted, f"the re-execution's pages; {ui.where()}").to_be_visible()
    with ui.step("partitions-after-reexecution") as page:
        page.goto(env.url("/assets/github_users?view=partitions"))
        counts = partition_counts(page)
    want = {"Failed": 0, "Materialized": PAGE_COUNT, "Materializing": 0, "Missing": 0}
    assert counts == want, f"{counts}; {ui.where()}"
    truth = env.truth(FAILING)
    assert env.store.page_members(FAILING.key) == truth, ui.where()
    assert env.store.ids_between(FAILING.first_id, FAILING.last_id) == truth, ui.where()
    assert env.store.user_count() == sum(len(env.truth(window)) for window in PAGES), ui.where()
