""""Sign in with Hugging Face" as a first-time visitor meets it, in Debian's Chromium: the button in
the header, one click to the provider (a local OpenID Connect provider that approves at once, as
Hugging Face does for a visitor who approved the Space before), back on the page signed in, and
signed out again; in English and Spanish, on a desktop (1440×900) and a phone (390×844).

Chromium keeps gradio's Secure `session` cookie over http://127.0.0.1: loopback addresses count as
potentially trustworthy origins, where Secure cookies may be set. The test checks that it is kept.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from e2e.conftest import ARTIFACTS
from e2e.pagekit import DESKTOP, PHONE

pytest.register_assert_rewrite("oauth_fixtures")
from oauth_fixtures import session_data  # noqa: E402

pytest_plugins = ["oauth_fixtures"]  # the provider and the app, once for the run (tests/oauth_fixtures.py)
pytestmark = [pytest.mark.browser, pytest.mark.slow]

WORDS = {
    "en-US": {"sign_in": "Sign in with Hugging Face", "sign_out": "Sign out ({})"},
    "es-ES": {"sign_in": "Iniciar sesión con Hugging Face", "sign_out": "Cerrar sesión ({})"},
}
SCREENS = [pytest.param(DESKTOP, "en-US", id="desktop-en"), pytest.param(DESKTOP, "es-ES", id="desktop-es"),
           pytest.param(PHONE, "en-US", id="phone-en"), pytest.param(PHONE, "es-ES", id="phone-es")]


@pytest.fixture
def visitor(browser, oauth_app, request):
    """visitor(viewport, locale) -> (page, context, navigations): a fresh browser profile on the app. Every
    request off 127.0.0.1 is refused (with SYSTEM=spaces gradio's page asks huggingface.co about the Space;
    the theme asks Google for fonts): tests use no network, and nothing waits for a DNS answer."""
    opened, outside = [], set()

    def open_page(viewport: tuple[int, int], locale: str):
        context = browser.new_context(locale=locale, viewport={"width": viewport[0], "height": viewport[1]})

        def only_loopback(route):
            host = urlsplit(route.request.url).hostname
            if host == "127.0.0.1":
                route.continue_()
            else:
                outside.add(host)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        navigations: list[str] = []
        page.on("request", lambda r: r.is_navigation_request() and r.frame == page.main_frame and navigations.append(r.url))
        page.goto(oauth_app.url)
        page.wait_for_selector("#try-on")
        opened.append(context)
        return page, context, navigations

    yield open_page
    print("requests refused off 127.0.0.1:", sorted(outside))
    for context in opened:
        context.close()


def shot(page, request, step: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{step}.png"))  # the screen, as the visitor sees it


def paths(urls: list[str]) -> list[str]:
    return [urlsplit(u).path for u in urls]


@pytest.mark.parametrize("viewport, locale", SCREENS)
def test_a_visitor_signs_in_with_hugging_face_and_out_again(visitor, oauth_app, oidc_provider, viewport, locale, request):
    from playwright.sync_api import expect

    words = WORDS[locale]
    page, context, navigations = visitor(viewport, locale)
    button = page.locator("#login")
    expect(button).to_have_text(words["sign_in"], timeout=10_000)

    # In the header, in the first screen, and no wider than the screen.
    header, box = page.locator("#header").bounding_box(), button.bounding_box()
    assert box is not None and header is not None
    assert box["y"] + box["height"] <= viewport[1], f"the button is below the first screen: {box}"
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport[0], f"the button does not fit the screen: {box}"
    assert header["y"] <= box["y"] and box["y"] + box["height"] <= header["y"] + header["height"] + 1, (header, box)
    shot(page, request, "1-signed-out")

    navigations.clear()
    with page.expect_navigation(url=oauth_app.url, timeout=20_000):
        button.click()
    # One click: the app's /login/huggingface, the provider's authorize page, the app's callback, the page.
    assert paths(navigations)[:1] == ["/login/huggingface"], f"the button went to {navigations}"
    assert oidc_provider.received("/oauth/authorize") and oidc_provider.received("/oauth/token")
    page.wait_for_selector("#try-on")
    expect(button).to_have_text(words["sign_out"].format("ada"), timeout=10_000)
    session = next((c for c in context.cookies() if c["name"] == "session"), None)
    assert session is not None and session["secure"], "Chromium did not keep the Secure session cookie"
    assert session_data(session["value"])["oauth_info"]["userinfo"]["preferred_username"] == "ada"
    shot(page, request, "2-signed-in")

    navigations.clear()
    with page.expect_navigation(url=oauth_app.url, timeout=20_000):
        button.click()
    assert paths(navigations)[:1] == ["/logout"], navigations
    page.wait_for_selector("#try-on")
    expect(button).to_have_text(words["sign_in"], timeout=10_000)
    session = next((c for c in context.cookies() if c["name"] == "session"), None)
    assert session is None or "oauth_info" not in session_data(session["value"])
    assert len(oidc_provider.received("/oauth/token")) == 1  # signing out asks the provider nothing


def sign_in_by_click(page, oauth_app, name: str) -> None:
    from playwright.sync_api import expect

    with page.expect_navigation(url=oauth_app.url, timeout=20_000):
        page.locator("#login").click()
    page.wait_for_selector("#try-on")
    expect(page.locator("#login")).to_have_text(f"Sign out ({name})", timeout=10_000)


def test_a_signed_in_visitor_finds_their_looks_on_another_device(visitor, oauth_app, oidc_provider, request):
    from e2e.pagekit import pick_garment, pick_person, run_look

    oidc_provider.user = {"preferred_username": "lin", "sub": "u-lin"}
    laptop, _, _ = visitor(DESKTOP, "en-US")
    sign_in_by_click(laptop, oauth_app, "lin")
    pick_person(laptop, 0)
    pick_garment(laptop, 0, slot=1)
    laptop.locator("#try-on:not([disabled])").wait_for(timeout=10_000)
    assert "Offline preview" in run_look(laptop)
    laptop.wait_for_function("document.querySelectorAll('#history .thumbnail-item').length === 1", timeout=10_000)
    # Another device: a new browser profile, so another session cookie. Signed out, no looks; signed in, hers.
    phone, _, _ = visitor(PHONE, "en-US")
    phone.wait_for_timeout(500)  # the history arrives with the page's load events
    assert phone.locator("#history .thumbnail-item").count() == 0
    sign_in_by_click(phone, oauth_app, "lin")
    phone.wait_for_function("document.querySelectorAll('#history .thumbnail-item').length === 1", timeout=10_000)
    shot(phone, request, "history-on-the-phone")
    # Someone else signed in sees none of it.
    oidc_provider.user = {"preferred_username": "max", "sub": "u-max-other"}
    other, _, _ = visitor(DESKTOP, "en-US")
    sign_in_by_click(other, oauth_app, "max")
    other.wait_for_timeout(500)
    assert other.locator("#history .thumbnail-item").count() == 0
