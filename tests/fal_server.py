"""A local server that speaks the HTTP protocol fal-client 1.x uses, over HTTPS.

The real fal-client runs against it unmodified: point FAL_RUN_HOST and
FAL_QUEUE_RUN_HOST at it (fal-client reads them at import), its REST and CDN
URLs (tryon: TRYON_FAL_REST_URL / TRYON_FAL_CDN_URL), and SSL_CERT_FILE at the
certificate it made. One server plays every FAL host:

  POST /storage/auth/token?storage_type=fal-cdn-v3    -> {token, token_type, base_url, expires_at}
  POST /files/upload              (CDN, Bearer token)  -> {access_url}
  POST /storage/upload/initiate   (fallback upload)    -> {upload_url, file_url};  PUT upload_url
  GET  /files/<id>                                     -> the stored bytes
  POST /<owner>/<alias>[/<path>]  (queue submit)       -> {request_id, status_url, response_url, cancel_url}
  GET  /<owner>/<alias>/requests/<id>/status           -> IN_QUEUE (queue_position) -> IN_PROGRESS -> COMPLETED
  GET  /<owner>/<alias>/requests/<id>                  -> the model's output | 422 {detail: [...]}
  PUT  /<owner>/<alias>/requests/<id>/cancel           -> 202 CANCELLATION_REQUESTED | 400 already completed

The models (MODELS: each one's published input schema; OUTPUTS: its output shape), for example
  fal-ai/nano-banana-pro/edit, fal-ai/nano-banana-2/edit   -> {images: [{url, ...}], description}
  fal-ai/fashn/tryon/v1.6, fal-ai/bytedance/seedream/v4.5/edit -> {images: [{url, ...}]}
  fal-ai/kling/v1-5/kolors-virtual-try-on                  -> {image: {url, ...}}
Status, result and cancel live under owner/alias only (fal-client's AppId.from_endpoint_id drops the path):
fal-ai/fashn, fal-ai/kling, fal-ai/bytedance, fal-ai/nano-banana-pro, fal-ai/nano-banana-2.

As FAL does (its docs and fal-client 1.0.3's code; sources in docs/FAL.md):
- the input is checked against the model's published schema by the runner, so a bad
  field, an image it cannot download or a content-policy refusal comes from the
  *result* endpoint as 422 with pydantic's `detail` list, after the request ran;
- an infrastructure failure is COMPLETED with `error` and `error_type`, and its
  result answers 5xx with `error_type` and `X-Fal-Error-Type`;
- cancel answers 202 for a queued or running request (a running one only gets a
  signal, and may still finish) and 400 for a finished one;
- uploads and outputs expire when their lifecycle header says (404 after);
- a request is found only under the owner/alias it was submitted to.

The "model" returns a real picture: the person with each garment pasted in as
a labelled swatch, so a chain's result visibly carries every step. Faults on
demand (see Behaviour): latency, queueing, HTTP failures or hangs on submit,
upload, status and result, infrastructure errors, refusals, no image, a broken
result URL.

It holds up under hundreds of jobs at once as FAL's hosts do (tests/test_fal_server_load.py): a listen
backlog of 1024, each TLS handshake on its connection's thread (a stalled one dropped after
TLSServer.handshake_timeout_s), and each distinct picture drawn once (dress() caches it).

Run it alone (for the app started by hand, or the benchmarks):
    python tests/fal_server.py --port 8443 --latency 1.0
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import io
import json
import math
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw

# Each model's input schema, in one rule format: type, required, enum, minimum, maximum,
# exclusive_minimum, min_length, max_length, nullable, default; items (a list's item type);
# image_url (the value, or each item of a list, must be a file FAL can download: here, a file this
# server stores or a data URI; else 422 file_download_error); any_of (a union: the first member
# whose type fits checks the value); properties (an object's fields); required_unless_any (required
# only when none of the named fields is given); pixel_window (an {width,height} object's size rule).
# FAL validates at the runner: the request is queued and runs, and the *result* endpoint answers 422
# with pydantic's `detail` list. Fields a schema does not name are ignored (FAL's OpenAPI records
# have no `additionalProperties: false` and pydantic's default is extra="ignore"). Sources and dates
# per model below.

# fal-ai/nano-banana-pro/edit: FAL's OpenAPI record of the endpoint (https://fal.ai/models/fal-ai/nano-banana-pro/edit/api,
# updated 2026-06-18); fal-js libs/client/src/types/endpoints.ts @381105e (2026-08-02) agrees field for field;
# prompt 3..50000 and num_images 1..4 also in the OpenAPI snapshot kept in github keremk/renku (2025-12-25).
ASPECT_RATIOS = ["auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"]
NANO_BANANA_PRO_EDIT = {
    "prompt": {"type": str, "required": True, "min_length": 3, "max_length": 50000},
    "image_urls": {"type": list, "required": True, "items": str, "image_url": True},
    "num_images": {"type": int, "minimum": 1, "maximum": 4, "default": 1},
    "seed": {"type": int, "nullable": True},
    "aspect_ratio": {"type": str, "enum": ASPECT_RATIOS, "default": "auto"},
    "output_format": {"type": str, "enum": ["jpeg", "png", "webp"], "default": "png"},
    "resolution": {"type": str, "enum": ["1K", "2K", "4K"], "default": "1K"},
    "safety_tolerance": {"type": str, "enum": ["1", "2", "3", "4", "5", "6"], "default": "4"},
    "sync_mode": {"type": bool, "default": False},
    "limit_generations": {"type": bool, "default": True},
    "enable_web_search": {"type": bool, "default": False},
    "system_prompt": {"type": str, "default": ""},
}

# fal-ai/nano-banana-2/edit: fal-js endpoints.ts @381105e (2026-08-02): image_urls optional "when at least one of
# video_url, audio_url, or pdf_url is provided", resolution adds 0.5K, extreme aspect ratios, thinking_level,
# audio/pdf/video inputs (http(s)/data URL, max 15MB; video_url may be a YouTube URL, passed on undownloaded).
# num_images 1..4: https://fal.ai/models/fal-ai/nano-banana-2/edit/llms.txt (undated); prompt 3..50000 and
# seed/aspect_ratio nullable: OpenAPI snapshot in keremk/renku (2026-03-29).
NANO_BANANA_2_EDIT = {
    "prompt": {"type": str, "required": True, "min_length": 3, "max_length": 50000},
    # Not documented: the error when none of the four inputs is given (a pydantic model validator's value_error, chosen).
    "image_urls": {"type": list, "items": str, "image_url": True, "required_unless_any": ["video_url", "audio_url", "pdf_url"]},
    "num_images": {"type": int, "minimum": 1, "maximum": 4, "default": 1},
    "seed": {"type": int, "nullable": True},
    "aspect_ratio": {"type": str, "nullable": True, "enum": ASPECT_RATIOS + ["4:1", "1:4", "8:1", "1:8"], "default": "auto"},
    "output_format": {"type": str, "enum": ["jpeg", "png", "webp"], "default": "png"},
    "resolution": {"type": str, "enum": ["0.5K", "1K", "2K", "4K"], "default": "1K"},
    "safety_tolerance": {"type": str, "enum": ["1", "2", "3", "4", "5", "6"], "default": "4"},
    "sync_mode": {"type": bool, "default": False},
    "limit_generations": {"type": bool, "default": True},
    "enable_web_search": {"type": bool, "default": False},
    "system_prompt": {"type": str, "default": ""},
    "thinking_level": {"type": str, "enum": ["minimal", "high"]},
    "audio_url": {"type": str, "image_url": True},  # a file FAL downloads, like an image
    "pdf_url": {"type": str, "image_url": True},
    "video_url": {"type": str},  # not checked: a YouTube URL is passed to the model without a download
}

# fal-ai/fashn/tryon/v1.6: fal-js endpoints.ts @381105e (2026-08-02) (= @edd6d93, 2025-12-15) for the fields and
# enums; num_samples 1..4: https://fal.ai/models/fal-ai/fashn/tryon/v1.6/llms.txt (undated). FAL publishes no range
# for seed (FASHN's own API says 0..2^32-1; not FAL's, so not enforced) and no word on null (accepted, chosen).
FASHN_TRYON_V16 = {
    "model_image": {"type": str, "required": True, "image_url": True},  # "URL or base64 of the model image"
    "garment_image": {"type": str, "required": True, "image_url": True},
    "category": {"type": str, "enum": ["tops", "bottoms", "one-pieces", "auto"], "default": "auto"},
    "mode": {"type": str, "enum": ["performance", "balanced", "quality"], "default": "balanced"},
    "garment_photo_type": {"type": str, "enum": ["auto", "model", "flat-lay"], "default": "auto"},
    # 'none' is accepted for every account; FAL treats it as 'permissive' unless the account may disable filters.
    "moderation_level": {"type": str, "enum": ["none", "permissive", "conservative"], "default": "permissive"},
    "seed": {"type": int, "nullable": True},
    "num_samples": {"type": int, "minimum": 1, "maximum": 4, "default": 1},
    "segmentation_free": {"type": bool, "default": True},
    "sync_mode": {"type": bool, "default": False},
    "output_format": {"type": str, "enum": ["png", "jpeg"], "default": "png"},
}

# fal-ai/kling/v1-5/kolors-virtual-try-on: fal-js endpoints.ts @381105e (2026-08-02) and
# https://fal.ai/models/fal-ai/kling/v1-5/kolors-virtual-try-on/llms.txt (undated): two image URLs and sync_mode.
KLING_V15_KOLORS_TRYON = {
    "human_image_url": {"type": str, "required": True, "image_url": True},
    "garment_image_url": {"type": str, "required": True, "image_url": True},
    "sync_mode": {"type": bool, "default": False},
}

# fal-ai/bytedance/seedream/v4.5/edit: fal-js endpoints.ts @381105e (2026-08-02) for the fields;
# https://fal.ai/models/fal-ai/bytedance/seedream/v4.5/edit/llms.txt (undated) and the OpenAPI snapshot in
# keremk/renku (2026-03-29) for the ranges and image_size: an enum string or an ImageSize object whose width and
# height are integers with exclusiveMinimum 0 and maximum 14142. The size window ("Width and height must be between
# 1920 and 4096, or total number of pixels must be between 2560*1440 and 4096*4096") is only in the description;
# what FAL does outside it is not documented: the server refuses it (value_error, chosen).
SEEDREAM_IMAGE_SIZES = ["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9",
                        "auto_2K", "auto_4K"]
SEEDREAM_V45_EDIT = {
    "prompt": {"type": str, "required": True},
    "image_urls": {"type": list, "required": True, "items": str, "image_url": True},  # > 10: only the last 10 are used
    "image_size": {"any_of": [
        {"type": str, "enum": SEEDREAM_IMAGE_SIZES},
        {"type": dict, "title": "ImageSize",
         "properties": {"width": {"type": int, "exclusive_minimum": 0, "maximum": 14142, "default": 512},
                        "height": {"type": int, "exclusive_minimum": 0, "maximum": 14142, "default": 512}},
         "pixel_window": {"side": (1920, 4096), "total": (2560 * 1440, 4096 * 4096)}},
    ], "default": {"width": 2048, "height": 2048}},
    "num_images": {"type": int, "minimum": 1, "maximum": 6, "default": 1},
    # Not enforced (how FAL does is not documented): image inputs + outputs must not exceed 15.
    "max_images": {"type": int, "minimum": 1, "maximum": 6, "default": 1},
    "seed": {"type": int},
    "sync_mode": {"type": bool, "default": False},
    "enable_safety_checker": {"type": bool, "default": True},
}

MODELS = {
    "fal-ai/nano-banana-pro/edit": NANO_BANANA_PRO_EDIT,
    "fal-ai/nano-banana-2/edit": NANO_BANANA_2_EDIT,
    "fal-ai/fashn/tryon/v1.6": FASHN_TRYON_V16,
    "fal-ai/kling/v1-5/kolors-virtual-try-on": KLING_V15_KOLORS_TRYON,
    "fal-ai/bytedance/seedream/v4.5/edit": SEEDREAM_V45_EDIT,
}


@dataclass(frozen=True)
class Output:
    """How a model takes its pictures and answers (the output schemas, same sources as the inputs):
    person/garments: the fields holding them ("image_urls" alone: [0] is the person, the rest garments);
    count: the field giving the number of pictures (None: always one); shape: "images+description"
    ({images: [ImageFile], description}), "images" ({images: [...]}) or "image" ({image: Image});
    file: the fields of each picture ("ImageFile"/"Image": with width/height; "File": without);
    frame: the swatch outline, so a picture shows which model drew it."""

    person: str
    garments: str | None
    count: str | None
    shape: str
    file: str
    frame: tuple[int, int, int]
    last_inputs: int | None = None  # seedream: "If over 10 images are sent, only the last 10 will be used"


OUTPUTS = {
    "fal-ai/nano-banana-pro/edit": Output("image_urls", None, "num_images", "images+description", "ImageFile", (255, 0, 160)),
    "fal-ai/nano-banana-2/edit": Output("image_urls", None, "num_images", "images+description", "ImageFile", (255, 140, 0)),
    "fal-ai/fashn/tryon/v1.6": Output("model_image", "garment_image", "num_samples", "images", "File", (0, 200, 200)),
    "fal-ai/kling/v1-5/kolors-virtual-try-on": Output("human_image_url", "garment_image_url", None, "image", "Image", (150, 60, 255)),
    "fal-ai/bytedance/seedream/v4.5/edit": Output("image_urls", None, "num_images", "images", "Image", (255, 220, 0), last_inputs=10),
}
NGINX_502 = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (cert, key) for 127.0.0.1, localhost and cdn.public.test (a name
the URL-fetch tests resolve to 127.0.0.1 while treating it as public), made with openssl."""
    cert, key = directory / "fal-test-cert.pem", directory / "fal-test-key.pem"
    if not shutil.which("openssl"):
        raise RuntimeError("openssl is needed to make the FAL test server's certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:cdn.public.test"],
        check=True, capture_output=True,
    )
    return cert, key


