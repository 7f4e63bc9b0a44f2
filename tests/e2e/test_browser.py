"""The page as a person uses it: upload, try on, read the result and the timings."""

from __future__ import annotations

import pytest

from e2e.pagekit import chart_bars, choose_async, image_size, open_details, pick_garment, pick_person, table_rows, upload, wait_until_done
from synthetic import draw_garment, draw_person

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_person_and_two_garments_give_a_picture_and_a_timing_table(page_in, asset_paths, snap):
    page = page_in()
    snap(page, "empty")
    assert page.locator("#preview-pill").inner_text().startswith("Offline preview: not the AI model")
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    upload(page, "garment_2", asset_paths["garment_jacket_denim"])
    snap(page, "filled")
    page.locator("#try-on").click()
    page.locator("#result img").wait_for(timeout=30_000)
    page.locator("#timings").get_by_text("Provider call 2").wait_for(timeout=10_000)
    snap(page, "result")
    table = page.locator("#timings").inner_text()
    assert "Provider call 1" in table and "Total" in table and "Backend overhead" in table
    assert "Offline preview (not the AI result)" in page.locator("#status").inner_text()
    assert image_size(page, "#result img")[0] == 768
    # The result is this session's: another browser (its own cookies) gets a 404 for the same URL.
    result_url = page.locator("#result img").get_attribute("src")
    other = page_in()
    assert other.request.get(result_url).status == 404
    assert page.request.get(result_url).status == 200


def test_an_example_fills_the_slots_and_runs(page_in):
    page = page_in()
    pick_person(page)
    pick_garment(page, 0, slot=1)
    pick_garment(page, 1, slot=2)
    page.locator("#try-on").click()
    page.locator("#result img").wait_for(timeout=30_000)


def test_a_non_image_gets_a_clear_message_under_its_slot(page_in, tmp_path):
    page = page_in()
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    upload(page, "garment_1", str(notes))
    note = page.locator("#note_garment_1")
    note.get_by_text("Garment 1: This file is not an image. Use a JPEG, PNG or WebP photo.").wait_for(timeout=10_000)
    assert note.is_visible() and page.locator(".toast-body").count() == 0  # in place, not a corner toast


def test_trying_on_without_a_garment_says_what_is_missing(page_in, asset_paths):
    page = page_in()
    assert page.locator("#try-on").is_disabled()
    assert page.locator("#run-hint").inner_text() == "Add a person photo and at least one garment to try on."
    upload(page, "person", asset_paths["person_illustration"])
    page.locator("#run-hint").get_by_text("To try on, add at least one garment.").wait_for(timeout=10_000)
    assert page.locator("#try-on").is_disabled()


def test_spanish_browser_gets_the_spanish_page(page_in, asset_paths):
    page = page_in("es-ES")
    page.get_by_role("button", name="Probar", exact=True).wait_for(timeout=10_000)
    assert "probador virtual" in page.inner_text("body")
    upload(page, "person", asset_paths["person_illustration"])
    page.locator("#run-hint").get_by_text("Para probar, añade al menos una prenda.").wait_for(timeout=10_000)


def test_with_fal_the_photos_upload_on_drop_and_the_model_s_picture_arrives(page_in, fal_app, fal_server, tmp_path):
    page = page_in(app=fal_app)
    assert page.locator("#preview-pill").count() == 0  # the real model: no offline pill
    open_details(page)
    assert "Provider (the AI model)" in page.locator("#footer").inner_text()
    assert page.locator("#provider-chain").inner_text() == "FAL · fal-ai/nano-banana-pro/edit"
    # pictures no earlier test uploaded, so the app's upload cache cannot know them
    person, garment = tmp_path / "person.png", tmp_path / "garment.png"
    draw_person(shirt=(90, 160, 120)).image.save(person)
    draw_garment("sweater", colour=(120, 30, 90)).save(garment)
    upload(page, "person", str(person))
    upload(page, "garment_1", str(garment))
    # the drop itself uploads to FAL storage, before any click
    for _ in range(50):
        if len(fal_server.uploads) >= 2:
            break
        page.wait_for_timeout(100)
    assert len(fal_server.uploads) == 2
    page.locator("#try-on").click()
    page.locator("#timings").get_by_text("Provider call 1").wait_for(timeout=30_000)
    table = page.locator("#timings").inner_text()
    assert table.count("already uploaded") >= 2  # the click reused the drop's uploads
    assert len(fal_server.uploads) == 2 and len(fal_server.submits) == 1
    assert "with FAL · Nano Banana Pro (Google) · $0.15." in page.locator("#status").inner_text()  # the model and what it cost


