"""The bad-input corpus: pictures and files a real user (or attacker) might send, made on the fly.

    python tests/corpus/make_corpus.py [DIR]     # writes the files and manifest.json to DIR

Nothing here is committed as a binary; every case is generated. Each case names the error code
it must get (None: it must be accepted) and the HTTP status the REST API must answer.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    code: str | None  # expected error code; None = accepted
    status: int  # REST status when sent as a garment

    def manifest(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "data"}


def _photo(width: int = 600, height: int = 800, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(width * 7 + height)
    pixels = np.clip(140 + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    return image if mode == "RGB" else image.convert(mode)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _animated(fmt: str) -> bytes:
    frames = [_photo(300, 300), _photo(300, 300).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _oriented(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(640, 480), "JPEG", exif=exif, quality=90)


def cases() -> list[Case]:
    jpeg = _encode(_photo(), "JPEG", quality=90)
    png = _encode(_photo(), "PNG")
    palette = _photo().convert("P", palette=Image.Palette.ADAPTIVE)
    transparent = palette.copy()
    transparent.info["transparency"] = 0
    grey16 = Image.fromarray((np.linspace(0, 65535, 600 * 800).reshape(800, 600)).astype(np.uint16))
    found = [
        Case("empty-file", b"", "empty_file", 400),
        Case("text-named-jpg", b"name,size\nshirt,M\n" * 20, "not_an_image", 400),
        Case("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><rect width="400" height="400"/></svg>', "not_an_image", 400),
        Case("pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF", "not_an_image", 400),
        Case("truncated-jpeg", jpeg[: len(jpeg) // 2], "corrupt_image", 400),
        Case("truncated-png", png[: len(png) // 2], "corrupt_image", 400),
        Case("png-bomb-81mp", _png_header(9000, 9000), "too_many_pixels", 413),
        Case("png-bomb-10gp", _png_header(100_000, 100_000), "too_many_pixels", 413),
        Case("cmyk-jpeg", _encode(_photo(mode="CMYK"), "JPEG"), None, 200),
        Case("16-bit-grey-png", _encode(grey16, "PNG"), None, 200),
        Case("palette-png", _encode(palette, "PNG"), None, 200),
        Case("palette-png-transparent", _encode(transparent, "PNG"), None, 200),
        Case("rgba-webp", _encode(_photo(mode="RGBA"), "WEBP"), None, 200),
        Case("animated-gif", _animated("GIF"), "unsupported_format", 400),
        Case("animated-webp", _animated("WEBP"), "animated_image", 400),
        Case("bmp", _encode(_photo(), "BMP"), "unsupported_format", 400),
        Case("tiff", _encode(_photo(), "TIFF"), "unsupported_format", 400),
        Case("1x1", _encode(Image.new("RGB", (1, 1)), "PNG"), "image_too_small", 400),
        Case("20000x10", _encode(Image.new("RGB", (20000, 10)), "PNG"), "image_too_small", 400),
        Case("300x2000", _encode(Image.new("RGB", (300, 2000), (90, 90, 200)), "PNG"), "bad_aspect_ratio", 400),
        Case("jpeg-broken-exif", jpeg[:2] + b"\xff\xe1\x00\x10Exif\x00\x00II*\x00\xff\xff\xff\xff" + jpeg[2:], None, 200),
    ]
    found += [Case(f"exif-orientation-{n}", _oriented(n), None, 200) for n in range(1, 9)]
    return found


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases():
        path = directory / f"{case.name}.jpg"  # a misleading extension on purpose: content decides
        path.write_bytes(case.data)
        paths.append(path)
    (directory / "manifest.json").write_text(json.dumps([c.manifest() for c in cases()], indent=1))
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "generated"
    print(f"wrote {len(write(target))} cases to {target}")
