"""The garment-category guess's speed (tryon.garment_guess): per photo at 1024 px, and cached.

    python -m bench.garment_guess [--repeat 50]

Cases: a decoded 1024x1024 picture (what a test or a PIL caller hands over), the intake's 1024 px
JPEG (what the service guesses from: decoded at 1/4 scale in draft mode), a 2048 px picture, and
`TryOnService.garment_category` on a picture already guessed (the per-digest cache).
"""

from __future__ import annotations

import argparse
import io
import time

from bench.common import report, summary
from synthetic import draw_garment

from tryon.config import Settings
from tryon.garment_guess import guess_category, guess_jpeg
from tryon.images import Limits, load_image
from tryon.providers.local import LocalPreviewProvider
from tryon.service import TryOnService

KINDS = [("tshirt", (196, 36, 48)), ("jacket", (62, 96, 150)), ("jeans", (44, 70, 128)), ("dress", (30, 130, 100)),
         ("skirt", (128, 52, 110)), ("shoes", (40, 40, 40)), ("hoodie", (232, 184, 40)), ("sweater", (28, 44, 100))]


def timed(call, repeat: int) -> list[float]:
    times = []
    for n in range(repeat):
        started = time.perf_counter()
        call(n)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    limits = Limits(20 * 2**20, 50_000_000, 1024)
    pictures = [draw_garment(kind, size=(1024, 1024), colour=colour) for kind, colour in KINDS]
    large = [draw_garment(kind, size=(2048, 2048), colour=colour) for kind, colour in KINDS]
    pngs = []
    for picture in pictures:
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        pngs.append(buffer.getvalue())
    jpegs = [load_image(png, limits).jpeg for png in pngs]
    for picture in pictures:  # warm up numpy and Pillow once
        guess_category(picture)
    service = TryOnService(Settings.from_env({}), LocalPreviewProvider())
    for png in pngs:
        service.garment_category(png)
    n = len(KINDS)
    rows = {
        "guess_category, decoded 1024x1024": summary(timed(lambda i: guess_category(pictures[i % n]), args.repeat)),
        "guess_jpeg, intake JPEG 1024x1024": summary(timed(lambda i: guess_jpeg(jpegs[i % n]), args.repeat)),
        "guess_category, decoded 2048x2048": summary(timed(lambda i: guess_category(large[i % n]), args.repeat)),
        "service.garment_category, cached": summary(timed(lambda i: service.garment_category(pngs[i % n]), args.repeat)),
    }
    report("garment category guess", rows)


if __name__ == "__main__":
    main()