@dataclass
class Behaviour:
    """What the server does next; tests change it between requests."""

    latency_s: float = 0.05  # simulated model time (IN_PROGRESS)
    queue_s: float = 0.0  # time spent IN_QUEUE first
    submit_failures: list[int] = field(default_factory=list)  # statuses for the next submits, one each
    upload_failures: list[int] = field(default_factory=list)  # statuses for the next CDN uploads, one each
    upload_latency_s: float = 0.0
    hang: bool = False  # jobs never complete
    no_image: bool = False  # completed jobs return no image (200, images: [])
    broken_url: bool = False  # completed jobs return an image URL that 404s
    completed_error: str | None = None  # infrastructure failure: COMPLETED with this error ...
    completed_error_type: str = "runner_disconnected"  # ... and this error_type (FAL's snake_case values)
    content_policy: bool = False  # the model refuses: the result is 422 content_policy_violation
    no_media_generated: bool = False  # the model made nothing: the result is 422 no_media_generated
    status_failures: list[int] = field(default_factory=list)  # statuses for the next status polls, one each
    result_failures: list[int] = field(default_factory=list)  # statuses for the next result fetches, one each
    status_hang_s: float = 0.0  # every status poll waits this long before answering
    finishes_after_cancel: bool = False  # a running request ignores the cancel signal and completes (and bills)
    queue_step_s: float = 0.1  # IN_QUEUE: queue_position drops by one every this many seconds
    # The same refusals for some models only (app ids as submitted, e.g. "fal-ai/fashn/tryon/v1.6"), so one
    # model can refuse while another answers; the global switches above still apply to every model.
    content_policy_models: set[str] = field(default_factory=set)
    no_media_generated_models: set[str] = field(default_factory=set)
    no_image_models: set[str] = field(default_factory=set)

    def refuses(self, app: str) -> bool:
        return self.content_policy or app in self.content_policy_models

    def makes_nothing(self, app: str) -> bool:
        return self.no_media_generated or app in self.no_media_generated_models

    def returns_no_image(self, app: str) -> bool:
        return self.no_image or app in self.no_image_models


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, or the byte count of a binary body


