"""Cut a garment out of its product photo (a garment on a plain backdrop)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .body import border_background, colour_distance

CUTOUT_SIDE = 512  # garments are resized to the torso anyway; no need for more detail


def _fill_holes(opaque: np.ndarray) -> np.ndarray:
    """Fill pixels enclosed by garment both across and down: white prints, buttons, logos."""

    def spans(mask: np.ndarray) -> np.ndarray:
        any_ = mask.any(axis=1)
        first = np.where(any_, mask.argmax(axis=1), mask.shape[1])
        last = np.where(any_, mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1), -1)
        cols = np.arange(mask.shape[1])
        return (cols >= first[:, None]) & (cols <= last[:, None])

    return opaque | (spans(opaque) & spans(opaque.T).T)


def garment_alpha(rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """Per-pixel opacity (0..1) of the garment in an RGB array, from its distance to the backdrop
    (holes inside the garment filled), and whether the backdrop was plain. A busy backdrop gives
    all ones: the whole photo, rather than a guessed outline."""
    background, plain = border_background(rgb, sides="tblr")
    if not plain:
        return np.ones(rgb.shape[:2], np.float32), False
    distance = colour_distance(rgb, background).astype(np.float32)
    alpha = np.clip((distance - 12.0) / 30.0, 0.0, 1.0)
    alpha[_fill_holes(alpha > 0.5)] = 1.0
    return alpha, True


def cut_out(photo: Image.Image) -> Image.Image:
    """The garment as an RGBA image cropped to its outline (alpha from distance to the backdrop)."""
    photo = photo.convert("RGB")
    if max(photo.size) > CUTOUT_SIDE:
        photo.thumbnail((CUTOUT_SIDE, CUTOUT_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(photo)
    alpha, _ = garment_alpha(rgb)
    ys, xs = np.nonzero(alpha > 0.5)
    if ys.size == 0:  # nothing differs from the backdrop: a blank picture; use all of it
        alpha[:] = 1.0
        ys, xs = np.nonzero(alpha)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgba = np.dstack([rgb, (alpha * 255).astype(np.uint8)])[top:bottom, left:right]
    return Image.fromarray(np.ascontiguousarray(rgba), "RGBA")


def body_span(garment: Image.Image) -> tuple[int, int]:
    """Left and right of the garment's body (not its sleeves): the opaque run through the centre, 3/4 down."""
    alpha = np.asarray(garment.getchannel("A")) > 127
    row = alpha[int(alpha.shape[0] * 0.75)]
    centre = alpha.shape[1] // 2
    if not row[centre]:
        return 0, alpha.shape[1]
    left = centre - int(np.argmin(row[centre::-1])) + 1 if not row[: centre + 1].all() else 0
    right = centre + int(np.argmin(row[centre:])) if not row[centre:].all() else alpha.shape[1]
    return left, right
