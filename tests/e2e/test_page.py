"""The page as a first-time visitor meets it, on a desktop (1440×900) and a phone (390×844), in
English and Spanish: what to do without scrolling, honest progress, errors where they happen,
numbers from this run only, and a page a screen reader can follow."""

from __future__ import annotations

import re

import pytest

from e2e.conftest import ARTIFACTS
from e2e.pagekit import (DESKTOP, PHONE, STATUS, box, chart_bars, choose_async, example_index, image_size, in_first_screen,
                         open_advanced, pick_garment, pick_person, run_look, status_text, table_rows, upload)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENS = [pytest.param(DESKTOP, "en-US", id="desktop-en"), pytest.param(DESKTOP, "es-ES", id="desktop-es"),
           pytest.param(PHONE, "en-US", id="phone-en"), pytest.param(PHONE, "es-ES", id="phone-es")]
WORDS = {
    "en-US": {"hint": "Add a person photo and at least one garment to try on.", "button": "Try on",
              "done": "Offline preview (not the AI result)", "jeans": "Blue jeans", "tshirt": "Red T-shirt"},
    "es-ES": {"hint": "Añade una foto de la persona y al menos una prenda para probar.", "button": "Probar",
              "done": "Vista previa sin conexión (no es el resultado de la IA)", "jeans": "Vaqueros azules", "tshirt": "Camiseta roja"},
}
# What must not be left in English on the Spanish page (labels, buttons, the pill, the sections).
ENGLISH = ["Try on", "Person photo", "Garment 1", "Advanced", "Details", "Offline preview", "Your looks", "Result", "Metrics"]


def ms_of(cell: str) -> float:
    """A timing table cell as a number (the page writes 88,4 in Spanish)."""
    return float(cell.replace(",", "."))


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.mark.parametrize("viewport, locale", SCREENS)
def test_a_first_visit_shows_what_to_do_without_scrolling_and_a_look_with_its_own_numbers(page_in, viewport, locale, request):
    words = WORDS[locale]
    page = page_in(locale, viewport=viewport)
    page.wait_for_timeout(500)  # the examples' captions arrive in the visitor's language just after load
    screenshot(page, f"{request.node.name}-1-first-screen")
    # The action is in the first screen (on a phone, pinned to its bottom), and says why it waits.
    assert in_first_screen(page, "#try-on"), box(page, "#try-on")
    assert page.locator("#try-on").is_disabled() and page.locator("#try-on").inner_text() == words["button"]
    assert page.locator("#run-hint").inner_text() == words["hint"]
    assert in_first_screen(page, "#example-people") and box(page, "#person")["y"] < viewport[1]
    if viewport == DESKTOP:  # side by side: person | garments | result, the slots and the examples all in view
        for selector in ("#person", "#garment_1", "#garment_4", "#example-garments", "#status"):
            assert in_first_screen(page, selector), selector
        assert box(page, "#person")["x"] < box(page, "#garment_1")["x"] < box(page, "#result")["x"]
    else:  # stacked in that order
        assert box(page, "#person")["y"] < box(page, "#garment_1")["y"] < box(page, "#result")["y"]
    # The examples sit above the slots they fill.
    assert box(page, "#example-people")["y"] < box(page, "#person")["y"]
    assert box(page, "#example-garments")["y"] < box(page, "#garment_1")["y"]
    # No empty boxes for what has not happened, no developer matter.
    for hidden in ("#variants", "#compare", "#timings", "#timing-chart", "#job-id"):
        assert not page.locator(hidden).is_visible(), hidden
    text = page.locator("body").inner_text()
    for developer_word in ("FAL_KEY", "REPLICATE_API_TOKEN", "Redis", "cache hit", "upload 0 ms"):
        assert developer_word not in text, developer_word
    assert not page.locator("#prompts").is_visible() and not page.locator("#timing-record").is_visible()  # in Details, closed
    if locale == "es-ES":
        for english in ENGLISH:
            assert not re.search(rf"\b{english}\b", text), english

    # Mix and match: a person, then two garments from the examples.
    pick_person(page, 0)
    pick_garment(page, example_index(page, words["jeans"]), slot=1)
    pick_garment(page, example_index(page, words["tshirt"]), slot=2)
    page.locator("#try-on:not([disabled])").wait_for(timeout=10_000)
    assert not page.locator("#run-hint").is_visible()
    said = run_look(page)
    assert said.startswith(words["done"]), said
    screenshot(page, f"{request.node.name}-2-result")
    if viewport == PHONE:  # the page went to the result, which is in view
        assert -5 <= box(page, "#result-column")["y"] <= viewport[1] / 3, box(page, "#result-column")
    # The chart's bars are the table's rows, this run's.
    bars = chart_bars(page)
    calls = [row for row in table_rows(page) if row[0].startswith(("Provider call", "Llamada al proveedor"))]
    assert len(calls) == 2 and [ms_of(row[1]) for row in calls] == [ms for step, ms in bars.items() if "call" in step or "Llamada" in step]
    assert all(("," if locale == "es-ES" else ".") in row[1] for row in calls)  # 88,4 ms in Spanish, 88.4 in English
    # One picture is shown once: no one-thumbnail gallery, before/after on demand.
    assert page.locator("#result img").is_visible() and not page.locator("#variants").is_visible()
    assert not page.locator("#compare").is_visible()
    page.locator("#compare-toggle input").check()
    page.locator("#compare").wait_for(state="visible", timeout=5_000)
    assert not page.locator("#result").is_visible()


