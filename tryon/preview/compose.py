"""Lay a cut-out garment onto a region of the person, with a little shading."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .body import Box
from .garment import body_span

TAPER = 0.07  # the garment narrows this much towards the waist, like a body does
SLEEVE_FOLD = 0.45  # sleeves keep this share of their flat-lay width


def fit_garment(garment: Image.Image, region: Box) -> tuple[Image.Image, int]:
    """The garment scaled so its body spans the region's width, never taller than the region,
    slightly tapered; and the x of its left edge.

    A flat-lay photo spreads the sleeves out, while a standing person's arms hang
    beside the torso: the sleeves are narrowed so they fall along the body.
    """
    left, right = body_span(garment)
    scale = region.width / max(1, right - left)
    height = max(1, min(region.height, round(garment.height * scale)))
    parts = [
        (garment.crop((0, 0, left, garment.height)), round(left * scale * SLEEVE_FOLD)),
        (garment.crop((left, 0, right, garment.height)), region.width),
        (garment.crop((right, 0, garment.width, garment.height)), round((garment.width - right) * scale * SLEEVE_FOLD)),
    ]
    fitted = Image.new("RGBA", (sum(width for _, width in parts), height), (0, 0, 0, 0))
    x = 0
    for part, width in parts:
        if width > 0 and part.width > 0:
            fitted.paste(part.resize((width, height), Image.Resampling.BILINEAR), (x, 0))
        x += width
    inset = TAPER * fitted.width / 2
    # QUAD maps the output rectangle to this source quadrilateral (UL, LL, LR, UR):
    # sampling a wider span at the bottom draws the hem narrower.
    quad = (0, 0, -inset, height, fitted.width + inset, height, fitted.width, 0)
    fitted = fitted.transform(fitted.size, Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
    return fitted, region.left - parts[0][1]


def dress(person: Image.Image, garment: Image.Image, region: Box) -> Image.Image:
    """`person` with `garment` (RGBA cut-out) laid over `region`; returns a new RGB image."""
    if region.width < 4 or region.height < 4:
        return person.copy()
    fitted, x = fit_garment(garment, region)
    # Clip to the picture: wide sleeves may reach past its edges.
    area = (max(0, x), region.top, min(person.width, x + fitted.width), min(person.height, region.top + fitted.height))
    if area[2] - area[0] < 2 or area[3] - area[1] < 2:
        return person.copy()
    fitted = fitted.crop((area[0] - x, 0, area[2] - x, area[3] - region.top))
    w = fitted.width
    under = person.crop(area)
    # Keep the person's folds and shadows: the garment is darkened where the
    # photo is darker than its local average, and lightened where it is lighter.
    grey = under.convert("L")
    luma = np.asarray(grey, np.float32) + 1.0
    local_mean = np.asarray(grey.filter(ImageFilter.GaussianBlur(max(2, w / 12))), np.float32) + 1.0
    shade = np.clip(1.0 + 0.35 * (luma / local_mean - 1.0), 0.85, 1.1)
    # ...and round it a little, like cloth over a body.
    shade *= (0.86 + 0.14 * np.sin(np.linspace(0.0, np.pi, w, dtype=np.float32)))[None, :]
    pixels = np.asarray(fitted, np.float32)
    colour = np.clip(pixels[..., :3] * shade[..., None], 0, 255)
    alpha = np.asarray(fitted.getchannel("A").filter(ImageFilter.GaussianBlur(1.2)), np.float32)[..., None] / 255.0
    blended = colour * alpha + np.asarray(under, np.float32) * (1.0 - alpha)
    result = person.copy()
    result.paste(Image.fromarray(blended.astype(np.uint8), "RGB"), area[:2])
    return result
