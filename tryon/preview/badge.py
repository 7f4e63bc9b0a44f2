"""A visible "offline preview" badge, so a downloaded preview is never mistaken for the AI result."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

# One stamp for every visitor (the picture may be downloaded and shared): both of the page's languages.
BADGE_TEXT = "OFFLINE PREVIEW, not AI · VISTA PREVIA, no es IA"


def stamp_badge(encoded: bytes) -> bytes:
    """The image with a small badge in its bottom-left corner, as JPEG."""
    image = Image.open(io.BytesIO(encoded)).convert("RGB")
    size = max(12, image.height // 40)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image, "RGBA")
    left, top, right, bottom = draw.textbbox((0, 0), BADGE_TEXT, font=font)
    pad = size // 2
    x, y = pad, image.height - (bottom - top) - 3 * pad
    draw.rectangle([x, y, x + right - left + 2 * pad, y + bottom - top + 2 * pad], fill=(20, 20, 20, 170))
    draw.text((x + pad - left, y + pad - top), BADGE_TEXT, font=font, fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()
