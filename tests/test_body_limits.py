"""Request bodies and decoded pixels against the app as a process: every route's body is capped,
errors come in the seed's shape, and process-wide budgets refuse (never hang) when spent.

The app runs with small limits so the tests stay small: 1 MB images, so a 6.7 MiB body cap; a
7 MiB budget for all bodies in flight; 12 MP images, a 12 MP budget for pixels being decoded, and
no wait for it.
"""

from __future__ import annotations

import base64
import io
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import pytest
from PIL import Image, ImageDraw

from conftest import encode, start_app, stop_app
from synthetic import draw_garment

pytestmark = pytest.mark.slow

CAP = int(5 * 2**20 * 4 / 3) + 64 * 1024  # Settings.max_body_bytes for TRYON_MAX_UPLOAD_MB=1


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    env = {"TRYON_MAX_UPLOAD_MB": "1", "TRYON_BODY_BUDGET_MB": "7", "TRYON_MAX_MEGAPIXELS": "12",
           "TRYON_PIXEL_BUDGET_MP": "12", "TRYON_PIXEL_WAIT": "0", "TRYON_RATE_LIMIT": "100000", "TRYON_WORKERS": "0"}
    running = start_app(tmp_path_factory.mktemp("bodies-app"), env)
    yield running
    stop_app(running)


@pytest.fixture
def http(app):
    with httpx.Client(base_url=app.url, timeout=60) as client:
        yield client


def chunks(total: int, size: int = 1 << 20):
    """A body without Content-Length (httpx sends a generator chunked)."""
    while total > 0:
        yield b"A" * min(size, total)
        total -= size


def assert_seed_shape(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["error"], body


@pytest.mark.parametrize("path", ["/api/images/upload", "/api/images/generate", "/api/jobs/submit"])
def test_a_chunked_body_over_the_cap_is_413_in_the_seed_s_shape(http, path):
    response = http.post(path, content=chunks(CAP + 2**20), headers={"content-type": "application/json"})
    assert_seed_shape(response, 413, "body_too_large")
    assert "the limit is 7 MB" in response.json()["error"] or "the limit is 6 MB" in response.json()["error"]


def test_a_declared_body_over_the_cap_is_413_before_it_is_read(http):
    response = http.post("/api/images/upload", content=b"A" * (CAP + 1), headers={"content-type": "application/json"})
    assert_seed_shape(response, 413, "body_too_large")


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"image": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"{not json",
                                  b'{"image": ' + b"7" * 5000 + b"}", b"\xff\xfe"],
                         ids=["100k-open-brackets", "5k-deep-valid", "malformed", "5000-digit-number", "not-utf8"])
@pytest.mark.parametrize("path", ["/api/images/upload", "/api/images/generate"])
def test_malformed_or_too_deep_json_is_400_bad_json(http, path, body):
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert_seed_shape(response, 400, "bad_json")


def test_an_unknown_api_route_answers_in_the_seed_s_shape(http):
    assert_seed_shape(http.get("/api/no/such/route"), 404, "not_found")
    assert_seed_shape(http.post("/api/jobs", json={}), 404, "not_found")


@pytest.mark.parametrize("path", ["/gradio_api/queue/join", "/gradio_api/upload", "/gradio_api/call/try_on",
                                  "/gradio_api/run/try_on", "/gradio_api/mcp/", "/login"])
def test_gradio_routes_are_capped_too(http, path):
    chunked = http.post(path, content=chunks(CAP + 2**20), headers={"content-type": "application/json"})
    assert_seed_shape(chunked, 413, "body_too_large")
    declared = http.post(path, content=b"A" * (CAP + 1), headers={"content-type": "application/octet-stream"})
    assert_seed_shape(declared, 413, "body_too_large")


def test_a_body_under_the_cap_still_reaches_gradio(http, app):
    files = {"files": ("shirt.png", encode(draw_garment("tshirt")), "image/png")}
    response = http.post("/gradio_api/upload", files=files)
    assert response.status_code == 200 and response.json()[0].endswith("shirt.png")


