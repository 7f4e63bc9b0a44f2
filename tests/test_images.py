"""Image intake: what is accepted, how it is normalized, and the specific error for each bad input."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

from conftest import encode
from tryon.errors import ImageTooLarge, InvalidImage
from tryon.images import Limits, load_image

LIMITS = Limits(max_bytes=5 * 2**20, max_pixels=50_000_000, max_side=1024)


def photo(width=800, height=600, colour=(120, 160, 200)) -> Image.Image:
    rng = np.random.default_rng(width * height)
    noise = rng.integers(-20, 20, (height, width, 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8), "RGB")


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height pixels: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def error_of(source, limits=LIMITS) -> InvalidImage:
    with pytest.raises(InvalidImage) as caught:
        load_image(source, limits)
    return caught.value


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepts_jpeg_png_webp_and_returns_a_clean_rgb_jpeg(fmt):
    image = load_image(encode(photo(), fmt), LIMITS)
    decoded = Image.open(io.BytesIO(image.jpeg))
    assert decoded.format == "JPEG" and decoded.mode == "RGB"
    assert (image.width, image.height) == (800, 600) == decoded.size
    assert (image.source_width, image.source_height) == (800, 600)


def test_downsizes_to_the_long_side_limit_keeping_aspect():
    image = load_image(encode(photo(3000, 2000), "JPEG"), LIMITS)
    assert (image.width, image.height) == (1024, 683)
    assert (image.source_width, image.source_height) == (3000, 2000)


def test_large_jpeg_is_decoded_in_draft_mode(monkeypatch):
    """A 12 MP JPEG is scaled by libjpeg while decoding, never decoded at full size."""
    decoded_sizes = []
    original_load = ImageFile.ImageFile.load

    def recording_load(self):
        result = original_load(self)
        decoded_sizes.append(self.size)
        return result

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    image = load_image(encode(photo(4000, 3000), "JPEG", quality=85), LIMITS)
    assert (image.width, image.height) == (1024, 768)
    assert decoded_sizes and all(w * h <= 4000 * 3000 / 4 for w, h in decoded_sizes), decoded_sizes


def test_same_picture_gives_same_digest_and_another_a_different_one():
    a = load_image(encode(photo(), "PNG"), LIMITS)
    b = load_image(encode(photo(), "PNG"), LIMITS)
    c = load_image(encode(photo(colour=(10, 200, 10)), "PNG"), LIMITS)
    assert a.digest == b.digest != c.digest
    assert len(a.digest) == 64


def test_exif_orientation_is_applied():
    # Stored 400x300, left half red / right half blue, tagged "rotate 90 CW to display" (6).
    stored = Image.new("RGB", (400, 300), (255, 0, 0))
    stored.paste((0, 0, 255), (200, 0, 400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(encode(stored, "JPEG", exif=exif, quality=95), Limits(5 * 2**20, 50_000_000, 1024, min_side=256))
    shown = image.to_pil()
    assert shown.size == (300, 400)
    top, bottom = shown.getpixel((150, 50)), shown.getpixel((150, 350))
    assert top[0] > 200 and top[2] < 60, top  # red went to the top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    assert (image.source_width, image.source_height) == (300, 400)


QUADRANTS = [(230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 220, 20)]  # red, green / blue, yellow


def quadrants(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), QUADRANTS[0])
    image.paste(QUADRANTS[1], (width // 2, 0, width, height // 2))
    image.paste(QUADRANTS[2], (0, height // 2, width // 2, height))
    image.paste(QUADRANTS[3], (width // 2, height // 2, width, height))
    return image


def corner_colours(image: Image.Image) -> list[tuple[int, ...]]:
    w, h = image.size
    return [image.getpixel((x, y))[:3] for x, y in [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_large_photo_with_any_exif_orientation_comes_out_upright_at_the_long_side_limit(orientation):
    """Shrunk first, turned after (issue 18 item 6): the result must match Pillow's exif_transpose."""
    stored = quadrants(2400, 1800)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = load_image(encode(stored, "JPEG", exif=exif, quality=95), LIMITS)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(encode(stored, "JPEG", exif=exif, quality=95))))
    expected_size = (768, 1024) if orientation >= 5 else (1024, 768)
    shown = image.to_pil()
    assert shown.size == (image.width, image.height) == expected_size
    assert (image.source_width, image.source_height) == upright.size
    assert len(shown.getexif()) == 0
    for got, want in zip(corner_colours(shown), corner_colours(upright)):
        assert max(abs(a - b) for a, b in zip(got, want)) < 30, (orientation, corner_colours(shown), corner_colours(upright))


def test_the_rotation_turns_the_small_result_not_the_decoded_draft(monkeypatch):
    turned = []
    original = Image.Image.transpose

    def recording(self, method):
        turned.append(self.size)
        return original(self, method)

    monkeypatch.setattr(Image.Image, "transpose", recording)
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(encode(photo(4000, 3000), "JPEG", exif=exif, quality=85), LIMITS)
    assert (image.width, image.height) == (768, 1024)
    assert turned == [(1024, 768)]


def test_all_metadata_is_stripped_gps_included():
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make
    exif[0x8825] = {1: "N", 2: (40.0, 26.0, 46.0), 3: "W", 4: (79.0, 58.0, 56.0)}  # GPS IFD
    source = encode(photo(), "JPEG", exif=exif, comment=b"secret note")
    assert b"PhoneMaker" in source
    image = load_image(source, LIMITS)
    out = Image.open(io.BytesIO(image.jpeg))
    assert len(out.getexif()) == 0
    assert "exif" not in out.info and "icc_profile" not in out.info and "comment" not in out.info
    assert b"PhoneMaker" not in image.jpeg and b"Exif" not in image.jpeg and b"secret" not in image.jpeg


