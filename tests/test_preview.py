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


# --- the example people and garments of assets/ (the page's galleries) -----------------------------

from conftest import ROOT  # noqa: E402
from synthetic import EXAMPLE_PEOPLE  # noqa: E402
from tryon.preview.frame import MAX_SIDE  # noqa: E402
from tryon.providers.base import EditOptions  # noqa: E402

EXAMPLE_GARMENTS = {  # the asset, and its category
    "garment_tshirt_red.png": "top", "garment_sweater_striped.png": "top", "garment_hoodie_yellow.png": "top",
    "garment_jacket_denim.png": "outerwear", "garment_jeans_blue.png": "bottom", "garment_skirt_plum.png": "bottom",
    "garment_dress_green.png": "dress",
}


def test_the_example_pictures_are_drawn_by_make_assets_and_small():
    for name, figure_args in EXAMPLE_PEOPLE.items():
        on_disk = Image.open(ROOT / "assets" / name).convert("RGB")
        assert np.array_equal(np.asarray(on_disk), np.asarray(draw_person(**figure_args).image)), f"{name}: run assets/make_assets.py"
    for name in [*EXAMPLE_PEOPLE, *EXAMPLE_GARMENTS]:
        assert (ROOT / "assets" / name).stat().st_size < 60_000, name


def grow(box, dx, dy):
    left, top, right, bottom = box
    return (max(0, left - dx), max(0, top - dy), right + dx, bottom + dy)


