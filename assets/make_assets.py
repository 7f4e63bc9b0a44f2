"""Regenerate the example pictures in assets/ (run from the repository root).

    python assets/make_assets.py

Every picture but the astronaut photo is drawn here with Pillow; the figures
come from tests/synthetic.py, the same drawings the tests use.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from synthetic import EXAMPLE_PEOPLE, draw_garment, draw_person  # noqa: E402

GARMENTS = {
    "garment_tshirt_red.png": ("tshirt", (196, 36, 48)),
    "garment_jacket_denim.png": ("jacket", (62, 96, 150)),
    "garment_sweater_striped.png": ("sweater", (28, 44, 100)),
    "garment_hoodie_yellow.png": ("hoodie", (232, 184, 40)),
    "garment_jeans_blue.png": ("jeans", (44, 70, 128)),
    "garment_dress_green.png": ("dress", (30, 130, 100)),
    "garment_skirt_plum.png": ("skirt", (128, 52, 110)),
}


def main() -> None:
    out = ROOT / "assets"
    for name, figure in EXAMPLE_PEOPLE.items():  # person_illustration*.png
        draw_person(**figure).image.save(out / name, optimize=True)
    for name, (kind, colour) in GARMENTS.items():
        draw_garment(kind, colour=colour).save(out / name, optimize=True)
    print("wrote", len(EXAMPLE_PEOPLE) + len(GARMENTS), "pictures to", out)


if __name__ == "__main__":
    main()
