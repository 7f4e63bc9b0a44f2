"""The page of a public Space with a quota and a daily budget, as a visitor meets them: the look
that would pass the quota is refused in the status line with when it resets (nothing charged), the
Metrics tab shows today's spend against the cap, and a visitor's own FAL key runs their look."""

from __future__ import annotations

import pytest

from e2e.conftest import ARTIFACTS
from e2e.pagekit import DESKTOP, PHONE, open_advanced, pick_garment, pick_person, run_look

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OWN_KEY = "page-visitor-id:page-visitor-secret-4242"


@pytest.fixture(scope="module")
def public_app(tmp_path_factory, fal_server_session):
    """The app on the FAL test server with one paid call an hour for anonymous visitors."""
    from conftest import NO_LIMITS, start_app, stop_app

    env = fal_server_session.env(TRYON_REQUEST_TIMEOUT="20", TRYON_QUOTA_ANONYMOUS_CALLS="1", TRYON_QUOTA_ANONYMOUS_USD="none",
                                 TRYON_DAILY_BUDGET_USD="5")
    app = start_app(tmp_path_factory.mktemp("public-app"), {**NO_LIMITS, **env})
    yield app
    stop_app(app)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"quota-{name}.png"))


@pytest.mark.parametrize("locale, viewport, words", [
    pytest.param("en-US", DESKTOP, {"limit": "You have reached the limit of 1 model call per hour for visitors who are not signed in.",
                                    "spend": "Today's estimated spend: $0.15 of the $5.00 daily budget (3 %)",
                                    "own": "FAL · your own key", "tab": "Metrics"}, id="desktop-en"),
    pytest.param("es-ES", PHONE, {"limit": "Has llegado al límite de 1 llamada al modelo por hora para visitantes sin sesión iniciada.",
                                  "spend": "Gasto estimado de hoy: 0,15 US$ de un presupuesto diario de 5,00 US$ (3 %)",
                                  "own": "FAL · tu propia clave", "tab": "Métricas"}, id="phone-es"),
])
def test_over_the_quota_the_page_says_when_it_resets_and_an_own_key_goes_on(page_in, public_app, fal_server, locale, viewport,
                                                                          words, request):
    fal_server.other_keys.add(OWN_KEY)
    page = page_in(locale, app=public_app, viewport=viewport)
    pick_person(page, 0)
    pick_garment(page, 0, slot=1)
    page.locator("#try-on:not([disabled])").wait_for(timeout=10_000)
    first = run_look(page)
    calls = len(fal_server.submits)
    assert calls <= 1, first  # the hour's one call (made by whichever case ran first)
    second = run_look(page)
    shot(page, f"{request.node.callspec.id}-refused")
    assert words["limit"] in second, second
    assert len(fal_server.submits) == calls  # refused before FAL was called
    # The visitor's own key: pasted under Advanced, the look runs on their FAL account.
    open_advanced(page)
    page.locator("#own-key input").fill(OWN_KEY)
    third = run_look(page)
    shot(page, f"{request.node.callspec.id}-own-key")
    assert words["own"] in third, third
    assert fal_server.submits[-1].headers["authorization"] == f"Key {OWN_KEY}"
    assert OWN_KEY.split(":")[1] not in page.locator("body").inner_text()  # not in the status, the table or the record
    # The Metrics tab: today's spend (the app's call only, not the visitor's own) against the cap.
    page.get_by_role("tab", name=words["tab"]).click()
    page.locator("#metrics-refresh").click()
    page.wait_for_function(f"document.body.innerText.includes({words['spend']!r})", timeout=10_000)
    shot(page, f"{request.node.callspec.id}-metrics")
    # The key was this tab's only: a reload (a new session) starts without it.
    page.reload()
    page.wait_for_selector("#try-on")
    open_advanced(page)
    assert page.locator("#own-key input").input_value() == ""
