"""The FAL provider: the catalogue's FAL models (tryon.models) through the official fal-client.

- Images go to FAL storage with `SyncClient.upload` and an expiry (photos of
  people should not outlive their use); the model reads them by URL, never as
  base64 in the request (the seed measured 1-2 s extra for base64).
- Every call uses the queue API: submit, poll status, fetch the result. That
  gives us a request id to cancel when our deadline passes, which a blocking
  call cannot.
- fal-client already retries 408/409/429, transport errors and ingress
  502/503/504 (up to 10 attempts with backoff); we add no retry loop of ours,
  but we never wait for those retries past our deadline (deadline.call_before),
  and the deadline is also sent as `start_timeout` (X-Fal-Request-Timeout).
- Which model, and its arguments and answer's shape, come from the catalogue: a request's
  `EditOptions.model`, else the first of TRYON_FAL_MODEL.
- Failures are read where FAL reports them: an infrastructure failure is a
  COMPLETED status with `error`/`error_type` (an outage: the chain fails over);
  a bad input or a content-policy refusal is a 422 from the result endpoint.
- Every model call asks FAL to expire its outputs with the upload TTL
  (X-Fal-Object-Lifecycle-Preference) and, unless TRYON_FAL_STORE_IO=1, not to
  keep the request and response payloads (X-Fal-Store-IO: 0).
- The environment points everything elsewhere without code changes:
  FAL_RUN_HOST / FAL_QUEUE_RUN_HOST (read by fal-client at import),
  TRYON_FAL_REST_URL / TRYON_FAL_CDN_URL (fal-client's storage hosts, which it
  hard-codes as module constants read at call time), SSL_CERT_FILE (httpx).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import httpx

from ..cache import TTLCache
from ..config import Settings
from ..errors import ProviderError
from ..images import NormalizedImage
from ..models import Call, Model, get, known, resolve
from ..progress import report
from .base import EditOptions, EditResult
from .deadline import DeadlinePassed, call_before
from .download import ResultDownloader
from .errors import error_for, redact

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1  # what fal-client's own subscribe() uses
POLL_CALL_S = 10.0  # the longest one of the waiter's status polls may hold its thread
CANCEL_WAIT_S = 2.0  # how long a timed-out caller waits to learn what the cancel did
MIN_START_TIMEOUT_S = 1.0  # fal-client refuses a start_timeout of 1 s or less


def configure_fal_client(settings: Settings):
    """Import fal-client and point its storage hosts where the settings say."""
    import fal_client
    import fal_client.client

    fal_client.client.REST_URL = settings.fal_rest_url
    fal_client.client.CDN_URL = settings.fal_cdn_url
    return fal_client


def _detail_text(detail: Any) -> str:
    """FAL's `detail` is a string or a list of pydantic-style errors: make it one short line."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{where}: {item.get('msg', '')}".strip(": "))
            else:
                parts.append(str(item))
        detail = "; ".join(parts)
    return str(detail)[:300]


def _detail_types(detail: Any) -> set[str]:
    """The `type`s in FAL's 422 `detail` list (content_policy_violation, no_media_generated, ...)."""
    items = detail if isinstance(detail, list) else []
    return {item.get("type") for item in items if isinstance(item, dict) and isinstance(item.get("type"), str)}


def pooled_sync_client(fal_client, key: str, timeout_s: float, connections: int):
    """fal-client's SyncClient with its httpx client made as SyncClient._client makes it (its
    transport, headers, timeout, redirects), but on a pool that keeps every connection it opens
    alive. With httpx's default (100 connections, 20 kept alive) many threads churn connections,
    and httpcore 1.0.9 can close a kept-alive connection it has just handed to a waiting request
    (encode/httpcore#1110): fal-client then retries a submit that may have arrived, which FAL would
    bill twice. `_client` is a functools.cached_property: a value in the instance's __dict__ is
    used instead of building one, so no fal-client function is replaced."""
    client = fal_client.SyncClient(key=key, default_timeout=timeout_s)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client.__dict__["_client"] = httpx.Client(
        transport=fal_client.client.BackupDomainTransport(transport=httpx.HTTPTransport(limits=limits)),
        headers={"Authorization": f"Key {key}", "User-Agent": fal_client.client.USER_AGENT},
        timeout=timeout_s,
        follow_redirects=True,
    )
    return client