@dataclass
class Job:
    request_id: str
    app: str  # owner/alias[/path] as submitted
    arguments: dict[str, Any]
    created: float
    output_ttl_s: float | None = None  # from X-Fal-Object-Lifecycle-Preference
    start_timeout_s: float | None = None  # from X-Fal-Request-Timeout: time allowed to start running
    store_io: bool = True  # X-Fal-Store-IO: 0 asks FAL not to keep the payloads
    cancelled_at: float | None = None  # elapsed seconds when the cancel came
    result: dict[str, Any] | None = None
    drawn_by: str | None = None  # the model whose render() drew the result (its app id)

    @property
    def owner_alias(self) -> str:
        """What fal-client's AppId.from_endpoint_id keeps for status/result/cancel: owner/alias, the path dropped
        (fal-ai/fashn/tryon/v1.6 -> fal-ai/fashn; fal-ai/kling/v1-5/kolors-virtual-try-on -> fal-ai/kling)."""
        return "/".join(self.app.split("/")[:2])


class TLSServer(ThreadingHTTPServer):
    """An HTTPS server that holds up under hundreds of clients at once, as FAL's hosts do: a real listen
    backlog (socketserver's default of 5 drops SYNs in a burst, and the clients retry after a second or
    more), and each TLS handshake on the connection's own thread, not in accept() (a wrapped listening
    socket shakes hands serially, so one slow or stalled client holds up every other)."""

    request_queue_size = 1024  # listen(2)'s backlog; the kernel caps it at net.core.somaxconn
    daemon_threads = True
    handshake_timeout_s = 10.0  # a client that connects and stalls its handshake is dropped after this

    def __init__(self, address, handler, context: ssl.SSLContext):
        self.tls_context = context
        super().__init__(address, handler)

    def process_request_thread(self, request, client_address):
        """On the connection's thread: the TLS handshake (bounded by handshake_timeout_s), then the requests."""
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            request.settimeout(self.handshake_timeout_s)
            tls = self.tls_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except OSError:
            return self.shutdown_request(request)
        try:
            tls.do_handshake()
            tls.settimeout(None)  # as before: a kept-alive connection waits for its next request without a limit
        except OSError:  # a failed, stalled or abandoned handshake (ssl.SSLError and TimeoutError are OSErrors): dropped
            return self.shutdown_request(tls)
        super().process_request_thread(tls, client_address)


