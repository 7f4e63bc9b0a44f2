"""The batch archive: a real ZIP read back with zipfile, real pictures decoded with Pillow."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from tryon.jobs.archive import (CELL_BACKGROUND, CELL_GREY, MAX_SHEET_SIDE, ArchiveLook, archive_chunks,
                                contact_sheet, file_names, sheet_layout)

PERSONS, OUTFITS = 3, 4
ERROR_CELL = (1, 3)
VARIANTS_CELL = (2, 2)
BATCH = {"batch_id": "b-42", "created_at": 1_767_225_600_000, "persons": PERSONS, "outfits": OUTFITS,
         "model": "nano-banana", "options": {"variants": 1, "resolution": "1K"}}


class Expired(Exception):
    pass


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def colour_of(person: int, outfit: int, variant: int = 1) -> tuple[int, int, int]:
    return (40 * person + 20 * variant, 50 * outfit, 200 - 30 * person)


def gradient(width: int, height: int) -> Image.Image:
    image = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (image, image.transpose(Image.Transpose.FLIP_TOP_BOTTOM), image))


def with_exif_jpeg(colour: tuple[int, int, int]) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0131] = "secret-software"
    return encode(Image.new("RGB", (300, 400), colour), "JPEG", quality=95, exif=exif)


def with_metadata_png(colour: tuple[int, int, int]) -> bytes:
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "a prompt that must not leak")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(Image.new("RGB", (400, 300), colour), "PNG", pnginfo=text, icc_profile=icc)


def recipe(person: int, outfit: int, status: str) -> dict:
    entry = {"person_sha256": f"p{person}", "garments": [{"kind": "top", "sha256": f"g{outfit}"}],
             "model": "nano-banana", "prompt": "Vestir a la persona: camisa de algodón", "seed": 1000 + person,
             "timings": {"total_s": 12.5}, "cost_usd": 0.04}
    if status == "error":
        entry["error"] = "provider_timeout"
    return entry


def make_batch() -> tuple[list[ArchiveLook], dict[str, bytes]]:
    """3 x 4 looks: (1, 3) failed, (2, 2) has two variants, the rest one picture each (JPEG and PNG)."""
    looks, store = [], {}
    for person in range(1, PERSONS + 1):
        for outfit in range(1, OUTFITS + 1):
            if (person, outfit) == ERROR_CELL:
                looks.append(ArchiveLook(person, outfit, "error", (), recipe(person, outfit, "error")))
                continue
            variants = 2 if (person, outfit) == VARIANTS_CELL else 1
            refs = tuple(f"https://results.example/{person}-{outfit}-{k}" for k in range(1, variants + 1))
            for k, ref in enumerate(refs, 1):
                colour = colour_of(person, outfit, k)
                store[ref] = with_exif_jpeg(colour) if (person + outfit) % 2 else with_metadata_png(colour)
            looks.append(ArchiveLook(person, outfit, "done", refs, recipe(person, outfit, "done")))
    return looks, store


def build(looks, fetch, batch=BATCH) -> zipfile.ZipFile:
    data = b"".join(archive_chunks(batch, looks, fetch))
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return archive


@pytest.fixture(scope="module")
def batch_archive() -> zipfile.ZipFile:
    looks, store = make_batch()
    return build(looks, store.__getitem__)


def manifest(archive: zipfile.ZipFile) -> dict:
    return json.loads(archive.read("manifest.json").decode("utf-8"))


def looks_by_cell(archive: zipfile.ZipFile) -> dict[tuple[int, int], dict]:
    return {(look["person"], look["outfit"]): look for look in manifest(archive)["looks"]}


def sheet_of(archive: zipfile.ZipFile) -> Image.Image:
    return Image.open(io.BytesIO(archive.read("contact_sheet.png"))).convert("RGB")


def close_to(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


# -- names and members --------------------------------------------------------------------------


def test_file_names():
    assert file_names(ArchiveLook(1, 2, "done", ("a",), {})) == ["person-1_outfit-2.png"]
    assert file_names(ArchiveLook(3, 10, "done", ("a", "b"), {})) == ["person-3_outfit-10_v1.png",
                                                                       "person-3_outfit-10_v2.png"]
    assert file_names(ArchiveLook(1, 1, "error", (), {})) == []


def test_members_pictures_then_sheet_then_manifests(batch_archive):
    pictures = [f"person-{p}_outfit-{o}.png" for p in range(1, PERSONS + 1) for o in range(1, OUTFITS + 1)
                if (p, o) not in (ERROR_CELL, VARIANTS_CELL)]
    pictures += ["person-2_outfit-2_v1.png", "person-2_outfit-2_v2.png"]
    names = batch_archive.namelist()
    assert sorted(names[:-3]) == sorted(pictures)
    assert names[-3:] == ["contact_sheet.png", "manifest.json", "manifest.csv"]
    types = {info.filename: info.compress_type for info in batch_archive.infolist()}
    assert all(types[name] == zipfile.ZIP_STORED for name in pictures + ["contact_sheet.png"])
    assert types["manifest.json"] == types["manifest.csv"] == zipfile.ZIP_DEFLATED


def test_pictures_are_png_without_metadata(batch_archive):
    for name in batch_archive.namelist()[:-3]:
        data = batch_archive.read(name)
        for chunk in (b"eXIf", b"iCCP", b"tEXt", b"zTXt", b"iTXt"):
            assert chunk not in data, (name, chunk)
        picture = Image.open(io.BytesIO(data))
        assert picture.format == "PNG"
        assert not picture.getexif()
        assert "icc_profile" not in picture.info and "Comment" not in picture.info
        person, outfit, variant = cell_of(name)
        centre = picture.convert("RGB").getpixel((picture.width // 2, picture.height // 2))
        assert close_to(centre, colour_of(person, outfit, variant)), name


def cell_of(name: str) -> tuple[int, int, int]:
    """"person-2_outfit-2_v2.png" -> (2, 2, 2)."""
    parts = name.removesuffix(".png").split("_")
    variant = int(parts[2][1:]) if len(parts) == 3 else 1
    return int(parts[0].split("-")[1]), int(parts[1].split("-")[1]), variant


def test_orientation_is_applied_before_exif_is_dropped():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = Image.new("RGB", (80, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 40))  # red on the stored picture's left
    look = ArchiveLook(1, 1, "done", ("r",), {})
    archive = build([look], {"r": encode(stored, "JPEG", quality=95, exif=exif)}.__getitem__,
                    dict(BATCH, persons=1, outfits=1))
    picture = Image.open(io.BytesIO(archive.read("person-1_outfit-1.png"))).convert("RGB")
    assert picture.size == (40, 80)
    assert close_to(picture.getpixel((20, 5)), (255, 0, 0), 40)  # the left edge turned to the top


# -- manifests ------------------------------------------------------------------------------------


def test_manifest_json(batch_archive):
    raw = batch_archive.read("manifest.json")
    assert "algodón".encode("utf-8") in raw  # UTF-8 text, not \u escapes
    document = json.loads(raw.decode("utf-8"))
    assert list(document) == ["batch", "looks"]
    assert document["batch"] == BATCH
    looks = looks_by_cell(batch_archive)
    assert len(document["looks"]) == len(looks) == PERSONS * OUTFITS
    assert looks[ERROR_CELL]["status"] == "error" and looks[ERROR_CELL]["files"] == []
    assert looks[ERROR_CELL]["error"] == "provider_timeout"
    assert looks[VARIANTS_CELL]["files"] == ["person-2_outfit-2_v1.png", "person-2_outfit-2_v2.png"]
    assert looks[1, 1]["files"] == ["person-1_outfit-1.png"]
    assert sum(look["status"] == "done" for look in looks.values()) == PERSONS * OUTFITS - 1
    assert looks[3, 4]["garments"] == [{"kind": "top", "sha256": "g4"}] and looks[3, 4]["seed"] == 1003
    files = [name for look in looks.values() for name in look["files"]]
    assert sorted(files) == sorted(batch_archive.namelist()[:-3])


def test_manifest_csv(batch_archive):
    rows = list(csv.reader(io.StringIO(batch_archive.read("manifest.csv").decode("utf-8"))))
    header, body = rows[0], rows[1:]
    recipe_keys = sorted(set(recipe(1, 1, "error")))
    assert header == ["person", "outfit", "status", "files"] + recipe_keys
    assert len(body) == PERSONS * OUTFITS
    by_cell = {(int(row[0]), int(row[1])): dict(zip(header, row)) for row in body}
    assert by_cell[VARIANTS_CELL]["files"] == "person-2_outfit-2_v1.png;person-2_outfit-2_v2.png"
    assert by_cell[ERROR_CELL]["status"] == "error" and by_cell[ERROR_CELL]["files"] == ""
    assert by_cell[ERROR_CELL]["error"] == "provider_timeout" and by_cell[1, 1]["error"] == ""
    assert by_cell[1, 2]["garments"] == '[{"kind":"top","sha256":"g2"}]'
    assert by_cell[1, 2]["timings"] == '{"total_s":12.5}'
    assert by_cell[1, 2]["cost_usd"] == "0.04" and by_cell[1, 2]["prompt"].endswith("algodón")


# -- the contact sheet ----------------------------------------------------------------------------


def test_contact_sheet_grid(batch_archive):
    sheet = sheet_of(batch_archive)
    layout = sheet_layout(PERSONS, OUTFITS)
    assert sheet.size == layout.size
    width, height = sheet.size
    assert width > OUTFITS * layout.cell and height > PERSONS * layout.cell

    left, top, right, bottom = layout.cell_box(1, 1)
    centre = sheet.getpixel(((left + right) // 2, (top + bottom) // 2))
    assert centre != CELL_BACKGROUND and close_to(centre, colour_of(1, 1))
    assert sheet.getpixel((left + 1, top + 1)) == CELL_BACKGROUND  # a portrait picture leaves the sides

    left, top, right, bottom = layout.cell_box(*ERROR_CELL)
    assert sheet.getpixel((left + 2, top + 2)) == CELL_GREY
    assert sheet.getpixel((right - 3, bottom - 3)) == CELL_GREY
    word = sheet.crop((left, top, right, bottom)).getcolors(maxcolors=1 << 16)
    assert len(word) > 2  # the status word is drawn on the grey

    left, top, right, bottom = layout.cell_box(*VARIANTS_CELL)  # the first variant is shown
    assert close_to(sheet.getpixel(((left + right) // 2, (top + bottom) // 2)), colour_of(2, 2, 1))


def test_contact_sheet_fits_gradients_keeping_aspect():
    wide = gradient(400, 100)
    looks = [ArchiveLook(1, 1, "done", ("w",), {}), ArchiveLook(1, 2, "queued", (), {})]
    sheet = Image.open(io.BytesIO(contact_sheet(dict(BATCH, persons=1, outfits=2), looks, {(1, 1): wide},
                                                cell_px=128)))
    layout = sheet_layout(1, 2, 128)
    assert sheet.size == layout.size
    left, top, right, bottom = layout.cell_box(1, 1)
    middle = (left + right) // 2
    assert sheet.getpixel((middle, top + 5)) == CELL_BACKGROUND  # 4:1 picture: 32 px high, centred
    assert sheet.getpixel((middle, (top + bottom) // 2)) != CELL_BACKGROUND
    left, top, _, _ = layout.cell_box(1, 2)
    assert sheet.getpixel((left + 2, top + 2)) == CELL_GREY


def test_large_batch_sheet_stays_bounded():
    persons, outfits = 20, 50
    small = Image.new("RGB", (100, 140), (200, 30, 30))  # a thumbnail already, as archive_chunks keeps
    looks = [ArchiveLook(p, o, "done" if (p + o) % 3 else "error", ("x",) if (p + o) % 3 else (), {})
             for p in range(1, persons + 1) for o in range(1, outfits + 1)]
    pictures = {(look.person, look.outfit): small for look in looks if look.status == "done"}
    batch = dict(BATCH, persons=persons, outfits=outfits)
    sheet = Image.open(io.BytesIO(contact_sheet(batch, looks, pictures)))
    assert max(sheet.size) <= MAX_SHEET_SIDE
    layout = sheet_layout(persons, outfits)
    assert sheet.size == layout.size and layout.cell < 256
    left, top, right, bottom = layout.cell_box(persons, outfits)  # (20 + 50) % 3 == 1: done
    assert right <= sheet.width and bottom <= sheet.height
    assert close_to(sheet.convert("RGB").getpixel(((left + right) // 2, (top + bottom) // 2)), (200, 30, 30))


# -- streaming and failures -----------------------------------------------------------------------


def test_streams_chunks_while_fetching():
    looks, store = make_batch()
    fetched: list[str] = []
    first_chunk_after: list[int] = []

    def fetch(ref: str) -> bytes:
        fetched.append(ref)
        return store[ref]

    chunks = []
    for chunk in archive_chunks(BATCH, looks, fetch):
        if not chunks:
            first_chunk_after.append(len(fetched))
        assert chunk
        chunks.append(chunk)
    assert len(chunks) > 1
    assert first_chunk_after[0] < len(store) == len(fetched)  # the first bytes went out before the last fetch
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None and len(archive.namelist()) == len(store) + 3


def test_failed_fetch_marks_the_look_missing():
    looks, store = make_batch()
    gone = {"https://results.example/3-1-1"}  # (3, 1): its only picture expired
    gone.add("https://results.example/2-2-2")  # (2, 2): its second variant expired
    store["https://results.example/1-1-1"] = b"not a picture"

    def fetch(ref: str) -> bytes:
        if ref in gone:
            raise Expired(ref)
        return store[ref]

    archive = build(looks, fetch)
    names = archive.namelist()
    assert "person-3_outfit-1.png" not in names and "person-1_outfit-1.png" not in names
    assert "person-2_outfit-2_v1.png" in names and "person-2_outfit-2_v2.png" not in names

    looks_json = looks_by_cell(archive)
    assert len(looks_json) == PERSONS * OUTFITS
    assert looks_json[3, 1]["status"] == "missing" and looks_json[3, 1]["files"] == []
    assert looks_json[3, 1]["error"] == "Expired"
    assert looks_json[1, 1]["status"] == "missing" and looks_json[1, 1]["error"] == "UnidentifiedImageError"
    partial = looks_json[VARIANTS_CELL]
    assert partial["status"] == "done" and partial["files"] == ["person-2_outfit-2_v1.png"]
    assert partial["missing_files"] == ["person-2_outfit-2_v2.png"] and partial["error"] == "Expired"

    rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8"))))
    statuses = {(int(row["person"]), int(row["outfit"])): row["status"] for row in rows}
    assert statuses[3, 1] == "missing" and statuses[ERROR_CELL] == "error" and len(rows) == PERSONS * OUTFITS

    sheet, layout = sheet_of(archive), sheet_layout(PERSONS, OUTFITS)
    left, top, _, _ = layout.cell_box(3, 1)
    assert sheet.getpixel((left + 2, top + 2)) == CELL_GREY
    left, top, right, bottom = layout.cell_box(*VARIANTS_CELL)
    assert close_to(sheet.getpixel(((left + right) // 2, (top + bottom) // 2)), colour_of(2, 2, 1))


def test_bad_input_is_refused_at_the_call_before_any_byte():
    fetched: list[str] = []
    twice = [ArchiveLook(1, 1, "done", ("a",), {}), ArchiveLook(1, 1, "error", (), {})]
    with pytest.raises(ValueError):
        archive_chunks(BATCH, twice, fetched.append)
    with pytest.raises(ValueError):
        archive_chunks(BATCH, [ArchiveLook(0, 1, "queued", (), {})], fetched.append)
    with pytest.raises(TypeError):
        archive_chunks(BATCH, [ArchiveLook(1, 1, "done", ("a",), {"when": object()})], fetched.append)
    assert fetched == []


def test_a_description_that_looks_like_a_formula_is_not_one_in_the_csv():
    from tryon.jobs.archive import _csv_value

    assert _csv_value("=HYPERLINK(\"http://x\")").startswith("'=")
    assert _csv_value("@SUM(A1)") == "'@SUM(A1)" and _csv_value("+1") == "'+1"
    assert _csv_value(-1.5) == "-1.5" and _csv_value("blue jeans") == "blue jeans"
    assert _csv_value([{"description": "=1+1"}]).startswith("[")  # inside JSON it starts with a bracket
