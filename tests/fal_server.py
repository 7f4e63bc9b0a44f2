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
  GET  /<owner>/<alias>/requests/<id>/status           -> IN_QUEUE -> IN_PROGRESS -> COMPLETED
  GET  /<owner>/<alias>/requests/<id>                  -> {images: [{url, ...}], description}
  PUT  /<owner>/<alias>/requests/<id>/cancel           -> {status: CANCELLATION_REQUESTED}

The "model" returns a real picture: the person with each garment pasted in as
a labelled swatch, so a chain's result visibly carries every step. Faults on
demand (see Behaviour): latency, queueing, HTTP failures on submit or upload,
a job that never finishes, no image, a broken result URL.

Run it alone (for the app started by hand, or the benchmarks):
    python tests/fal_server.py --port 8443 --latency 1.0
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw

MODEL_FIELDS = {"prompt", "image_urls", "num_images", "aspect_ratio", "resolution", "output_format", "sync_mode",
                "limit_generations", "enable_web_search"}
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
    no_image: bool = False  # completed jobs return no image
    broken_url: bool = False  # completed jobs return an image URL that 404s
    completed_error: str | None = None  # completed jobs carry this error (the app failed)


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
    app: str
    arguments: dict[str, Any]
    created: float
    cancelled: bool = False
    result: dict[str, Any] | None = None


class FalTestServer:
    def __init__(self, key: str = "test-fal-key", port: int = 0, cert: Path | None = None, key_file: Path | None = None):
        self.key = key
        self.behaviour = Behaviour()
        self.requests: list[Recorded] = []
        self.files: dict[str, tuple[bytes, str]] = {}
        self.jobs: dict[str, Job] = {}
        self.tokens: set[str] = set()
        self._lock = threading.Lock()
        self._tmp = None
        if cert is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fal-test-")
            cert, key_file = make_certificate(Path(self._tmp.name))
        self.cert = cert
        handler = type("Handler", (_Handler,), {"fal": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key_file))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
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

    @property
    def cancels(self) -> list[Recorded]:
        return [r for r in self.received("PUT") if r.path.endswith("/cancel")]

    # -- the model ------------------------------------------------------------------------

    def store(self, data: bytes, content_type: str, suffix: str = "jpg") -> str:
        file_id = f"{uuid.uuid4().hex}.{suffix}"
        with self._lock:
            self.files[file_id] = (data, content_type)
        return f"{self.url}/files/{file_id}"

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
        item = self.files.get(parts.path[len("/files/"):])
        return item[0] if item else None

    def render(self, job: Job) -> dict[str, Any]:
        """A 'generated' picture: the person, with each garment pasted in as a labelled swatch."""
        person_bytes, *garment_bytes = (self.file_for(u) for u in job.arguments["image_urls"])
        images = []
        for variant in range(int(job.arguments.get("num_images", 1))):
            jpeg, (width, height) = dress(person_bytes, garment_bytes, variant=variant)
            url = self.store(jpeg, "image/jpeg")
            images.append({"url": url, "content_type": "image/jpeg", "file_name": url.rsplit("/", 1)[-1],
                           "width": width, "height": height})
        return {"images": images, "description": f"dressed in {len(garment_bytes)} garment(s)"}