def test_progress_is_said_at_once_in_the_status_line_with_the_model_s_queue(page_in, fal_app, fal_server, asset_paths):
    fal_server.behaviour.queue_s, fal_server.behaviour.queue_step_s, fal_server.behaviour.latency_s = 1.2, 0.3, 1.0
    page = page_in(app=fal_app, viewport=DESKTOP)
    upload(page, "person", asset_paths["person_astronaut"])
    upload(page, "garment_1", asset_paths["garment_sweater_striped"])
    page.locator("#try-on:not([disabled])").wait_for(timeout=10_000)
    page.locator("#try-on").click()
    seen, busy = [], []
    for _ in range(120):
        text = page.locator(STATUS).inner_text().strip()
        if text and (not seen or seen[-1] != text):
            seen.append(text)
            busy.append((page.locator("#try-on").is_disabled(), page.locator("#try-on").inner_text()))
        if text and "⏳" not in text:
            break
        page.wait_for_timeout(50)
    assert any("Waiting in the model's queue (position" in text for text in seen), seen
    assert any("The model is working on it" in text for text in seen), seen
    assert seen[-1].startswith("Done in ") and "FAL" in seen[-1], seen
    # Busy while it ran, the button (what a phone keeps in view) saying a step of the run ("…"), not
    # "Try on": the two are read one after the other, so the button may be a step behind or ahead of
    # the line (a step the poll between them missed); back to "Try on" once done.
    assert all(disabled and label.endswith("…") for disabled, label in busy[:-1]), list(zip(seen, busy))
    page.wait_for_function("() => { const b = document.querySelector('#try-on'); return !b.disabled && b.innerText === 'Try on'; }",
                           timeout=5_000)
    assert not any("Ready" in text for text in seen)


def test_the_chart_and_the_table_show_this_run_after_sync_async_and_sync_again(page_in, fal_app, fal_server, asset_paths):
    page = page_in(app=fal_app, viewport=DESKTOP)
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    upload(page, "garment_2", asset_paths["garment_jeans_blue"])
    page.locator("#garment_2 img").wait_for(timeout=10_000)
    page.locator("#try-on:not([disabled])").wait_for(timeout=10_000)

    def bars_equal_rows(calls: int, queue: bool) -> None:
        bars, rows = chart_bars(page), table_rows(page)
        call_rows = [row for row in rows if row[0].startswith("Provider call")]
        call_bars = [ms for step, ms in bars.items() if "Provider call" in step]
        assert len(call_rows) == calls and [ms_of(row[1]) for row in call_rows] == call_bars, (bars, rows)
        queue_rows = [row for row in rows if row[0] == "Waiting in the job queue"]
        assert bool(queue_rows) == queue and any("Waiting in the job queue" in step for step in bars) == queue
        total = next(ms_of(row[1]) for row in rows if row[0] == "Total")
        assert sum(bars.values()) == pytest.approx(total, abs=0.5)  # the bars add up to this run's total

    run_look(page)
    bars_equal_rows(calls=2, queue=False)  # sync: one call per garment
    choose_async(page)
    said = run_look(page)
    assert said.startswith("Done in "), said
    bars_equal_rows(calls=1, queue=True)  # async: one call for the outfit, after the job queue
    page.locator("#mode label").first.click()
    page.locator(f"#garment_2 button[aria-label='Remove Image']").click()
    page.locator("#garment_2 img").wait_for(state="detached", timeout=5_000)
    run_look(page)
    bars_equal_rows(calls=1, queue=False)


