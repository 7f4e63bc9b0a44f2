"""Synthetic people and garments whose geometry is known exactly.

Drawn with ordinary human proportions in units of one head height `u`
(shoulders ~2u wide, shoulder to hip ~2.7u), so the tests check the preview
against a figure, not against the detector's own constants. Also used by
assets/make_assets.py to draw the example pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

SKIN = (226, 178, 146)
HAIR = (70, 45, 30)


@dataclass(frozen=True)
class Figure:
    image: Image.Image
    face: tuple[int, int, int, int]  # left, top, right, bottom
    torso: tuple[int, int, int, int]


def draw_person(
    size: tuple[int, int] = (768, 1024),
    centre_x: float = 0.5,
    head_top: float = 0.06,
    head: float = 0.13,
    shirt=(236, 236, 230),
    trousers=(52, 72, 120),
    background=(214, 220, 228),
) -> Figure:
    """A standing figure facing the camera; `head` is the head height as a fraction of the picture."""
    w, h = size
    u = head * h
    cx = centre_x * w
    top = head_top * h
    img = Image.new("RGB", size, background)
    d = ImageDraw.Draw(img)
    # legs, then torso, then arms, neck and head, so each overlaps the previous as on a body
    hip_y = top + 1.3 * u + 2.7 * u
    d.rectangle([cx - 0.85 * u, hip_y - 2, cx - 0.08 * u, min(h, hip_y + 3.6 * u)], fill=trousers)
    d.rectangle([cx + 0.08 * u, hip_y - 2, cx + 0.85 * u, min(h, hip_y + 3.6 * u)], fill=trousers)
    shoulder_y = top + 1.3 * u
    torso = (cx - 1.0 * u, shoulder_y, cx + 1.0 * u, hip_y)
    d.polygon(
        [(cx - 1.0 * u, shoulder_y), (cx + 1.0 * u, shoulder_y), (cx + 0.88 * u, hip_y), (cx - 0.88 * u, hip_y)],
        fill=shirt,
    )
    for side in (-1, 1):  # arms hang beside the torso with a small gap
        x0 = cx + side * 1.08 * u
        x1 = cx + side * 1.42 * u
        d.rounded_rectangle([min(x0, x1), shoulder_y + 0.1 * u, max(x0, x1), shoulder_y + 2.9 * u], radius=int(0.15 * u), fill=SKIN)
    d.rectangle([cx - 0.18 * u, top + 0.85 * u, cx + 0.18 * u, shoulder_y + 2], fill=SKIN)
    face = (cx - 0.39 * u, top, cx + 0.39 * u, top + u)
    d.ellipse(face, fill=SKIN)
    d.chord([cx - 0.42 * u, top - 0.06 * u, cx + 0.42 * u, top + 0.55 * u], 180, 360, fill=HAIR)
    for side in (-1, 1):  # eyes and mouth, so the face is not a flat blob
        d.ellipse([cx + side * 0.15 * u - 0.04 * u, top + 0.45 * u, cx + side * 0.15 * u + 0.04 * u, top + 0.51 * u], fill=(40, 30, 30))
    d.line([cx - 0.1 * u, top + 0.75 * u, cx + 0.1 * u, top + 0.75 * u], fill=(150, 70, 70), width=max(1, int(u / 40)))
    return Figure(img, tuple(int(v) for v in face), tuple(int(v) for v in torso))


def draw_garment(kind: str = "tshirt", size: tuple[int, int] = (768, 768), colour=(200, 40, 50), background=(255, 255, 255)) -> Image.Image:
    """A flat-lay product photo of a garment on a plain backdrop."""
    w, h = size
    img = Image.new("RGB", size, background)
    d = ImageDraw.Draw(img)
    s = min(w, h)
    cx = w / 2
    if kind == "tshirt":
        body = [(cx - 0.22 * s, 0.2 * s), (cx + 0.22 * s, 0.2 * s), (cx + 0.22 * s, 0.88 * s), (cx - 0.22 * s, 0.88 * s)]
        d.polygon(body, fill=colour)
        d.polygon([(cx - 0.22 * s, 0.2 * s), (cx - 0.42 * s, 0.36 * s), (cx - 0.34 * s, 0.46 * s), (cx - 0.22 * s, 0.38 * s)], fill=colour)
        d.polygon([(cx + 0.22 * s, 0.2 * s), (cx + 0.42 * s, 0.36 * s), (cx + 0.34 * s, 0.46 * s), (cx + 0.22 * s, 0.38 * s)], fill=colour)
        d.chord([cx - 0.09 * s, 0.12 * s, cx + 0.09 * s, 0.28 * s], 0, 180, fill=background)
    elif kind == "jacket":
        d.polygon([(cx - 0.25 * s, 0.14 * s), (cx + 0.25 * s, 0.14 * s), (cx + 0.27 * s, 0.9 * s), (cx - 0.27 * s, 0.9 * s)], fill=colour)
        d.polygon([(cx - 0.25 * s, 0.14 * s), (cx - 0.44 * s, 0.5 * s), (cx - 0.44 * s, 0.86 * s), (cx - 0.34 * s, 0.86 * s), (cx - 0.3 * s, 0.5 * s)], fill=colour)
        d.polygon([(cx + 0.25 * s, 0.14 * s), (cx + 0.44 * s, 0.5 * s), (cx + 0.44 * s, 0.86 * s), (cx + 0.34 * s, 0.86 * s), (cx + 0.3 * s, 0.5 * s)], fill=colour)
        darker = tuple(int(c * 0.7) for c in colour)
        d.polygon([(cx - 0.09 * s, 0.14 * s), (cx, 0.42 * s), (cx + 0.09 * s, 0.14 * s)], fill=darker)
        d.line([cx, 0.42 * s, cx, 0.9 * s], fill=darker, width=max(2, int(s / 150)))
        for i in range(4):
            y = (0.48 + 0.1 * i) * s
            d.ellipse([cx + 0.02 * s, y, cx + 0.04 * s, y + 0.02 * s], fill=(210, 200, 150))
    elif kind == "sweater":
        d.polygon([(cx - 0.23 * s, 0.16 * s), (cx + 0.23 * s, 0.16 * s), (cx + 0.23 * s, 0.88 * s), (cx - 0.23 * s, 0.88 * s)], fill=colour)
        d.polygon([(cx - 0.23 * s, 0.16 * s), (cx - 0.42 * s, 0.5 * s), (cx - 0.42 * s, 0.84 * s), (cx - 0.32 * s, 0.84 * s), (cx - 0.3 * s, 0.5 * s)], fill=colour)
        d.polygon([(cx + 0.23 * s, 0.16 * s), (cx + 0.42 * s, 0.5 * s), (cx + 0.42 * s, 0.84 * s), (cx + 0.32 * s, 0.84 * s), (cx + 0.3 * s, 0.5 * s)], fill=colour)
        for i in range(6):  # white stripes: the cut-out must keep them, not see backdrop through them
            y = (0.3 + 0.1 * i) * s
            d.rectangle([cx - 0.23 * s, y, cx + 0.23 * s, y + 0.04 * s], fill=background)
        d.chord([cx - 0.08 * s, 0.1 * s, cx + 0.08 * s, 0.24 * s], 0, 180, fill=background)
    elif kind == "hoodie":
        d.rounded_rectangle([cx - 0.24 * s, 0.18 * s, cx + 0.24 * s, 0.9 * s], radius=int(0.04 * s), fill=colour)
        d.polygon([(cx - 0.24 * s, 0.18 * s), (cx - 0.43 * s, 0.52 * s), (cx - 0.43 * s, 0.86 * s), (cx - 0.33 * s, 0.86 * s), (cx - 0.31 * s, 0.52 * s)], fill=colour)
        d.polygon([(cx + 0.24 * s, 0.18 * s), (cx + 0.43 * s, 0.52 * s), (cx + 0.43 * s, 0.86 * s), (cx + 0.33 * s, 0.86 * s), (cx + 0.31 * s, 0.52 * s)], fill=colour)
        darker = tuple(int(c * 0.8) for c in colour)
        d.ellipse([cx - 0.13 * s, 0.06 * s, cx + 0.13 * s, 0.3 * s], fill=darker)  # the hood behind the neck
        d.rounded_rectangle([cx - 0.14 * s, 0.58 * s, cx + 0.14 * s, 0.74 * s], radius=int(0.02 * s), fill=darker)  # pocket
    elif kind == "jeans":
        d.rectangle([cx - 0.2 * s, 0.06 * s, cx + 0.2 * s, 0.14 * s], fill=tuple(int(c * 0.8) for c in colour))  # waistband
        d.polygon([(cx - 0.2 * s, 0.14 * s), (cx + 0.2 * s, 0.14 * s), (cx + 0.22 * s, 0.94 * s), (cx + 0.03 * s, 0.94 * s),
                   (cx, 0.36 * s), (cx - 0.03 * s, 0.94 * s), (cx - 0.22 * s, 0.94 * s)], fill=colour)
        d.line([cx, 0.14 * s, cx, 0.34 * s], fill=tuple(int(c * 0.7) for c in colour), width=max(2, int(s / 200)))  # fly
    else:
        raise ValueError(f"unknown garment kind {kind!r}")
    return img
