"""The model picker as a visitor uses it: what each model is good at and costs, the estimate
before the run, options the model cannot make taken away, and two models side by side."""

from __future__ import annotations

import pytest

from e2e.conftest import ARTIFACTS
from e2e.pagekit import DESKTOP, PHONE, in_first_screen, open_advanced, run_look, table_rows, upload, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def choose(page, selector: str, option: str) -> None:
    page.locator(f"{selector} input").click()
    page.get_by_role("option", name=option).click()


def test_the_picker_prices_the_look_before_it_runs_and_records_what_it_cost(page_in, asset_paths):
    page = page_in(viewport=DESKTOP)
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    upload(page, "garment_2", asset_paths["garment_jeans_blue"])
    estimate = wait_for_text(page, "#cost-estimate", "≈ $0.30: 2 garments × 1 call each in sync", "$0.15 as one async call")
    assert "here $0: this is the offline preview" in estimate  # the preview is labelled as such
    assert "$0.15 per image (4K: $0.30)" in page.locator("#model-info").inner_text()
    assert in_first_screen(page, "#try-on")  # the picker does not push the button out of the first screen
    choose(page, "#model", "FASHN Try-On v1.6")
    wait_for_text(page, "#cost-estimate", "≈ $0.15: 2 garments", "2 calls: this model takes one garment per call")
    assert "$0.075 per image" in page.locator("#model-info").inner_text()
    open_advanced(page)
    # What FASHN cannot make is not offered: only 1K, the person photo's shape, no descriptions.
    page.locator("#resolution input").click()
    assert [o.inner_text().replace("✓", "").strip() for o in page.get_by_role("option").all()] == ["1K"]
    page.keyboard.press("Escape")
    assert page.locator("#description_1").is_hidden()
    run_look(page)
    rows = {row[0]: row for row in table_rows(page)}
    assert rows["Model"][2] == "FASHN Try-On v1.6"
    assert rows["Cost"][2] == "$0 (offline preview; $0.15 with the model)"  # this run's cost, from this run's record


def test_a_one_result_model_takes_the_choices_it_cannot_make_away(page_in, asset_paths):
    page = page_in(viewport=DESKTOP)
    open_advanced(page)
    choose(page, "#resolution", "4K")
    choose(page, "#model", "Kling Kolors Virtual Try-On v1.5")
    page.locator("#num-images").wait_for(state="hidden", timeout=5_000)  # one result per call: no slider
    page.locator("#resolution input").click()
    assert [o.inner_text().replace("✓", "").strip() for o in page.get_by_role("option").all()] == ["1K"]
    page.keyboard.press("Escape")
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    wait_for_text(page, "#cost-estimate", "≈ $0.07: 1 call in sync")
    assert "cannot" not in run_look(page)  # what is offered runs
    choose(page, "#model", "Nano Banana 2 (Google)")
    page.locator("#num-images").wait_for(state="visible", timeout=5_000)
    choose(page, "#resolution", "2K")
    wait_for_text(page, "#cost-estimate", "≈ $0.12 (2K): 1 call in sync")


@pytest.mark.parametrize("viewport, lang", [(DESKTOP, "en-US"), (PHONE, "es-ES")])
def test_two_models_side_by_side_each_labelled_and_both_kept(page_in, asset_paths, viewport, lang):
    page = page_in(lang, viewport=viewport)
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_hoodie_yellow"])
    open_advanced(page)
    choose(page, "#compare-with", "Nano Banana 2 (Google)")
    both = "for both models" if lang == "en-US" else "por los dos modelos"
    wait_for_text(page, "#cost-estimate", both)
    run_look(page)
    captions = page.locator("#models-compared .caption-label").all_inner_texts()
    assert len(captions) == 2
    assert captions[0].startswith("Nano Banana Pro (Google) · ") and captions[1].startswith("Nano Banana 2 (Google) · ")
    history = page.locator("#history .caption-label").all_inner_texts()
    assert sum("Nano Banana Pro" in c for c in history) == 1 and sum("Nano Banana 2" in c for c in history) == 1
    page.locator("#models-compared").scroll_into_view_if_needed()
    screenshot(page, f"models-side-by-side-{lang}-{viewport[0]}")


@pytest.fixture(scope="module")
def fallback_app(tmp_path_factory, fal_server_session):
    """The app on the FAL test server with TRYON_FAL_MODEL=nano-banana-pro,fashn (a fallback list)."""
    from conftest import start_app, stop_app

    env = fal_server_session.env(TRYON_FAL_MODEL="fal-ai/nano-banana-pro/edit,fal-ai/fashn/tryon/v1.6", TRYON_REQUEST_TIMEOUT="20")
    app = start_app(tmp_path_factory.mktemp("fallback-app"), env)
    yield app
    stop_app(app)


def test_a_refusal_by_the_first_model_is_answered_by_the_next_on_the_page_and_by_api(page_in, fallback_app, fal_server, asset_paths):
    from gradio_client import Client, handle_file

    fal_server.behaviour.content_policy_models = {"fal-ai/nano-banana-pro/edit"}
    page = page_in(app=fallback_app, viewport=DESKTOP)
    upload(page, "person", asset_paths["person_illustration"])
    upload(page, "garment_1", asset_paths["garment_tshirt_red"])
    status = run_look(page)
    assert "Nano Banana Pro (Google) refused this look; FASHN Try-On v1.6 made it." in status
    assert "with FAL · FASHN Try-On v1.6 · $0.075." in status  # the model that made it, and what it cost
    rows = {row[0]: row for row in table_rows(page)}
    assert rows["Passed over Nano Banana Pro (Google)"][2].startswith("content_policy")
    _, timings = Client(fallback_app.url, verbose=False).predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_jeans_blue"]), api_name="/try_on")
    assert timings["model"] == "fal-ai/fashn/tryon/v1.6" and timings["model_fallback"][0]["model"] == "fal-ai/nano-banana-pro/edit"
