"""Give a composed preview the shape and size that were asked for, without stretching anyone.

The aspect ratio ("16:9", "3:4", ...) is reached by cropping away background where the whole
person still fits, and by padding with the backdrop's own edge colour where they would not:
the person is never squeezed, and stays in the middle of what is cut. Then the picture is
scaled to the resolution's long side: 1K = 1024 px, 2K = 2048 px; 4K is capped at 2048 px
(MAX_SIDE), since a CPU approximation gains nothing from 16 MP but the cost.
The body layout is moved and scaled with the picture, so a chained step places its garment
on the same body.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .body import BodyLayout, Box

MAX_SIDE = 2048  # 4K asks for 4096: capped, see the module docstring and docs/PROVIDERS.md
LONG_SIDE = {"1K": 1024, "2K": 2048, "4K": MAX_SIDE}
MARGIN = 0.04  # of the picture's size, kept around the person when cropping


def parse_ratio(text: str | None) -> float | None:
    """"16:9" -> 1.777...; "auto", "same" or nothing -> None (keep the picture's shape)."""
    if not text or ":" not in text:
        return None
    a, b = text.split(":", 1)
    try:
        ratio = int(a) / int(b)
    except (ValueError, ZeroDivisionError):
        return None
    return ratio if ratio > 0 else None


def long_side(resolution: str | None) -> int | None:
    return LONG_SIDE.get(str(resolution or "").upper())


def frame(picture: Image.Image, layout: BodyLayout, ratio: float | None, side: int | None) -> tuple[Image.Image, BodyLayout]:
    """`picture` cropped/padded to `ratio` (width / height) around the person, then scaled so its
    long side is `side`; and `layout` in the new picture's coordinates. None: leave that alone."""
    dx = dy = 0
    if ratio is not None and abs(picture.width / picture.height - ratio) > 0.005:
        picture, dx, dy = _to_ratio(picture, _person_box(layout, picture.width, picture.height), ratio)
    factor = 1.0
    if side is not None and max(picture.size) != side:
        factor = side / max(picture.size)
        size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
        picture = picture.resize(size, Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC)
    if dx == dy == 0 and factor == 1.0:
        return picture, layout

    def move(box: Box) -> Box:
        return Box(box.left + dx, box.top + dy, box.right + dx, box.bottom + dy).scaled(factor, picture.width, picture.height)

    return picture, BodyLayout(move(layout.face) if layout.face else None, move(layout.torso), move(layout.legs), layout.method)


def _person_box(layout: BodyLayout, width: int, height: int) -> Box:
    """Face, torso and legs together, with a margin, inside the picture."""
    boxes = [b for b in (layout.face, layout.torso, layout.legs) if b is not None]
    if layout.face is not None:  # the face box is the skin: the hair rises above it
        face = layout.face
        boxes.append(Box(face.left, face.top - face.height // 2, face.right, face.bottom))
    mx, my = int(MARGIN * width), int(MARGIN * height)
    return Box(max(0, min(b.left for b in boxes) - mx), max(0, min(b.top for b in boxes) - my),
               min(width, max(b.right for b in boxes) + mx), min(height, max(b.bottom for b in boxes) + my))


def _to_ratio(picture: Image.Image, person: Box, ratio: float) -> tuple[Image.Image, int, int]:
    """Crop what the person does not need, then pad the rest; returns the picture and the shift
    of its old coordinates (new = old + shift)."""
    w, h = picture.size
    if w / h > ratio:  # too wide: crop the sides, then (if the person is wider) pad top and bottom
        new_w = min(w, max(round(h * ratio), person.width))
        x0 = _window(person.left, person.right, new_w, w)
        cropped = picture.crop((x0, 0, x0 + new_w, h))
        new_h = max(h, round(new_w / ratio))
        top = (new_h - h) // 2
        return _pad(cropped, (new_w, new_h), (0, top)), -x0, top
    new_h = min(h, max(round(w / ratio), person.height))  # too tall: crop top/bottom, then pad the sides
    y0 = _window(person.top, person.bottom, new_h, h)
    cropped = picture.crop((0, y0, w, y0 + new_h))
    new_w = max(w, round(new_h * ratio))
    # the person in the middle of the new width, as far as the picture allows
    centre = (person.left + person.right) / 2
    left = int(np.clip(round(new_w / 2 - centre), 0, new_w - w))
    return _pad(cropped, (new_w, new_h), (left, 0)), left, -y0


def _window(start: int, end: int, size: int, total: int) -> int:
    """The offset of a `size` window within `total` centred on start..end."""
    return int(np.clip(round((start + end) / 2 - size / 2), 0, total - size))


def _pad(picture: Image.Image, size: tuple[int, int], at: tuple[int, int]) -> Image.Image:
    """`picture` placed at `at` on a canvas of `size`, each new band filled with the median colour
    of the picture's edge beside it (a plain backdrop continues; a photo gets its edge's tone)."""
    if size == picture.size:
        return picture
    rgb = np.asarray(picture.convert("RGB"))
    edge = max(1, min(picture.size) // 50)
    canvas = Image.new("RGB", size)
    x, y = at
    bands = [
        ((0, 0, x, size[1]), rgb[:, :edge]),  # left
        ((x + picture.width, 0, size[0], size[1]), rgb[:, -edge:]),  # right
        ((0, 0, size[0], y), rgb[:edge]),  # top
        ((0, y + picture.height, size[0], size[1]), rgb[-edge:]),  # bottom
    ]
    for box, strip in bands:
        if box[2] > box[0] and box[3] > box[1]:
            colour = tuple(int(v) for v in np.median(strip.reshape(-1, 3), axis=0))
            canvas.paste(colour, box)
    canvas.paste(picture.convert("RGB"), (x, y))
    return canvas