class FalTestServer:
    def __init__(self, key: str = "test-fal-key", port: int = 0, cert: Path | None = None, key_file: Path | None = None):
        self.key = key
        self.other_keys: set[str] = set()  # more accounts' keys (a visitor bringing their own)
        self.behaviour = Behaviour()
        self.requests: list[Recorded] = []
        self.files: dict[str, tuple[bytes, str, float | None]] = {}  # id -> (data, type, expires at)
        self.clock_offset_s = 0.0  # advance() moves the server's clock, so expiry can be tested
        self.pending_uploads: dict[str, float | None] = {}  # initiated uploads -> their lifecycle
        self.jobs: dict[str, Job] = {}
        self.tokens: set[str] = set()
        self._lock = threading.Lock()
        self._tmp = None
        if cert is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fal-test-")
            cert, key_file = make_certificate(Path(self._tmp.name))
        self.cert = cert
        handler = type("Handler", (_Handler,), {"fal": self})
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key_file))
        # The listening socket stays plain: each connection's TLS handshake runs on its own thread (see TLSServer).
        self.httpd = TLSServer(("127.0.0.1", port), handler, context)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"https://{self.host}"
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "FalTestServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fal-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def reset(self) -> None:
        """Default behaviour, no recorded requests or jobs. Stored files stay, as on a real CDN."""
        with self._lock:
            self.behaviour = Behaviour()
            self.requests.clear()
            self.jobs.clear()
            self.clock_offset_s = 0.0
            self.other_keys.clear()

    def now(self) -> float:
        return time.monotonic() + self.clock_offset_s

    # -- a request's life -----------------------------------------------------------------

    def cancelled(self, job: Job) -> bool:
        """Cancelled in the queue: gone. Cancelled while running: stopped, unless the app ignores the signal."""
        if job.cancelled_at is None:
            return False
        return job.cancelled_at < self.behaviour.queue_s or not self.behaviour.finishes_after_cancel

    def _state(self, job: Job) -> str:
        if self.cancelled(job):
            return "COMPLETED"
        behaviour = self.behaviour
        elapsed = self.now() - job.created
        if elapsed < behaviour.queue_s:
            return "IN_QUEUE"
        if behaviour.hang or elapsed < behaviour.queue_s + behaviour.latency_s:
            return "IN_PROGRESS"
        return "COMPLETED"

    def position(self, job: Job) -> int:
        """IN_QUEUE's queue_position: counts down as the queue moves."""
        waiting = self.behaviour.queue_s - (self.now() - job.created)
        return max(0, math.ceil(waiting / self.behaviour.queue_step_s) - 1) if waiting > 0 else 0

    def advance(self, seconds: float) -> None:
        """Move the server's clock: files whose lifecycle has passed answer 404."""
        self.clock_offset_s += seconds

    def env(self, **extra: str) -> dict[str, str]:
        """The environment that points tryon (and fal-client) at this server."""
        return {
            "FAL_KEY": self.key,
            "FAL_RUN_HOST": self.host,
            "FAL_QUEUE_RUN_HOST": self.host,
            "TRYON_FAL_REST_URL": self.url,
            "TRYON_FAL_CDN_URL": self.url,
            "SSL_CERT_FILE": str(self.cert),
            "TRYON_PROVIDER": "fal",
            **extra,
        }

    # -- what tests look at ---------------------------------------------------------------

    def received(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    @property
    def uploads(self) -> list[Recorded]:
        return [r for r in self.received("POST", "/files/upload")] + self.received("PUT", "/uploads/")

    @property
    def submits(self) -> list[Recorded]:
        return [r for r in self.received("POST") if r.path.count("/") >= 2 and not r.path.startswith(("/files", "/storage"))]

    def submits_for(self, model_id: str) -> list[Recorded]:
        """The recorded submits to one model (its full endpoint id, e.g. "fal-ai/fashn/tryon/v1.6")."""
        return [r for r in self.submits if r.path.strip("/") == model_id.strip("/")]

    def jobs_for(self, model_id: str) -> list[Job]:
        with self._lock:
            return [job for job in self.jobs.values() if job.app == model_id.strip("/")]

    @property
    def cancels(self) -> list[Recorded]:
        return [r for r in self.received("PUT") if r.path.endswith("/cancel")]

    # -- the model ------------------------------------------------------------------------

    def store(self, data: bytes, content_type: str, suffix: str = "jpg", ttl_s: float | None = None) -> str:
        file_id = f"{uuid.uuid4().hex}.{suffix}"
        with self._lock:
            self.files[file_id] = (data, content_type, None if ttl_s is None else self.now() + ttl_s)
        return f"{self.url}/files/{file_id}"

    def stored(self, file_id: str) -> tuple[bytes, str] | None:
        """A file, unless it never existed or its lifecycle has passed."""
        item = self.files.get(file_id)
        if item is None or (item[2] is not None and self.now() >= item[2]):
            return None
        return item[0], item[1]

    def expiry_of(self, url: str) -> float | None:
        """Seconds from now until the file at `url` expires (None: kept for good)."""
        item = self.files.get(urlsplit(url).path[len("/files/"):])
        return None if item is None or item[2] is None else item[2] - self.now()

    def file_for(self, url: str) -> bytes | None:
        if url.startswith("data:"):  # FAL accepts images inlined as data URIs too (what a naive client sends)
            header, _, payload = url.partition(",")
            try:
                return base64.b64decode(payload) if header.endswith(";base64") else None
            except ValueError:
                return None
        parts = urlsplit(url)
        if parts.netloc != self.host or not parts.path.startswith("/files/"):
            return None
        item = self.stored(parts.path[len("/files/"):])
        return item[0] if item else None

    def render(self, job: Job) -> dict[str, Any]:
        """A 'generated' picture: the person, with each garment pasted in as a labelled swatch, answered in
        the output shape of the model the job was submitted to (see OUTPUTS)."""
        out = OUTPUTS[job.app]
        person_url, garment_urls = model_inputs(job.app, job.arguments)
        person_bytes = self.file_for(person_url) if person_url else None
        garment_bytes = [data for data in (self.file_for(u) for u in garment_urls) if data is not None]
        count = int(job.arguments.get(out.count, 1)) if out.count else 1
        files = []
        for variant in range(count):
            jpeg, (width, height) = dress(person_bytes if person_bytes is not None else blank_person(),
                                          garment_bytes, outline=out.frame, variant=variant)
            url = self.store(jpeg, "image/jpeg", ttl_s=job.output_ttl_s)
            files.append(output_file(out.file, url, len(jpeg), width, height))
        job.drawn_by = job.app
        return shaped(out, files, f"dressed in {len(garment_bytes)} garment(s)")


def model_inputs(app: str, arguments: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(the person's URL, the garments' URLs) from a model's own fields."""
    out = OUTPUTS[app]
    if out.garments is None:  # image_urls: the person first, then the garments
        urls = list(arguments.get(out.person) or [])
        if out.last_inputs:
            urls = urls[-out.last_inputs:]
        return (urls[0] if urls else None), urls[1:]
    return arguments.get(out.person), [arguments[out.garments]] if arguments.get(out.garments) else []


def output_file(kind: str, url: str, size: int, width: int, height: int) -> dict[str, Any]:
    """One picture as the model's output schema has it: FAL's ImageFile/Image carry width and height, File does not."""
    name = url.rsplit("/", 1)[-1]
    if kind == "ImageFile":  # as this server has always answered for nano-banana-pro
        return {"url": url, "content_type": "image/jpeg", "file_name": name, "width": width, "height": height}
    if kind == "File":
        return {"url": url, "content_type": "image/jpeg", "file_name": name, "file_size": size}
    return {"url": url, "content_type": "image/jpeg", "file_name": name, "file_size": size, "width": width, "height": height}


def shaped(out: Output, files: list[dict[str, Any]], description: str) -> dict[str, Any]:
    """The result body in the model's output shape."""
    if out.shape == "image":  # kling kolors: a single `image` (required by its schema)
        return {"image": files[0] if files else None}
    if out.shape == "images+description":
        return {"images": files, "description": description}
    return {"images": files}


@functools.lru_cache(maxsize=1)
def blank_person() -> bytes:
    """The canvas for a nano-banana-2 request that sent no image (only a video/audio/pdf input)."""
    buffer = io.BytesIO()
    Image.new("RGB", (512, 512), (200, 200, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


# dress()'s pictures by what they are drawn from (digests of the inputs, the frame, the variant): decoding,
# drawing and encoding a JPEG costs tens of milliseconds, so a load test's thousand looks at the same photos
# would make this server's own CPU the bottleneck. The same inputs give the same bytes, as drawing them did.
_DRESSED: OrderedDict[tuple, tuple[bytes, tuple[int, int]]] = OrderedDict()
_DRESSED_MAX = 64
_DRESSED_LOCK = threading.Lock()


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def dress(person: bytes, garments: list[bytes], outline: tuple[int, int, int] = (255, 0, 160),
          variant: int = 0) -> tuple[bytes, tuple[int, int]]:
    """The test 'model' of every vendor server: (JPEG of the person with each garment pasted in as a
    framed swatch, its size). The frame colour tells which vendor drew it; a variant gets a small
    mark of its own in the bottom-left corner, so variants differ. Drawn once per distinct input (cached)."""
    key = (_digest(person), tuple(_digest(g) for g in garments), tuple(outline), variant)
    with _DRESSED_LOCK:
        found = _DRESSED.get(key)
        if found is not None:
            _DRESSED.move_to_end(key)
            return found
    found = _draw(person, garments, outline, variant)
    with _DRESSED_LOCK:
        _DRESSED[key] = found
        while len(_DRESSED) > _DRESSED_MAX:
            _DRESSED.popitem(last=False)
    return found


def _draw(person: bytes, garments: list[bytes], outline: tuple[int, int, int], variant: int) -> tuple[bytes, tuple[int, int]]:
    picture = Image.open(io.BytesIO(person)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    if variant:
        draw.rectangle([8, picture.height - 8 - 6 * variant, 8 + 6 * variant, picture.height - 8], fill=(variant * 50 % 256, 90, 200))
    side = max(24, picture.width // 5)
    for n, data in enumerate(garments):
        swatch = Image.open(io.BytesIO(data)).convert("RGB")
        swatch.thumbnail((side, side))
        x, y = picture.width - side - 8, 8 + n * (side + 8)
        picture.paste(swatch, (x, y))
        draw.rectangle([x - 2, y - 2, x + swatch.width + 1, y + swatch.height + 1], outline=outline, width=3)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue(), picture.size


class _Handler(BaseHTTPRequestHandler):
    fal: FalTestServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the real hosts do
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this each answer waits ~40 ms for an ACK

    def log_message(self, *args):  # keep test output clean
        pass

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, status: int, body: Any = None, content_type: str = "application/json", headers: dict | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, detail: Any = None, error_type: str | None = None):
        if status in (502, 503, 504) and error_type is None:  # what an overloaded ingress answers: fal-client retries it
            return self._send(status, NGINX_502.replace(b"502 Bad Gateway", f"{status} Error".encode()), "text/html")
        default = {401: "Unauthorized: invalid key", 403: "Forbidden", 429: "Rate limit exceeded, retry later",
                   500: "Internal server error",
                   422: [{"loc": ["body", "image_urls", 0], "msg": "Could not download the image", "type": "file_download_error"}]}
        # x-fal-request-id marks an answer from the app itself (not the ingress): fal-client does not retry it.
        headers = {"x-fal-request-id": uuid.uuid4().hex}
        body = {"detail": detail or default.get(status, "error")}
        if error_type:
            body["error_type"] = error_type
            headers["X-Fal-Error-Type"] = error_type
        return self._send(status, body, headers=headers)

    def _read(self) -> tuple[bytes, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                return raw, json.loads(raw or b"null")
            except ValueError:
                return raw, None
        return raw, len(raw)

    def _record(self, body: Any) -> tuple[str, dict]:
        parts = urlsplit(self.path)
        record = Recorded(self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body)
        with self.fal._lock:
            self.fal.requests.append(record)
        return parts.path, record.query

    def _key_ok(self) -> bool:
        return self.headers.get("Authorization") in {f"Key {key}" for key in (self.fal.key, *self.fal.other_keys)}

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self):
        path, query = self._record(None)
        if path == "/redirect":  # for URL-fetch tests: a hop to wherever ?to= says
            return self._send(302, b"", "text/plain", headers={"Location": query.get("to", ["/"])[0]})
        if path == "/slow":
            time.sleep(float(query.get("s", ["3"])[0]))
            return self._send(200, b"late", "text/plain")
        if path.startswith("/files/"):
            item = self.fal.stored(path[len("/files/"):])
            return self._send(200, item[0], item[1]) if item else self._error(404, "File not found")
        if "/requests/" in path:
            if not self._key_ok():
                return self._error(401)
            job, tail = self._job_at(path)
            if job is None:
                return self._error(404, "Request not found")
            return self._status(job) if tail == "status" else self._result(job)
        return self._error(404, "Not found")

    def _job_at(self, path: str) -> tuple[Job | None, str]:
        """The job a /<owner>/<alias>/requests/<id>[/<tail>] path names: only under the app it was submitted to."""
        app, _, rest = path.strip("/").partition("/requests/")
        request_id, _, tail = rest.partition("/")
        job = self.fal.jobs.get(request_id)
        return (job if job is not None and job.owner_alias == app else None), tail

    def do_PUT(self):
        raw, body = self._read()
        path, _ = self._record(body)
        if path.startswith("/uploads/"):
            file_id = path[len("/uploads/"):]
            ttl = self.fal.pending_uploads.pop(file_id, None)
            with self.fal._lock:
                self.fal.files[file_id] = (raw, self.headers.get("Content-Type", "application/octet-stream"),
                                           None if ttl is None else self.fal.now() + ttl)
            return self._send(200, {})
        if path.endswith("/cancel") and "/requests/" in path:
            if not self._key_ok():
                return self._error(401)
            job, _ = self._job_at(path)
            if job is None:
                return self._error(404, "Request not found")
            if self.fal._state(job) == "COMPLETED":
                return self._error(400, "Request already completed")  # FAL's ALREADY_COMPLETED
            job.cancelled_at = job.cancelled_at or self.fal.now() - job.created
            return self._send(202, {"status": "CANCELLATION_REQUESTED"})
        return self._error(404, "Not found")

    def do_POST(self):
        raw, body = self._read()
        path, query = self._record(body)
        behaviour = self.fal.behaviour
        if path == "/storage/auth/token":
            if not self._key_ok():
                return self._error(401)
            token = uuid.uuid4().hex
            self.fal.tokens.add(token)
            expires = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
            return self._send(200, {"token": token, "token_type": "Bearer", "base_url": self.fal.url, "expires_at": expires})
        if path == "/files/upload":
            auth = self.headers.get("Authorization", "")
            if not (auth.startswith("Bearer ") and auth[7:] in self.fal.tokens):
                return self._error(401)
            if behaviour.upload_latency_s:
                time.sleep(behaviour.upload_latency_s)
            if behaviour.upload_failures:
                return self._error(behaviour.upload_failures.pop(0))
            content_type = self.headers.get("Content-Type", "application/octet-stream")
            ttl = lifecycle_seconds(self.headers.get("X-Fal-Object-Lifecycle"))
            return self._send(200, {"access_url": self.fal.store(raw, content_type, ttl_s=ttl)})
        if path == "/storage/upload/initiate":
            if not self._key_ok():
                return self._error(401)
            file_id = f"{uuid.uuid4().hex}.jpg"
            self.fal.pending_uploads[file_id] = lifecycle_seconds(self.headers.get("X-Fal-Object-Lifecycle-Preference"))
            return self._send(200, {"upload_url": f"{self.fal.url}/uploads/{file_id}", "file_url": f"{self.fal.url}/files/{file_id}"})
        return self._submit(path, body)

    # -- the queue ------------------------------------------------------------------------

    def _submit(self, path: str, body: Any):
        if not self._key_ok():
            return self._error(401)
        behaviour = self.fal.behaviour
        if behaviour.submit_failures:
            return self._error(behaviour.submit_failures.pop(0))
        app = path.strip("/")
        if app not in MODELS:
            return self._error(404, f"Application '{app}' not found")
        request_id = uuid.uuid4().hex
        # The input is not checked here: FAL queues it, the runner validates it (see _result).
        job = Job(request_id, app, body if isinstance(body, dict) else {"_raw": body}, self.fal.now(),
                  output_ttl_s=lifecycle_seconds(self.headers.get("X-Fal-Object-Lifecycle-Preference")),
                  store_io=self.headers.get("X-Fal-Store-IO") != "0",
                  start_timeout_s=float(self.headers["X-Fal-Request-Timeout"]) if self.headers.get("X-Fal-Request-Timeout") else None)
        with self.fal._lock:
            self.fal.jobs[request_id] = job
        base = f"{self.fal.url}/{job.owner_alias}/requests/{request_id}"
        return self._send(200, {"request_id": request_id, "status_url": base + "/status", "response_url": base,
                                "cancel_url": base + "/cancel", "queue_position": self.fal.position(job)})

    def _status(self, job: Job):
        behaviour = self.fal.behaviour
        if behaviour.status_hang_s:
            time.sleep(behaviour.status_hang_s)
        if behaviour.status_failures:
            return self._error(behaviour.status_failures.pop(0))
        state = self.fal._state(job)
        if state == "IN_QUEUE" and job.start_timeout_s is not None and self.fal.now() - job.created > job.start_timeout_s:
            # start_timeout passed before a runner took it: FAL drops it (fal-client never retries this 504).
            return self._send(504, {"detail": "Request timed out before it started"},
                              headers={"X-Fal-Request-Timeout-Type": "user", "x-fal-request-id": job.request_id})
        if state == "IN_QUEUE":
            return self._send(202, {"status": "IN_QUEUE", "queue_position": self.fal.position(job), "response_url": ""})
        if state == "IN_PROGRESS":
            return self._send(202, {"status": "IN_PROGRESS", "logs": []})
        body = {"status": "COMPLETED", "logs": [], "metrics": {"inference_time": behaviour.latency_s}}
        if self.fal.cancelled(job):
            body.update(error="Request cancelled by client", error_type="client_cancelled")
        elif behaviour.completed_error:
            body.update(error=behaviour.completed_error, error_type=behaviour.completed_error_type)
        return self._send(200, body)

    def _result(self, job: Job):
        behaviour = self.fal.behaviour
        if behaviour.result_failures:
            return self._error(behaviour.result_failures.pop(0))
        if self.fal._state(job) != "COMPLETED":
            return self._error(400, "Request is still in progress")
        if self.fal.cancelled(job):
            return self._error(499, "Request cancelled by client", error_type="client_cancelled")
        if behaviour.completed_error:
            status = INFRASTRUCTURE_STATUS.get(behaviour.completed_error_type, 500)
            return self._error(status, behaviour.completed_error, error_type=behaviour.completed_error_type)
        problems = validate(MODELS[job.app], job.arguments, self.fal.file_for)
        if problems:
            return self._error(422, problems)
        out = OUTPUTS[job.app]
        if behaviour.refuses(job.app):
            # Where FAL points the refusal for a model without image_urls is not documented: its person field.
            return self._error(422, [{"loc": ["body", out.person], "type": "content_policy_violation",
                                      "msg": "The content could not be processed because it contained material flagged by a content checker."}])
        if behaviour.makes_nothing(job.app):
            return self._error(422, [{"loc": ["body"], "type": "no_media_generated",
                                      "msg": "The model did not generate the expected output for this prompt."}])
        if behaviour.returns_no_image(job.app):
            # 200 with no picture. For kling, whose schema requires `image`, what FAL answers is not documented: image null.
            return self._send(200, shaped(out, [], "I could not find a person to dress."))
        if behaviour.broken_url:
            broken = {"url": f"{self.fal.url}/files/expired-{job.request_id}.jpg"}
            return self._send(200, shaped(out, [broken], ""))
        if job.result is None:
            job.result = self.fal.render(job)
        return self._send(200, job.result)


# error_type -> the HTTP status FAL's docs give for it (https://docs.fal.ai/model-apis/errors).
INFRASTRUCTURE_STATUS = {"runner_disconnected": 503, "runner_server_error": 500, "request_timeout": 504,
                         "runner_startup_timeout": 504, "internal_error": 500}


def lifecycle_seconds(header: str | None) -> float | None:
    """`{"expiration_duration_seconds": N}` (fal-client's lifecycle JSON) -> N."""
    try:
        value = json.loads(header).get("expiration_duration_seconds") if header else None
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


TYPE_NAMES = {str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "dictionary"}


def _fits(kind: type, value: Any) -> bool:
    return isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))


def validate(schema: dict[str, dict], body: dict[str, Any], file_for) -> list[dict[str, Any]]:
    """A model's input checked as FAL's pydantic models check it: [{loc, msg, type}], empty if fine.
    Fields the schema does not name are ignored (pydantic's extra="ignore")."""
    problems: list[dict[str, Any]] = []

    def problem(loc, msg, kind):
        problems.append({"loc": ["body", *loc], "msg": msg, "type": kind})

    if "_raw" in body:
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    for name, rule in schema.items():
        if name not in body:
            if rule.get("required"):
                problem((name,), "Field required", "missing")
            elif rule.get("required_unless_any") and not any(body.get(other) for other in rule["required_unless_any"]):
                others = ", ".join(rule["required_unless_any"])
                problem((), f"Value error, {name} is required unless one of {others} is given", "value_error")
            continue
        _check(rule, body[name], (name,), problem, file_for)
    return problems


def _check(rule: dict, value: Any, loc: tuple, problem, file_for) -> None:
    """One value against one rule (recursing into any_of members and object properties)."""
    if value is None and rule.get("nullable"):
        return
    if "any_of" in rule:  # a union: the member whose type fits decides (pydantic's smart mode, near enough)
        member = next((m for m in rule["any_of"] if _fits(m["type"], value)), None)
        if member is None:
            names = " or ".join(f"a valid {TYPE_NAMES[m['type']]}" for m in rule["any_of"])
            return problem(loc, f"Input should be {names}", "union_type")
        return _check(member, value, loc, problem, file_for)
    kind = rule["type"]
    if not _fits(kind, value):
        name = TYPE_NAMES[kind]
        return problem(loc, f"Input should be a valid {name}", f"{'dict' if kind is dict else name}_type")
    if "enum" in rule and value not in rule["enum"]:
        problem(loc, "Input should be " + ", ".join(f"'{v}'" for v in rule["enum"]), "literal_error")
    if "minimum" in rule and value < rule["minimum"]:
        problem(loc, f"Input should be greater than or equal to {rule['minimum']}", "greater_than_equal")
    if "exclusive_minimum" in rule and value <= rule["exclusive_minimum"]:
        problem(loc, f"Input should be greater than {rule['exclusive_minimum']}", "greater_than")
    if "maximum" in rule and value > rule["maximum"]:
        problem(loc, f"Input should be less than or equal to {rule['maximum']}", "less_than_equal")
    if "min_length" in rule and len(value) < rule["min_length"]:
        problem(loc, f"String should have at least {rule['min_length']} characters", "string_too_short")
    if "max_length" in rule and len(value) > rule["max_length"]:
        problem(loc, f"String should have at most {rule['max_length']} characters", "string_too_long")
    if kind is dict and "properties" in rule:
        found: list = []

        def noted(*args):
            found.append(args)
            problem(*args)

        for field_name, field_rule in rule["properties"].items():
            if field_name in value:
                _check(field_rule, value[field_name], (*loc, field_name), noted, file_for)
            elif field_rule.get("required"):
                noted((*loc, field_name), "Field required", "missing")
        fine = not found  # the size window is checked only on a valid object
        if fine and "pixel_window" in rule:
            props = rule["properties"]
            width = value.get("width", props["width"].get("default"))
            height = value.get("height", props["height"].get("default"))
            (low, high), (least, most) = rule["pixel_window"]["side"], rule["pixel_window"]["total"]
            if not (low <= width <= high and low <= height <= high) and not (least <= width * height <= most):
                problem(loc, f"Value error, width and height must be between {low} and {high}, or the total number of "
                             f"pixels between {least} and {most}", "value_error")
    if rule.get("image_url"):
        urls = list(enumerate(value)) if kind is list else [(None, value)]
        for i, url in urls:
            if not isinstance(url, str) or file_for(url) is None:
                where = loc if i is None else (*loc, i)
                problem(where, f"Could not download the image at {str(url)[:80]}", "file_download_error")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the FAL-protocol test server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--key", default="test-fal-key")
    parser.add_argument("--latency", type=float, default=1.0, help="simulated model seconds per call")
    args = parser.parse_args()
    server = FalTestServer(key=args.key, port=args.port).start()
    server.behaviour.latency_s = args.latency
    print("FAL test server ready; run the app with:")
    for name, value in server.env().items():
        print(f"  export {name}={value}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
