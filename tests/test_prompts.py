"""The prompts and the layering order: one place, one schema, and what the model actually receives."""

from __future__ import annotations

import pytest

from tryon.config import Settings
from tryon.errors import InvalidRequest
from tryon.outfit import Outfit, nearest_ratio
from tryon.prompts import DEFAULT_SYNC_PROMPT, outfit_prompt, sync_prompt
from tryon.providers import build_provider
from tryon.service import TryOnService

# The outfit, dropped "in any order": jacket in slot 1, jeans in slot 2, T-shirt in slot 3.
JACKET_JEANS_TSHIRT = Outfit.parse(categories=["outerwear", "bottom", "top"],
                                   descriptions=["denim jacket", "blue jeans", "white T-shirt"])


def test_the_sync_prompt_names_person_and_garment_figures():
    assert "Figure 1" in DEFAULT_SYNC_PROMPT and "Figure 2" in DEFAULT_SYNC_PROMPT
    assert sync_prompt() == DEFAULT_SYNC_PROMPT


def test_a_garment_with_a_category_gets_a_prompt_naming_it_and_what_it_replaces():
    jeans = Outfit.parse(categories=[None, "bottom"], descriptions=[None, "blue jeans"]).specs(["garment_2"])[0]
    prompt = sync_prompt(DEFAULT_SYNC_PROMPT, jeans)
    assert "the blue jeans (bottom) shown in Figure 2" in prompt and "lower-body clothing" in prompt and "on the legs" in prompt
    assert "Keep every other garment the person is already wearing" in prompt


@pytest.mark.parametrize("slots", [("garment_1", "garment_2", "garment_3"), ("garment_3", "garment_1", "garment_2")])
def test_garments_go_on_inner_to_outer_whatever_their_slot(slots):
    outfit = Outfit.parse(categories={slots[0]: "outerwear", slots[1]: "bottom", slots[2]: "top"})
    assert [s.field for s in outfit.specs(sorted(slots))] == [slots[1], slots[2], slots[0]]


def test_the_user_s_order_overrides_the_automatic_one():
    outfit = Outfit.parse(categories=["outerwear", "bottom", "top"], order="garment_1, garment_3")
    assert [s.field for s in outfit.specs(["garment_1", "garment_2", "garment_3"])] == ["garment_1", "garment_3", "garment_2"]
    assert [s.field for s in Outfit.parse(order=[3, 1]).specs(["garment_1", "garment_3"])] == ["garment_3", "garment_1"]


def test_the_one_call_prompt_names_every_figure_in_layer_order():
    specs = JACKET_JEANS_TSHIRT.specs(["garment_1", "garment_2", "garment_3"])
    prompt = outfit_prompt(specs)
    lines = prompt.splitlines()
    assert lines[1].startswith("1. Figure 2: the blue jeans (bottom).")
    assert lines[2].startswith("2. Figure 3: the white T-shirt (top).")
    assert lines[3].startswith("3. Figure 4: the denim jacket (outerwear).") and "over the clothes" in lines[3]
    assert "innermost layer to the outermost" in lines[0] and "Figure 5" not in prompt


def test_one_plain_garment_in_one_call_is_the_sync_prompt():
    assert outfit_prompt(Outfit().specs(["garment_1"])) == DEFAULT_SYNC_PROMPT
    with pytest.raises(ValueError):
        outfit_prompt([])


@pytest.mark.parametrize("kwargs, code", [
    ({"categories": ["hat"]}, "bad_category"),
    ({"descriptions": ["x" * 121]}, "description_too_long"),
    ({"order": "garment_1,garment_1"}, "bad_order"),
    ({"order": "garment_9"}, "bad_order"),
    ({"num_images": 5}, "bad_variants"),
    ({"num_images": "many"}, "bad_variants"),
    ({"num_images": 2.5}, "bad_variants"),
    ({"num_images": float("inf")}, "bad_variants"),
    ({"aspect_ratio": "7:5"}, "bad_option"),
    ({"resolution": "8K"}, "bad_option"),
    ({"categories": "top"}, "bad_option"),
])
def test_bad_outfit_values_get_their_own_error(kwargs, code):
    with pytest.raises(InvalidRequest) as caught:
        Outfit.parse(**kwargs)
    assert caught.value.code == code


