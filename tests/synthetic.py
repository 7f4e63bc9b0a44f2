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
    legs: tuple[int, int, int, int] = (0, 0, 0, 0)  # hip to the bottom of the trousers, both legs


def draw_person(
    size: tuple[int, int] = (768, 1024),
    centre_x: float = 0.5,
    head_top: float = 0.06,
    head: float = 0.13,
    shirt=(236, 236, 230),
    trousers=(52, 72, 120),
    background=(214, 220, 228),
    skin=SKIN,
    hair=HAIR,
    hair_style: str = "short",  # "short", "long" (to the shoulders) or "curly" (a round crown)
    build: float = 1.0,  # shoulders, hips and legs this many times the default width
    arms: str = "down",  # "down" (beside the torso) or "out" (angled away from it)
) -> Figure:
    """A standing figure facing the camera; `head` is the head height as a fraction of the picture."""
    w, h = size
    u = head * h
    b = build * u  # the unit for widths
    cx = centre_x * w
    top = head_top * h
    img = Image.new("RGB", size, background)
    d = ImageDraw.Draw(img)
    # legs, then torso, then arms, neck and head, so each overlaps the previous as on a body
    hip_y = top + 1.3 * u + 2.7 * u
    legs_bottom = min(h, hip_y + 3.6 * u)
    d.rectangle([cx - 0.85 * b, hip_y - 2, cx - 0.08 * b, legs_bottom], fill=trousers)
    d.rectangle([cx + 0.08 * b, hip_y - 2, cx + 0.85 * b, legs_bottom], fill=trousers)
    shoulder_y = top + 1.3 * u
    torso = (cx - 1.0 * b, shoulder_y, cx + 1.0 * b, hip_y)
    d.polygon(
        [(cx - 1.0 * b, shoulder_y), (cx + 1.0 * b, shoulder_y), (cx + 0.88 * b, hip_y), (cx - 0.88 * b, hip_y)],
        fill=shirt,
    )
    for side in (-1, 1):
        if arms == "out":  # angled away from the body, hands level with the hips
            x0, y0 = cx + side * 1.06 * b, shoulder_y + 0.08 * u
            x1, y1 = cx + side * (1.06 * b + 0.75 * u), shoulder_y + 2.75 * u
            t = 0.17 * u
            d.polygon([(x0 - t, y0), (x0 + t, y0 - 0.1 * t), (x1 + t, y1), (x1 - t, y1 + 0.1 * t)], fill=skin)
            d.ellipse([x1 - t, y1 - t, x1 + t, y1 + t], fill=skin)
        else:  # arms hang beside the torso with a small gap
            x0 = cx + side * (1.0 * b + 0.08 * u)
            x1 = cx + side * (1.0 * b + 0.42 * u)
            d.rounded_rectangle([min(x0, x1), shoulder_y + 0.1 * u, max(x0, x1), shoulder_y + 2.9 * u], radius=int(0.15 * u), fill=skin)
    if hair_style == "curly":  # a round crown of hair behind the head
        d.ellipse([cx - 0.56 * u, top - 0.22 * u, cx + 0.56 * u, top + 0.72 * u], fill=hair)
    elif hair_style == "long":  # falls behind the neck to the shoulders
        d.rounded_rectangle([cx - 0.5 * u, top + 0.1 * u, cx + 0.5 * u, shoulder_y + 0.25 * u], radius=int(0.2 * u), fill=hair)
    d.rectangle([cx - 0.18 * u, top + 0.85 * u, cx + 0.18 * u, shoulder_y + 2], fill=skin)
    face = (cx - 0.39 * u, top, cx + 0.39 * u, top + u)
    d.ellipse(face, fill=skin)
    if hair_style == "curly":
        d.chord([cx - 0.45 * u, top - 0.16 * u, cx + 0.45 * u, top + 0.45 * u], 180, 360, fill=hair)
    else:
        d.chord([cx - 0.42 * u, top - 0.06 * u, cx + 0.42 * u, top + 0.55 * u], 180, 360, fill=hair)
    for side in (-1, 1):  # eyes and mouth, so the face is not a flat blob
        d.ellipse([cx + side * 0.15 * u - 0.04 * u, top + 0.45 * u, cx + side * 0.15 * u + 0.04 * u, top + 0.51 * u], fill=(40, 30, 30))
    d.line([cx - 0.1 * u, top + 0.75 * u, cx + 0.1 * u, top + 0.75 * u], fill=(150, 70, 70), width=max(1, int(u / 40)))
    legs = (cx - 0.85 * b, hip_y, cx + 0.85 * b, legs_bottom)
    return Figure(img, tuple(int(v) for v in face), tuple(int(v) for v in torso), tuple(int(v) for v in legs))


