"""The Replicate provider: an image-edit model (default google/nano-banana) through the official
`replicate` client.

- Photos go to Replicate's files API (`files.create`); the model reads them by their URL.
- A prediction is created and then polled (`predictions.get`), never a blocking `Prefer: wait`,
  so our deadline holds; past it the prediction is cancelled (`predictions.cancel`).
- The client retries GETs on 429/503/504 with backoff by itself; a transport of ours refuses to
  start another attempt once the caller's deadline has passed, so those retries cannot outlast it.
- REPLICATE_BASE_URL points it elsewhere (the tests' protocol server) without code changes.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from contextlib import contextmanager
from typing import Sequence

import httpx

from ..config import Settings
from ..errors import ProviderError
from ..progress import report
from ..images import NormalizedImage
from ..models import Call, Model, get, known, resolve
from .base import EditOptions, EditResult
from .download import ResultDownloader, first_image_url
from .errors import error_for, redact

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
MAX_FAILED_POLLS = 3


class _DeadlineTransport(httpx.HTTPTransport):
    """Raises a timeout instead of sending once the calling thread's deadline has passed."""

    def __init__(self):
        super().__init__(retries=1)  # one quiet reconnect on a dropped keep-alive connection
        self.local = threading.local()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = getattr(self.local, "deadline", None)
        if deadline is not None and time.monotonic() >= deadline:
            raise httpx.TimeoutException("deadline passed", request=request)
        return super().handle_request(request)

    @contextmanager
    def until(self, deadline: float | None):
        previous, self.local.deadline = getattr(self.local, "deadline", None), deadline
        try:
            yield
        finally:
            self.local.deadline = previous