def test_the_page_shows_the_provider_chain_and_which_one_served(page_in, vendor_app, replicate_server, runpod_server, asset_paths, snap):
    page = page_in(app=vendor_app)
    open_details(page)
    assert page.locator("#provider-chain").inner_text() == (
        f"Replicate · google/nano-banana → RunPod · endpoint {runpod_server.endpoint}")
    upload(page, "person", asset_paths["person_astronaut"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    page.locator("#try-on").click()
    page.locator("#timings").get_by_text("Provider call 1").wait_for(timeout=30_000)
    assert "with Replicate · Nano Banana (Google, on Replicate) · $0.039." in page.locator("#status").inner_text()
    assert len(replicate_server.predictions) == 1
    replicate_server.behaviour.submit_failures = [500]  # Replicate goes down: RunPod serves the next try
    page.locator("#try-on").click()
    page.locator("#timings").get_by_text("Skipped replicate").wait_for(timeout=30_000)
    snap(page, "failover")
    table = page.locator("#timings").inner_text()
    assert "HTTP 500" in table and "runpod" in table
    assert f"with RunPod · endpoint {runpod_server.endpoint}" in page.locator("#status").inner_text()
    assert image_size(page, "#result img")[0] > 0


def test_async_mode_shows_the_job_moving_and_the_picture_arriving(page_in, fal_app, fal_server, asset_paths, snap):
    fal_server.behaviour.latency_s = 2.0
    page = page_in(app=fal_app)
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    choose_async(page)
    page.locator("#try-on").click()
    page.locator("#status").get_by_text("processing").wait_for(timeout=20_000)
    snap(page, "processing")
    job_id = page.locator("#job-id textarea, #job-id input").first.input_value()
    assert len(job_id) >= 32
    page.locator("#status").get_by_text("done in").wait_for(timeout=30_000)
    page.locator("#result img").wait_for(timeout=10_000)
    snap(page, "done")
    assert len(fal_server.submits) == 1
    # a second visitor checks the same job by its id
    other = page_in(app=fal_app)
    choose_async(other)
    other.locator("#check-job-id textarea, #check-job-id input").first.fill(job_id)
    other.locator("#check-job-button").click()
    other.locator("#result img").wait_for(timeout=20_000)
    assert "Provider call 1" in other.locator("#timings").inner_text()


def test_with_tryon_auth_the_page_asks_for_a_login(browser, tmp_path_factory):
    from conftest import start_app, stop_app

    app = start_app(tmp_path_factory.mktemp("auth-app"), {"TRYON_AUTH": "ann:secret-pass", "TRYON_WORKERS": "0"})
    try:
        context = browser.new_context(locale="en-US")
        page = context.new_page()
        page.goto(app.url)

        def log_in(password: str) -> None:
            page.locator("input[type=text]").first.fill("ann")
            page.locator("input[type=password]").fill(password)
            page.get_by_role("button", name="Login").click()

        log_in("wrong")
        page.get_by_text("Incorrect Credentials").wait_for(timeout=10_000)
        assert page.locator("#try-on").count() == 0
        log_in("secret-pass")
        page.locator("#try-on").wait_for(timeout=20_000)
        context.close()
    finally:
        stop_app(app)


def test_the_metrics_tab_shows_what_was_done(page_in, asset_paths):
    page = page_in()
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    page.locator("#try-on").click()
    page.locator("#timings").get_by_text("Provider call 1").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Metrics").click()
    summary = page.locator("#metrics-summary")
    summary.get_by_text("Last 24 h").wait_for(timeout=10_000)
    assert "| sync |" in summary.inner_text() or "sync" in summary.inner_text()


def test_sync_progress_says_which_garment_is_being_applied(page_in, fal_app, fal_server, tmp_path, snap):
    fal_server.behaviour.latency_s = 1.5
    page = page_in(app=fal_app)
    person, first, second = tmp_path / "p.png", tmp_path / "g1.png", tmp_path / "g2.png"
    draw_person(shirt=(200, 200, 90)).image.save(person)
    draw_garment("tshirt", colour=(20, 120, 200)).save(first)
    draw_garment("hoodie", colour=(90, 20, 120)).save(second)
    upload(page, "person", str(person))
    upload(page, "garment_1", str(first))
    upload(page, "garment_2", str(second))
    page.locator("#garment_2 img").wait_for(timeout=10_000)
    page.locator("#try-on:not([disabled])").wait_for(timeout=10_000)
    page.locator("#try-on").click()
    page.locator("#status").get_by_text("Applying garment 1 of 2").wait_for(timeout=15_000)
    # Busy, and the button says what is happening (on a phone it is what stays in view).
    page.wait_for_function("() => { const b = document.querySelector('#try-on');"
                           " return b.disabled && b.innerText.startsWith('Applying garment'); }", timeout=5_000)
    snap(page, "garment-1-of-2")
    page.locator("#status").get_by_text("Applying garment 2 of 2").wait_for(timeout=15_000)
    snap(page, "garment-2-of-2")
    page.locator("#timing-chart").wait_for(timeout=15_000)
    snap(page, "chart")


def test_photos_with_awkward_names_show_and_run_for_their_owner(page_in, asset_paths, tmp_path):
    """Spaces, &, #, ' and accents in a file name: the owner sees the photo and can try it on."""
    import shutil

    person = tmp_path / "my photo & #1's ñ.png"
    garment = tmp_path / "t-shirt (red) 100%.png"
    shutil.copy(asset_paths["person_illustration"], person)
    shutil.copy(asset_paths["garment_tshirt_red"], garment)
    page = page_in()
    upload(page, "person", str(person))
    upload(page, "garment_1", str(garment))
    page.locator("#person img").wait_for(timeout=10_000)
    image_size(page, "#person img")
    photo_url = page.locator("#person img").get_attribute("src")
    page.locator("#try-on").click()
    page.locator("#result img").wait_for(timeout=30_000)
    assert image_size(page, "#result img", timeout=30_000)[0] > 0
    assert page.request.get(photo_url).status == 200
    assert page_in().request.get(photo_url).status == 404  # another browser: not its photo


@pytest.mark.parametrize("locale, words", [("en-US", "The model refused this photo or garment under its content policy."),
                                            ("es-ES", "El modelo rechazó esta foto o prenda por su política de contenido.")])
def test_a_model_refusal_tells_the_visitor_what_to_try(page_in, fal_app, fal_server, asset_paths, snap, locale, words):
    fal_server.behaviour.content_policy = True
    page = page_in(locale, app=fal_app)
    upload(page, "person", asset_paths["person_astronaut"])
    upload(page, "garment_1", asset_paths["garment_sweater_striped"])
    page.locator("#try-on").click()
    message = page.get_by_text(words)
    message.first.wait_for(timeout=30_000)
    snap(page, "refused")
    assert message.first.is_visible()


@pytest.fixture(scope="module")
def fal_then_replicate_app(tmp_path_factory, fal_server_session, replicate_server_session):
    """The app with TRYON_PROVIDER=fal,replicate on the two protocol servers."""
    from conftest import start_app, stop_app

    env = {**fal_server_session.env(), **replicate_server_session.env(), "TRYON_PROVIDER": "fal,replicate",
           "TRYON_BREAKER_FAILURES": "100", "TRYON_REQUEST_TIMEOUT": "20"}
    app = start_app(tmp_path_factory.mktemp("fal-replicate-app"), env)
    yield app
    stop_app(app)


def test_a_fal_outage_is_served_by_replicate_and_the_page_says_so(page_in, fal_then_replicate_app, fal_server, replicate_server,
                                                                  asset_paths, snap):
    fal_server.behaviour.completed_error = "Runner disconnected"  # FAL's infrastructure fails; the input is fine
    page = page_in(app=fal_then_replicate_app)
    upload(page, "person", asset_paths["person_astronaut"])
    upload(page, "garment_1", asset_paths["garment_hoodie_yellow"])
    page.locator("#try-on").click()
    page.locator("#result img").wait_for(timeout=30_000)
    page.locator("#timings").get_by_text("Provider call 1").wait_for(timeout=10_000)
    snap(page, "served-by-replicate")
    assert "Replicate" in page.locator("#status").inner_text()
    table = page.locator("#timings").inner_text()
    assert "Runner disconnected (runner_disconnected)" in table  # why FAL was passed over, in the timing table
    assert len(replicate_server.predictions) == 1


def test_the_timing_chart_shows_this_run_not_the_last_one(page_in, asset_paths, snap):
    """After a 3-garment look, a 1-garment look's chart has one provider call, with this run's time."""
    page = page_in()
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    upload(page, "garment_2", asset_paths["garment_jacket_denim"])
    upload(page, "garment_3", asset_paths["garment_jeans_blue"])
    page.locator("#try-on").click()
    page.locator("#timings").get_by_text("Provider call 3").wait_for(timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#timing-chart svg [aria-label*=\"Provider call 3\"]').length > 0", timeout=10_000)
    for slot in (2, 3):
        page.locator(f"#garment_{slot} button[aria-label='Remove Image']").click()
    page.locator("#try-on").click()
    page.wait_for_function("!document.querySelector('#timing-chart svg [aria-label*=\"Provider call 3\"]')", timeout=30_000)
    snap(page, "second-run")
    bars = chart_bars(page)
    assert list(bars) == ["1. Inputs", "2. Provider call 1", "3. Fetch result", "4. Everything else"]
    cells = page.locator("#timings").inner_text().splitlines()  # one cell a line: step, ms, detail
    assert bars["2. Provider call 1"] == float(cells[cells.index("Provider call 1") + 1])  # the table's number for this run