@pytest.mark.parametrize("kwargs, spanish", [
    ({"order": "garment_2,garment_2"}, "El orden de capas no es válido: una prenda aparece dos veces."),
    ({"order": "shoes"}, "El orden de capas no es válido: 'shoes' no es una casilla de prenda (garment_1 a garment_4)."),
    ({"categories": ["top"] * 5}, "Valor no válido para categories: usa como máximo 4 valores, uno por casilla de prenda."),
    ({"resolution": "9K"}, "Valor no válido para resolución: usa 1K, 2K, 4K."),
])
def test_outfit_errors_are_wholly_spanish_for_a_spanish_browser(kwargs, spanish):
    with pytest.raises(InvalidRequest) as caught:
        Outfit.parse(**kwargs)
    assert caught.value.message("es") == spanish


def test_the_slider_s_float_counts_as_a_whole_number():
    assert Outfit.parse(num_images=3.0).num_images == 3 and Outfit.parse(num_images="2").num_images == 2


def test_an_order_naming_an_empty_slot_is_refused():
    with pytest.raises(InvalidRequest) as caught:
        Outfit.parse(order="garment_4").specs(["garment_1"])
    assert "garment_4 has no photo" in str(caught.value)


def test_same_as_the_person_photo_is_the_nearest_supported_ratio():
    assert nearest_ratio(768, 1024) == "3:4" and nearest_ratio(1024, 1024) == "1:1" and nearest_ratio(1920, 1080) == "16:9"


def test_a_custom_prompt_is_what_the_model_receives(fal_server, tmp_path, person_png, garment_pngs):
    custom = "Put the garment of Figure 2 on the person of Figure 1, studio light."
    settings = Settings.from_env({**fal_server.env(), "TRYON_PROMPT": custom, "TRYON_DATA_DIR": str(tmp_path)})
    TryOnService(settings, build_provider(settings)).try_on_sync(person_png, garment_pngs[:2])
    assert [body["prompt"] for body in (r.body for r in fal_server.submits)] == [custom, custom]


def test_the_chain_applies_jeans_then_tshirt_then_jacket_and_shows_the_prompts(fal_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path)})
    service = TryOnService(settings, build_provider(settings))
    jacket, jeans, tshirt = garment_pngs[1], garment_pngs[3], garment_pngs[0]
    result = service.try_on_sync(person_png, [jacket, jeans, tshirt], outfit=JACKET_JEANS_TSHIRT)
    sent = [r.body for r in fal_server.submits]
    assert [b["prompt"] for b in sent] == result.timings["prompts"]  # the record shows what was sent
    assert "blue jeans (bottom)" in sent[0]["prompt"] and "white T-shirt (top)" in sent[1]["prompt"]
    assert "denim jacket (outerwear)" in sent[2]["prompt"]
    assert [o["field"] for o in result.timings["order"]] == ["garment_2", "garment_3", "garment_1"]
    assert all(b["aspect_ratio"] == "3:4" for b in sent)  # "same as the person photo": 768x1024


def test_an_async_job_names_the_order_in_its_single_prompt(fal_server, redis_server, tmp_path, person_png, garment_pngs):
    from test_jobs import make_service, wait_for
    from tryon.jobs.worker import WorkerPool

    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path)})
    service = make_service(settings, redis_server)
    pool = WorkerPool(service, 1).start()
    try:
        job = service.submit_job(person_png, garment_pngs[1:4], outfit=JACKET_JEANS_TSHIRT)
        assert wait_for(service, job.job_id)["status"] == "done"
    finally:
        pool.stop()
    (body,) = [r.body for r in fal_server.submits]
    assert body["prompt"].splitlines()[1].startswith("1. Figure 2: the blue jeans (bottom).")
    # The images follow the prompt's figures: person, then slot 2 (jeans), slot 3, slot 1.
    uploads = {u["field"]: u for u in service.queue.get(job.job_id).timings["uploads"]}
    assert len(body["image_urls"]) == 4 and len(uploads) == 4
    assert [i["field"] for i in service.queue.get(job.job_id).inputs] == ["person", "garment_2", "garment_3", "garment_1"]


# --- guessed categories and order warnings ---------------------------------------------------------