def test_transparency_is_flattened_onto_white():
    rgba = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    rgba.paste((0, 128, 0, 255), (100, 100, 300, 300))
    shown = load_image(encode(rgba, "PNG"), LIMITS).to_pil()
    assert all(c > 245 for c in shown.getpixel((20, 20)))
    assert shown.getpixel((200, 200))[1] > 100 and shown.getpixel((200, 200))[0] < 30


@pytest.mark.parametrize(
    "image, fmt",
    [
        (Image.new("CMYK", (300, 300), (0, 255, 255, 0)), "JPEG"),  # red in CMYK
        (Image.new("P", (300, 300), 0), "PNG"),
        (Image.new("L", (300, 300), 128), "PNG"),
    ],
    ids=["cmyk-jpeg", "palette-png", "grey-png"],
)
def test_other_colour_modes_become_rgb(image, fmt):
    if image.mode == "P":
        image.putpalette([200, 30, 30] * 256)
    shown = load_image(encode(image, fmt), LIMITS).to_pil()
    assert shown.mode == "RGB"


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white():
    grey16 = Image.fromarray(np.full((300, 300), 32768, dtype=np.uint16))
    shown = load_image(encode(grey16, "PNG"), LIMITS).to_pil()
    assert 110 < shown.getpixel((150, 150))[0] < 145


def test_pil_image_and_file_paths_and_data_urls_are_accepted(tmp_path):
    source = encode(photo(), "PNG")
    path = tmp_path / "p.png"
    path.write_bytes(source)
    data_url = "data:image/png;base64," + base64.b64encode(source).decode()
    digests = {
        load_image(source, LIMITS).digest,
        load_image(path, LIMITS).digest,  # a Path: only gradio's checked inputs are one
        load_image(data_url, LIMITS).digest,
        load_image(base64.b64encode(source).decode(), LIMITS).digest,
        load_image(photo(), LIMITS).digest,
    }
    assert len(digests) == 1


def test_text_is_never_opened_as_a_path_and_does_not_tell_whether_a_file_exists(tmp_path):
    def answer(text):
        with pytest.raises(InvalidImage) as refused:
            load_image(text, LIMITS)
        return refused.value.code, refused.value.message()

    for name in ["person.png", "my photo.png", "abcd/efgh.png"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(photo(), "PNG"))  # a real image: read as a file, it would be accepted
        while_present = answer(str(path))
        path.unlink()
        assert answer(str(path)) == while_present
    assert answer("/etc/passwd")[0] in {"bad_base64", "not_an_image"}


# --- each bad input gets its own message -------------------------------------------------


def test_empty_file():
    assert error_of(b"").code == "empty_file"


def test_text_file_is_not_an_image():
    error = error_of(b"name,size\nshirt,M\n")
    assert error.code == "not_an_image"
    assert "not an image" in str(error) and "JPEG, PNG or WebP" in str(error)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_reported_as_corrupt(fmt):
    data = encode(photo(), fmt)
    error = error_of(data[: len(data) // 2])
    assert error.code == "corrupt_image"
    assert "truncated or corrupt" in str(error)


def test_over_the_byte_limit_is_413():
    error = error_of(b"\xff" * (LIMITS.max_bytes + 1))
    assert isinstance(error, ImageTooLarge) and error.http_status == 413
    assert "limit is 5 MB" in str(error)


def test_pixel_bomb_is_rejected_from_its_header_without_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = png_header_only(9000, 9000)  # 81 MP in a file of ~100 bytes
    assert len(bomb) < 200
    error = error_of(bomb)
    assert isinstance(error, ImageTooLarge) and error.code == "too_many_pixels"
    assert "9000×9000" in str(error) and "limit is 50 MP" in str(error)


def test_giant_bomb_beyond_pillows_own_limit_gets_the_same_error():
    error = error_of(png_header_only(100_000, 100_000))
    assert error.code == "too_many_pixels" and error.http_status == 413


def test_too_small_names_the_minimum():
    error = error_of(encode(photo(200, 300), "PNG"))
    assert error.code == "image_too_small"
    assert "200×300" in str(error) and "256 px" in str(error)


@pytest.mark.parametrize("size", [(1, 1), (20000, 10)])
def test_degenerate_sizes(size):
    assert error_of(encode(Image.new("RGB", size), "PNG")).code == "image_too_small"


def test_long_thin_image_is_refused():
    assert error_of(encode(photo(1600, 300), "PNG")).code == "bad_aspect_ratio"


def test_gif_is_an_unsupported_format():
    error = error_of(encode(photo(), "GIF"))
    assert error.code == "unsupported_format" and str(error).startswith("GIF images are not supported")


def test_animated_webp_is_refused():
    frames = [photo(300, 300, (200, 0, 0)), photo(300, 300, (0, 200, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    assert error_of(buffer.getvalue()).code == "animated_image"


def test_malformed_base64():
    assert error_of("this is not base64 @@@").code == "bad_base64"


def test_data_url_with_the_wrong_type():
    error = error_of("data:text/plain;base64,aGVsbG8=")
    assert error.code == "bad_data_url_type" and "text/plain" in str(error)


def test_urls_are_not_fetched_here():
    assert error_of("https://example.com/a.jpg").code == "url_not_accepted"


def test_unsupported_python_type():
    assert error_of(12345).code == "unsupported_input"


def test_jpeg_plugin_still_in_use():
    # Guards the draft-mode test above: it relies on JPEGs opening through JpegImageFile.
    assert isinstance(Image.open(io.BytesIO(encode(photo(), "JPEG"))), JpegImagePlugin.JpegImageFile)