@pytest.mark.parametrize("viewport, locale, message, hint", [
    pytest.param(DESKTOP, "en-US", "Garment 2: This file is not an image. Use a JPEG, PNG or WebP photo.",
                 "Replace or remove the file in Garment 2: it cannot be used.", id="desktop-en"),
    pytest.param(PHONE, "es-ES", "Prenda 2: Este archivo no es una imagen. Usa una foto JPEG, PNG o WebP.",
                 "Cambia o quita el archivo de Prenda 2: no se puede usar.", id="phone-es")])
def test_a_bad_file_is_kept_marked_and_explained_on_its_slot(page_in, asset_paths, tmp_path, viewport, locale, message, hint,
                                                             request):
    page = page_in(locale, viewport=viewport)
    bad = tmp_path / "holiday.jpg"
    bad.write_text("not a photo at all")
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    upload(page, "garment_2", str(bad))
    note = page.locator("#note_garment_2")
    note.get_by_text(message).wait_for(timeout=10_000)
    # Marked: the slot has the red outline (CSS on the slot that holds the note), and the file stays.
    outline = page.locator("#garment_2").evaluate("el => getComputedStyle(el.closest('.slot')).outlineStyle")
    assert outline == "solid"
    assert page.locator("#garment_2 img").count() == 1
    page.locator(STATUS).get_by_text(message).wait_for(timeout=15_000)  # in the status line too
    # Try on waits, and says why, until the file is replaced or removed.
    page.locator("#run-hint").get_by_text(hint).wait_for(timeout=10_000)
    assert page.locator("#try-on").is_disabled()
    assert note.get_attribute("role") == "alert"  # announced when it appears
    note.scroll_into_view_if_needed()
    screenshot(page, f"{request.node.name}-error")
    assert page.locator(".toast-body").count() == 0  # not a corner toast
    assert page.locator("#result").get_by_text("Error").count() == 0  # nor gradio's bare "Error" pill


def test_a_screen_reader_hears_labels_the_status_line_and_keeps_its_place(page_in, asset_paths):
    page = page_in("es-ES", viewport=DESKTOP)
    live = page.locator("#status [role=status][aria-live=polite]")
    assert live.count() == 1
    labels = page.eval_on_selector_all("#example-garments .thumbnail-item", "els => els.map(e => e.getAttribute('aria-label'))")
    assert "Camiseta roja" in labels and not any(label.startswith("Thumbnail") for label in labels)
    upload(page, "person", asset_paths["person_astronaut"])
    page.locator("#person img").wait_for(timeout=10_000)
    assert page.locator("#person img").get_attribute("alt") == "La foto de la persona"
    page.wait_for_function("document.activeElement && document.activeElement.id === 'person'", timeout=5_000)  # focus kept
    upload(page, "garment_1", asset_paths["garment_jeans_blue"])
    page.wait_for_function("document.activeElement && document.activeElement.id === 'garment_1'", timeout=5_000)
    run_look(page)
    assert page.locator("#result img").get_attribute("alt") == "La persona con las prendas elegidas"
    choose_async(page)
    assert page.locator("#job-id").get_by_text("Id del trabajo").count() >= 1  # the job id box has its label
    # The picture's stamp reads in both languages.
    from tryon.preview.badge import BADGE_TEXT

    assert "VISTA PREVIA" in BADGE_TEXT and "OFFLINE PREVIEW" in BADGE_TEXT


def test_the_offline_preview_follows_the_aspect_ratio_and_says_what_the_options_do(page_in, asset_paths):
    page = page_in(viewport=DESKTOP)
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_hoodie_yellow"])
    open_advanced(page)
    assert "the offline preview follows the aspect ratio" in page.locator("#options-apply").inner_text()
    page.locator("#aspect-ratio input").click()
    page.get_by_role("option", name="16:9").click()
    run_look(page)
    width, height = image_size(page, "#result img")
    assert abs(width / height - 16 / 9) < 0.02, (width, height)


def test_the_metrics_tab_reads_on_a_phone(page_in, asset_paths):
    page = page_in(viewport=PHONE)
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    run_look(page)
    page.locator("#try-on").click()  # nothing changed: the same look
    page.get_by_role("tab", name="Metrics").click()
    summary = page.locator("#metrics-summary")
    summary.get_by_text("Last 24 h").wait_for(timeout=10_000)
    text = summary.inner_text()
    assert "_" not in text  # no snake_case codes
    # Nothing wider than the phone, and no header broken inside a word.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    broken = page.eval_on_selector_all("#metrics-summary th", "els => els.filter(e => e.getClientRects().length > 1"
                                       " || (e.innerText.trim().split(/\\s+/).length === 1 && e.scrollWidth > e.clientWidth + 1)).length")
    assert broken == 0
    screenshot(page, "metrics-phone")
