"""The offline preview's speed: time per garment at 1024 px, and whole sync requests.

    python -m bench.preview [--repeat 30]
"""

from __future__ import annotations

import argparse
import io
import time

from bench.common import report, summary
from synthetic import draw_garment, draw_person

from tryon.config import Settings
from tryon.images import Limits, load_image
from tryon.providers.local import LocalPreviewProvider
from tryon.service import TryOnService


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    limits = Limits(20 * 2**20, 50_000_000, 1024)
    person_png = png(draw_person(size=(1024, 1024), head=0.1).image)
    garments = [png(draw_garment(kind, colour=c)) for kind, c in
                [("tshirt", (196, 36, 48)), ("jacket", (62, 96, 150)), ("hoodie", (232, 184, 40)), ("sweater", (28, 44, 100))]]
    provider = LocalPreviewProvider()
    person_ref = provider.upload(load_image(person_png, limits))
    garment_refs = [provider.upload(load_image(g, limits)) for g in garments]
    per_garment = []
    for i in range(args.repeat):
        started = time.perf_counter()
        provider.edit("p", person_ref, [garment_refs[i % 4]])
        per_garment.append((time.perf_counter() - started) * 1000)
    service = TryOnService(Settings.from_env({}), LocalPreviewProvider())
    rows = {"provider edit, one garment, 1024x1024 person": summary(per_garment)}
    for count in (1, 4):
        totals, overheads = [], []
        for _ in range(args.repeat):
            timings = service.try_on_sync(person_png, garments[:count]).timings
            totals.append(timings["total_backend_ms"])
            overheads.append(timings["backend_overhead_ms"])
        rows[f"try_on_sync, {count} garment(s): total"] = summary(totals)
        rows[f"try_on_sync, {count} garment(s): overhead"] = summary(overheads)
    report("offline preview", rows)


if __name__ == "__main__":
    main()
