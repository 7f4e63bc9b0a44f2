"""The seed's JSON API, on the same server as the page, so its existing clients work unchanged.

    POST /api/images/generate   {apiKey, userImage, garments[1..4]} -> {success, resultImage, metadata}
    POST /api/images/upload     {apiKey, image}                     -> {success, url, uploadTime}
    POST /api/jobs/submit       {apiKey, userImage, garments}       -> {success, job_id, status}
    GET  /api/jobs/{id}/status                                      -> {status, image_url, error, timestamps}
    GET  /api/metrics                                               -> the numbers of the Metrics tab
    POST /api/batches           {apiKey, persons[1..20], outfits[1..50]} -> a catalogue batch and its grid
    GET  /api/batches/{id}                                          -> every look's status, cost, counts
    POST /api/batches/{id}/cancel | /retry                          -> the grid after it
    GET  /api/batches/{id}/archive                                  -> a ZIP, streamed as it is built

Images: base64, data URL or https URL. Errors: {success: false, error, code} with
400 bad input, 401 bad key, 404 unknown job, 413 too large, 429 rate limit or busy,
502/504 provider failure. The job id is the capability for its status (as in the
seed): reading a status needs no key; a 192-bit id cannot be guessed.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from .access import RateLimiter, key_is_valid
from ..config import Settings
from ..limits import Visitor
from ..errors import InvalidRequest, TryOnError, pick_language
from ..outfit import Outfit
from ..jobs.batch import MAX_OUTFITS, MAX_PERSONS, OutfitRequest
from ..service import TryOnService
from .visitors import rest_visitor

log = logging.getLogger(__name__)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    apiKey: str | None = Field(None, description="Required when the server sets TRYON_API_KEYS.")
    userImage: str = Field(..., description="The person: base64, data URL or https URL.")
    garments: list[str | None] = Field(..., description="1 to 4 garments (base64, data URL or https URL); nulls are skipped.")
    # Optional outfit controls (tryon's own additions; the seed's clients never send them).
    categories: list[str | None] | None = Field(
        None, description="Per garment slot: auto, top, bottom, dress, outerwear, shoes or accessory (default auto).")
    descriptions: list[str | None] | None = Field(None, description="Per garment slot: a short description, e.g. 'blue jeans'.")
    order: list[str | int] | None = Field(
        None, description="Layering order, inner to outer, by slot: ['garment_2', 'garment_1'] or [2, 1]. Default: by category.")
    numImages: int = Field(1, description="Number of results, 1 to 4 (resultImages).")
    aspectRatio: str = Field("same", description="'same' (as the person photo) or 1:1, 4:5, 3:4, 2:3, 9:16, 5:4, 4:3, 3:2, 16:9, 21:9.")
    resolution: str = Field("1K", description="1K, 2K or 4K (models that support it).")
    model: str | None = Field(None, description="A model id from GET /api/models, e.g. 'fal-ai/fashn/tryon/v1.6'. Default: the app's.")

    def outfit(self) -> Outfit:
        return Outfit.parse(self.categories, self.descriptions, self.order, self.numImages, self.aspectRatio, self.resolution,
                            self.model)


class BatchOutfit(BaseModel):
    model_config = ConfigDict(extra="ignore")
    garments: list[str] = Field(..., max_length=20, description="1 to 4 garments (an upload's URL, base64, data URL or https URL).")
    categories: list[str | None] | None = Field(None, max_length=20, description="Per garment: auto, top, bottom, dress, outerwear, shoes or accessory.")
    descriptions: list[str | None] | None = Field(None, max_length=20, description="Per garment: a short description.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    apiKey: str | None = Field(None, description="Required when the server sets TRYON_API_KEYS.")
    # The lists' lengths are bounded here too (beyond the limits, whose own errors say them), so a
    # body of millions of entries is refused while it is read, not built first.
    persons: list[str] = Field(..., max_length=100, description="1 to 20 person photos; pre-upload them with /api/images/upload and pass the URLs.")
    outfits: list[BatchOutfit | str] = Field(..., max_length=100, description="1 to 50 outfits: {garments, categories, descriptions}, or one garment as a string.")
    numImages: int = Field(1, description="Results per look, 1 to 4 (named _v1.._v4 in the archive).")
    aspectRatio: str = Field("same", description="As for /api/images/generate.")
    resolution: str = Field("1K", description="1K, 2K or 4K (models that support it).")
    model: str | None = Field(None, description="A model id from GET /api/models; default: the app's.")

    def outfit_requests(self) -> list[OutfitRequest]:
        if len(self.persons) > MAX_PERSONS:  # before anything is built from them
            raise InvalidRequest("batch_too_many_persons", count=len(self.persons), limit=MAX_PERSONS)
        if len(self.outfits) > MAX_OUTFITS:
            raise InvalidRequest("batch_too_many_outfits", count=len(self.outfits), limit=MAX_OUTFITS)
        return [OutfitRequest([o]) if isinstance(o, str) else
                OutfitRequest(o.garments, [c or "auto" for c in o.categories or []], [d or "" for d in o.descriptions or []])
                for o in self.outfits]

    def options(self) -> Outfit:
        return Outfit.parse(None, None, None, self.numImages, self.aspectRatio, self.resolution, self.model)


class BatchAction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    apiKey: str | None = None
    cells: list[int] | None = Field(None, max_length=1000, description="retry only: these looks (0-based, in the grid's order); default every failed one.")


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    apiKey: str | None = None
    image: str = Field(..., description="base64, data URL or https URL.")


class Timings(BaseModel):
    model_config = ConfigDict(extra="allow")
    requestId: str
    be_received_ts: int
    be_response_sent_ts: int
    total_backend_ms: float
    fal_duration_ms: float
    backend_overhead_ms: float
    cold_start: bool
    provider: str = Field("", description="The provider(s) that served the request: fal, replicate, runpod or local.")
    provider_chain: str | None = Field(None, description="With failover: the providers in the order they are tried.")
    failover: list[dict[str, Any]] | None = Field(
        None, description="With failover: each provider passed over, {step, provider, reason}.")


class Metadata(BaseModel):
    generatedAt: str
    inputsCount: dict[str, int]
    timings: Timings


class GenerateResponse(BaseModel):
    success: bool = True
    resultImage: str = Field(..., description="The provider's URL for the picture (a data URL for the offline preview).")
    resultImages: list[str] = Field(default_factory=list, description="Every result when numImages > 1 (the first is resultImage).")
    metadata: Metadata


class UploadResponse(BaseModel):
    success: bool = True
    url: str
    uploadTime: float = Field(..., description="Milliseconds to normalize and upload.")


class SubmitResponse(BaseModel):
    success: bool = True
    job_id: str
    status: str


class JobStatusResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
    image_url: str | None
    error: str | None
    timestamps: dict[str, int | None]


class ErrorResponse(BaseModel):
    success: bool = False
    error: str
    code: str


ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 429, 502, 504)}


def error_response(error: TryOnError, request: Request) -> JSONResponse:
    lang = pick_language(request.headers.get("accept-language"))
    body = {"success": False, "error": error.message(lang), "code": error.code}
    if error.field:
        body["field"] = error.field
    headers = {"Retry-After": str(int(error.params.get("seconds", 1)) + 1)} if error.http_status == 429 else None
    return JSONResponse(body, status_code=error.http_status, headers=headers)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """FastAPI's own HTTP errors under /api in the seed's shape: a body it could not parse
    (too deeply nested JSON, a number of 5,000 digits) is `bad_json`; elsewhere, FastAPI's answer."""
    if not request.url.path.startswith("/api/"):
        return await http_exception_handler(request, exc)
    if exc.status_code == 400:
        return error_response(InvalidRequest("bad_json", reason="it could not be parsed (too deeply nested?)"), request)
    return JSONResponse({"success": False, "error": str(exc.detail), "code": f"http_{exc.status_code}"},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything we did not foresee: logged with an id, answered in the seed's shape, no details."""
    request_id = uuid.uuid4().hex[:12]
    log.error("unexpected error on %s (request %s)", request.url.path, request_id, exc_info=exc)
    error = TryOnError("internal_error_id", http_status=500, request_id=request_id)
    return error_response(error, request)


# pydantic's error type -> what the field must be, in words a client's user can read.
EXPECTED = {
    "missing": {"en": "present", "es": "es obligatorio"},
    "list_type": {"en": "a list", "es": "debe ser una lista"},
    "string_type": {"en": "text", "es": "debe ser texto"},
    "int_type": {"en": "a whole number", "es": "debe ser un número entero"},
    "int_parsing": {"en": "a whole number", "es": "debe ser un número entero"},
    "int_from_float": {"en": "a whole number", "es": "debe ser un número entero"},
    "bool_type": {"en": "true or false", "es": "debe ser true o false"},
    "bool_parsing": {"en": "true or false", "es": "debe ser true o false"},
    "dict_type": {"en": "a JSON object", "es": "debe ser un objeto JSON"},
    "model_type": {"en": "a JSON object", "es": "debe ser un objeto JSON"},
    "model_attributes_type": {"en": "a JSON object", "es": "debe ser un objeto JSON"},
}


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a malformed body, in the seed's error shape and as a 400."""
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(p) for p in first.get("loc", []) if p != "body"]
    if first.get("type") == "json_invalid":
        error = InvalidRequest("bad_json", reason=first.get("msg", "")[:120])
    else:
        detail = first.get("msg", "")[:120]
        expected = EXPECTED.get(first.get("type"), {"en": f"valid ({detail})", "es": f"no es válido ({detail})"})
        error = InvalidRequest("bad_field", name=".".join(location) or "body", expected=expected)
    return error_response(error, request)