class FalProvider:
    name = "fal"
    is_preview = False
    key_variable = "FAL_KEY"

    def __init__(self, settings: Settings):
        if not settings.fal_key:
            raise ValueError("the FAL provider needs a key")
        fal_client = configure_fal_client(settings)
        self._fal = fal_client
        self._key = settings.fal_key
        self.model = settings.fal_model
        self.label = f"FAL · {settings.fal_model}"
        # The models the settings name (the default first, then the fallbacks), as the catalogue
        # describes them; a model the catalogue does not list is called like the default family.
        self.models = {m: resolve(m, "fal", settings.model_prices) for m in (settings.fal_model, *settings.fal_fallback_models)}
        self._prices = settings.model_prices
        self.upload_ttl_s = settings.upload_ttl_s
        self.store_io = settings.fal_store_io
        self.timeout_s = settings.request_timeout_s
        self.concurrency = settings.fal_concurrency
        self.client = pooled_sync_client(fal_client, settings.fal_key, settings.request_timeout_s,
                                         connections=max(64, settings.workers + 4 * settings.concurrency + 16))
        self._poll_pool = ThreadPoolExecutor(max_workers=max(2, min(16, self.concurrency)), thread_name_prefix="fal-poll")
        self._completed: TTLCache = TTLCache(capacity=4096)  # request id -> the COMPLETED status the waiter saw
        self._lifecycle = fal_client.client.StorageSettings(expires_in=settings.upload_ttl_s)
        # Results are downloaded with a client of our own: fal-client's carries the
        # Authorization header, which must not travel to a CDN host.
        self._downloads = ResultDownloader()

    # -- the Provider interface -----------------------------------------------------------

    def upload(self, image: NormalizedImage) -> str:
        try:
            return self.client.upload(
                image.jpeg, "image/jpeg", file_name=f"{image.digest[:20]}.jpg", lifecycle=self._lifecycle
            )
        except Exception as error:
            raise self._map_error(error) from None

    def edit(self, prompt: str, person: str, garments: Sequence[str], timeout_s: float | None = None,
             options: EditOptions | None = None) -> EditResult:
        started = time.perf_counter()
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        request_id = self.submit_edit(prompt, person, garments, options, deadline=deadline)
        return self.await_edit(request_id, timeout_s, started=started, deadline=deadline, options=options)

    def model_for(self, options: EditOptions | None) -> Model:
        """The model a call runs: the one asked for if it is FAL's, else the default."""
        wanted = options.model if options is not None else None
        if wanted and wanted in self.models:
            return self.models[wanted]
        if wanted and known(wanted) and get(wanted).provider == "fal":
            return get(wanted, self._prices)
        return self.models[self.model]

    # -- resumable halves of edit(): an async job records the request id in between ----------

    def model_headers(self) -> dict[str, str]:
        """Sent with every model call: outputs expire with our uploads; payloads are not kept."""
        headers = {"X-Fal-Object-Lifecycle-Preference": json.dumps({"expiration_duration_seconds": self.upload_ttl_s})}
        if not self.store_io:
            headers["X-Fal-Store-IO"] = "0"
        return headers

    def submit_edit(self, prompt: str, person: str, garments: Sequence[str], options: EditOptions | None = None,
                    deadline: float | None = None) -> str:
        """Queue one generation at FAL; returns its request id. FAL drops it if it has not started
        by the deadline (start_timeout), so a request we gave up on is not run and billed later."""
        model = self.model_for(options)
        chosen = options or EditOptions()
        arguments = model.arguments(Call(prompt, person, tuple(garments), chosen.categories, chosen.num_images,
                                         chosen.aspect_ratio, chosen.same_as_person, chosen.resolution))
        deadline = time.monotonic() + self.timeout_s if deadline is None else deadline
        start_timeout = deadline - time.monotonic()
        extra = {"start_timeout": round(start_timeout, 1)} if start_timeout > MIN_START_TIMEOUT_S else {}
        def submit() -> str:
            return self.client.submit(model.id, arguments, headers=self.model_headers(), **extra).request_id

        def cancel_late(request_id: str) -> None:  # fal-client's retries got it in after we gave up
            log.warning("FAL request %s was created after its deadline; cancel: %s", request_id,
                        self._cancel(self.client.get_handle(model.id, request_id)))

        try:
            return call_before(deadline, submit, "fal-submit", on_late=cancel_late)
        except DeadlinePassed:  # the budget this submit had, as await_edit reports its own
            raise ProviderError("provider_timeout", http_status=504, seconds=round(start_timeout, 1)) from None
        except Exception as error:
            raise self._map_error(error) from None

    def await_edit(self, request_id: str, timeout_s: float, started: float | None = None, on_poll=None,
                   deadline: float | None = None, options: EditOptions | None = None) -> EditResult:
        """Wait for a queued generation (ours or one a dead worker started) and return its image.
        No fal-client call (with its own retries) keeps us past the deadline (`timeout_s` from now,
        unless edit() passes the one its submit already counted against). `options`: the ones it
        was submitted with (they name the model, whose queue holds it and whose answer we read)."""
        started = time.perf_counter() if started is None else started
        model = self.model_for(options)
        handle = self.client.get_handle(model.id, request_id)
        deadline = time.monotonic() + max(0.0, timeout_s) if deadline is None else deadline
        try:
            status = self._wait(handle, deadline, on_poll)
            if getattr(status, "error", None):
                # An infrastructure failure ("Runner disconnected", "Request timed out"): an outage, not our input.
                raise ProviderError("provider_failed", reason=self._redact(f"{status.error} ({status.error_type or 'error'})")[:200])
            output = call_before(deadline, lambda: self.client.result(model.id, request_id), "fal-result")
        except DeadlinePassed:
            outcome = self._cancel(handle)
            log.warning("FAL request %s passed its %.1f s deadline; cancel: %s", request_id, timeout_s, outcome)
            raise ProviderError("provider_timeout", http_status=504, seconds=timeout_s, cancel=outcome) from None
        except ProviderError:
            raise
        except Exception as error:
            raise self._map_error(error) from None
        urls = model.output_urls(output)
        if not urls:
            raise ProviderError("no_image_returned")
        return EditResult(ref=urls[0], duration_ms=(time.perf_counter() - started) * 1000, request_id=request_id, variants=urls,
                          model=model.id)

    def fetch(self, ref: str) -> bytes:
        return self._downloads.fetch(ref)

    # -- waiting without a thread: the job waiter's polls (tryon.jobs.waiter) ----------------

    def can_poll(self, request_id: str) -> bool:
        return True

    async def poll(self, request_id: str, options: EditOptions | None = None) -> bool:
        """One status poll for the waiter's event loop: True once FAL says the request is finished
        (or answers with an error, which the worker then reads and reports as a sync wait would),
        False while it is queued or running.

        The call itself is fal-client's sync handle on a small pool of threads (the same keep-alive
        connections as the submits), not an httpx.AsyncClient: with a hundred polls pending, httpx's
        async pool (httpcore 1.0.9) spent so long assigning requests to connections that a 2 s
        model's looks were seen 3.3 s (p50) to 7.0 s (p95) after their submit; on 16 threads, 2.4 s
        and 2.7 s. A poll that hangs gives its thread back after POLL_CALL_S (deadline.call_before)."""
        handle = self.client.get_handle(self.model_for(options).id, request_id)

        def status_now():
            return call_before(time.monotonic() + POLL_CALL_S, handle.status, "fal-poll")

        try:
            status = await asyncio.get_running_loop().run_in_executor(self._poll_pool, status_now)
        except Exception:
            return True  # the worker's own wait will see (and map) the error, or the deadline
        if not isinstance(status, self._fal.Completed):
            return False
        self._completed.put(request_id, status, ttl_s=300)  # the resumed wait reads it instead of asking again
        return True

    # -- helpers --------------------------------------------------------------------------

    def _wait(self, handle, deadline: float, on_poll=None):
        """Poll until the request completes; DeadlinePassed when the deadline comes first,
        even in the middle of a status call that fal-client is still retrying."""
        seen = self._completed.get(handle.request_id)  # the waiter's last poll already said so
        if seen is not None:
            return seen
        while True:
            if on_poll is not None:
                on_poll()  # an async job's heartbeat: "this worker is alive"
            status = call_before(deadline, handle.status, "fal-status")
            if isinstance(status, self._fal.Completed):
                return status
            if isinstance(status, self._fal.Queued):
                report("queued", position=status.position + 1)  # FAL counts from 0: 0 = next to run
            else:
                report("running")
            time.sleep(max(0.0, min(POLL_INTERVAL_S, deadline - time.monotonic())))

    def _cancel(self, handle) -> str:
        """Ask FAL to cancel; what it said. A running request only gets a signal and may still
        finish (and be billed); one that already finished answers 400."""
        try:
            call_before(time.monotonic() + CANCEL_WAIT_S, handle.cancel, "fal-cancel")
            return "cancellation requested"
        except DeadlinePassed:
            return "no answer to the cancel"
        except Exception as error:
            status = getattr(error, "status_code", None)
            return {400: "already completed", 404: "not found"}.get(status, f"cancel failed ({type(error).__name__})")

    def _redact(self, text: str) -> str:
        return redact(text, self._key)

    def _map_error(self, error: Exception) -> ProviderError:
        """fal-client's and httpx's exceptions -> our user-facing errors (the key never appears)."""
        if isinstance(error, ProviderError):
            return error
        status = getattr(error, "status_code", None)
        if status is None and isinstance(error, httpx.HTTPStatusError):
            status = error.response.status_code  # the CDN token request raises plain httpx errors
        raw = getattr(error, "message", None) or ""
        if status == 422 and _detail_types(raw) & {"content_policy_violation"}:
            return ProviderError("content_policy", http_status=400)
        if status == 422 and _detail_types(raw) & {"no_media_generated"}:
            return ProviderError("no_image_returned")
        headers = getattr(error, "response_headers", None) or {}
        if status == 504 and any(k.lower() == "x-fal-request-timeout-type" for k in headers):
            # Our start_timeout passed while it waited in FAL's queue: FAL dropped it, nothing to cancel.
            return ProviderError("provider_timeout", http_status=504, seconds=self.timeout_s)
        detail = self._redact(_detail_text(raw))
        return error_for(status, error, detail=detail, variable=self.key_variable, timeout_s=self.timeout_s, vendor="FAL")