class ReplicateProvider:
    name = "replicate"
    is_preview = False
    key_variable = "REPLICATE_API_TOKEN"

    def __init__(self, settings: Settings):
        if not settings.replicate_token:
            raise ValueError("the Replicate provider needs REPLICATE_API_TOKEN")
        import replicate

        self._token = settings.replicate_token
        self.model = settings.replicate_model
        self.label = f"Replicate · {settings.replicate_model}"
        self._prices = settings.model_prices
        # Its arguments come from the catalogue (google/nano-banana, -pro: "match_input_image" is
        # "same as the person photo"; only -pro takes resolution, whose default of 2K would bill a
        # 1K choice at 2K); your own owner/name:version is called like google/nano-banana.
        self.default_model = resolve(settings.replicate_model, "replicate", settings.model_prices)
        # Replicate keeps files uploaded through its API for a day at most.
        self.upload_ttl_s = min(settings.upload_ttl_s, 86400)
        self.timeout_s = settings.request_timeout_s
        self._transport = _DeadlineTransport()
        self.client = replicate.Client(
            api_token=settings.replicate_token, base_url=settings.replicate_base_url,
            timeout=httpx.Timeout(30.0, connect=10.0), transport=self._transport,
        )
        self._errors = replicate.exceptions.ReplicateError
        self._downloads = ResultDownloader()

    # -- the Provider interface -----------------------------------------------------------

    def upload(self, image: NormalizedImage) -> str:
        try:
            uploaded = self.client.files.create(
                io.BytesIO(image.jpeg), filename=f"{image.digest[:20]}.jpg", content_type="image/jpeg",
            )
            return uploaded.urls["get"]
        except Exception as error:
            raise self._map_error(error) from None

    def edit(self, prompt: str, person: str, garments: Sequence[str], timeout_s: float | None = None,
             options: EditOptions | None = None) -> EditResult:
        started = time.perf_counter()
        prediction_id = self.submit_edit(prompt, person, garments, options)
        return self.await_edit(prediction_id, self.timeout_s if timeout_s is None else timeout_s, started=started, options=options)

    def fetch(self, ref: str) -> bytes:
        return self._downloads.fetch(ref)

    # -- resumable halves of edit() -------------------------------------------------------

    def model_for(self, options: EditOptions | None) -> tuple[Model, str]:
        """(the catalogue's model, the id to run: with its :version) for a call."""
        wanted = options.model if options is not None else None
        if wanted and wanted != self.default_model.id and known(wanted) and get(wanted).provider == "replicate":
            return get(wanted, self._prices), wanted
        return self.default_model, self.model

    def submit_edit(self, prompt: str, person: str, garments: Sequence[str], options: EditOptions | None = None) -> str:
        """Create the predictions (one per result asked for: the model makes one image per
        prediction); returns their ids joined with "+"."""
        model, model_id = self.model_for(options)
        chosen = options or EditOptions()
        arguments = model.arguments(Call(prompt, person, tuple(garments), chosen.categories, 1, chosen.aspect_ratio,
                                         chosen.same_as_person, chosen.resolution))
        owner_name, _, version = model_id.partition(":")
        ids = []
        try:
            for _ in range(options.num_images if options else 1):
                if version:
                    prediction = self.client.predictions.create(version=version, input=arguments)
                else:
                    prediction = self.client.predictions.create(model=owner_name, input=arguments)
                ids.append(prediction.id)
        except Exception as error:
            for prediction_id in ids:
                self._cancel(prediction_id)
            raise self._map_error(error) from None
        return "+".join(ids)

    def await_edit(self, prediction_ids: str, timeout_s: float, started: float | None = None, on_poll=None,
                   options: EditOptions | None = None) -> EditResult:
        started = time.perf_counter() if started is None else started
        deadline = time.monotonic() + timeout_s
        urls = []
        ids = prediction_ids.split("+")
        for n, prediction_id in enumerate(ids):
            try:
                urls.append(self._result_url(prediction_id, deadline, timeout_s, on_poll))
            except ProviderError:
                for other in ids[n + 1:]:  # one result failed: the rest would be paid for and never shown
                    self._cancel(other)
                raise
        return EditResult(ref=urls[0], duration_ms=(time.perf_counter() - started) * 1000, request_id=prediction_ids,
                          variants=tuple(urls), model=self.model_for(options)[0].id)

    # -- helpers --------------------------------------------------------------------------

    def _result_url(self, prediction_id: str, deadline: float, timeout_s: float, on_poll) -> str:
        """Wait for one prediction; its image URL, or the ProviderError saying why there is none."""
        try:
            prediction = self._wait(prediction_id, deadline, timeout_s, on_poll)
        except ProviderError:
            raise
        except Exception as error:
            raise self._map_error(error) from None
        if prediction.status == "failed":
            raise ProviderError("provider_rejected_input", detail=self._redact(str(prediction.error or "prediction failed"))[:300])
        if prediction.status == "canceled":
            raise ProviderError("provider_failed", reason="the prediction was cancelled at Replicate")
        url = first_image_url(prediction.output)
        if not url:
            raise ProviderError("no_image_returned")
        return url

    def _wait(self, prediction_id: str, deadline: float, timeout_s: float, on_poll=None):
        failed_polls = 0
        while True:
            if on_poll is not None:
                on_poll()
            with self._transport.until(deadline):
                try:
                    prediction = self.client.predictions.get(prediction_id)
                    failed_polls = 0
                except httpx.TimeoutException:
                    prediction = None
                except self._errors as error:
                    # A 500 on one status read is not an outage yet; three in a row are.
                    failed_polls += 1
                    if (error.status or 0) < 500 or failed_polls >= MAX_FAILED_POLLS:
                        raise
                    prediction = None
            if prediction is not None and prediction.status in ("succeeded", "failed", "canceled"):
                return prediction
            if prediction is not None:
                report("queued" if prediction.status == "starting" else "running")  # no position at Replicate
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(prediction_id)
                raise ProviderError("provider_timeout", http_status=504, seconds=timeout_s)
            time.sleep(min(POLL_INTERVAL_S, remaining))

    def _cancel(self, prediction_id: str) -> None:
        try:
            self.client.predictions.cancel(prediction_id)
        except Exception as error:  # it may have finished meanwhile
            log.warning("could not cancel Replicate prediction %s: %s", prediction_id, type(error).__name__)

    def _redact(self, text: str) -> str:
        return redact(text, self._token)

    def _map_error(self, error: Exception) -> ProviderError:
        """The client's exceptions -> the same user-facing errors as FAL's (the token never appears)."""
        status = getattr(error, "status", None) if isinstance(error, self._errors) else None
        detail = self._redact(str(getattr(error, "detail", None) or getattr(error, "title", None) or ""))
        return error_for(status, error, detail=detail, variable=self.key_variable, timeout_s=self.timeout_s, vendor="Replicate")