def build_router(service: TryOnService, settings: Settings, redis_client) -> APIRouter:
    """`redis_client`: the app's; the rate limit's buckets live there, shared by every replica."""
    router = APIRouter(prefix="/api", tags=["seed API"])
    limiter = RateLimiter(settings.rate_limit_per_min, redis_client, "rest")
    generating = threading.BoundedSemaphore(settings.concurrency)

    def admit(request: Request, api_key: str | None, needs_key: bool = True) -> None:
        """Rate limit (per key, else per address), then the key: raise the matching error."""
        # Only a valid key names the client; otherwise a new made-up key per request would dodge the limit.
        valid_key = bool(api_key) and key_is_valid(api_key, settings.api_keys)
        client = f"key:{api_key}" if valid_key else f"ip:{request.client.host if request.client else '?'}"
        allowed, wait = limiter.allow(client)
        if not allowed:
            raise InvalidRequest("rate_limited", http_status=429, seconds=wait)
        if needs_key and settings.api_keys and not key_is_valid(api_key, settings.api_keys):
            raise InvalidRequest("bad_api_key", http_status=401)

    def visitor_of(request: Request, api_key: str | None) -> Visitor:
        """Whose quota a look counts against; X-Fal-Key: the caller's own FAL key, for this request only."""
        return rest_visitor(request, api_key, settings, request.headers.get("x-fal-key"))

    def result_images(result) -> list[str]:
        """Every result as the seed's resultImage was: the provider's URL, or the picture inlined."""
        if result.variant_urls:
            return list(result.variant_urls)
        return ["data:image/jpeg;base64," + base64.b64encode(image).decode() for image in result.variants or [result.image]]

    @router.post("/images/generate", response_model=GenerateResponse, responses=ERRORS,
                 summary="Dress the person in 1-4 garments (sync, chained)")
    def generate(body: GenerateRequest, request: Request):
        try:
            admit(request, body.apiKey)
            if not generating.acquire(timeout=2.0):  # a bounded wait, then a clear 429, never a hung request
                raise InvalidRequest("busy", http_status=429, seconds=5)
            try:
                result = service.try_on_sync(body.userImage, body.garments, fetch=service.provider.is_preview, outfit=body.outfit(),
                                             visitor=visitor_of(request, body.apiKey))
            finally:
                generating.release()
        except TryOnError as error:
            return error_response(error, request)
        images = result_images(result)  # encoded once: resultImage is the first of them
        return {
            "success": True,
            "resultImage": images[0],
            "resultImages": images,
            "metadata": {
                "generatedAt": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "inputsCount": {"garments": result.timings["garments"]},
                "timings": result.timings,
            },
        }

    @router.post("/images/upload", response_model=UploadResponse, responses=ERRORS,
                 summary="Pre-upload one image; pass the URL back later as userImage or a garment")
    def upload(body: UploadRequest, request: Request):
        try:
            admit(request, body.apiKey)
            started = time.perf_counter()
            uploaded = service.upload(body.image)
        except TryOnError as error:
            return error_response(error, request)
        return {"success": True, "url": uploaded.ref, "uploadTime": round((time.perf_counter() - started) * 1000, 1)}

    @router.post("/jobs/submit", response_model=SubmitResponse, responses=ERRORS,
                 summary="Queue an async job (one model call with every garment); answers at once")
    def submit(body: GenerateRequest, request: Request):
        try:
            admit(request, body.apiKey)
            job = service.submit_job(body.userImage, body.garments, outfit=body.outfit(), visitor=visitor_of(request, body.apiKey))
        except TryOnError as error:
            return error_response(error, request)
        return {"success": True, "job_id": job.job_id, "status": job.status}

    @router.get("/jobs/{job_id}/status", response_model=JobStatusResponse, responses=ERRORS,
                summary="A job's status: queued, processing, done or error")
    def status(job_id: str, request: Request):
        try:
            admit(request, None, needs_key=False)
            return service.job_status(job_id)
        except TryOnError as error:
            return error_response(error, request)

    # -- catalogue batches: the batch id is the capability to read it, as a job's id is ----------

    @router.post("/batches", responses=ERRORS, summary="Queue a catalogue batch: every person in every outfit, one async job per look")
    def submit_batch(body: BatchRequest, request: Request):
        try:
            admit(request, body.apiKey)
            answer = service.batches.submit(body.persons, body.outfit_requests(), body.options(),
                                            visitor=visitor_of(request, body.apiKey))
        except TryOnError as error:
            return error_response(error, request)
        return {"success": True, **answer}

    @router.get("/batches/{batch_id}", responses=ERRORS, summary="A batch's looks: status, error, pictures, cost; counts by status")
    def batch_status(batch_id: str, request: Request):
        try:
            admit(request, None, needs_key=False)
            return {"success": True, **service.batches.status(batch_id)}
        except TryOnError as error:
            return error_response(error, request)

    @router.post("/batches/{batch_id}/cancel", responses=ERRORS, summary="Cancel the looks no worker has started")
    def cancel_batch(batch_id: str, request: Request, body: BatchAction | None = None):
        try:
            admit(request, body.apiKey if body else None)
            return {"success": True, **service.batches.cancel(batch_id)}
        except TryOnError as error:
            return error_response(error, request)

    @router.post("/batches/{batch_id}/retry", responses=ERRORS, summary="Run again the looks that failed or were cancelled")
    def retry_batch(batch_id: str, request: Request, body: BatchAction | None = None):
        try:
            api_key = body.apiKey if body else None
            admit(request, api_key)
            return {"success": True, **service.batches.retry(batch_id, visitor=visitor_of(request, api_key),
                                                             cells=body.cells if body else None)}
        except TryOnError as error:
            return error_response(error, request)

    @router.get("/batches/{batch_id}/archive", responses=ERRORS,
                summary="The batch as a ZIP: person-<n>_outfit-<m>.png, contact_sheet.png, manifest.json, manifest.csv")
    def batch_archive(batch_id: str, request: Request):
        try:
            admit(request, None, needs_key=False)
            chunks = service.batches.archive(batch_id)
        except TryOnError as error:
            return error_response(error, request)
        name = f"tryon-batch-{batch_id[:8]}.zip"
        return StreamingResponse(chunks, media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})

    @router.get("/metrics", summary="Requests, success rate, latency percentiles, upload cache hit rate")
    def metrics(request: Request, apiKey: str | None = None) -> dict[str, Any]:
        try:
            admit(request, apiKey or request.headers.get("x-api-key"))
            if service.metrics is None:
                raise InvalidRequest("async_unavailable", http_status=503)
            summary = service.metrics.summary()
            summary["providers"] = service.provider_health() or [{"provider": service.provider.name, "label": service.provider.label}]
            return summary
        except TryOnError as error:
            return error_response(error, request)

    @router.get("/models", summary="The models a request may name, the default first, with their prices and options")
    def models(request: Request, apiKey: str | None = None) -> dict[str, Any]:
        try:
            admit(request, apiKey or request.headers.get("x-api-key"))
        except TryOnError as error:
            return error_response(error, request)
        offered = service.offered_models()
        return {"default": offered[0].id if offered else None, "offline_preview": service.provider.is_preview,
                "fallbacks": list(settings.fal_fallback_models), "models": [m.public() for m in offered]}

    # Last: any other /api path answers in the seed's shape too (not gradio's {"detail": ...} 404).
    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                      include_in_schema=False)
    def no_such_route(path: str, request: Request):
        return JSONResponse({"success": False, "error": f"No route {request.method} /api/{path[:200]}.", "code": "not_found"},
                            status_code=404)

    return router

