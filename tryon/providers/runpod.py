"""The RunPod provider: the user's own serverless endpoint, over RunPod's documented queue protocol.

    POST {base}/{endpoint}/run           {"input": {...}, "policy": {...}} -> {"id", "status"}
    GET  {base}/{endpoint}/status/{id}                                      -> {"status", "output", "error"}
    POST {base}/{endpoint}/cancel/{id}

The endpoint's input/output contract is in docs/RUNPOD.md. RunPod has no file storage, so photos
travel as data: URLs inside the input (a normalized photo is ~100-300 KB; five fit well under the
/run payload limit of 10 MB). The `runpod` package is not used: its client pulls in boto3,
paramiko and fastapi[all] for three HTTP calls that httpx makes directly.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Sequence

import httpx

from ..config import Settings
from ..errors import ProviderError
from ..progress import report
from ..images import NormalizedImage
from .base import EditOptions, EditResult
from .download import ResultDownloader, all_image_urls
from .errors import error_for, redact

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
MAX_FAILED_POLLS = 3
MODEL_OPTIONS = {"num_images": 1, "output_format": "jpeg"}
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


class RunPodProvider:
    name = "runpod"
    is_preview = False
    key_variable = "RUNPOD_API_KEY"

    def __init__(self, settings: Settings):
        if not (settings.runpod_endpoint_id and settings.runpod_api_key):
            raise ValueError("the RunPod provider needs RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY")
        self._key = settings.runpod_api_key
        self.endpoint = settings.runpod_endpoint_id
        self.label = f"RunPod · endpoint {settings.runpod_endpoint_id}"
        self.upload_ttl_s = settings.upload_ttl_s  # a data URL never expires; keep the usual bound
        self.timeout_s = settings.request_timeout_s
        self.client = httpx.Client(
            base_url=f"{settings.runpod_base_url}/{settings.runpod_endpoint_id}",
            headers={"Authorization": f"Bearer {settings.runpod_api_key}"},
            timeout=httpx.Timeout(30.0, connect=10.0),
            transport=httpx.HTTPTransport(retries=2),  # connection failures only; no request is sent twice
        )
        self._downloads = ResultDownloader()

    # -- the Provider interface -----------------------------------------------------------

    def upload(self, image: NormalizedImage) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(image.jpeg).decode("ascii")

    def edit(self, prompt: str, person: str, garments: Sequence[str], timeout_s: float | None = None,
             options: EditOptions | None = None) -> EditResult:
        started = time.perf_counter()
        job_id = self.submit_edit(prompt, person, garments, options, timeout_s)
        return self.await_edit(job_id, self.timeout_s if timeout_s is None else timeout_s, started=started)

    def fetch(self, ref: str) -> bytes:
        return self._downloads.fetch(ref)

    # -- resumable halves of edit() -------------------------------------------------------

    def submit_edit(self, prompt: str, person: str, garments: Sequence[str], options: EditOptions | None = None,
                    timeout_s: float | None = None) -> str:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        options = options or EditOptions()
        body = {
            "input": {"prompt": prompt, "image_urls": [person, *garments], **MODEL_OPTIONS,
                      "num_images": options.num_images, "aspect_ratio": options.aspect_ratio, "resolution": options.resolution},
            # RunPod stops the run itself if we are gone (e.g. a crash) past our own deadline.
            "policy": {"executionTimeout": int(max(5.0, timeout_s) * 1000)},
        }
        answer = self._call("POST", "/run", json=body)
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise ProviderError("provider_failed", reason="RunPod answered /run without a job id")
        return job_id

    def await_edit(self, job_id: str, timeout_s: float, started: float | None = None, on_poll=None,
                   options: EditOptions | None = None) -> EditResult:
        started = time.perf_counter() if started is None else started
        deadline = time.monotonic() + timeout_s
        failed_polls = 0
        while True:
            if on_poll is not None:
                on_poll()
            try:
                status = self._call("GET", f"/status/{job_id}", timeout=max(0.5, min(10.0, deadline - time.monotonic())))
                failed_polls = 0
            except ProviderError as error:
                failed_polls += 1
                if error.code not in ("provider_unavailable", "provider_unreachable", "provider_timeout") or failed_polls >= MAX_FAILED_POLLS:
                    raise
                status = {}
            state = status.get("status")
            if state in DONE:
                break
            if state:
                report("queued" if state == "IN_QUEUE" else "running")  # RunPod gives no position
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(job_id)
                raise ProviderError("provider_timeout", http_status=504, seconds=timeout_s)
            time.sleep(min(POLL_INTERVAL_S, remaining))
        if state == "FAILED":
            raise ProviderError("provider_rejected_input", detail=self._redact(str(status.get("error") or "the endpoint failed"))[:300])
        if state == "TIMED_OUT":
            raise ProviderError("provider_timeout", http_status=504, seconds=timeout_s)
        if state == "CANCELLED":
            raise ProviderError("provider_failed", reason="the job was cancelled at RunPod")
        urls = all_image_urls(status.get("output"))
        if not urls:
            raise ProviderError("no_image_returned")
        return EditResult(ref=urls[0], duration_ms=(time.perf_counter() - started) * 1000, request_id=job_id, variants=urls)

    # -- helpers --------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ProviderError("provider_timeout", http_status=504, seconds=self.timeout_s) from None
        except httpx.TransportError:
            raise ProviderError("provider_unreachable") from None
        if response.status_code >= 400:
            raise error_for(response.status_code, None, detail=self._redact(response.text), variable=self.key_variable,
                            timeout_s=self.timeout_s, vendor="RunPod")
        try:
            return response.json()
        except ValueError:
            raise ProviderError("provider_failed", reason="RunPod answered with something other than JSON") from None

    def _cancel(self, job_id: str) -> None:
        try:
            self.client.post(f"/cancel/{job_id}")
        except httpx.HTTPError as error:
            log.warning("could not cancel RunPod job %s: %s", job_id, type(error).__name__)

    def _redact(self, text: str) -> str:
        return redact(text, self._key)
