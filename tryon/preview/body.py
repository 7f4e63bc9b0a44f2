"""Where is the person's torso? A model-free estimate good enough for a preview.

Works on a small copy of the photo (long side 128 px), so it costs a few ms:
1. the background, if plain, is the median colour of the top and side borders;
   what differs from it is the silhouette;
2. skin pixels (a YCbCr + RGB rule) form connected blobs; the largest blob high
   in the picture is the face (plus neck);
3. the torso starts under the face+neck; its size comes from human proportions
   (~3 face widths wide, ~2.7 face heights tall), refined by the extent of the
   clothing: the region of the chest's colour, kept within those proportions.
Without a face it falls back to the silhouette, then to the image centre.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from PIL import Image

DETECT_SIDE = 128


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def scaled(self, factor: float, width: int, height: int) -> "Box":
        """This box in a picture `factor` times larger, clamped to width x height."""
        return Box(
            max(0, int(round(self.left * factor))),
            max(0, int(round(self.top * factor))),
            min(width, int(round(self.right * factor))),
            min(height, int(round(self.bottom * factor))),
        )


@dataclass(frozen=True)
class BodyLayout:
    face: Box | None
    torso: Box
    legs: Box
    method: str  # "face", "silhouette" or "centre": how the torso was found


def border_background(rgb: np.ndarray, sides: str = "tlr") -> tuple[np.ndarray, bool]:
    """Median colour of the chosen borders, and whether they are plain enough to be a backdrop."""
    h, w = rgb.shape[:2]
    k = max(2, min(h, w) // 40)
    strips = []
    if "t" in sides:
        strips.append(rgb[:k].reshape(-1, 3))
    if "b" in sides:
        strips.append(rgb[-k:].reshape(-1, 3))
    if "l" in sides:
        strips.append(rgb[:, :k].reshape(-1, 3))
    if "r" in sides:
        strips.append(rgb[:, -k:].reshape(-1, 3))
    border = np.concatenate(strips).astype(np.int16)
    colour = np.median(border, axis=0)
    spread = np.abs(border - colour).max(axis=1)
    return colour, bool(np.percentile(spread, 90) < 30)


def colour_distance(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.abs(rgb.astype(np.int16) - colour.astype(np.int16)).max(axis=2)


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    cr = 0.5 * r - 0.4187 * g - 0.0813 * b + 128
    cb = -0.1687 * r - 0.3313 * g + 0.5 * b + 128
    ycbcr_rule = (cr > 135) & (cr < 175) & (cb > 80) & (cb < 130)
    rgb_rule = (r > 95) & (g > 40) & (b > 20) & (r > g) & (r > b) & (r - np.minimum(g, b) > 15) & (np.abs(r - g) > 15)
    return ycbcr_rule & rgb_rule


def _flood(mask: np.ndarray, seen: np.ndarray, y: int, x: int) -> tuple[int, Box]:
    """Mark the 4-connected region of `mask` holding (y, x) as seen; return its area and box."""
    h, w = mask.shape
    seen[y, x] = True
    queue = deque([(y, x)])
    area, top, bottom, left, right = 0, y, y, x, x
    while queue:
        cy, cx = queue.popleft()
        area += 1
        top, bottom, left, right = min(top, cy), max(bottom, cy), min(left, cx), max(right, cx)
        for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
            if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                seen[ny, nx] = True
                queue.append((ny, nx))
    return area, Box(int(left), int(top), int(right) + 1, int(bottom) + 1)


def blobs(mask: np.ndarray, min_area: int) -> list[tuple[int, Box]]:
    """Connected 4-neighbour regions of a small boolean mask: (area, bounding box) each."""
    seen = np.zeros_like(mask, dtype=bool)
    found = []
    for y, x in zip(*np.nonzero(mask)):
        if not seen[y, x]:
            area, box = _flood(mask, seen, int(y), int(x))
            if area >= min_area:
                found.append((area, box))
    return found


def region_at(mask: np.ndarray, y: int, x: int) -> Box | None:
    """Bounding box of the 4-connected region of `mask` that contains (y, x)."""
    h, w = mask.shape
    if not (0 <= y < h and 0 <= x < w and mask[y, x]):
        return None
    return _flood(mask, np.zeros_like(mask, dtype=bool), y, x)[1]


def erode(mask: np.ndarray) -> np.ndarray:
    """Drop pixels with a non-mask 4-neighbour: removes the 1-px bridges that anti-aliased edges make."""
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return inner


def _find_face(skin: np.ndarray) -> Box | None:
    h, w = skin.shape
    best, best_score = None, 0.0
    for area, core in blobs(erode(skin), min_area=max(8, h * w // 800)):
        box = Box(core.left - 1, core.top - 1, core.right + 1, core.bottom + 1)  # undo the erosion
        aspect = box.height / max(1, box.width)
        if box.top > 0.6 * h or not 0.6 <= aspect <= 3.5 or box.width > 0.6 * w:
            continue
        fill = area / max(1, box.width * box.height)
        if fill < 0.35:  # faces are compact; a scatter of skin-coloured background is not
            continue
        score = area * (1.0 - box.top / h)
        if score > best_score:
            best, best_score = box, score
    return best


def _layout_from_face(face_blob: Box, rgb: np.ndarray, skin: np.ndarray, backdrop: np.ndarray | None) -> BodyLayout:
    h, w = skin.shape
    # Width across the cheeks (median skin run of the blob's middle rows), not the blob's
    # bounding box: hair often passes the skin test and would widen the box.
    band = skin[int(face_blob.top + 0.3 * face_blob.width):int(face_blob.top + 0.8 * face_blob.width), face_blob.left:face_blob.right]
    row_widths = band.sum(axis=1)
    face_w = float(np.median(row_widths[row_widths > 0])) if row_widths.any() else float(face_blob.width)
    face_w = max(3.0, min(face_w, float(face_blob.width)))
    # A tall blob is face + neck: a face is ~1.3 times as tall as wide.
    face_h = min(face_blob.height, 1.3 * face_w)
    face = Box(face_blob.left, face_blob.top, face_blob.right, int(face_blob.top + face_h))  # the box keeps the hair
    if face_blob.height > 1.5 * face_w:
        neck_bottom = min(face_blob.bottom, face_blob.top + 1.7 * face_h)
    else:
        neck_bottom = face.bottom + 0.3 * face_h
    torso_top = max(neck_bottom, face.top + 1.25 * face_h)
    centre = float(np.median(np.nonzero(band)[1])) + face_blob.left if band.any() else (face.left + face.right) / 2
    # Proportions first: shoulders ~3 face widths, shoulder to hip ~2.7 face heights.
    left, right = centre - 1.5 * face_w, centre + 1.5 * face_w
    bottom = torso_top + 2.7 * face_h
    # Then the clothing: the region of the chest's colour, kept within human bounds.
    seed_y, seed_x = int(min(h - 1, torso_top + 0.6 * face_h)), int(centre)
    if seed_y < h and not skin[seed_y, seed_x]:
        chest = colour_distance(rgb, rgb[seed_y, seed_x]) < 30
        if backdrop is not None:  # a white shirt on a white wall must not spread into the wall
            chest &= ~backdrop
        cloth = region_at(chest, seed_y, seed_x)
        if cloth is not None and cloth.width >= 1.5 * face_w:
            left = float(np.clip(cloth.left, centre - 2.1 * face_w, centre - 1.1 * face_w))
            right = float(np.clip(cloth.right, centre + 1.1 * face_w, centre + 2.1 * face_w))
            bottom = float(np.clip(cloth.bottom, torso_top + 1.8 * face_h, torso_top + 3.2 * face_h))
    torso = Box(int(round(left)), int(torso_top), int(round(right)), int(min(h, bottom)))
    legs_half = 0.4 * torso.width
    legs = Box(int(centre - legs_half), torso.bottom, int(centre + legs_half), int(min(h, torso.bottom + 3.6 * face_h)))
    return BodyLayout(face, torso, legs, "face")


def _layout_from_silhouette(silhouette: np.ndarray, h: int, w: int) -> BodyLayout | None:
    rows = np.nonzero(silhouette.sum(axis=1) > 0.02 * w)[0]
    if rows.size < 0.2 * h:
        return None
    top, bottom = rows[0], rows[-1] + 1
    height = bottom - top
    torso_top, torso_bottom = top + 0.18 * height, top + 0.48 * height
    band = silhouette[int(torso_top):int(torso_bottom)]
    xs = np.nonzero(band.any(axis=0))[0]
    centre = float(np.median(np.nonzero(band)[1])) if band.any() else w / 2
    width = 0.8 * (xs[-1] - xs[0] + 1) if xs.size else w / 2
    torso = Box(int(centre - width / 2), int(torso_top), int(centre + width / 2), int(torso_bottom))
    legs = Box(int(centre - 0.4 * width), torso.bottom, int(centre + 0.4 * width), int(bottom))
    face = Box(int(centre - width / 4), int(top), int(centre + width / 4), int(top + 0.13 * height))
    return BodyLayout(face, torso, legs, "silhouette")


def detect_body(image: Image.Image) -> BodyLayout:
    """Face, torso and legs boxes in `image`'s own pixel coordinates."""
    full_w, full_h = image.size
    factor = max(full_w, full_h) / DETECT_SIDE
    small = image.resize((max(1, round(full_w / factor)), max(1, round(full_h / factor))), Image.Resampling.BOX)
    rgb = np.asarray(small.convert("RGB"))
    h, w = rgb.shape[:2]
    background, plain = border_background(rgb)
    distance = colour_distance(rgb, background)
    silhouette = distance > 40 if plain else None
    backdrop = distance < 12 if plain else None
    skin = skin_mask(rgb)
    if silhouette is not None:
        skin &= silhouette
    face = _find_face(skin)
    if face is not None:
        layout = _layout_from_face(face, rgb, skin, backdrop)
    elif silhouette is not None and (found := _layout_from_silhouette(silhouette, h, w)) is not None:
        layout = found
    else:
        layout = BodyLayout(None, Box(w // 4, int(h * 0.25), 3 * w // 4, int(h * 0.6)), Box(w // 4, int(h * 0.6), 3 * w // 4, h), "centre")
    return BodyLayout(
        face=layout.face.scaled(factor, full_w, full_h) if layout.face else None,
        torso=layout.torso.scaled(factor, full_w, full_h),
        legs=layout.legs.scaled(factor, full_w, full_h),
        method=layout.method,
    )