def expected_region(figure, category):
    """Where the garment may change pixels, from the drawing's own geometry (not the detector's):
    the body's part, plus the arms beside the torso (where sleeves fall)."""
    (tl, tt, tr, tb), (ll, lt, lr, lb) = figure.torso, figure.legs
    width = tr - tl
    if category == "top":
        return grow(figure.torso, width // 4, width // 12)
    if category == "outerwear":
        return grow((tl, tt, tr, tb + (tb - tt) // 5), width // 4, width // 8)
    if category == "bottom":
        return grow((ll, tb - (tb - tt) // 6, lr, lb), width // 10, width // 10)
    return grow((tl, tt, tr, lt + int(0.7 * (lb - lt))), width // 10, width // 10)  # dress: shoulders to knees


@pytest.mark.parametrize("person", list(EXAMPLE_PEOPLE))
@pytest.mark.parametrize("garment", list(EXAMPLE_GARMENTS))
def test_each_example_person_wears_each_example_garment_where_it_belongs(person, garment):
    figure = draw_person(**EXAMPLE_PEOPLE[person])
    category = EXAMPLE_GARMENTS[garment]
    provider = LocalPreviewProvider()
    person_ref = provider.upload(load_image((ROOT / "assets" / person).read_bytes(), LIMITS))
    garment_ref = provider.upload(load_image((ROOT / "assets" / garment).read_bytes(), LIMITS))
    # the person's own shape and size (resolution None), so the pictures compare pixel by pixel
    options = EditOptions(categories=(category,), same_as_person=True, resolution=None)
    result = provider.edit("p", person_ref, [garment_ref], options=options)
    before = Image.open(io.BytesIO(provider.fetch(person_ref))).convert("RGB")
    after = Image.open(io.BytesIO(provider.fetch(result.ref))).convert("RGB")
    assert after.size == before.size
    changed = changed_pixels(before, after)
    total = int(changed.sum())
    assert total > 0.15 * (figure.torso[2] - figure.torso[0]) * (figure.torso[3] - figure.torso[1]), "hardly anything changed"
    assert inside(changed, expected_region(figure, category)) >= 0.9 * total, "the garment is off its region"
    assert inside(changed, figure.face) == 0, "the garment covers the face"
    ys, xs = np.nonzero(changed)
    centre_y = ys.mean()
    if category in ("top", "outerwear"):
        assert figure.torso[1] < centre_y < figure.torso[3]
    elif category == "bottom":
        assert centre_y > figure.torso[3] - (figure.torso[3] - figure.torso[1]) // 6


@pytest.mark.parametrize("garment", list(EXAMPLE_GARMENTS))
def test_the_astronaut_photo_wears_each_example_garment_below_her_face(garment):
    provider = LocalPreviewProvider()
    person_ref = provider.upload(load_image((ROOT / "assets" / "person_astronaut.png").read_bytes(), LIMITS))
    garment_ref = provider.upload(load_image((ROOT / "assets" / garment).read_bytes(), LIMITS))
    category = EXAMPLE_GARMENTS[garment]
    result = provider.edit("p", person_ref, [garment_ref], options=EditOptions(categories=(category,), resolution=None))
    before = Image.open(io.BytesIO(provider.fetch(person_ref))).convert("RGB")
    after = Image.open(io.BytesIO(provider.fetch(result.ref))).convert("RGB")
    changed = changed_pixels(before, after)
    assert changed.sum() > 0 or category == "bottom"  # her legs are out of the portrait: a bottom may fall off it
    # The face of this portrait is around x 180-280, y 60-170 (512 x 512).
    assert inside(changed, (190, 70, 270, 160)) == 0


# --- aspect ratio and resolution (the preview used to answer 512x512 to a 16:9 request) ------------



def preview(person: Image.Image, garments, **options) -> tuple[Image.Image, LocalPreviewProvider, str]:
    provider = LocalPreviewProvider()
    person_ref = provider.upload(load_image(encode(person), LIMITS))
    refs = [provider.upload(load_image(encode(g), LIMITS)) for g in garments]
    result = provider.edit("p", person_ref, refs, options=EditOptions(**options))
    return Image.open(io.BytesIO(provider.fetch(result.ref))).convert("RGB"), provider, result.ref


GREEN = (0, 200, 0)  # hair no other pixel comes near, resampled or not


def colour_box(picture: Image.Image, colour, tolerance=40):
    """The box of the pixels of one drawn colour in the top quarter (the figure's hair: nothing covers it)."""
    pixels = np.asarray(picture, np.int16)[: picture.height // 4]
    ys, xs = np.nonzero(np.abs(pixels - np.array(colour)).max(axis=2) < tolerance)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("ratio, size", [("16:9", (1024, 576)), ("1:1", (1024, 1024)), ("9:16", (576, 1024)),
                                         ("21:9", (1024, 439)), ("4:5", (819, 1024))])
def test_the_aspect_ratio_asked_for_is_the_one_answered_and_nobody_is_stretched(ratio, size):
    figure = draw_person(hair=GREEN)  # 768 x 1024: the whole figure is as tall as the picture
    picture, _, _ = preview(figure.image, [draw_garment("tshirt")], aspect_ratio=ratio, categories=("top",))
    assert picture.size == size
    fl, ft, fr, fb = colour_box(figure.image, GREEN)
    left, top, right, bottom = colour_box(picture, GREEN)
    assert (right - left) / (bottom - top) == pytest.approx((fr - fl) / (fb - ft), rel=0.12), "the head changed shape"
    assert top > 0, "the top of the head was cut"
    # the whole head is there, in the middle: a wide frame pads the sides with the backdrop
    assert abs((left + right) / 2 - picture.width / 2) < 0.05 * picture.width
    if size[0] / size[1] > 768 / 1024:
        assert tuple(picture.getpixel((2, picture.height // 2))) == pytest.approx((214, 220, 228), abs=3)


def test_a_tall_frame_crops_the_backdrop_beside_a_small_person_instead_of_padding():
    figure = draw_person(size=(1024, 1024), head=0.08, centre_x=0.3, hair=GREEN)
    picture, _, _ = preview(figure.image, [draw_garment("tshirt")], aspect_ratio="9:16", categories=("top",))
    assert picture.size == (576, 1024)
    left, top, right, bottom = colour_box(picture, GREEN)
    fl, ft, fr, fb = colour_box(figure.image, GREEN)
    assert (top, bottom) == pytest.approx((ft, fb), abs=2)  # cropped at the sides only, not scaled
    assert abs((left + right) / 2 - 288) < 10  # the person centred in what was kept
    # no padding: every column is the photo's
    assert np.asarray(picture)[:, :4].std() < 40 and tuple(picture.getpixel((1, 1))) == pytest.approx((214, 220, 228), abs=3)


@pytest.mark.parametrize("resolution, long_side", [("1K", 1024), ("2K", 2048), ("4K", MAX_SIDE)])
def test_the_resolution_sets_the_long_side(resolution, long_side):
    astronaut = Image.open(ROOT / "assets" / "person_astronaut.png").convert("RGB")  # 512 x 512
    picture, _, _ = preview(astronaut, [draw_garment("tshirt")], resolution=resolution, same_as_person=True,
                            aspect_ratio="1:1")
    assert picture.size == (long_side, long_side)


def test_same_as_the_person_keeps_the_photo_s_own_shape():
    figure = draw_person(size=(600, 900))  # 2:3 exactly; the nearest ratio sent would be "2:3" too
    picture, _, _ = preview(figure.image, [draw_garment("tshirt")], aspect_ratio="3:4", same_as_person=True)
    assert picture.size == (683, 1024)


def test_a_chained_step_dresses_the_same_body_in_the_new_frame():
    from tryon.config import Settings
    from tryon.outfit import Outfit
    from tryon.service import TryOnService

    figure = draw_person()
    service = TryOnService(Settings(), LocalPreviewProvider())
    outfit = Outfit.parse(categories=["bottom", "top"], aspect_ratio="16:9", resolution="2K")
    result = service.try_on_sync(encode(figure.image), [encode(draw_garment("jeans", colour=JEANS)),
                                                        encode(draw_garment("tshirt", colour=TSHIRT))], outfit=outfit)
    picture = result.to_pil().convert("RGB")
    assert picture.size == (2048, 1152)
    # 768x1024 padded to 1820x1024 around the person, then scaled to 2048 wide
    scale, shift = 2048 / 1820, (1820 - 768) // 2

    def moved(box):
        return tuple(int(round((v + (shift if n % 2 == 0 else 0)) * scale)) for n, v in enumerate(box))

    left, top, right, bottom = moved(figure.torso)
    chest = (left + (right - left) // 4, top + 60, right - (right - left) // 4, bottom - 60)
    ll, lt, lr, lb = moved(figure.legs)
    legs = (ll + (lr - ll) // 4, lt + 60, lr - (lr - ll) // 4, lb - 80)
    assert colour_share(picture, chest, TSHIRT) > 0.6, "the T-shirt is not on the chest"
    assert colour_share(picture, legs, JEANS) > 0.6, "the jeans are not on the legs"
