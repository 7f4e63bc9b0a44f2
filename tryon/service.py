"""The try-on service: the one flow that the UI, gradio_client and the REST API share.

try_on_sync(person, garments):
  1. check the request shape (a person, 1 to 4 garments) before any work;
  2. normalize and upload every image in parallel; a bad image 3 fails the
     request before a single paid provider call is made;
  3. chain the garments as the seed does: the result of call N is the person
     of call N+1 (references are passed along, never re-uploaded);
  4. fetch the final image and close the timing record.
"""

from __future__ import annotations

import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from PIL import Image

from .config import MAX_GARMENTS, Settings
from .errors import InvalidRequest, TryOnError
from .images import ImageSource, Limits, NormalizedImage, load_image
from .preview.badge import stamp_badge
from .prompts import sync_prompt
from .providers.base import Provider
from .timing import RequestTimer, elapsed_ms

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]  # (step, of_steps, what)


@dataclass(frozen=True)
class Upload:
    field: str  # "person", "garment_2", ...
    ref: str
    image: NormalizedImage
    preprocess_ms: float
    upload_ms: float

    def timing(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "preprocess_ms": self.preprocess_ms,
            "upload_ms": self.upload_ms,
            "bytes": len(self.image.jpeg),
            "size": f"{self.image.width}x{self.image.height}",
        }


@dataclass(frozen=True)
class TryOnResult:
    image: bytes  # the encoded result (JPEG or PNG)
    timings: dict[str, Any]
    provider_label: str
    is_preview: bool
    image_url: str | None = None  # the provider's public URL for the image, when it has one

    def to_pil(self) -> Image.Image:
        image = Image.open(io.BytesIO(self.image))
        image.load()
        return image


def _is_empty(source: object) -> bool:
    return source is None or (isinstance(source, str) and not source.strip())


def collect_inputs(person: ImageSource | None, garments: Sequence[ImageSource | None] | None) -> list[tuple[str, ImageSource]]:
    """[(field, source)] for the person and each garment given; empty slots are skipped, keeping slot numbers."""
    if _is_empty(person):
        raise InvalidRequest("no_person", field="person")
    given = [(f"garment_{slot}", g) for slot, g in enumerate(garments or [], start=1) if not _is_empty(g)]
    if not given:
        raise InvalidRequest("no_garment")
    if len(given) > MAX_GARMENTS:
        raise InvalidRequest("too_many_garments", limit=MAX_GARMENTS, count=len(given))
    return [("person", person), *given]


class TryOnService:
    def __init__(self, settings: Settings, provider: Provider):
        self.settings = settings
        self.provider = provider
        self.limits = Limits.from_settings(settings)
        # Intake is CPU work in Pillow (which releases the GIL) and uploads are I/O: both overlap well.
        self._pool = ThreadPoolExecutor(max_workers=MAX_GARMENTS + 1, thread_name_prefix="tryon-intake")

    def intake(self, source: ImageSource, field: str = "image") -> NormalizedImage:
        try:
            return load_image(source, self.limits)
        except TryOnError as error:
            raise error.for_field(field) from None

    def upload(self, source: ImageSource, field: str = "image") -> Upload:
        """Normalize one image and store it with the provider (the seed's /api/images/upload)."""
        started = time.perf_counter()
        image = self.intake(source, field)
        preprocess_ms = elapsed_ms(started)
        started = time.perf_counter()
        try:
            ref = self.provider.upload(image)
        except TryOnError as error:
            raise error.for_field(field) from None
        return Upload(field, ref, image, preprocess_ms, elapsed_ms(started))

    def upload_all(self, inputs: list[tuple[str, ImageSource]]) -> list[Upload]:
        """Upload every input in parallel; if any fails, raise the error of the first failing slot."""
        futures = [self._pool.submit(self.upload, source, field) for field, source in inputs]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except TryOnError as error:
                outcomes.append(error)
        for outcome in outcomes:
            if isinstance(outcome, TryOnError):
                raise outcome
        return outcomes

    def try_on_sync(
        self,
        person: ImageSource | None,
        garments: Sequence[ImageSource | None] | None,
        on_progress: ProgressCallback | None = None,
    ) -> TryOnResult:
        inputs = collect_inputs(person, garments)
        timer = RequestTimer("sync", self.provider.name)
        started = time.perf_counter()
        uploads = self.upload_all(inputs)
        timer.add("inputs_ms", elapsed_ms(started))
        person_upload, garment_uploads = uploads[0], uploads[1:]
        prompt = sync_prompt(self.settings.sync_prompt)
        current = person_upload.ref
        request_ids = []
        for step, garment in enumerate(garment_uploads, start=1):
            if on_progress:
                on_progress(step, len(garment_uploads), garment.field)
            result = self.provider.edit(prompt, current, [garment.ref])
            timer.provider_call(result.duration_ms)
            request_ids.append(result.request_id)
            current = result.ref
        started = time.perf_counter()
        image = self.provider.fetch(current)
        if self.provider.is_preview:
            image = stamp_badge(image)
        timer.add("download_ms", elapsed_ms(started))
        timings = timer.finish(
            garments=len(garment_uploads),
            uploads=[u.timing() for u in uploads],
            provider_request_ids=request_ids,
            offline_preview=self.provider.is_preview,
        )
        log.info("try_on_sync done", extra={"timings": {k: v for k, v in timings.items() if k != "uploads"}})
        return TryOnResult(
            image=image,
            timings=timings,
            provider_label=self.provider.label,
            is_preview=self.provider.is_preview,
            image_url=current if current.startswith("https://") else None,
        )
