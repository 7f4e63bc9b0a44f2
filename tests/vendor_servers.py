"""Local servers that speak Replicate's and RunPod's HTTP APIs, for the real clients to run against.

    ReplicateTestServer (the official `replicate` client; REPLICATE_BASE_URL=<url>):
      POST /v1/files                      multipart "content"  -> File {id, urls: {get}, ...}
      GET  /v1/files/<id>/download        (token)              -> the bytes
      POST /v1/models/<owner>/<name>/predictions {input}      -> Prediction {id, status: starting}
      POST /v1/predictions                {version, input}     -> Prediction
      GET  /v1/predictions/<id>                                -> starting -> processing -> succeeded
      POST /v1/predictions/<id>/cancel                         -> Prediction {status: canceled}
      Errors are RFC 7807 problem details: {title, detail, status}.

    RunPodTestServer (RunPod serverless; RUNPOD_ENDPOINT_BASE_URL=<url>/v2):
      POST /v2/<endpoint>/run             {input, policy}      -> {id, status: IN_QUEUE}
      GET  /v2/<endpoint>/status/<id>                          -> IN_QUEUE -> IN_PROGRESS -> COMPLETED {output}
      POST /v2/<endpoint>/cancel/<id>                          -> {id, status: CANCELLED}

Both "models" dress the person like the FAL test server (swatches pasted in, framed in the vendor's
colour) and take the same faults on demand (Behaviour). Plain HTTP on 127.0.0.1: both clients take
any base URL.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from fal_server import dress

REPLICATE_FRAME = (0, 160, 255)
RUNPOD_FRAME = (120, 220, 0)


@dataclass
class Behaviour:
    latency_s: float = 0.05  # model time
    queue_s: float = 0.0
    submit_failures: list[int] = field(default_factory=list)  # statuses for the next submits, one each
    status_failures: list[int] = field(default_factory=list)  # statuses for the next status reads, one each
    upload_failures: list[int] = field(default_factory=list)
    hang: bool = False  # work never finishes
    fail_with: str | None = None  # the run ends as failed with this error
    no_image: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Work:
    id: str
    input: dict[str, Any]
    created: float
    cancelled: bool = False
    output: Any = None
    model: str = ""
    version: str = ""
    policy: Any = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class VendorServer:
    """What both vendors share: HTTP plumbing, recording, stored files, the model and its faults."""

    frame = (0, 0, 0)

    def __init__(self, token: str):
        self.token = token
        self.behaviour = Behaviour()
        self.requests: list[Recorded] = []
        self.files: dict[str, bytes] = {}
        self.work: dict[str, Work] = {}
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"vendor": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        with self.lock:
            self.behaviour = Behaviour()
            self.requests.clear()
            self.work.clear()

    def received(self, method: str | None = None, path_part: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and path_part in r.path]

    # -- the model ------------------------------------------------------------------------

    def store(self, data: bytes) -> str:
        file_id = uuid.uuid4().hex
        with self.lock:
            self.files[file_id] = data
        return file_id

    def read_url(self, url: str) -> bytes | None:
        """An input image: a data: URL, one of our files, or a file on another local test server."""
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            try:
                return base64.b64decode(payload) if header.endswith(";base64") else None
            except ValueError:
                return None
        parts = urlsplit(url)
        if parts.hostname != "127.0.0.1":
            return None  # never the internet
        if url.startswith(self.url):
            file_id = parts.path.strip("/").split("/")[-2 if parts.path.endswith("/download") else -1]
            return self.files.get(file_id)
        try:
            insecure = ssl._create_unverified_context()  # the FAL test server's certificate; loopback only
            with urllib.request.urlopen(url, timeout=5, context=insecure) as response:
                return response.read()
        except OSError:
            return None

    def state(self, work: Work) -> str:
        """'queued', 'running', 'done', 'cancelled' from the clock and the behaviour."""
        elapsed = time.monotonic() - work.created
        if work.cancelled:
            return "cancelled"
        if elapsed < self.behaviour.queue_s:
            return "queued"
        if self.behaviour.hang or elapsed < self.behaviour.queue_s + self.behaviour.latency_s:
            return "running"
        return "done"

    def render(self, images: list[str], variant: int = 0) -> str:
        """Dress the person; the URL of the picture. Each prediction or variant differs a little."""
        person, *garments = (self.read_url(u) for u in images)
        jpeg, _ = dress(person, garments, outline=self.frame, variant=variant or len(self.files))
        return self.file_url(self.store(jpeg))

    def file_url(self, file_id: str) -> str:
        return f"{self.url}/files/{file_id}"

    def authorised(self, headers) -> bool:
        return headers.get("Authorization") == f"Bearer {self.token}"

    def handle(self, handler: "_Handler", method: str, path: str, body: Any, raw: bytes):
        raise NotImplementedError


# The enums of Replicate's google models (their API schemas on replicate.com, 2026; docs/PROVIDERS.md):
# nano-banana takes no resolution; nano-banana-pro does, and defaults to 2K.
_RATIOS = ["match_input_image", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
REPLICATE_SCHEMAS = {
    "google/nano-banana": {"aspect_ratio": _RATIOS, "output_format": ["jpg", "png"]},
    "google/nano-banana-pro": {"aspect_ratio": _RATIOS, "output_format": ["jpg", "png"], "resolution": ["1K", "2K", "4K"],
                               "safety_filter_level": ["block_low_and_above", "block_medium_and_above", "block_only_high"]},
}


class ReplicateTestServer(VendorServer):
    frame = REPLICATE_FRAME

    def __init__(self, token: str = "r8_test_token"):
        super().__init__(token)

    def env(self, **extra: str) -> dict[str, str]:
        return {"REPLICATE_API_TOKEN": self.token, "REPLICATE_BASE_URL": self.url, "TRYON_PROVIDER": "replicate", **extra}

    @property
    def predictions(self) -> list[Recorded]:
        return [r for r in self.received("POST", "/predictions") if not r.path.endswith("/cancel")]

    @property
    def cancels(self) -> list[Recorded]:
        return [r for r in self.received("POST") if r.path.endswith("/cancel")]

    def problem(self, handler, status: int, detail: str, title: str = "Error"):
        handler.send(status, {"title": title, "detail": detail, "status": status}, "application/problem+json")

    def handle(self, handler, method, path, body, raw):
        if path.startswith("/files/") and method == "GET":  # the delivery CDN: public
            data = self.files.get(path.rsplit("/", 1)[-1])
            return handler.send(200, data, "image/jpeg") if data else self.problem(handler, 404, "Not found")
        if not self.authorised(handler.headers):
            return self.problem(handler, 401, "You did not pass a valid authentication token", "Unauthenticated")
        if path == "/v1/files" and method == "POST":
            return self.create_file(handler, raw)
        if path.startswith("/v1/files/") and path.endswith("/download"):
            data = self.files.get(path.split("/")[3])
            return handler.send(200, data, "image/jpeg") if data else self.problem(handler, 404, "File not found")
        if method == "POST" and (path == "/v1/predictions" or (path.startswith("/v1/models/") and path.endswith("/predictions"))):
            return self.create_prediction(handler, path, body)
        if path.startswith("/v1/predictions/"):
            work = self.work.get(path.split("/")[3])
            if work is None:
                return self.problem(handler, 404, "Prediction not found")
            if method == "POST" and path.endswith("/cancel"):
                work.cancelled = True
                return handler.send(200, self.prediction(work))
            if self.behaviour.status_failures:
                return self.problem(handler, self.behaviour.status_failures.pop(0), "Internal server error")
            return handler.send(200, self.prediction(work))
        return self.problem(handler, 404, "Not found")

    def create_file(self, handler, raw: bytes):
        if self.behaviour.upload_failures:
            return self.problem(handler, self.behaviour.upload_failures.pop(0), "Upload failed")
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + handler.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        content = parts.get("content")
        if content is None:
            return self.problem(handler, 400, "Missing multipart field: content")
        data = content.get_payload(decode=True)
        file_id = self.store(data)
        return handler.send(201, {
            "id": file_id, "name": content.get_filename() or "file", "content_type": content.get_content_type(),
            "size": len(data), "etag": file_id[:16], "checksums": {}, "metadata": {}, "created_at": _now(),
            "expires_at": None, "urls": {"get": f"{self.url}/v1/files/{file_id}/download"},
        })

    def create_prediction(self, handler, path: str, body: Any):
        if self.behaviour.submit_failures:
            return self.problem(handler, self.behaviour.submit_failures.pop(0), "Service unavailable")
        model_input = body.get("input") if isinstance(body, dict) else None
        problems = []
        if not isinstance(model_input, dict):
            problems.append("input: Invalid type. Expected: object")
        else:
            if not isinstance(model_input.get("prompt"), str) or not model_input["prompt"].strip():
                problems.append("input.prompt: prompt is required")
            images = model_input.get("image_input")
            if not (isinstance(images, list) and images and all(isinstance(u, str) for u in images)):
                problems.append("input.image_input: Invalid type. Expected: array of URIs")
            else:
                problems += [f"input.image_input.{i}: could not fetch the file" for i, u in enumerate(images) if self.read_url(u) is None]
        model = path.removeprefix("/v1/models/").removesuffix("/predictions") if path.startswith("/v1/models/") else ""
        if isinstance(model_input, dict):
            for name, allowed in REPLICATE_SCHEMAS.get(model, {}).items():
                if name in model_input and model_input[name] not in allowed:
                    problems.append(f"input.{name}: {name} must be one of the following: " + ", ".join(f'"{v}"' for v in allowed))
        if problems:
            return self.problem(handler, 422, "- " + "\n- ".join(problems), "Input validation failed")
        work = Work(uuid.uuid4().hex[:20], model_input, time.monotonic(), model=model, version=body.get("version", ""))
        with self.lock:
            self.work[work.id] = work
        return handler.send(201, self.prediction(work))

    def prediction(self, work: Work) -> dict[str, Any]:
        state = self.state(work)
        status = {"queued": "starting", "running": "processing", "cancelled": "canceled", "done": "succeeded"}[state]
        error = None
        if state == "done":
            if self.behaviour.fail_with:
                status, error = "failed", self.behaviour.fail_with
            elif work.output is None and not self.behaviour.no_image:
                work.output = self.render(work.input["image_input"])
        return {
            "id": work.id, "model": work.model, "version": work.version, "status": status, "input": work.input,
            "output": work.output if status == "succeeded" else None, "logs": "", "error": error,
            "metrics": {"predict_time": self.behaviour.latency_s}, "created_at": _now(), "started_at": None,
            "completed_at": None, "data_removed": False,
            "urls": {"get": f"{self.url}/v1/predictions/{work.id}", "cancel": f"{self.url}/v1/predictions/{work.id}/cancel"},
        }


class RunPodTestServer(VendorServer):
    frame = RUNPOD_FRAME

    def __init__(self, key: str = "rp_test_key", endpoint: str = "tryon-endpoint"):
        super().__init__(key)
        self.endpoint = endpoint

    def env(self, **extra: str) -> dict[str, str]:
        return {"RUNPOD_API_KEY": self.token, "RUNPOD_ENDPOINT_ID": self.endpoint,
                "RUNPOD_ENDPOINT_BASE_URL": f"{self.url}/v2", "TRYON_PROVIDER": "runpod", **extra}

    @property
    def runs(self) -> list[Recorded]:
        return self.received("POST", "/run")

    @property
    def cancels(self) -> list[Recorded]:
        return self.received("POST", "/cancel/")

    def handle(self, handler, method, path, body, raw):
        if path.startswith("/files/") and method == "GET":
            data = self.files.get(path.rsplit("/", 1)[-1])
            return handler.send(200, data, "image/jpeg") if data else handler.send(404, {"error": "not found"})
        if not self.authorised(handler.headers):
            return handler.send(401, b"Unauthorized", "text/plain")
        prefix = f"/v2/{self.endpoint}/"
        if not path.startswith(prefix):
            return handler.send(404, {"error": "endpoint not found"})
        action = path[len(prefix):]
        if action == "run" and method == "POST":
            if self.behaviour.submit_failures:
                return handler.send(self.behaviour.submit_failures.pop(0), {"error": "unavailable"})
            job_input = body.get("input") if isinstance(body, dict) else None
            if not isinstance(job_input, dict):
                return handler.send(400, {"error": "input is required"})
            work = Work(f"{uuid.uuid4()}-u1", job_input, time.monotonic(), policy=body.get("policy"))
            with self.lock:
                self.work[work.id] = work
            return handler.send(200, {"id": work.id, "status": "IN_QUEUE"})
        verb, _, job_id = action.partition("/")
        work = self.work.get(job_id)
        if work is None:
            return handler.send(404, {"error": "job not found"})
        if verb == "cancel" and method == "POST":
            work.cancelled = True
            return handler.send(200, {"id": work.id, "status": "CANCELLED"})
        if verb == "status" and method == "GET":
            if self.behaviour.status_failures:
                return handler.send(self.behaviour.status_failures.pop(0), {"error": "unavailable"})
            return handler.send(200, self.status(work))
        return handler.send(404, {"error": "not found"})

    def status(self, work: Work) -> dict[str, Any]:
        """What a worker following docs/RUNPOD.md answers."""
        state = self.state(work)
        answer = {"id": work.id, "status": {"queued": "IN_QUEUE", "running": "IN_PROGRESS", "cancelled": "CANCELLED", "done": "COMPLETED"}[state],
                  "delayTime": 12, "executionTime": int(self.behaviour.latency_s * 1000)}
        if state != "done":
            return answer
        if self.behaviour.fail_with:
            return {**answer, "status": "FAILED", "error": self.behaviour.fail_with}
        images = work.input.get("image_urls")
        if not (isinstance(images, list) and images and all(self.read_url(u) is not None for u in images)):
            return {**answer, "status": "FAILED", "error": "input.image_urls: every entry must be a readable image URL"}
        if work.output is None:
            count = 0 if self.behaviour.no_image else int(work.input.get("num_images", 1))
            work.output = {"images": [{"url": self.render(images, variant=n), "content_type": "image/jpeg"} for n in range(count)]}
        return {**answer, "output": work.output}


class _Handler(BaseHTTPRequestHandler):
    vendor: VendorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send(self, status: int, body: Any, content_type: str = "application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: Any = len(raw)
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
        path = urlsplit(self.path).path
        with self.vendor.lock:
            self.vendor.requests.append(Recorded(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.vendor.handle(self, self.command, path, body, raw)

    do_GET = do_POST = do_PUT = do_DELETE = _serve
