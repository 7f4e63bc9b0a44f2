"""The FAL provider: fal-ai/nano-banana-pro/edit through the official fal-client.

- Images go to FAL storage with `SyncClient.upload` and an expiry (photos of
  people should not outlive their use); the model reads them by URL, never as
  base64 in the request (the seed measured 1-2 s extra for base64).
- Every call uses the queue API: submit, poll status, fetch the result. That
  gives us a request id to cancel when our deadline passes, which a blocking
  call cannot.
- fal-client already retries 408/409/429, transport errors and ingress
  502/503/504 (up to 10 attempts with backoff); we add no retry loop of ours.
- The environment points everything elsewhere without code changes:
  FAL_RUN_HOST / FAL_QUEUE_RUN_HOST (read by fal-client at import),
  TRYON_FAL_REST_URL / TRYON_FAL_CDN_URL (fal-client's storage hosts, which it
  hard-codes as module constants read at call time), SSL_CERT_FILE (httpx).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import httpx

from ..config import Settings
from ..errors import ProviderError
from ..images import NormalizedImage
from .base import EditOptions, EditResult
from .download import ResultDownloader
from .errors import error_for, redact

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1  # what fal-client's own subscribe() uses
MODEL_OPTIONS = {"num_images": 1, "aspect_ratio": "auto", "resolution": "1K", "output_format": "jpeg"}


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
        self.upload_ttl_s = settings.upload_ttl_s
        self.timeout_s = settings.request_timeout_s
        self.client = fal_client.SyncClient(key=settings.fal_key, default_timeout=settings.request_timeout_s)
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
        request_id = self.submit_edit(prompt, person, garments, options)
        return self.await_edit(request_id, self.timeout_s if timeout_s is None else timeout_s, started=started)

    # -- resumable halves of edit(): an async job records the request id in between ----------

    def submit_edit(self, prompt: str, person: str, garments: Sequence[str], options: EditOptions | None = None) -> str:
        """Queue one generation at FAL; returns its request id."""
        arguments = {"prompt": prompt, "image_urls": [person, *garments], **MODEL_OPTIONS}
        if options is not None:
            arguments.update(num_images=options.num_images, aspect_ratio=options.aspect_ratio, resolution=options.resolution)
        try:
            return self.client.submit(self.model, arguments).request_id
        except Exception as error:
            raise self._map_error(error) from None

    def await_edit(self, request_id: str, timeout_s: float, started: float | None = None, on_poll=None) -> EditResult:
        """Wait for a queued generation (ours or one a dead worker started) and return its image."""
        started = time.perf_counter() if started is None else started
        handle = self.client.get_handle(self.model, request_id)
        deadline = time.monotonic() + timeout_s
        try:
            status = self._wait(handle, deadline, timeout_s, on_poll)
            if getattr(status, "error", None):
                raise ProviderError("provider_rejected_input", detail=self._redact(_detail_text(status.error)))
            output = self.client.result(self.model, request_id)
        except ProviderError:
            raise
        except Exception as error:
            raise self._map_error(error) from None
        images = output.get("images") if isinstance(output, dict) else None
        urls = tuple(i["url"] for i in images or [] if isinstance(i, dict) and isinstance(i.get("url"), str) and i["url"])
        if not urls:
            raise ProviderError("no_image_returned")
        return EditResult(ref=urls[0], duration_ms=(time.perf_counter() - started) * 1000, request_id=request_id, variants=urls)

    def fetch(self, ref: str) -> bytes:
        return self._downloads.fetch(ref)

    # -- helpers --------------------------------------------------------------------------

    def _wait(self, handle, deadline: float, timeout_s: float, on_poll=None):
        """Poll until the request completes; past the deadline, cancel it at FAL and give up."""
        while True:
            if on_poll is not None:
                on_poll()  # an async job's heartbeat: "this worker is alive"
            status = handle.status()
            if isinstance(status, self._fal.Completed):
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(handle)
                raise ProviderError("provider_timeout", http_status=504, seconds=timeout_s)
            time.sleep(min(POLL_INTERVAL_S, remaining))

    def _cancel(self, handle) -> None:
        try:
            handle.cancel()
        except Exception as error:  # the request may have finished meanwhile; nothing more to do
            log.warning("could not cancel FAL request %s: %s", handle.request_id, type(error).__name__)

    def _redact(self, text: str) -> str:
        return redact(text, self._key)

    def _map_error(self, error: Exception) -> ProviderError:
        """fal-client's and httpx's exceptions -> our user-facing errors (the key never appears)."""
        if isinstance(error, ProviderError):
            return error
        status = getattr(error, "status_code", None)
        if status is None and isinstance(error, httpx.HTTPStatusError):
            status = error.response.status_code  # the CDN token request raises plain httpx errors
        detail = self._redact(_detail_text(getattr(error, "message", None) or ""))
        return error_for(status, error, detail=detail, variable=self.key_variable, timeout_s=self.timeout_s, vendor="FAL")
