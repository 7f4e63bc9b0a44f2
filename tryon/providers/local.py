"""The offline preview provider: the embedded default when no FAL key is set.

It needs no network and no model: each garment is cut from its backdrop and
laid over the person's torso on the CPU (see tryon.preview). Its output is an
approximation and is labelled "offline preview" everywhere it is shown.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections import OrderedDict
from typing import Sequence

from PIL import Image

from ..images import NormalizedImage
from ..preview import BodyLayout, cut_out, detect_body, dress
from ..preview.frame import frame, long_side, parse_ratio
from ..preview.regions import jittered, region_for
from .base import EditOptions, EditResult
from .store import REF_PREFIX, ImageStore  # noqa: F401 (REF_PREFIX: re-exported)


class LocalPreviewProvider:
    name = "local"
    label = "Offline preview (CPU approximation, not the AI model)"
    is_preview = True
    upload_ttl_s = None  # storing is local and cheap: nothing to save by caching

    def __init__(self, store: ImageStore | None = None):
        self.store = store if store is not None else ImageStore()  # in memory only; the app passes one on its Redis
        # A chained result keeps the layout of the person it came from: re-detecting on a
        # picture that already wears a garment would find the garment, not the body. (In this
        # process only: a sync chain runs in one process, and an async job makes one call.)
        self._layouts: OrderedDict[str, BodyLayout] = OrderedDict()
        self._layouts_lock = threading.Lock()

    def _layout(self, ref: str, picture: Image.Image) -> BodyLayout:
        with self._layouts_lock:
            layout = self._layouts.get(ref)
        return layout or detect_body(picture)

    def _remember_layout(self, ref: str, layout: BodyLayout) -> None:
        with self._layouts_lock:
            self._layouts[ref] = layout
            while len(self._layouts) > self.store.capacity:
                self._layouts.popitem(last=False)

    def upload(self, image: NormalizedImage) -> str:
        return self.store.put(image.jpeg)

    def fetch(self, ref: str) -> bytes:
        return self.store.get(ref)

    def _open(self, ref: str) -> Image.Image:
        image = Image.open(io.BytesIO(self.store.get(ref)))
        return image.convert("RGB")

    def edit(self, prompt: str, person: str, garments: Sequence[str], timeout_s: float | None = None,
             options: EditOptions | None = None) -> EditResult:
        """Lay each garment over its category's region, in the order given (inner to outer);
        `options.num_images` variants differ by small nudges of the placement. With options, the
        result has their aspect ratio (cropped or padded around the person, never stretched;
        "same as the person" keeps the photo's own shape) and resolution's long side
        (tryon.preview.frame: 1K 1024 px, 2K and 4K 2048 px); without, the person photo's size."""
        started = time.perf_counter()
        framed = options is not None
        options = options or EditOptions()
        ratio = None if options.same_as_person else parse_ratio(options.aspect_ratio)
        side = long_side(options.resolution)
        person_picture = self._open(person)
        layout = self._layout(person, person_picture)
        categories = list(options.categories) + ["auto"] * (len(garments) - len(options.categories))
        cutouts = [cut_out(self._open(ref)) for ref in garments]
        refs = []
        for variant in range(options.num_images):
            picture = person_picture
            for cutout, category in zip(cutouts, categories):
                region = region_for(category, layout, picture.width, picture.height)
                picture = dress(picture, cutout, jittered(region, variant, picture.width, picture.height))
            result_layout = layout
            if framed:
                picture, result_layout = frame(picture, layout, ratio, side)
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=92)
            ref = self.store.put(buffer.getvalue())
            self._remember_layout(ref, result_layout)
            refs.append(ref)
        # It stands in for the model asked for: the record names that model, at $0.
        return EditResult(ref=refs[0], duration_ms=(time.perf_counter() - started) * 1000, request_id=uuid.uuid4().hex,
                          variants=tuple(refs), model=options.model)