class _Guess:
    def __init__(self, category, confidence=0.9):
        self.category, self.confidence = category, confidence

    @property
    def sure(self):
        return self.confidence >= 0.6


def test_a_guess_fills_in_only_for_garments_left_on_auto():
    outfit = Outfit.parse(categories=["auto", "top"])
    specs = outfit.specs(["garment_1", "garment_2"], {"garment_1": _Guess("outerwear"), "garment_2": _Guess("bottom")})
    assert [(s.field, s.category, s.guessed) for s in specs] == [("garment_2", "top", False), ("garment_1", "outerwear", True)]
    assert specs[1].public() == {"field": "garment_1", "category": "outerwear", "description": "", "guessed": True,
                                 "sure": True, "confidence": 0.9}


def test_a_sure_guess_is_named_in_the_prompt_and_an_unsure_one_is_not():
    sure, unsure = Outfit().specs(["garment_1", "garment_2"], {"garment_1": _Guess("bottom"), "garment_2": _Guess("top", 0.3)})
    assert "the garment (bottom) shown in Figure 2" in sync_prompt(DEFAULT_SYNC_PROMPT, sure)
    assert unsure.category == "top" and sync_prompt(DEFAULT_SYNC_PROMPT, unsure) == DEFAULT_SYNC_PROMPT
    prompt = outfit_prompt([sure, unsure])
    assert "1. Figure 2: the garment (bottom)." in prompt and "2. Figure 3: the clothing garment. It replaces only the clothing it covers." in prompt
    assert outfit_prompt([unsure]) == DEFAULT_SYNC_PROMPT


def test_bottoms_go_on_before_a_dress_whatever_their_slots():
    outfit = Outfit.parse(categories=["dress", "bottom"])
    assert [s.field for s in outfit.specs(["garment_1", "garment_2"])] == ["garment_2", "garment_1"]


ALL = ["garment_1", "garment_2", "garment_3", "garment_4"]


@pytest.mark.parametrize("categories, order, expected", [
    # the automatic order never warns
    ({"garment_1": "outerwear", "garment_2": "top", "garment_3": "accessory", "garment_4": "bottom"}, None, []),
    ({"garment_1": "outerwear", "garment_2": "top"}, "garment_1, garment_2",
     [("order_outerwear_under", {"outer": "garment_1", "inner": "garment_2", "inner_category": "top"})]),
    ({"garment_1": "dress", "garment_2": "outerwear"}, "garment_2, garment_1",
     [("order_outerwear_under", {"outer": "garment_2", "inner": "garment_1", "inner_category": "dress"})]),
    ({"garment_1": "dress", "garment_2": "bottom"}, "garment_1, garment_2",
     [("order_bottom_over_dress", {"bottom": "garment_2", "dress": "garment_1"})]),
    ({"garment_1": "shoes", "garment_2": "bottom"}, [1, 2],
     [("order_shoes_under", {"shoes": "garment_1", "clothes": "garment_2", "clothes_category": "bottom"})]),
    ({"garment_1": "shoes", "garment_2": "top"}, [1, 2], []),  # a top does not reach the feet
    ({"garment_1": "accessory", "garment_2": "top", "garment_3": "shoes"}, "garment_1",
     [("order_accessory_under", {"accessory": "garment_1", "clothes": "garment_2", "clothes_category": "top"})]),
    ({"garment_1": "top", "garment_2": "outerwear", "garment_3": "bottom"}, "garment_1, garment_2, garment_3", []),
])
def test_order_warnings_say_what_looks_wrong_in_the_user_s_order(categories, order, expected):
    outfit = Outfit.parse(order=order)
    fields = sorted(categories)
    assert outfit.order_warnings(fields, categories) == expected
    if order:
        outfit.specs(fields)  # an order that warns is still accepted


def test_order_warnings_count_auto_as_a_top_and_skip_slots_without_a_photo():
    outfit = Outfit.parse(categories={"garment_1": "outerwear"}, order="garment_1, garment_2, garment_4")
    assert outfit.order_warnings(["garment_1", "garment_2"], {"garment_2": "auto"}) == [
        ("order_outerwear_under", {"outer": "garment_1", "inner": "garment_2", "inner_category": "top"})]
    # the guess, when the page has one, is what counts
    assert outfit.order_warnings(["garment_1", "garment_2"], {"garment_2": "bottom"}) == []
