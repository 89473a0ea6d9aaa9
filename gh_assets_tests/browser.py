"""A real Chromium for the UI tests, driven by Playwright: Debian's package (Playwright downloads
no browser here), headless, on a fresh profile; the steps' screenshots; and the first thing a
person does on a fresh Dagster instance, closing its welcome dialog."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")  # apt's `chromium`; .ci/run installs it when missing
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 60_000  # per action or wait: the UI is slow on 2 busy cores
# The buttons that close a first-visit dialog without answering it (Dagster 1.13: "Skip").
CLOSE_BUTTON = re.compile(r"^(Skip|Dismiss|Close|No thanks|Not now|Got it|OK)$", re.IGNORECASE)


@dataclass
class Browser:
    """One page of a running Chromium, and the folder its screenshots go to."""

    page: Page
    shots: Path
    taken: list[Path] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        """A screenshot of what the page shows now, numbered in the order taken."""
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=path, animations="disabled")  # dialogs and menus settled
        self.taken.append(path)
        return path

    def where(self) -> str:
        """For assertion messages: where to look."""
        return f"screenshots in {self.shots}"

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Page]:
        """One step of a test: a screenshot when it ends, and if it fails (an assertion, a
        Playwright timeout) a screenshot of that moment and the folder's path on the error."""
        try:
            yield self.page
        except BaseException as error:
            with contextlib.suppress(Exception):
                self.shot(f"{name}-FAILED")
            error.add_note(f"step {name!r} failed: {self.where()}")
            raise
        self.shot(name)


@contextlib.contextmanager
def chromium(profile: Path, shots: Path) -> Iterator[Browser]:
    """Chromium with a fresh user-data dir ``profile``; closed on exit, even on failure."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does it)",
            pytrace=False,
        )
    shots.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport=VIEWPORT,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.set_default_navigation_timeout(2 * TIMEOUT_MS)
            yield Browser(page, shots)
        finally:
            context.close()


def dismiss_first_visit_dialog(browser: Browser) -> str:
    """Wait for the modal a fresh instance shows on the first visit ("Join the Dagster community"
    in 1.13), click the button that closes it, and wait until it is gone; its first line."""
    dialog = browser.page.get_by_role("dialog")
    dialog.wait_for()
    browser.shot("first-visit-dialog")
    title = dialog.inner_text().strip().splitlines()[0]
    dialog.get_by_role("button", name=CLOSE_BUTTON).first.click()
    dialog.wait_for(state="hidden")
    return title


def loaded_width(image: Locator) -> int:
    """The natural width of an ``<img>`` once the browser has finished loading it (0: broken)."""
    handle = image.element_handle()
    image.page.wait_for_function("img => img.complete", arg=handle)
    return handle.evaluate("img => img.naturalWidth")
