"""Outfit controls in the page: detected categories and layering order, variants, and the history of looks."""

from __future__ import annotations

import pytest

from e2e.pagekit import example_index, open_advanced, open_details, pick_garment, pick_person, run_look, set_results, status_text, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def dress_example(page, *captions: str) -> None:
    """Pick the astronaut and the named example garments, in slot order."""
    pick_person(page)
    for slot, caption in enumerate(captions, start=1):
        pick_garment(page, example_index(page, caption), slot)


def test_an_example_outfit_shows_its_detected_layering_order_and_the_prompt_follows_it(page_in, snap):
    page = page_in()
    dress_example(page, "Denim jacket", "Blue jeans", "Red T-shirt")
    text = wait_for_text(page, "#layer-order", "automatic by category", "Garment 1 (outerwear · detected)",
                         "Garment 2 (bottom · detected)", "Garment 3 (top · detected)")
    assert text.index("Garment 2 (bottom") < text.index("Garment 3 (top") < text.index("Garment 1 (outerwear")
    assert page.locator("#category_2 input").input_value() == "Auto: bottom"  # the guess, shown in its slot
    run_look(page)
    snap(page, "layered")
    table = page.locator("#timings").inner_text()
    assert "Garment 2 (bottom)" in table and "Garment 1 (outerwear)" in table  # each call names its garment
    open_details(page)
    prompts = page.locator("#prompts").inner_text()
    assert "Prompt 3" in prompts and "outerwear" in prompts.split("Prompt 3", 1)[1]
    # The user's own order wins, and a jacket put under a T-shirt gets a warning.
    open_advanced(page)
    page.locator("#order input").click()
    page.get_by_role("option", name="Garment 1 · outerwear").click()
    text = wait_for_text(page, "#layer-order", "yours", "Garment 1 is outerwear but goes on under Garment 3")
    assert text.index("Garment 1 (outerwear") < text.index("Garment 2 (bottom")


def test_three_variants_come_back_and_the_chosen_one_is_the_result(page_in, snap):
    page = page_in()
    dress_example(page, "Red T-shirt", "Denim jacket")
    assert not page.locator("#variants").is_visible()  # one picture is not shown three times
    set_results(page, 3)
    page.locator("#try-on").click()
    thumbnails = page.locator("#variants .thumbnail-item")
    page.wait_for_function("document.querySelectorAll('#variants .thumbnail-item').length === 3", timeout=30_000)
    page.locator("#result img").wait_for(timeout=10_000)
    first = page.locator("#result img").get_attribute("src")
    thumbnails.nth(2).click()
    page.wait_for_function(f"document.querySelector('#result img') && document.querySelector('#result img').src !== {first!r}",
                           timeout=10_000)
    snap(page, "variant-3")
    assert "3 results" in status_text(page)


def test_the_history_survives_a_reload_restores_a_look_and_is_not_shared(page_in, snap):
    page = page_in()
    dress_example(page, "Red T-shirt", "Denim jacket")
    set_results(page, 2)
    page.locator("#try-on").click()
    page.wait_for_function("document.querySelectorAll('#history .thumbnail-item').length >= 1", timeout=30_000)
    caption = page.locator("#history img").first.get_attribute("alt")
    assert caption.startswith("top, outerwear · ") and caption.endswith(" · offline preview · Nano Banana Pro (Google)")  # what, when, which model
    page.reload()
    page.wait_for_selector("#try-on")
    page.wait_for_function("document.querySelectorAll('#history .thumbnail-item').length >= 1", timeout=15_000)
    assert page.locator("#person img").count() == 0  # a fresh page: empty inputs
    page.locator("#history .thumbnail-item").first.click()
    page.locator("#person img").wait_for(timeout=15_000)
    page.locator("#garment_1 img").wait_for(timeout=15_000)
    page.locator("#result img").wait_for(timeout=15_000)
    page.locator("#timings").get_by_text("Provider call 1").wait_for(timeout=15_000)
    assert "restored" in status_text(page)
    # The settings come back with the pictures: categories, number of results, both results.
    wait_for_text(page, "#layer-order", "Garment 1 (top", "Garment 2 (outerwear")
    open_advanced(page)
    page.wait_for_function("document.querySelector('#num-images input[type=number]')?.value === '2'", timeout=10_000)
    page.wait_for_function("document.querySelectorAll('#variants .thumbnail-item').length === 2", timeout=10_000)
    page.locator("#try-again").wait_for(state="visible", timeout=5_000)
    snap(page, "restored")
    # "Try again" re-runs the restored look after the reload: the same look is not kept twice.
    status = run_look(page, "#try-again")
    assert "Offline preview" in status, status
    page.wait_for_timeout(500)
    assert page.locator("#history .thumbnail-item").count() == 1
    assert not page.locator("#look-actions").is_visible()  # the list changed: no look stays selected by position
    assert page.evaluate("document.activeElement.closest('#status') !== null")  # focus back on the status line
    # Delete removes it, pictures and all.
    page.locator("#history .thumbnail-item").first.click()
    page.locator("#delete-look").click()
    page.wait_for_function("document.querySelectorAll('#history .thumbnail-item').length === 0", timeout=10_000)
    assert page.locator("#history-note").inner_text().strip() == "Look deleted."  # said beside the history
    # Another browser (another session cookie) sees none of it.
    other = page_in()
    other.wait_for_timeout(1500)
    assert other.locator("#history .thumbnail-item").count() == 0


def test_a_spanish_browser_gets_the_outfit_controls_in_spanish(page_in):
    page = page_in("es-ES")
    dress_example(page, "Chaqueta vaquera", "Vaqueros azules", "Camiseta roja")
    text = wait_for_text(page, "#layer-order", "automático por categoría", "Prenda 2 (parte de abajo · detectado)",
                         "Prenda 3 (parte de arriba · detectado)", "Prenda 1 (prenda exterior · detectado)")
    assert text.index("parte de abajo") < text.index("parte de arriba") < text.index("prenda exterior")
    assert page.locator("#category_1 input").input_value() == "Auto: prenda exterior"
    open_advanced(page)
    assert page.locator("#aspect-ratio input").input_value() == "Igual que la foto de la persona"
    assert "Asíncrono" in page.locator("#mode").inner_text() and "Síncrono" in page.locator("#mode").inner_text()
    page.locator("#order input").click()
    page.get_by_role("option", name="Prenda 3 · parte de arriba").wait_for(timeout=5_000)
    assert page.get_by_role("option").count() == 3  # only the filled slots, never an empty one
    # No choice label, in the controls or the examples, leaks gradio's untranslated i18n marker.
    assert "__i18n__" not in page.inner_text("body")
