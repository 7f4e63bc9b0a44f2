"""The try-on service: the one flow that the UI, gradio_client and the REST API share.

try_on_sync(person, garments):
  1. check the request shape (a person, 1 to 4 garments) before any work;
  2. normalize and upload every image in parallel; a bad image 3 fails the
     request before a single paid provider call is made. The same picture is
     normalized once (keyed by its raw bytes) and uploaded once (keyed by the
     normalized digest) until shortly before its provider URL expires;
  3. chain the garments as the seed does: the result of call N is the person
     of call N+1 (references are passed along, never re-uploaded), all within
     one deadline (TRYON_REQUEST_TIMEOUT);
  4. fetch the final image and close the timing record.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import io
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from PIL import Image

from . import models as catalogue
from .cache import SingleFlight, TTLCache
from .dressing import Dresser, Look
from .fetch import SafeFetcher
from .garment_guess import GarmentGuess, guess_jpeg, unsure
from .history import LookHistory
from .metrics import Metrics, event_from, request_log
from .config import MAX_GARMENTS, Settings
from .errors import InvalidRequest, ProviderError, TryOnError
from .images import ImageSource, Limits, NormalizedImage, load_image, read_bytes
from .limits import Hold, Ledger, Visitor
from .preview.badge import stamp_badge
from .jobs import Job, JobQueue, now_ms
from .outfit import GarmentSpec, Outfit, nearest_ratio
from .progress import report
from .models import Model
from .prompts import outfit_prompt
from .prices import price_per_image
from .providers.base import Provider
from .providers.chain import ProviderChain
from .timing import RequestTimer, claim_cold_start, elapsed_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    field: str  # "person", "garment_2", ...
    ref: str
    image: NormalizedImage
    preprocess_ms: float
    upload_ms: float
    intake: str = "decoded"  # or "cached": the same bytes were normalized before
    upload: str = "uploaded"  # or "cached" (URL reused) or "shared" (joined an upload in flight)

    def timing(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "preprocess_ms": self.preprocess_ms,
            "upload_ms": self.upload_ms,
            "intake": self.intake,
            "upload": self.upload,
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
    variants: tuple[bytes, ...] = ()  # every result when several were asked for (image is the first)
    variant_urls: tuple[str, ...] = ()

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


OWN_KEY = re.compile(r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+")  # FAL's key-id:key-secret; nothing a header could carry further


def _paid_as(error: TryOnError, cause: BaseException) -> TryOnError:
    """`error`, carrying the calls `cause` says were paid for (tryon.dressing sets them)."""
    error.paid = getattr(cause, "paid", [])
    return error


class TryOnService:
    def __init__(self, settings: Settings, provider: Provider, queue: JobQueue | None = None,
                 fetcher: "SafeFetcher | None" = None, metrics: "Metrics | None" = None,
                 history: "LookHistory | None" = None, ledger: Ledger | None = None):
        self.settings = settings
        # Quotas and the day's budget (tryon.limits); None: nothing is limited (a library user's own service).
        self.ledger = ledger
        self.provider = provider
        self.queue = queue  # None: no Redis, so no async jobs
        self.fetcher = fetcher  # None: image URLs are refused
        self.metrics = metrics
        self.history = history  # None: looks are not kept
        self.limits = Limits.from_settings(settings)
        # Intake is CPU work in Pillow (which releases the GIL) and uploads are I/O: both overlap well.
        self._pool = ThreadPoolExecutor(max_workers=MAX_GARMENTS + 1, thread_name_prefix="tryon-intake")
        self._intakes: TTLCache[NormalizedImage] = TTLCache(capacity=64)
        self._uploads: TTLCache[str] = TTLCache(capacity=1024)
        self._uploads_in_flight: SingleFlight[str] = SingleFlight()
        # References this service handed out (e.g. by /api/images/upload): given back as input,
        # they are used as they are, not downloaded and uploaded again.
        # Bounded like the offline preview's own store (128 pictures): 1,024 entries held ~228 MiB of
        # JPEGs on 12 MP photos (python -m bench.intake); a forgotten reference is fetched again.
        self._known_refs: TTLCache[NormalizedImage] = TTLCache(capacity=128)
        # What each garment picture looks like, by normalized digest: computed once per picture,
        # on threads of its own while the picture uploads (tryon.garment_guess).
        self._guesses: TTLCache[GarmentGuess] = TTLCache(capacity=256)
        self._guesses_in_flight: SingleFlight[GarmentGuess] = SingleFlight()
        self._guess_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tryon-guess")
        self._offered: tuple[Model, ...] | None = None  # offered_models(), once
        from .jobs.batch import Batches  # here: tryon.jobs.batch reads the service's types

        self.batches = Batches(self)  # catalogue runs: many looks as one batch of jobs

    def _intake(self, source: ImageSource, field: str) -> tuple[NormalizedImage, bool]:
        try:
            if isinstance(source, Image.Image):
                return load_image(source, self.limits), False
            if isinstance(source, str) and source.strip().lower().startswith(("https://", "http://")) and self.fetcher:
                data = self.fetcher.fetch(source.strip())
            else:
                data = read_bytes(source, self.limits)
            key = hashlib.sha256(data).hexdigest()
            cached = self._intakes.get(key)
            if cached is not None:
                return cached, True
            image = load_image(data, self.limits)
            self._intakes.put(key, image)
            return image, False
        except TryOnError as error:
            raise error.for_field(field) from None

    def intake(self, source: ImageSource, field: str = "image") -> NormalizedImage:
        """Validate and normalize one image; errors name `field` ("Garment 2: ...")."""
        return self._intake(source, field)[0]

    def upload(self, source: ImageSource, field: str = "image") -> Upload:
        """Normalize one image and store it with the provider (the seed's /api/images/upload)."""
        if isinstance(source, str):
            known = self._known_refs.get(source.strip())
            if known is not None:
                return Upload(field, source.strip(), known, 0.0, 0.0, "cached", "cached")
        started = time.perf_counter()
        image, intake_cached = self._intake(source, field)
        preprocess_ms = elapsed_ms(started)
        if field.startswith("garment_") and self._guesses.get(image.digest) is None:
            self._guess_pool.submit(self.guess, image)  # ready by the time the order is made
        started = time.perf_counter()
        try:
            ref, how = self._upload_once(image)
        except TryOnError as error:
            raise error.for_field(field) from None
        return Upload(field, ref, image, preprocess_ms, elapsed_ms(started), "cached" if intake_cached else "decoded", how)

    def _upload_once(self, image: NormalizedImage) -> tuple[str, str]:
        ttl = self.provider.upload_ttl_s
        if ttl is None:
            ref = self.provider.upload(image)
            self._known_refs.put(ref, image)
            return ref, "uploaded"
        key = (self.provider.name, image.digest)
        ref = self._uploads.get(key)
        if ref is not None:
            return ref, "cached"

        fresh_for = ttl - max(60, ttl // 10)  # stop handing the URL out well before the provider deletes the file

        def upload_and_remember() -> str:
            ref = self.provider.upload(image)
            self._uploads.put(key, ref, ttl_s=fresh_for)
            self._known_refs.put(ref, image, ttl_s=fresh_for)
            return ref

        ref, shared = self._uploads_in_flight.run(key, upload_and_remember)
        return ref, "shared" if shared else "uploaded"

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

    def record(self, mode: str, outcome: str, timings: dict[str, Any] | None, garments: int) -> None:
        """One finished request: a metrics event and a JSON log line (see tryon.metrics)."""
        served = (timings or {}).get("provider") or self.provider.name
        event = event_from(mode, served, outcome, timings, garments, self.settings)  # settings: the models priced
        request_log.info(json.dumps(event, separators=(",", ":")))
        if self.metrics is not None:
            self.metrics.record(event)

    def try_on_sync(
        self,
        person: ImageSource | None,
        garments: Sequence[ImageSource | None] | None,
        fetch: bool = True,
        outfit: Outfit | None = None,
        fallback: bool = True,
        visitor: Visitor | None = None,
    ) -> TryOnResult:
        """fetch=False: when the provider keeps the result at a public URL, return the URL and skip
        downloading the picture (the REST API hands the URL on, as the seed did). `outfit`: the
        garments' categories and descriptions, their order, the number and size of results, the
        model. `fallback=False`: no other model answers if it refuses (a comparison of two models).
        `visitor`: who asks (tryon.limits): the look is counted against their quota and the day's
        budget before any model is called, or runs on the FAL key they brought.
        Each step is told to a `tryon.progress` listener, if the caller has one."""
        try:
            try:
                result = self._run_as(visitor)._try_on_sync(person, garments, fetch, outfit or Outfit(), fallback, visitor)
            except ProviderError as error:
                if error.code == "provider_auth" and visitor is not None and visitor.pays_own_way:
                    # Not this app's key to fix: the visitor's own.
                    raise InvalidRequest("own_key_refused", status=error.params.get("status", 401)) from None
                raise
        except TryOnError as error:
            self.record("sync", error.code, None, sum(1 for g in garments or [] if not _is_empty(g)))
            raise
        self.record("sync", "ok", result.timings, result.timings["garments"])
        return result

    # -- who pays: the visitor's quota and the day's budget, or the visitor's own key ----------

    def _run_as(self, visitor: Visitor | None) -> "TryOnService":
        """This service, or (a visitor with their own FAL key) a shallow copy of it whose provider
        is FAL on that key: the caches and pools are shared, the key lives only in this request."""
        if visitor is None or not visitor.pays_own_way:
            return self
        if not self.settings.own_keys:
            raise InvalidRequest("own_key_not_allowed", http_status=403)
        key = visitor.own_fal_key or ""
        if len(key) > 512 or not OWN_KEY.fullmatch(key):
            raise InvalidRequest("bad_own_key")
        from .providers.fal import FalProvider

        own = copy.copy(self)
        own.provider = FalProvider(replace(self.settings, fal_key=key, provider_choice="fal"))
        own.queue = None  # a job would have to store the key for its worker
        # Uploads of their own: a refused key must not fail anyone else's upload of the same photo
        # (the in-flight join), and what their key uploaded is not reused for the app's paid looks.
        own._uploads, own._uploads_in_flight, own._known_refs = TTLCache(capacity=64), SingleFlight(), TTLCache(capacity=64)
        return own

    def _hold(self, visitor: Visitor | None, outfit: Outfit, garments: int, mode: str,
              models: list[Model | None]) -> Hold | None:
        """Reserve this look's estimate before any model call (refused: quota_exceeded or
        budget_exhausted, nothing spent). Free looks (the offline preview) and a visitor's own key
        are not counted."""
        if visitor is None or visitor.pays_own_way or self.ledger is None or self.provider.is_preview:
            return None
        calls, usd = self._most_it_can_cost(outfit, garments, mode, models)
        return self.ledger.reserve(visitor, calls, usd)

    def _most_it_can_cost(self, outfit: Outfit, garments: int, mode: str, models: list[Model | None]) -> tuple[int, float]:
        """What is reserved: the dearest of the models that may answer (a refusal hands the look to
        the next of the fallback list), a call of unknown price at the dearest list price known, so a
        dollar limit is never left unmoved."""
        # choose_models gives at least one entry (None: a provider that names no model).
        estimates = [self.estimate(replace(outfit, model=m.id if m is not None else None), garments, mode) for m in models]
        calls = max(int(e["calls"]) for e in estimates)
        dearest = max((p for m in catalogue.MODELS.values() for p in m.prices.values()), default=0.30)
        usd = max(e["usd"] if e["usd"] is not None else dearest * int(e["images"]) for e in estimates)
        return calls, usd

    def _settle(self, hold: Hold | None, calls: list[dict[str, Any]]) -> None:
        """The hold becomes what the calls made cost (every call that made a picture, a discarded
        one too); a look that failed before any model call costs nothing."""
        if hold is None or self.ledger is None:
            return
        prices = [call.get("usd") if "usd" in call else self._call_usd(call) for call in calls]
        usd = None if any(p is None for p in prices) else sum(prices)
        try:
            self.ledger.settle(hold, len(calls), usd)
        except Exception:  # Redis away: the estimate stays counted, the look itself is not lost
            log.exception("could not settle a look's cost")

    def _call_usd(self, entry: dict[str, Any]) -> float | None:
        price = self._call_price(entry)
        return None if price is None else price * int(entry.get("images") or 1)

    def spend_today(self) -> dict[str, Any] | None:
        """The app's estimated spend today against TRYON_DAILY_BUDGET_USD (None: not counted)."""
        return None if self.ledger is None else self.ledger.today()

    def _try_on_sync(
        self,
        person: ImageSource | None,
        garments: Sequence[ImageSource | None] | None,
        fetch: bool,
        outfit: Outfit,
        fallback: bool = True,
        visitor: Visitor | None = None,
    ) -> TryOnResult:
        inputs = collect_inputs(person, garments)
        models = self.choose_models(outfit, fallback)  # an option the model cannot honour costs nothing
        hold = self._hold(visitor, outfit, len(inputs) - 1, "sync", models)  # refused here: nothing uploaded, nothing spent
        try:
            result = self._dress_sync(inputs, fetch, outfit, models)
        except TryOnError as error:
            self._settle(hold, getattr(error, "paid", []))
            raise
        except BaseException:
            self._settle(hold, [])
            raise
        self._settle(hold, result.timings.get("calls") or [])
        if visitor is not None and visitor.pays_own_way:
            result.timings["own_key"] = True
            result.timings["cost_basis"] = "your own FAL key: billed to your FAL account"
        return result

    def _dress_sync(self, inputs: list[tuple[str, ImageSource]], fetch: bool, outfit: Outfit,
                    models: list[Model | None]) -> TryOnResult:
        timer = RequestTimer("sync", self.provider.name)
        deadline = time.monotonic() + self.settings.request_timeout_s
        started = time.perf_counter()
        report("uploading", count=len(inputs))
        uploads = self.upload_all(inputs)
        timer.add("inputs_ms", elapsed_ms(started))
        person_upload = uploads[0]
        by_field = {u.field: u for u in uploads[1:]}
        # Inner to outer, whatever slot each garment was dropped in (or the user's own order).
        specs = self.outfit_specs(outfit, by_field)
        aspect_ratio = self._aspect_ratio(outfit, person_upload.image)
        look = Look(person_upload.ref, [(spec, by_field[spec.field].ref) for spec in specs], outfit, aspect_ratio, "sync",
                    models, self.settings.sync_prompt)
        try:
            dressed = Dresser(self.provider, self.provider.name).run(look, deadline)
        except ProviderError as error:
            if error.code != "provider_timeout":
                raise
            # The provider saw only what was left of the budget; the user set the whole of it.
            raise _paid_as(ProviderError("provider_timeout", http_status=504, seconds=self.settings.request_timeout_s),
                           error) from None
        try:
            return self._finish_sync(dressed, timer, uploads, specs, outfit, models, aspect_ratio, fetch)
        except TryOnError as error:  # after the calls (a download failed): they were paid all the same
            error.paid = [*dressed.discarded, *dressed.journal]
            raise

    def _finish_sync(self, dressed, timer: RequestTimer, uploads: list[Upload], specs: list[GarmentSpec], outfit: Outfit,
                     models: list[Model | None], aspect_ratio: str, fetch: bool) -> TryOnResult:
        for entry in dressed.journal:
            timer.provider_call(entry["ms"])
        current, refs = dressed.result.ref, dressed.result.refs
        images: list[bytes] = []
        if fetch or not current.startswith("https://"):
            started = time.perf_counter()
            report("fetching", count=len(refs))
            images = list(self._pool.map(self._fetch_result, refs))
            timer.add("download_ms", elapsed_ms(started))
        timings = timer.finish(
            garments=len(specs),
            uploads=[u.timing() for u in uploads],
            provider_request_ids=[entry["request_id"] for entry in dressed.journal],
            offline_preview=self.provider.is_preview,
            order=[spec.public() for spec in specs],
            prompts=dressed.prompts,
            options={**outfit.public(), "aspect_ratio_sent": aspect_ratio},
            variants=len(refs),
            **self._model_fields(models, dressed, "sync", len(specs), outfit),
            **self._provider_fields([e["provider"] for e in dressed.journal], self._failover_of(dressed.journal)),
        )
        return TryOnResult(
            image=images[0] if images else b"",
            timings=timings,
            provider_label=self.provider.label,
            is_preview=self.provider.is_preview,
            image_url=current if current.startswith("https://") else None,
            variants=tuple(images),
            variant_urls=tuple(r for r in refs if r.startswith("https://")),
        )

    def compare(self, person: ImageSource | None, garments: Sequence[ImageSource | None] | None, outfit: Outfit,
                other_model: str | None, visitor: Visitor | None = None) -> list["TryOnResult | TryOnError"]:
        """The same look (sync) on `outfit.model` and on `other_model`, at the same time, with no
        fallback (each result is its own model's). The photos are prepared and uploaded once: the
        second run joins the first's uploads. Both are checked before either is paid for. One side
        failing (a refusal) does not lose the other's paid result: its error stands in its place;
        only when both fail is the first's error raised."""
        other = replace(outfit, model=other_model.strip() if isinstance(other_model, str) and other_model.strip() else None)
        if other.model is None:
            raise InvalidRequest("bad_option", option={"en": "other_model (the second model to compare)",
                                                        "es": "other_model (el segundo modelo a comparar)"},
                                 choices=", ".join(m.id for m in self.offered_models()) or "-")
        for each in (outfit, other):
            self.choose_models(each, fallback=False)
        # Threads of its own: the runs use the intake pool themselves, and must not wait on their own slots.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tryon-compare") as pool:
            runs = [pool.submit(self.try_on_sync, person, garments, True, each, False, visitor) for each in (outfit, other)]
            outcomes: list[TryOnResult | TryOnError] = []
            for run in runs:
                try:
                    outcomes.append(run.result())
                except TryOnError as error:
                    outcomes.append(error)
        if all(isinstance(o, TryOnError) for o in outcomes):
            raise outcomes[0]
        return outcomes

    # -- models: which ones this app offers, the one a request runs, what it costs -------------

    def offered_models(self) -> list[Model]:
        """The models a request may name, the default first: the FAL catalogue (also for the
        offline preview, which stands in for them), Replicate's with a Replicate token, and the
        models the settings name. None for RunPod alone: your endpoint runs its own model.
        Made once: it follows from the settings, which do not change."""
        if self._offered is not None:
            return list(self._offered)
        settings, found = self.settings, []
        for name in settings.providers:
            if name in ("fal", "local"):
                found += [catalogue.resolve(m, "fal", settings.model_prices) for m in (settings.fal_model, *settings.fal_fallback_models)]
                found += [catalogue.get(m.id, settings.model_prices) for m in catalogue.for_provider("fal")]
            elif name == "replicate":
                found.append(catalogue.resolve(settings.replicate_model, "replicate", settings.model_prices))
                found += [catalogue.get(m.id, settings.model_prices) for m in catalogue.for_provider("replicate")]
        unique: dict[str, Model] = {}
        for model in found:
            unique.setdefault(model.id, model)  # each once, where first named
        self._offered = tuple(unique.values())
        return list(self._offered)

    def default_model(self) -> Model | None:
        offered = self.offered_models()
        return offered[0] if offered else None

    def model(self, model_id: str | None) -> Model | None:
        """The offered model with this id (None: the default); InvalidRequest if it is not offered."""
        offered = self.offered_models()
        if not model_id:
            return offered[0] if offered else None
        wanted = model_id.strip()
        for model in offered:  # a Replicate owner/name:version is its owner/name
            if wanted.partition(":")[0] == model.id.partition(":")[0]:
                return model
        choices = ", ".join(m.id for m in offered) or "none (this app runs your RunPod endpoint's own model)"
        if catalogue.known(wanted):
            vendor = {"fal": "FAL", "replicate": "Replicate"}[catalogue.get(wanted).provider]
            raise InvalidRequest("model_unavailable", field="model", model=catalogue.get(wanted).label, vendor=vendor, choices=choices)
        raise InvalidRequest("unknown_model", field="model", value=wanted[:80], choices=choices)

    def choose_models(self, outfit: Outfit, fallback: bool = True) -> list[Model | None]:
        """[the model the request runs, then the ones that answer if it refuses]: the fallbacks
        are TRYON_FAL_MODEL's other models that can honour the same options. [None]: the
        provider's own model (RunPod). An option the chosen model cannot honour is refused."""
        chosen = self.model(outfit.model)
        if chosen is None:
            return [None]
        self._check(chosen, outfit)
        models: list[Model | None] = [chosen]
        if fallback and chosen.provider == "fal" and self.settings.fal_fallback_models:
            for model_id in (self.settings.fal_model, *self.settings.fal_fallback_models):
                model = self.model(model_id)
                if model is not None and model.id != chosen.id:
                    try:
                        self._check(model, outfit)
                    except InvalidRequest:
                        continue  # it could not make what was asked for: not a fallback for this look
                    models.append(model)
        return models

    @staticmethod
    def _check(model: Model, outfit: Outfit) -> None:
        model.check(categories=outfit.categories, descriptions=outfit.descriptions, num_images=outfit.num_images,
                    aspect_ratio=outfit.aspect_ratio, resolution=outfit.resolution)

    def estimate(self, outfit: Outfit, garments: int, mode: str) -> dict[str, Any]:
        """What this request should cost before it runs ({"model", "mode", "calls", "images", "usd",
        "offline_preview"}); usd None when the model has no known price (RunPod: TRYON_RUNPOD_PRICE_USD)."""
        model = self.model(outfit.model)
        if model is None:
            calls = max(1, garments) if mode == "sync" else 1
            price = price_per_image("runpod", settings=self.settings)
            images = calls - 1 + outfit.num_images
            found = {"model": None, "mode": mode, "calls": calls, "images": images,
                     "usd": None if price is None else round(price * images, 4)}
        else:
            found = catalogue.estimate(model, garments, outfit.num_images, outfit.resolution, mode).public()
        return {**found, "offline_preview": self.provider.is_preview}

    def _call_price(self, entry: dict[str, Any]) -> float | None:
        if self.provider.is_preview or entry.get("provider") == "local":
            return 0.0
        if entry.get("provider") == "runpod":
            return price_per_image("runpod", settings=self.settings)
        model_id = entry.get("model")
        model = next((m for m in self.offered_models() if m.id == model_id), None)
        if model is None and model_id and catalogue.known(model_id):
            model = catalogue.get(model_id, self.settings.model_prices)
        return None if model is None else model.price(str(entry.get("resolution") or "1K"))

    def _model_fields(self, models: list[Model | None], dressed, mode: str, garments: int, outfit: Outfit) -> dict[str, Any]:
        """The record's model, per-call cost and total: `cost_usd` is the list price of the calls
        made (the offline preview's are $0; None when a call's price is unknown), `estimate` what
        the catalogue said before the run, `model_fallback` the models passed over and why."""
        calls, total = [], 0.0
        # Calls of a layout a fallback left were paid for too: they count, marked "discarded".
        for entry, discarded in [(e, True) for e in dressed.discarded] + [(e, False) for e in dressed.journal]:
            usd = self._call_usd(entry)
            usd = None if usd is None else round(usd, 6)
            call = {"step": entry["step"], "model": entry.get("model"), "provider": entry.get("provider"),
                    "images": entry.get("images", 1), "usd": usd}
            calls.append({**call, "discarded": True} if discarded else call)
            total = None if usd is None or total is None else total + usd
        chosen = models[0]
        fields = {
            # The model that made it: None when a failover chain handed it to a vendor that names none (RunPod).
            "model": dressed.result.model,
            "model_requested": chosen.id if chosen else None,
            "calls": calls,
            "cost_usd": None if total is None else round(total, 6),
            "cost_basis": "offline preview: free" if self.provider.is_preview else "list price (tryon/models.py)",
            "estimate": self.estimate(outfit, garments, mode),
        }
        if dressed.passed_over:
            fields["model_fallback"] = dressed.passed_over
        return fields

    @staticmethod
    def _failover_of(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"step": entry["step"], **skip} for entry in journal for skip in entry.get("skipped", ())]

    def guess(self, image: NormalizedImage) -> GarmentGuess:
        """What a garment picture looks like (tryon.garment_guess), once per picture."""
        guess = self._guesses.get(image.digest)
        if guess is not None:
            return guess

        def guess_and_remember() -> GarmentGuess:
            try:
                found = guess_jpeg(image.jpeg)
            except Exception:  # a guess is a hint: never the reason a try-on fails
                log.exception("garment guess failed")
                found = unsure("error")
            self._guesses.put(image.digest, found)
            return found

        return self._guesses_in_flight.run(image.digest, guess_and_remember)[0]

    def outfit_specs(self, outfit: Outfit, by_field: dict[str, Upload]) -> list[GarmentSpec]:
        """The garments in the order they go on; one left on "auto" gets the category its picture shows."""
        # Usually cached, or nearly done: upload() started each garment's guess.
        guesses = {f: self.guess(u.image) for f, u in by_field.items() if outfit.categories.get(f, "auto") == "auto"}
        return outfit.specs(list(by_field), guesses)

    def garment_category(self, source: ImageSource, field: str = "garment_1") -> dict[str, Any]:
        """What one garment picture looks like: {"category", "confidence", "sure", "reason"}, for the
        page to show in the slot when it is dropped ("sure": False means "treated as a top").
        A bad picture raises the intake's TryOnError, naming `field`."""
        image = self._known_refs.get(source.strip()) if isinstance(source, str) else None
        return self.guess(image or self.intake(source, field)).public()

    def _fetch_result(self, ref: str) -> bytes:
        image = self.provider.fetch(ref)
        return stamp_badge(image) if self.provider.is_preview else image

    @staticmethod
    def _aspect_ratio(outfit: Outfit, person: NormalizedImage) -> str:
        """What the model is asked for: "same" becomes the ratio nearest the person photo's."""
        return nearest_ratio(person.width, person.height) if outfit.aspect_ratio == "same" else outfit.aspect_ratio

    def _provider_fields(self, served_by: list[str], failover: list[dict]) -> dict[str, Any]:
        """Who served the request: `provider` names the one(s) that did; with a failover chain,
        also the chain and every provider passed over, with its reason."""
        fields: dict[str, Any] = {"provider": ",".join(dict.fromkeys(served_by)) or self.provider.name}
        if isinstance(self.provider, ProviderChain):
            fields["provider_chain"] = self.provider.name
            fields["served_by"] = served_by  # per provider call, in order
            fields["failover"] = failover
        return fields

    def label_of(self, served: str | None) -> str:
        """What the UI calls the provider(s) that served a request ("fal,replicate" -> their labels)."""
        if isinstance(self.provider, ProviderChain) and served:
            members = [self.provider.by_name.get(name) for name in served.split(",")]
            return " + ".join(m.label for m in members if m is not None) or self.provider.label
        return self.provider.label

    def provider_health(self) -> list[dict[str, Any]]:
        """Each chain member's circuit breaker (empty for a single provider)."""
        return self.provider.health() if isinstance(self.provider, ProviderChain) else []

    def served_by(self, request_id: str) -> str:
        """The provider holding an async request (a chain qualifies its ids: "replicate:<id>")."""
        if isinstance(self.provider, ProviderChain):
            return self.provider.served_by(request_id)
        return self.provider.name

    # -- async jobs: submit here, run by a worker (tryon.worker) -------------------------------

    def submit_job(self, person: ImageSource | None, garments: Sequence[ImageSource | None] | None,
                   outfit: Outfit | None = None, visitor: Visitor | None = None) -> Job:
        """Validate and upload the inputs, then queue one job; returns at once with its id. The
        visitor's quota and the day's budget are reserved here; the worker settles them."""
        if self.queue is None:
            raise InvalidRequest("async_unavailable", http_status=503)
        if visitor is not None and visitor.pays_own_way:
            raise InvalidRequest("own_key_sync_only")  # the worker would need the key: it is never stored
        outfit = outfit or Outfit()
        inputs = collect_inputs(person, garments)
        models = self.choose_models(outfit)
        hold = self._hold(visitor, outfit, len(inputs) - 1, "async", models)
        try:
            return self._queue_job(inputs, outfit, models, hold)
        except BaseException:
            self._settle(hold, [])  # not queued: nothing will be spent
            raise

    def _queue_job(self, inputs: list[tuple[str, ImageSource]], outfit: Outfit, models: list[Model | None],
                   hold: Hold | None) -> Job:
        received_ts = now_ms()
        started = time.perf_counter()
        uploads = self.upload_all(inputs)
        return self.enqueue(uploads, outfit, models, hold, received_ts, elapsed_ms(started))

    def enqueue(self, uploads: list[Upload], outfit: Outfit, models: list[Model | None], hold: Hold | None,
                received_ts: int, inputs_ms: float) -> Job:
        """Queue one look whose images are uploaded (the person first, then garment_1..n): a single
        job, or one look of a batch (tryon.jobs.batch)."""
        by_field = {u.field: u for u in uploads[1:]}
        specs = self.outfit_specs(outfit, by_field)  # the record keeps the garments inner to outer
        timings = {
            "mode": "async",
            "provider": self.provider.name,
            "be_received_ts": received_ts,
            "inputs_ms": inputs_ms,
            "garments": len(specs),
            "uploads": [u.timing() for u in uploads],
            "order": [spec.public() for spec in specs],
            "options": {**outfit.public(), "aspect_ratio_sent": self._aspect_ratio(outfit, uploads[0].image)},
            # What the one call will be asked (run_job records what each call was asked).
            "prompts": [outfit_prompt(specs)],
            "model_requested": models[0].id if models[0] else None,
            "models_to_try": [m.id for m in models if m is not None],
            "estimate": self.estimate(outfit, len(specs), "async"),
        }
        inputs = [{"field": "person", "ref": uploads[0].ref}]
        inputs += [{**spec.public(), "ref": by_field[spec.field].ref} for spec in specs]
        return self.queue.submit(inputs, self.provider.name, timings, hold=hold.public() if hold else None)

    def settle_job(self, job: Job, timings: dict[str, Any] | None, error: BaseException | None = None) -> None:
        """A finished job's hold becomes what its calls cost (the worker calls this once it has
        written the outcome; a second settle of the same hold changes nothing)."""
        if not job.hold:
            return
        if timings is not None:
            calls = timings.get("calls") or []
        else:  # failed: the calls that made a picture were paid for all the same
            calls = getattr(error, "paid", None)
            if calls is None:  # the steps as the job holds them now (the object was read at its claim)
                stored = self.queue.get(job.job_id) if self.queue is not None else None
                calls = [step for step in ((stored or job).steps or []) if step.get("ref")]
        self._settle(Hold.from_public(job.hold), calls)

    def job_status(self, job_id: str) -> dict[str, Any]:
        """The seed's status answer (status, image_url, error, timestamps) plus attempts and timings."""
        if self.queue is None:
            raise InvalidRequest("async_unavailable", http_status=503)
        job = self.queue.get(job_id)
        if job is None:
            raise InvalidRequest("job_not_found", http_status=404)
        answer = job.public()
        if job.status == "queued":
            answer["jobs_waiting"] = self.queue.waiting()
        if job.image_url:
            refs = list(job.timings.get("variant_refs") or [job.image_url])
            answer["image_urls"] = [self._shareable(ref) for ref in refs]
            answer["image_url"] = answer["image_urls"][0]
        answer["offline_preview"] = self.provider.is_preview
        return answer

    def _shareable(self, ref: str) -> str | None:
        """A result as a client can read it: its URL, or (offline preview, kept under the data dir)
        the picture inlined as a data URL; None once the picture is gone."""
        if ref.startswith("https://"):
            return ref
        try:
            return "data:image/jpeg;base64," + base64.b64encode(self.provider.fetch(ref)).decode()
        except TryOnError:
            return None

    def job_images(self, job_id: str) -> list[Image.Image]:
        """The finished job's pictures (one per variant), fetched from wherever the provider keeps them."""
        job = self.queue.get(job_id) if self.queue is not None else None
        if job is None or not job.image_url:
            return []
        pictures = []
        for ref in job.timings.get("variant_refs") or [job.image_url]:
            picture = Image.open(io.BytesIO(self._fetch_result(ref)))
            picture.load()
            pictures.append(picture)
        return pictures

    def run_job(self, job: Job, persist: Callable[[list[dict[str, Any]], str | None], None],
                on_poll: Callable[[], None], park: Callable | None = None) -> tuple[str, dict[str, Any]]:
        """One model call with every garment (not the sync chain's one call per garment), or a
        chain of calls on a model that takes one garment per call (tryon.dressing).

        `persist(steps, request_id)` writes each step to the job as it is submitted and done; a
        job an earlier worker started goes on from its steps: a request already queued is polled
        instead of paying for a second one, and a step already done is not made again.
        `park`: see Dresser.run (a worker hands the waits to its waiter, tryon.jobs.waiter).
        """
        refs = [item["ref"] for item in job.inputs]
        specs = [GarmentSpec.from_public(i) for i in job.inputs[1:]]  # inner to outer, categories as guessed at submit
        chosen = job.timings.get("options") or {}
        outfit = Outfit(num_images=int(chosen.get("num_images", 1)), aspect_ratio=chosen.get("aspect_ratio", "same"),
                        resolution=chosen.get("resolution", "1K"), model=job.timings.get("model_requested"))
        wanted = job.timings.get("models_to_try")
        if wanted is None:  # a job from before the catalogue: the default model
            models: list[Model | None] = [self.default_model()]
        else:
            models = [self.model(model_id) for model_id in wanted] or [None]
        journal = list(job.steps or [])
        if not journal and job.provider_request_id:  # submitted by a worker from before the journal
            journal = [{"step": 1, "model": models[0].id if models[0] else None, "request_id": job.provider_request_id}]
        resumed = any(entry.get("request_id") for entry in journal)
        look = Look(refs[0], list(zip(specs, refs[1:])), outfit, chosen.get("aspect_ratio_sent", "auto"), "async", models,
                    self.settings.sync_prompt)
        timeout = self.settings.request_timeout_s
        provider_started = job.provider_started_at or now_ms()
        deadline = time.monotonic() + max(1.0, timeout - (now_ms() - provider_started) / 1000)
        try:
            dressed = Dresser(self.provider, self.provider.name).run(look, deadline, journal, persist, on_poll, park)
        except ProviderError as error:
            if error.code == "provider_timeout":
                raise _paid_as(ProviderError("provider_timeout", http_status=504, seconds=timeout), error) from None
            raise
        finished = now_ms()
        timings = dict(job.timings)
        calls_ms = [float(entry.get("ms") or 0.0) for entry in dressed.journal]
        if resumed and len(calls_ms) == 1:
            calls_ms = [float(finished - provider_started)]  # the wait began with the earlier attempt
        provider_ms = round(sum(calls_ms), 1)
        total_ms = float(finished - job.created_at)
        timings.update({
            "requestId": job.job_id,
            "cold_start": claim_cold_start(),
            "queue_wait_ms": float((job.started_at or finished) - job.created_at),
            **{f"fal_call_{n}": ms for n, ms in enumerate(calls_ms, start=1)},
            "fal_duration_ms": provider_ms,
            "total_backend_ms": total_ms,
            "backend_overhead_ms": round(total_ms - provider_ms, 1),
            "be_response_sent_ts": finished,
            "provider_request_ids": [entry["request_id"] for entry in dressed.journal],
            "prompts": dressed.prompts,
            "variant_refs": list(dressed.result.refs),
            "variants": len(dressed.result.refs),
            "attempts": job.attempts,
            "resumed_provider_request": resumed,
            "offline_preview": self.provider.is_preview,
            **self._model_fields(models, dressed, "async", len(specs), outfit),
            **self._provider_fields([e["provider"] for e in dressed.journal], self._failover_of(dressed.journal)),
        })
        return dressed.result.ref, timings
