"""The offline preview: garments land on the torso, never on the face."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import encode
from synthetic import draw_garment, draw_person
from tryon.errors import ProviderError
from tryon.images import Limits, load_image
from tryon.preview import cut_out, detect_body
from tryon.providers.local import LocalPreviewProvider

LIMITS = Limits(20 * 2**20, 50_000_000, 1024)

FIGURES = {
    "centred": {},
    "small-and-left": dict(centre_x=0.35, head=0.1, head_top=0.15),
    "red-shirt-600x900": dict(size=(600, 900), shirt=(150, 40, 40)),
    "dark-shirt-square": dict(size=(1024, 1024), head=0.1, shirt=(40, 40, 40)),
}


def changed_pixels(before: Image.Image, after: Image.Image) -> np.ndarray:
    diff = np.abs(np.asarray(before, np.int16) - np.asarray(after, np.int16)).max(axis=2)
    return diff > 40


def inside(mask: np.ndarray, box) -> int:
    left, top, right, bottom = box
    return int(mask[top:bottom, left:right].sum())


@pytest.mark.parametrize("figure_args", FIGURES.values(), ids=FIGURES.keys())
@pytest.mark.parametrize("kind", ["tshirt", "hoodie"])
def test_garment_lands_on_the_torso_and_not_on_the_face(figure_args, kind):
    figure = draw_person(**figure_args)
    provider = LocalPreviewProvider()
    person = provider.upload(load_image(encode(figure.image), LIMITS))
    garment = provider.upload(load_image(encode(draw_garment(kind, colour=(20, 160, 60))), LIMITS))
    result = provider.edit("prompt", person, [garment])
    before = Image.open(io.BytesIO(provider.fetch(person))).convert("RGB")
    after = Image.open(io.BytesIO(provider.fetch(result.ref))).convert("RGB")
    changed = changed_pixels(before, after)
    total = int(changed.sum())
    assert total > 0.5 * (figure.torso[2] - figure.torso[0]) * (figure.torso[3] - figure.torso[1]), "garment too small"
    assert inside(changed, figure.torso) >= 0.8 * total
    assert inside(changed, figure.face) == 0


def test_detection_finds_the_face_above_the_torso():
    figure = draw_person()
    layout = detect_body(figure.image)
    assert layout.method == "face"
    assert layout.face.bottom <= layout.torso.top
    fl, ft, fr, fb = figure.face
    assert fl - 10 <= layout.face.left and layout.face.right <= fr + 10


def test_a_photo_without_a_face_still_gets_a_torso_inside_the_picture():
    blank = Image.new("RGB", (600, 800), (90, 120, 150))
    layout = detect_body(blank)
    assert layout.method in ("silhouette", "centre")
    assert 0 <= layout.torso.left < layout.torso.right <= 600 and 0 <= layout.torso.top < layout.torso.bottom <= 800


def test_the_real_photo_gets_its_torso_below_the_face():
    astronaut = Image.open("assets/person_astronaut.png").convert("RGB")
    layout = detect_body(astronaut)
    assert layout.method == "face"
    # The face of this portrait is around x 180-280, y 60-170 (512 x 512).
    assert 150 < (layout.face.left + layout.face.right) / 2 < 300
    assert 120 < layout.torso.top < 260 and layout.torso.bottom > 400


def test_cut_out_keeps_white_stripes_inside_the_garment():
    sweater = draw_garment("sweater", colour=(28, 44, 100))
    cut = cut_out(sweater)
    alpha = np.asarray(cut.getchannel("A"))
    # a white stripe crosses the middle of the body: opaque there, transparent outside the garment
    rgb = np.asarray(cut.convert("RGB"))
    white_inside = (rgb.min(axis=2) > 240) & (alpha > 200)
    assert white_inside.sum() > 1000
    assert alpha[0, 0] == 0 and alpha[-1, 0] == 0


def test_the_chain_keeps_the_person_s_torso():
    figure = draw_person()
    provider = LocalPreviewProvider()
    person = provider.upload(load_image(encode(figure.image), LIMITS))
    tshirt = provider.upload(load_image(encode(draw_garment("tshirt")), LIMITS))
    jacket = provider.upload(load_image(encode(draw_garment("jacket", colour=(20, 160, 60))), LIMITS))
    first = provider.edit("p", person, [tshirt])
    second = provider.edit("p", first.ref, [jacket])
    before = Image.open(io.BytesIO(provider.fetch(first.ref))).convert("RGB")
    after = Image.open(io.BytesIO(provider.fetch(second.ref))).convert("RGB")
    changed = changed_pixels(before, after)
    assert inside(changed, figure.torso) >= 0.8 * changed.sum()
    # the jacket covers most of the torso, not just the T-shirt's smaller area
    left, top, right, bottom = figure.torso
    assert changed[top:bottom, left:right].mean() > 0.5


def test_unknown_reference_is_a_clear_error():
    with pytest.raises(ProviderError) as caught:
        LocalPreviewProvider().fetch("local:nope")
    assert caught.value.code == "unknown_reference"


# --- categories and layering (issue: jeans on the legs, jacket over the T-shirt) ------------------


def colour_share(picture: Image.Image, box, colour, tolerance=60) -> float:
    """The share of `box`'s pixels within `tolerance` of `colour`."""
    left, top, right, bottom = box
    pixels = np.asarray(picture.crop((left, top, right, bottom)), np.int16)
    return float((np.abs(pixels - np.array(colour)).max(axis=2) < tolerance).mean())