def dress(person: bytes, garments: list[bytes], outline: tuple[int, int, int] = (255, 0, 160),
          variant: int = 0) -> tuple[bytes, tuple[int, int]]:
    """The test 'model' of every vendor server: (JPEG of the person with each garment pasted in as a
    framed swatch, its size). The frame colour tells which vendor drew it; a variant gets a small
    mark of its own in the bottom-left corner, so variants differ."""
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

    def _error(self, status: int, detail: Any = None):
        if status == 502:  # what an overloaded ingress answers: fal-client retries it
            return self._send(502, NGINX_502, "text/html")
        default = {401: "Unauthorized: invalid key", 403: "Forbidden", 429: "Rate limit exceeded, retry later",
                   500: "Internal server error", 503: "Service unavailable",
                   422: [{"loc": ["body", "image_urls", 0], "msg": "Could not download the image", "type": "file_download_error"}]}
        # x-fal-request-id marks an answer from the app itself (not the ingress): fal-client does not retry it.
        return self._send(status, {"detail": detail or default.get(status, "error")}, headers={"x-fal-request-id": uuid.uuid4().hex})

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
        return self.headers.get("Authorization") == f"Key {self.fal.key}"

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self):
        path, query = self._record(None)
        if path == "/redirect":  # for URL-fetch tests: a hop to wherever ?to= says
            return self._send(302, b"", "text/plain", headers={"Location": query.get("to", ["/"])[0]})
        if path == "/slow":
            time.sleep(float(query.get("s", ["3"])[0]))
            return self._send(200, b"late", "text/plain")
        if path.startswith("/files/"):
            item = self.fal.files.get(path[len("/files/"):])
            return self._send(200, item[0], item[1]) if item else self._error(404, "File not found")
        if "/requests/" in path:
            if not self._key_ok():
                return self._error(401)
            request_id, _, tail = path.split("/requests/", 1)[1].partition("/")
            job = self.fal.jobs.get(request_id)
            if job is None:
                return self._error(404, "Request not found")
            return self._status(job) if tail == "status" else self._result(job)
        return self._error(404, "Not found")

    def do_PUT(self):
        raw, body = self._read()
        path, _ = self._record(body)
        if path.startswith("/uploads/"):
            file_id = path[len("/uploads/"):]
            with self.fal._lock:
                self.fal.files[file_id] = (raw, self.headers.get("Content-Type", "application/octet-stream"))
            return self._send(200, {})
        if path.endswith("/cancel") and "/requests/" in path:
            if not self._key_ok():
                return self._error(401)
            job = self.fal.jobs.get(path.split("/requests/", 1)[1].split("/")[0])
            if job is None:
                return self._error(404, "Request not found")
            job.cancelled = True
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
            return self._send(200, {"access_url": self.fal.store(raw, content_type)})
        if path == "/storage/upload/initiate":
            if not self._key_ok():
                return self._error(401)
            file_id = f"{uuid.uuid4().hex}.jpg"
            return self._send(200, {"upload_url": f"{self.fal.url}/uploads/{file_id}", "file_url": f"{self.fal.url}/files/{file_id}"})
        return self._submit(path, body)

    # -- the queue ------------------------------------------------------------------------

    def _submit(self, path: str, body: Any):
        if not self._key_ok():
            return self._error(401)
        behaviour = self.fal.behaviour
        if behaviour.submit_failures:
            return self._error(behaviour.submit_failures.pop(0))
        problems = self._validate(body)
        if problems:
            return self._error(422, problems)
        segments = path.strip("/").split("/")
        owner, alias = segments[0], segments[1]
        request_id = uuid.uuid4().hex
        job = Job(request_id, "/".join(segments), body, time.monotonic())
        with self.fal._lock:
            self.fal.jobs[request_id] = job
        base = f"{self.fal.url}/{owner}/{alias}/requests/{request_id}"
        return self._send(200, {"request_id": request_id, "status_url": base + "/status", "response_url": base,
                                "cancel_url": base + "/cancel", "queue_position": 0})

    def _validate(self, body: Any) -> list[dict[str, Any]]:
        """The model's input schema, answered like FAL's pydantic validation."""
        if not isinstance(body, dict):
            return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
        problems = []
        for name in ("prompt", "image_urls"):
            if name not in body:
                problems.append({"loc": ["body", name], "msg": "Field required", "type": "missing"})
        if "prompt" in body and not (isinstance(body["prompt"], str) and body["prompt"].strip()):
            problems.append({"loc": ["body", "prompt"], "msg": "String should have at least 1 character", "type": "string_too_short"})
        urls = body.get("image_urls")
        if "image_urls" in body:
            if not (isinstance(urls, list) and 1 <= len(urls) <= 14 and all(isinstance(u, str) for u in urls)):
                problems.append({"loc": ["body", "image_urls"], "msg": "Input should be a list of 1 to 14 URLs", "type": "list_type"})
            else:
                for i, url in enumerate(urls):
                    if self.fal.file_for(url) is None:
                        problems.append({"loc": ["body", "image_urls", i], "msg": f"Could not download the image at {url[:80]}", "type": "file_download_error"})
        if body.get("output_format", "png") not in ("jpeg", "png", "webp"):
            problems.append({"loc": ["body", "output_format"], "msg": "Input should be 'jpeg', 'png' or 'webp'", "type": "enum"})
        if not 1 <= int(body.get("num_images", 1)) <= 4:
            problems.append({"loc": ["body", "num_images"], "msg": "Input should be between 1 and 4", "type": "range"})
        return problems

    def _state(self, job: Job) -> str:
        behaviour = self.fal.behaviour
        elapsed = time.monotonic() - job.created
        if job.cancelled:
            return "CANCELLED"
        if elapsed < behaviour.queue_s:
            return "IN_QUEUE"
        if behaviour.hang or elapsed < behaviour.queue_s + behaviour.latency_s:
            return "IN_PROGRESS"
        return "COMPLETED"

    def _status(self, job: Job):
        state = self._state(job)
        if state == "IN_QUEUE":
            return self._send(200, {"status": "IN_QUEUE", "queue_position": 0, "response_url": ""})
        if state == "IN_PROGRESS":
            return self._send(200, {"status": "IN_PROGRESS", "logs": []})
        body = {"status": "COMPLETED", "logs": [], "metrics": {"inference_time": self.fal.behaviour.latency_s}}
        if state == "CANCELLED":
            body["error"] = "Request was cancelled"
        elif self.fal.behaviour.completed_error:
            body["error"] = self.fal.behaviour.completed_error
        return self._send(200, body)

    def _result(self, job: Job):
        state = self._state(job)
        if state not in ("COMPLETED",):
            return self._error(400, "Request is still in progress" if state != "CANCELLED" else "Request was cancelled")
        behaviour = self.fal.behaviour
        if behaviour.no_image:
            return self._send(200, {"images": [], "description": "I could not find a person to dress."})
        if behaviour.broken_url:
            return self._send(200, {"images": [{"url": f"{self.fal.url}/files/expired-{job.request_id}.jpg"}], "description": ""})
        if job.result is None:
            job.result = self.fal.render(job)
        return self._send(200, job.result)


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
