"""A real Chromium (Debian's, never a downloaded one) driven by Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TRYON_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SPANISH_CAPTIONS_JS = ("[...document.querySelectorAll('#example-garments img')].some(img => img.alt === 'Camiseta roja')"
                       " && [...document.querySelectorAll('#example-garments .thumbnail-item')]"
                       ".every(item => item.getAttribute('aria-label') === item.querySelector('img')?.alt)")


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("TRYON_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TRYON_REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page_in(browser, app_server, request):
    """page_in("es-ES") -> a page of the running app in that browser language; screenshots kept on exit.
    page_in(app=other) opens another running app (e.g. the FAL-backed one); viewport=(390, 844) a phone's screen."""
    pages = []

    def open_page(locale: str = "en-US", app=None, viewport: tuple[int, int] = (1280, 1400)):
        context = browser.new_context(locale=locale, viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.goto((app or app_server).url)
        page.wait_for_selector("#try-on")
        if locale.startswith("es"):  # the examples' captions are translated by a load event: wait for it, never a fixed time
            page.wait_for_function(SPANISH_CAPTIONS_JS, timeout=10_000)
        pages.append((context, page))
        return page

    yield open_page
    ARTIFACTS.mkdir(exist_ok=True)
    for n, (context, page) in enumerate(pages):
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{n}.png"), full_page=True)
        context.close()


@pytest.fixture
def snap(request):
    """snap(page, "step") saves a screenshot of this step under test-artifacts/, to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    count = [0]

    def take(page, step: str) -> None:
        count[0] += 1
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-step{count[0]}-{step}.png"), full_page=True)

    return take