JEANS, TSHIRT, JACKET = (20, 150, 60), (196, 36, 48), (240, 200, 30)


@pytest.mark.parametrize("slots", [("jacket", "jeans", "tshirt"), ("tshirt", "jacket", "jeans"), ("jeans", "tshirt", "jacket")])
def test_jeans_land_on_the_legs_and_the_jacket_over_the_tshirt_in_any_slot_order(slots):
    from tryon.config import Settings
    from tryon.outfit import Outfit
    from tryon.service import TryOnService

    figure = draw_person()
    drawings = {"jeans": draw_garment("jeans", colour=JEANS), "tshirt": draw_garment("tshirt", colour=TSHIRT),
                "jacket": draw_garment("jacket", colour=JACKET)}
    category = {"jeans": "bottom", "tshirt": "top", "jacket": "outerwear"}
    service = TryOnService(Settings(), LocalPreviewProvider())
    outfit = Outfit.parse(categories=[category[s] for s in slots])
    result = service.try_on_sync(encode(figure.image), [encode(drawings[s]) for s in slots], outfit=outfit)
    picture = result.to_pil().convert("RGB")
    left, top, right, bottom = figure.torso
    legs = (left + (right - left) // 4, bottom + 40, right - (right - left) // 4, picture.height - 60)
    chest = (left + (right - left) // 8, top + 40, left + 3 * (right - left) // 8, bottom - 40)  # beside the jacket's V
    assert colour_share(picture, legs, JEANS) > 0.6, "the jeans are not on the legs"
    assert colour_share(picture, chest, JACKET) > 0.6, "the jacket is not the outer layer of the chest"
    assert colour_share(picture, chest, TSHIRT) < 0.05
    assert [o["category"] for o in result.timings["order"]] == ["bottom", "top", "outerwear"]


def test_a_dress_spans_torso_and_legs_and_auto_stays_on_the_torso():
    from tryon.preview.regions import region_for

    layout = detect_body(draw_person().image)
    dress = region_for("dress", layout, 768, 1024)
    assert dress.top == layout.torso.top and dress.bottom > layout.legs.top + layout.legs.height // 2
    assert region_for("auto", layout, 768, 1024) == layout.torso == region_for("top", layout, 768, 1024)
    shoes = region_for("shoes", layout, 768, 1024)
    assert shoes.bottom == layout.legs.bottom and shoes.height < layout.legs.height // 4


def test_variants_differ_and_each_is_a_picture():
    from tryon.config import Settings
    from tryon.outfit import Outfit
    from tryon.service import TryOnService

    service = TryOnService(Settings(), LocalPreviewProvider())
    result = service.try_on_sync(encode(draw_person().image), [encode(draw_garment("tshirt"))], outfit=Outfit.parse(num_images=4))
    assert len(result.variants) == 4 and len(set(result.variants)) == 4
    assert all(Image.open(io.BytesIO(v)).size == (768, 1024) for v in result.variants)