def declared_only(app, size: int, wait_s: float = 0.5) -> bytes:
    """Declare a body of `size` bytes and send none of it: what the server answers at once (b"" if
    nothing). A probe of the budget that never takes any of it."""
    address = urlparse(app.url)
    with socket.create_connection((address.hostname, address.port)) as probe:
        probe.sendall(f"POST /api/images/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {size}\r\n\r\n".encode())
        probe.settimeout(wait_s)
        try:
            return probe.recv(65536)
        except TimeoutError:
            return b""


def test_when_the_body_budget_is_spent_others_get_429_at_once_then_pass_once_it_is_freed(app, http):
    address = urlparse(app.url)
    holder = socket.create_connection((address.hostname, address.port))
    try:
        # 6 MiB of a chunked body, sent and then left open: the budget (7 MiB) holds them.
        holder.sendall(b"POST /api/images/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(6):
            holder.sendall(b"100000\r\n" + b"A" * 2**20 + b"\r\n")
        deadline = time.monotonic() + 20
        while not declared_only(app, 2 * 2**20).startswith(b"HTTP/1.1 429"):  # until the 6 MiB have arrived
            assert time.monotonic() < deadline, "the held body never filled the budget"
        started = time.monotonic()
        refused = http.post("/api/images/upload", content=b"A" * (2 * 2**20), headers={"content-type": "application/json"})
        assert_seed_shape(refused, 429, "busy")
        assert time.monotonic() - started < 3 and int(refused.headers["retry-after"]) >= 1  # refused, not queued
        small = http.post("/api/images/upload", json={"image": "AAAA"})  # what is left of the budget still serves
        assert small.status_code == 400 and small.json()["code"] != "busy"
        holder.sendall(b"0\r\n\r\n")  # the held body ends: it is answered, and its bytes are released
        holder.settimeout(10)
        answer = b""
        while b"bad_json" not in answer and (data := holder.recv(65536)):
            answer += data
        assert answer.startswith(b"HTTP/1.1 400") and b"bad_json" in answer
    finally:
        holder.close()
    deadline = time.monotonic() + 5  # the held bytes are released just after its answer is sent
    while declared_only(app, 2 * 2**20).startswith(b"HTTP/1.1 429"):
        assert time.monotonic() < deadline, "the budget was never released"
    passes = http.post("/api/images/upload", content=b"A" * (2 * 2**20), headers={"content-type": "application/json"})
    assert passes.status_code == 400 and passes.json()["code"] == "bad_json"


def big_png(n: int) -> str:
    picture = Image.new("RGB", (4000, 3000), (30 * n % 255, 90, 140))  # 12 MP, a few KB as PNG
    ImageDraw.Draw(picture).rectangle([100, 100, 900 + n, 900], fill=(200, 40, 40))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_when_the_pixel_budget_is_spent_intake_answers_busy_then_works_again(app):
    images = [big_png(n) for n in range(8)]

    def upload(image: str) -> httpx.Response:
        return httpx.post(app.url + "api/images/upload", json={"image": image}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(upload, images))
    statuses = [a.status_code for a in answers]
    assert 200 in statuses and 429 in statuses, statuses  # one 12 MP decode at a time, no waiting
    busy = next(a for a in answers if a.status_code == 429)
    assert busy.json()["code"] == "busy" and busy.json()["field"] == "image" and int(busy.headers["retry-after"]) >= 1
    assert "busy" in busy.json()["error"]
    assert upload(big_png(99)).status_code == 200  # every reservation was released


def test_the_pixel_budget_applies_to_the_page_s_api_too(app, tmp_path):
    from gradio_client import Client, handle_file

    paths = []
    for n in range(6):
        path = tmp_path / f"big-{n}.png"
        path.write_bytes(base64.b64decode(big_png(50 + n)))
        paths.append(str(path))
    client = Client(app.url, verbose=False)

    def upload(path: str) -> str:
        try:
            return client.predict(handle_file(path), api_name="/upload")
        except Exception as error:  # gradio_client raises the handler's gr.Error text
            return f"error: {error}"

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(upload, paths))
    assert any(r.startswith("local:") for r in results), results
    assert any("busy" in r for r in results), results
    assert all(r.startswith("local:") or "busy" in r for r in results), results
