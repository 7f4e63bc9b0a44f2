"""The API pages in a real browser with no internet (every request to another host refused):
/api/docs renders the REST operations (swagger-ui's files come from the app, tryon/web/api_docs.py),
and gradio's "Use via API" page reads in plain words (tryon/web/api_page.py)."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest

from conftest import free_port
from e2e.conftest import ARTIFACTS
from tryon.web.api_page import GARMENT_EXAMPLE, LAUNCH_OPTIONS, PERSON_EXAMPLE

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OPERATIONS = {
    "/api/images/generate": "Dress the person in 1-4 garments (sync, chained)",
    "/api/images/upload": "Pre-upload one image; pass the URL back later as userImage or a garment",
    "/api/jobs/submit": "Queue an async job (one model call with every garment); answers at once",
    "/api/jobs/{job_id}/status": "A job's status: queued, processing, done or error",
}


def offline_context(browser, refused: list):
    """A browser context in which only 127.0.0.1 answers; every other request is noted and refused."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})

    def only_this_machine(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_machine)
    return context


def test_swagger_ui_renders_the_operations_with_every_other_host_blocked(browser, app_server):
    refused, failed, errors = [], [], []
    context = offline_context(browser, refused)
    page = context.new_page()
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(app_server.url + "api/docs")
        page.locator(".opblock").first.wait_for(timeout=20_000)
        for path, summary in OPERATIONS.items():
            block = page.locator(".opblock").filter(has_text=path).first
            assert block.is_visible(), path
            assert summary in block.inner_text(), path
        assert page.locator(".opblock-summary-method").first.inner_text() in ("GET", "POST")
        # One operation opened: its request body and its answers render from the schema.
        generate = page.locator(".opblock-post").filter(has_text="/api/images/generate").first
        generate.locator(".opblock-summary").click()
        generate.get_by_text("Request body").first.wait_for(timeout=10_000)
        assert generate.get_by_role("button", name="Try it out").is_visible()
        assert "413" in generate.locator(".responses-wrapper").inner_text()
        # The OpenAPI document is a plain link on the page.
        link = page.locator("#openapi-link a")
        assert link.is_visible() and link.get_attribute("href") == "/api/openapi.json"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "api-docs-offline.png"), full_page=False)
        assert refused == [], refused  # nothing asked for another host (no CDN, no favicon, no fonts)
        assert failed == [] and errors == [], (failed, errors)
    finally:
        context.close()


@pytest.fixture
def tiny_api_app():
    """tests/test_api_page.py's tiny Blocks (PlainApiPage, translated labels) served by uvicorn here."""
    import uvicorn
    from test_api_page import mounted, tiny_demo

    server = uvicorn.Server(uvicorn.Config(mounted(tiny_demo(), **LAUNCH_OPTIONS), host="127.0.0.1",
                                           port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the tiny app did not start"
    yield f"http://127.0.0.1:{server.config.port}/"
    server.should_exit = True
    thread.join(timeout=10)


def test_gradio_s_api_page_reads_in_words_with_our_examples_and_no_false_latency(browser, tiny_api_app):
    from gradio_client import Client, handle_file

    # One failed call first: stock gradio would now show "1 requests (0% successful, p50: 0 ms)".
    with pytest.raises(Exception, match="not a person"):
        Client(tiny_api_app, verbose=False).predict(handle_file(PERSON_EXAMPLE), api_name="/fails")
    refused = []
    context = offline_context(browser, refused)
    page = context.new_page()
    try:
        page.goto(tiny_api_app)
        page.get_by_text("Use via API").first.click()
        page.get_by_text(f"handle_file('{PERSON_EXAMPLE}')").first.wait_for(timeout=20_000)
        time.sleep(1.0)  # the traffic summary is fetched separately: give a wrong one the time to appear
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gradio-api-page.png"), full_page=False)
        text = page.locator("body").inner_text()
        assert "[object Object]" not in text and "__i18n__" not in text
        assert 'provided in the "Person photo" Image component. Photo of one person' in text
        assert 'provided in the "Category (category_2)" Dropdown component' in text
        assert f"handle_file('{GARMENT_EXAMPLE}')" in text and "bus.png" not in text
        assert "p50" not in text and "successful" not in text
        assert refused == [], refused
    finally:
        context.close()