# The example people of assets/ (besides the default figure and the astronaut photo): different
# skin tones, builds, hair, poses and backdrops. Their colours keep clear of the preview's skin test.
EXAMPLE_PEOPLE = {
    "person_illustration.png": {},
    "person_illustration_2.png": dict(skin=(150, 96, 66), hair=(28, 22, 20), hair_style="curly", build=1.2, arms="out",
                                      shirt=(64, 128, 96), trousers=(70, 80, 100), background=(236, 226, 212)),
    "person_illustration_3.png": dict(size=(800, 1000), centre_x=0.46, head=0.12, skin=(240, 204, 178), hair=(58, 38, 30),
                                      hair_style="long", build=0.9, shirt=(150, 140, 200), trousers=(40, 40, 48),
                                      background=(198, 222, 218)),
}


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
    elif kind == "dress":  # sleeveless, fitted at the waist, flaring to the hem
        darker = tuple(int(c * 0.75) for c in colour)
        for side in (-1, 1):  # shoulder straps
            d.rectangle([cx + side * 0.07 * s - 0.02 * s, 0.06 * s, cx + side * 0.07 * s + 0.02 * s, 0.17 * s], fill=colour)
        d.polygon([(cx - 0.15 * s, 0.16 * s), (cx + 0.15 * s, 0.16 * s), (cx + 0.12 * s, 0.42 * s), (cx - 0.12 * s, 0.42 * s)], fill=colour)
        d.chord([cx - 0.08 * s, 0.1 * s, cx + 0.08 * s, 0.24 * s], 0, 180, fill=background)  # neckline
        d.polygon([(cx - 0.12 * s, 0.42 * s), (cx + 0.12 * s, 0.42 * s), (cx + 0.3 * s, 0.94 * s), (cx - 0.3 * s, 0.94 * s)], fill=colour)
        d.rectangle([cx - 0.125 * s, 0.4 * s, cx + 0.125 * s, 0.44 * s], fill=darker)  # waist band
    elif kind == "skirt":  # an A-line skirt: waistband, then flaring panels with pleat lines
        darker = tuple(int(c * 0.75) for c in colour)
        d.rectangle([cx - 0.2 * s, 0.22 * s, cx + 0.2 * s, 0.28 * s], fill=darker)
        d.polygon([(cx - 0.2 * s, 0.28 * s), (cx + 0.2 * s, 0.28 * s), (cx + 0.34 * s, 0.78 * s), (cx - 0.34 * s, 0.78 * s)], fill=colour)
        for i in (-2, -1, 1, 2):
            d.line([cx + i * 0.07 * s, 0.29 * s, cx + i * 0.12 * s, 0.77 * s], fill=darker, width=max(1, int(s / 250)))
    elif kind == "shorts":
        darker = tuple(int(c * 0.8) for c in colour)
        d.rectangle([cx - 0.24 * s, 0.24 * s, cx + 0.24 * s, 0.31 * s], fill=darker)
        d.polygon([(cx - 0.24 * s, 0.31 * s), (cx + 0.24 * s, 0.31 * s), (cx + 0.28 * s, 0.74 * s), (cx + 0.03 * s, 0.74 * s),
                   (cx, 0.5 * s), (cx - 0.03 * s, 0.74 * s), (cx - 0.28 * s, 0.74 * s)], fill=colour)
    elif kind == "shoes":  # a pair side by side, seen from the side: toe left, heel right
        darker = tuple(int(c * 0.6) for c in colour)
        for x0 in (cx - 0.41 * s, cx + 0.03 * s):
            d.polygon([(x0, 0.66 * s), (x0 + 0.03 * s, 0.6 * s), (x0 + 0.17 * s, 0.56 * s), (x0 + 0.23 * s, 0.45 * s),
                       (x0 + 0.34 * s, 0.43 * s), (x0 + 0.38 * s, 0.5 * s), (x0 + 0.38 * s, 0.66 * s)], fill=colour)
            d.rectangle([x0, 0.66 * s, x0 + 0.38 * s, 0.7 * s], fill=darker)  # sole
    elif kind == "cardigan":  # long sleeves, worn open: the front panels part from the neck down
        d.polygon([(cx - 0.25 * s, 0.14 * s), (cx + 0.25 * s, 0.14 * s), (cx + 0.27 * s, 0.9 * s), (cx - 0.27 * s, 0.9 * s)], fill=colour)
        d.polygon([(cx - 0.25 * s, 0.14 * s), (cx - 0.44 * s, 0.5 * s), (cx - 0.44 * s, 0.86 * s), (cx - 0.34 * s, 0.86 * s), (cx - 0.3 * s, 0.5 * s)], fill=colour)
        d.polygon([(cx + 0.25 * s, 0.14 * s), (cx + 0.44 * s, 0.5 * s), (cx + 0.44 * s, 0.86 * s), (cx + 0.34 * s, 0.86 * s), (cx + 0.3 * s, 0.5 * s)], fill=colour)
        d.polygon([(cx - 0.08 * s, 0.14 * s), (cx + 0.08 * s, 0.14 * s), (cx + 0.03 * s, 0.34 * s), (cx + 0.03 * s, 0.9 * s),
                   (cx - 0.03 * s, 0.9 * s), (cx - 0.03 * s, 0.34 * s)], fill=background)
    elif kind == "bag":  # a small handbag: body and handle, small in the frame
        d.arc([cx - 0.09 * s, 0.36 * s, cx + 0.09 * s, 0.62 * s], 180, 360, fill=colour, width=max(3, int(s / 50)))
        d.rounded_rectangle([cx - 0.15 * s, 0.48 * s, cx + 0.15 * s, 0.72 * s], radius=int(0.03 * s), fill=colour)
    else:
        raise ValueError(f"unknown garment kind {kind!r}")
    return img
