"""What kind of garment is this? A model-free guess from the product photo's outline alone.

A garment left on "auto" needs a category to be layered, placed and named in the prompt. This
module looks at the garment's cut-out (tryon.preview.garment: the outline against a plain
backdrop, at most WORK_SIDE px) and reads a few facts off its shape:

* two legs: the lower rows have exactly two pieces with a gap at the centre, joined at the top
  (a waistband)                                                    -> bottom (trousers, shorts);
* a flare: the lower part much wider than the waist, no legs       -> dress if long, skirt
  (bottom) if about as wide as long;
* sleeves: the upper rows reach well past the body, or the lower rows are body plus two sleeves
                                                                   -> top; with an open front
  (the backdrop between two front panels) or a narrow centre seam
  (a placket, zip or button line down the front)                   -> outerwear;
* wide, uneven and low, or a pair side by side                     -> shoes;
* small in the frame                                               -> accessory.

Nothing else is known: a busy backdrop, a blank picture, a photo of someone wearing it (skin
at the top of the outline: a face), a plain rectangle or a shape none of the rules recognise
gives "top" (what "auto" used to mean) with a low confidence and
`sure=False`, so the page can say "Not sure: treated as a top" and the prompt stays neutral.
It costs a few milliseconds (bench/garment_guess.py): the photo is shrunk first, JPEGs while
they decode (draft mode).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .preview.body import erode, skin_mask
from .preview.garment import garment_alpha

WORK_SIDE = 256  # long side the shape is read at: a 1024 px photo is decoded at 1/4 scale
SURE = 0.6  # from this confidence on, the guess is used as if the user had chosen it


@dataclass(frozen=True)
class GarmentGuess:
    category: str  # one of tryon.outfit.CATEGORIES other than "auto"
    confidence: float  # 0..1
    reason: str  # which fact decided: "legs", "flare", "sleeves", "centre_seam", "open_front", ...

    @property
    def sure(self) -> bool:
        return bool(self.confidence >= SURE)

    def public(self) -> dict[str, Any]:
        return {"category": self.category, "confidence": round(float(self.confidence), 2), "sure": self.sure,
                "reason": self.reason}


def unsure(reason: str, confidence: float = 0.2) -> GarmentGuess:
    return GarmentGuess("top", min(confidence, SURE - 0.05), reason)


def guess_jpeg(jpeg: bytes) -> GarmentGuess:
    """The guess for an encoded photo (the intake's JPEG): decoded at a reduced scale."""
    picture = Image.open(io.BytesIO(jpeg))
    picture.draft("RGB", (WORK_SIDE, WORK_SIDE))  # libjpeg scales by 1/2..1/8 while decoding
    return guess_category(picture)


def guess_category(picture: Image.Image) -> GarmentGuess:
    """The garment category of a product photo (a garment on a plain backdrop)."""
    if picture.mode == "P" or (picture.mode not in ("RGB", "RGBA", "L") and "transparency" in picture.info):
        picture = picture.convert("RGBA")
    elif picture.mode not in ("RGB", "RGBA", "L"):
        picture = picture.convert("RGB")
    factor = max(picture.size) // WORK_SIDE
    if factor > 1:  # a box reduction by a whole factor is the cheapest way down
        picture = picture.reduce(factor)
    if picture.mode == "RGBA":  # a cut-out on transparency: on white, as the intake would put it
        white = Image.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(white, picture)
    picture = picture.convert("RGB")
    if max(picture.size) > WORK_SIDE:
        picture.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(picture)
    alpha, plain = garment_alpha(rgb)
    if not plain:
        return unsure("busy_background")
    mask = _close_rows(alpha > 0.5)
    ys, xs = np.nonzero(mask)
    if ys.size < 0.002 * mask.size:
        return unsure("blank")
    frame_h, frame_w = mask.shape
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    luma = rgb[top:bottom, left:right].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    shape = _Shape(mask[top:bottom, left:right], luma)
    share = shape.h * shape.w / (frame_h * frame_w)  # of the frame the garment's box takes
    if share > 0.9:
        return unsure("fills_frame")
    if _shows_a_person(rgb[top:bottom, left:right], shape.mask):
        return unsure("person")  # worn by a model: the outline is a body's, not the garment's
    return _decide(shape, share, (top + bottom) / 2 / frame_h)


def _decide(shape: "_Shape", share: float, centre_y: float) -> GarmentGuess:
    if shape.h < 8 or shape.w < 8:
        return unsure("too_small")
    legs = shape.legs()
    if legs > 0:
        return GarmentGuess("bottom", 0.6 + 0.35 * legs, "legs")
    if shape.h >= 1.25 * shape.w and (flare := shape.flare(0.2)) > 0:
        return GarmentGuess("dress", 0.6 + 0.3 * flare, "flare")
    if shape.h <= 1.1 * shape.w and shape.top_is_straight() and (flare := shape.flare(0.02)) > 0:
        return GarmentGuess("bottom", 0.6 + 0.25 * flare, "flare")  # a skirt
    sleeves = shape.sleeves()
    if sleeves > 0:
        opening = shape.open_front()
        if opening > 0:
            return GarmentGuess("outerwear", 0.6 + 0.3 * opening, "open_front")
        seam = shape.centre_seam()
        if seam > 0:
            return GarmentGuess("outerwear", 0.6 + 0.25 * seam, "centre_seam")
        # less sure than the rules above: a jacket whose front shows no seam looks the same
        return GarmentGuess("top", 0.6 + 0.2 * sleeves, "sleeves")
    shoes = shape.shoes(centre_y)
    if shoes > 0:
        return GarmentGuess("shoes", 0.6 + 0.3 * shoes, "pair" if shape.pieces() >= 2 else "shoe")
    if share < 0.15 and shape.fill < 0.9:
        return GarmentGuess("accessory", 0.6 + 0.2 * (1 - share / 0.15), "small")
    return unsure("no_shape", 0.3)


def _shows_a_person(rgb: np.ndarray, mask: np.ndarray) -> bool:
    """Skin at the top of the outline (a face) and much less below it: a photo of someone
    wearing the garment. A skin-coloured garment (a camel coat) is skin-coloured all over."""
    h, w = mask.shape
    if h < 0.9 * w:  # a standing or half-length person is taller than wide
        return False
    inner = erode(erode(mask))  # anti-aliased edges of a red garment are pink, and pink passes for skin
    skin = skin_mask(rgb) & inner
    mask = inner
    band = max(1, h // 20)
    head_share = max(skin[y:y + band].sum() / max(1, mask[y:y + band].sum()) for y in range(0, max(1, h // 4), band))
    body = slice(int(0.3 * h), max(int(0.3 * h) + 1, int(0.7 * h)))
    body_share = skin[body].sum() / max(1, mask[body].sum())
    return bool(head_share > 0.4 and body_share < 0.5 * head_share)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at `low`, 1 at `high` and beyond: how clearly a measure passes its threshold."""
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def _close_rows(mask: np.ndarray) -> np.ndarray:
    """Fill 1 px gaps along rows (a thin seam drawn in the backdrop colour); wider ones, such as
    the gap between two trouser legs, stay."""
    closed = mask.copy()
    closed[:, 1:-1] |= mask[:, :-2] & mask[:, 2:]
    return closed


class _Shape:
    """The garment's mask cropped to its box, and the row and column facts the rules use."""

    def __init__(self, mask: np.ndarray, luma: np.ndarray | None = None):
        self.mask = mask
        self.luma = luma
        self.h, self.w = mask.shape
        self.fill = float(mask.mean())
        cols = np.arange(self.w)
        # The body's centre: the middle of the box (sleeves and legs are symmetric about it).
        self.cx = self.w // 2
        any_ = mask.any(axis=1)
        self.first = np.where(any_, mask.argmax(axis=1), self.w)
        self.last = np.where(any_, self.w - 1 - mask[:, ::-1].argmax(axis=1), -1)
        self.extent = np.maximum(0, self.last - self.first + 1)  # row width, gaps included
        # The run of each row through the centre column (0 where the centre is backdrop).
        centre = mask[:, self.cx]
        before = np.where(~mask[:, : self.cx + 1], cols[None, : self.cx + 1], -1).max(axis=1)
        after = np.where(~mask[:, self.cx:], cols[None, self.cx:], self.w).min(axis=1)
        self.centre_run = np.where(centre, after - before - 1, 0)
        starts = np.zeros_like(mask)
        starts[:, 0] = mask[:, 0]
        starts[:, 1:] = mask[:, 1:] & ~mask[:, :-1]
        self.runs = starts.sum(axis=1)  # pieces per row
        # The body of each row: the run through the centre or, where the centre is backdrop (an
        # open front, between two legs), the two runs either side of it taken together.
        label = np.cumsum(starts, axis=1, dtype=np.int16) * mask
        inner_left = np.where(centre, label[:, self.cx], label[:, : self.cx + 1].max(axis=1))
        inner_right = np.where(centre, inner_left, np.where(label[:, self.cx:].max(axis=1) > 0, inner_left + 1, 0))
        start = np.argmax(label == inner_left[:, None], axis=1)
        end = self.w - 1 - np.argmax((label == inner_right[:, None])[:, ::-1], axis=1)
        self.body = np.where((inner_left > 0) & (inner_right > 0), end - start + 1, 0)

    def rows(self, start: float, end: float) -> slice:
        return slice(int(start * self.h), max(int(start * self.h) + 1, int(end * self.h)))

    def legs(self) -> float:
        """Two legs: low rows are two pieces split at the centre, the top is one piece."""
        low = self.rows(0.62, 0.97)
        split = (~self.mask[low, self.cx]) & (self.runs[low] == 2) & (self.first[low] < self.cx) & (self.last[low] > self.cx)
        joined = self.mask[self.rows(0.0, 0.2), self.cx].mean()
        if joined < 0.8 or split.mean() < 0.7:
            return 0.0
        # Trousers have no sleeves: the top is about as wide as the legs together.
        if self.extent[self.rows(0.0, 0.3)].max() > 1.25 * np.median(self.extent[low]):
            return 0.0
        return _ramp(split.mean(), 0.7, 0.95)

    def flare(self, waist_from: float) -> float:
        """How much wider the hem is than the waist (the narrowest rows from `waist_from` to 0.6 of
        the height: under the straps and neckline of a dress, from the top of a skirt), for a
        single piece with no sleeves."""
        hem = np.median(self.centre_run[self.rows(0.85, 0.97)])
        waist = self.centre_run[self.rows(waist_from, 0.6)]
        waist = waist[waist > 0]
        if waist.size == 0 or hem < 0.8 * self.w:  # the hem is the widest part of a skirt or dress
            return 0.0
        if np.median(self.runs[self.rows(0.6, 0.97)]) != 1:
            return 0.0
        # Widening downwards, not a wide top narrowing (sleeves) then widening again.
        upper = np.median(self.extent[self.rows(0.1, 0.5)])
        if upper > 0.85 * hem:
            return 0.0
        return _ramp(hem / waist.min(), 1.3, 1.8)

    def top_is_straight(self) -> bool:
        """A waistband: the top rows are already near their full width (no straps, no neck)."""
        return bool(np.median(self.extent[self.rows(0.02, 0.12)]) > 0.45 * self.w)

    def sleeves(self) -> float:
        """Sleeves: rows of the upper half reach well past the body, or hang beside it below."""
        body = self.body[self.rows(0.65, 0.85)]
        body = body[body > 0]
        if body.size == 0:
            return 0.0
        body_w = float(np.median(body))
        short = self.extent[self.rows(0.1, 0.5)].max() / max(1.0, body_w)
        low = self.rows(0.55, 0.85)
        long_ = np.mean((self.runs[low] >= 3) & (self.body[low] > 0) & (self.extent[low] > 1.3 * self.body[low]))
        # a rectangle or a dress never passes either; a T-shirt passes the first, a jacket both
        return max(_ramp(short, 1.3, 1.6), _ramp(long_, 0.5, 0.8))

    def open_front(self) -> float:
        """Two front panels with the backdrop between them, from the neck (almost) to the hem."""
        rows = self.rows(0.3, 0.9)
        gap = (~self.mask[rows, self.cx]) & (self.runs[rows] >= 4)
        return _ramp(gap.mean(), 0.6, 0.85)

    def centre_seam(self) -> float:
        """A narrow line of another shade down the middle of the body: a placket, zip or buttons."""
        luma = self.luma
        if luma is None:
            return 0.0
        rows = self.rows(0.45, 0.92)
        body = self.centre_run[rows]
        body = body[body > 0]
        if body.size == 0:
            return 0.0
        half = max(3, int(0.12 * np.median(body)))
        lo, hi = max(0, self.cx - half), min(self.w, self.cx + half + 1)
        band = luma[rows, lo:hi]
        inside = self.mask[rows, lo:hi]
        ref = np.median(band, axis=1, keepdims=True)
        differs = (np.abs(band - ref) > np.maximum(7.0, 0.15 * ref)) & inside  # a darker line on navy counts too
        spread = differs.copy()  # a line one pixel off the centre still counts
        spread[:, 1:] |= differs[:, :-1]
        spread[:, :-1] |= differs[:, 1:]
        per_column = spread.mean(axis=0)
        near = slice(max(0, half - 2 - max(1, self.w // 40)), half + 3 + max(1, self.w // 40))
        line = float(per_column[near].max()) if per_column[near].size else 0.0
        edges = float(max(per_column[:2].max(), per_column[-2:].max()))
        if edges > 0.35:  # the whole band differs: a print or a pocket, not a line
            return 0.0
        return _ramp(line, 0.55, 0.85)

    def pieces(self) -> int:
        """Separate pieces side by side (columns with nothing between them)."""
        occupied = self.mask.any(axis=0)
        starts = occupied[1:] & ~occupied[:-1]
        return int(starts.sum() + occupied[0])

    def shoes(self, centre_y: float) -> float:
        """Wide and low, uneven (a heel higher than the toe) or a pair side by side."""
        if self.h > 0.75 * self.w:
            return 0.0
        heights = self.mask.sum(axis=0).astype(np.float32)
        # A shoe from the side is higher at the heel than at the toe: its column heights differ
        # from their mirror image (an ellipse, a band or a rectangle does not).
        uneven = float(np.abs(heights - heights[::-1]).mean() / max(1.0, heights[heights > 0].mean()))
        pair = self.pieces() == 2
        if not pair and uneven < 0.2:
            return 0.0
        return 0.5 * _ramp(uneven, 0.15, 0.35) + 0.3 * float(pair) + 0.2 * float(centre_y > 0.5)
