"""Catalogue batches from outside, on `python app.py` with the FAL test server and a real Redis:
REST and gradio_client runs of 3 persons x 4 outfits with their archive, a worker killed and the
app restarted mid-batch (one generation per look), and batches over the quota or budget refused."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import httpx
import pytest
from PIL import Image

from conftest import ROOT, encode, start_app, stop_app
from synthetic import draw_garment, draw_person

pytestmark = pytest.mark.slow

SHIRTS = [(236, 236, 230), (90, 160, 90), (200, 120, 60)]
GARMENTS = [("tshirt", (200, 40, 50)), ("jeans", (40, 60, 200)), ("dress", (30, 150, 80)), ("jacket", (230, 200, 40))]


def photos() -> tuple[list[bytes], list[bytes]]:
    return ([encode(draw_person(shirt=c).image) for c in SHIRTS], [encode(draw_garment(k, colour=c)) for k, c in GARMENTS])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def uploaded(app, images: list[bytes]) -> list[str]:
    """Pre-uploaded once, as the API docs say: a batch body then carries references, not photos."""
    refs = []
    for image in images:
        answer = httpx.post(app.url + "api/images/upload", json={"image": b64(image)}, timeout=30)
        assert answer.status_code == 200, answer.text
        refs.append(answer.json()["url"])
    return refs


def wait_finished(app, batch_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(app.url + f"api/batches/{batch_id}", timeout=10).json()
        if status["finished"]:
            return status
        assert time.monotonic() < deadline, status["counts"]
        time.sleep(0.3)


def check_archive(data: bytes, persons: int, outfits: int) -> dict:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = set(archive.namelist())
    pictures = {f"person-{p}_outfit-{m}.png" for p in range(1, persons + 1) for m in range(1, outfits + 1)}
    assert pictures <= names and {"contact_sheet.png", "manifest.json", "manifest.csv"} <= names
    for name in pictures:
        picture = Image.open(io.BytesIO(archive.read(name)))
        assert picture.format == "PNG" and picture.width >= 256
    sheet = Image.open(io.BytesIO(archive.read("contact_sheet.png")))
    assert sheet.width > sheet.height  # 4 outfits across, 3 persons down
    manifest = json.loads(archive.read("manifest.json"))
    assert len(manifest["looks"]) == persons * outfits
    assert all(look["status"] == "done" and look["model"] and look["prompt"] for look in manifest["looks"])
    return manifest


@pytest.fixture
def batch_app(tmp_path, fal_server, redis_server):
    fal_server.behaviour.latency_s = 0.3
    app = start_app(tmp_path, fal_server.env(REDIS_URL=redis_server.url, TRYON_WORKERS="4", TRYON_RATE_LIMIT="100000"))
    yield app
    stop_app(app)


def test_a_3x4_batch_by_rest_runs_once_per_look_and_streams_its_archive(batch_app, fal_server):
    persons, garments = photos()
    body = {"persons": uploaded(batch_app, persons),
            "outfits": [uploaded(batch_app, [g])[0] for g in garments[:3]] + [{"garments": uploaded(batch_app, [garments[3]]),
                                                                              "categories": ["outerwear"]}]}
    answer = httpx.post(batch_app.url + "api/batches", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    batch = answer.json()
    assert batch["success"] and batch["looks"] == 12 and batch["persons"] == 3 and batch["outfits"] == 4
    status = wait_finished(batch_app, batch["batch_id"])
    assert status["counts"]["done"] == 12
    assert len(fal_server.submits) == 12  # every look once, every photo uploaded once
    with httpx.stream("GET", batch_app.url + f"api/batches/{batch['batch_id']}/archive", timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        assert "attachment" in response.headers["content-disposition"]
        chunks = [chunk for chunk in response.iter_bytes()]
    manifest = check_archive(b"".join(chunks), 3, 4)
    assert [g["category"] for g in manifest["looks"][3]["garments"]] == ["outerwear"]
    cancelled = httpx.post(batch_app.url + f"api/batches/{batch['batch_id']}/cancel", timeout=10).json()
    assert cancelled["counts"]["done"] == 12  # nothing left to cancel: the finished looks stay
    missing = httpx.get(batch_app.url + "api/batches/" + "A" * 32, timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "batch_not_found"


def test_a_3x4_batch_by_gradio_client(batch_app, fal_server, tmp_path):
    from gradio_client import Client, handle_file

    persons, garments = photos()
    paths = []
    for n, data in enumerate(persons + garments):
        path = tmp_path / f"photo-{n}.png"
        path.write_bytes(data)
        paths.append(str(path))
    client = Client(batch_app.url, verbose=False)
    batch = client.predict([handle_file(p) for p in paths[:3]], [handle_file(p) for p in paths[3:]], "", 1, "same", "1K", "",
                           api_name="/submit_batch")
    assert batch["looks"] == 12
    deadline = time.monotonic() + 90
    while not (status := client.predict(batch["batch_id"], api_name="/batch_status"))["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert status["counts"]["done"] == 12 and len(fal_server.submits) == 12
    archive = client.predict(batch["batch_id"], api_name="/batch_archive")
    check_archive(open(archive, "rb").read(), 3, 4)


def test_a_worker_killed_mid_batch_leaves_one_generation_per_look(tmp_path, fal_server, redis_server):
    fal_server.behaviour.latency_s = 3.0
    app = start_app(tmp_path / "app", fal_server.env(REDIS_URL=redis_server.url, TRYON_WORKERS="0"))
    env = {**os.environ, **fal_server.env(), "REDIS_URL": redis_server.url, "TRYON_WORKERS": "2",
           "TRYON_JOB_VISIBILITY": "2", "TRYON_DATA_DIR": str(tmp_path / "w1")}
    first = subprocess.Popen([sys.executable, "-m", "tryon.worker"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = None
    try:
        persons, garments = photos()
        body = {"persons": [b64(p) for p in persons[:2]], "outfits": [b64(g) for g in garments[:3]]}
        batch = httpx.post(app.url + "api/batches", json=body, timeout=60).json()
        deadline = time.monotonic() + 30
        while len(fal_server.jobs) < 6:  # every look submitted and waiting at FAL
            assert time.monotonic() < deadline, len(fal_server.jobs)
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.Popen([sys.executable, "-m", "tryon.worker"], cwd=ROOT,
                                  env={**env, "TRYON_DATA_DIR": str(tmp_path / "w2")},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status = wait_finished(app, batch["batch_id"])
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
        stop_app(app)
    assert status["counts"]["done"] == 6
    assert len(fal_server.jobs) == 6  # resumed at FAL, never generated twice
    assert all(cell["attempts"] == 2 for cell in status["cells"])


def test_the_app_restarted_mid_batch_finishes_it(tmp_path, fal_server, redis_server):
    fal_server.behaviour.latency_s = 2.0
    env = fal_server.env(REDIS_URL=redis_server.url, TRYON_WORKERS="2", TRYON_SHUTDOWN_GRACE="0.5")
    app = start_app(tmp_path / "one", env)
    persons, garments = photos()
    body = {"persons": [b64(p) for p in persons], "outfits": [b64(g) for g in garments[:2]]}
    batch = httpx.post(app.url + "api/batches", json=body, timeout=60).json()
    deadline = time.monotonic() + 30
    while not fal_server.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    app.process.send_signal(signal.SIGTERM)
    assert app.process.wait(timeout=30) == 0
    again = start_app(tmp_path / "two", env)
    try:
        status = wait_finished(again, batch["batch_id"])
    finally:
        stop_app(again)
    assert status["counts"]["done"] == 6
    assert len(fal_server.jobs) == 6  # the looks in flight were resumed, not made again


@pytest.mark.parametrize("limit, code", [({"TRYON_QUOTA_ANONYMOUS_CALLS": "10"}, "quota_exceeded"),
                                         ({"TRYON_DAILY_BUDGET_USD": "0.50"}, "budget_exhausted")])
def test_a_batch_over_the_quota_or_budget_is_refused_before_any_call(tmp_path, fal_server, redis_server, limit, code):
    app = start_app(tmp_path, fal_server.env(REDIS_URL=redis_server.url, **limit))
    try:
        persons, garments = photos()
        body = {"persons": [b64(p) for p in persons], "outfits": [b64(g) for g in garments]}  # 12 looks
        answer = httpx.post(app.url + "api/batches", json=body, headers={"Accept-Language": "es"}, timeout=60)
        assert answer.status_code == 429 and answer.json()["code"] == code, answer.text
        assert "Retry-After" in answer.headers
        assert not fal_server.requests  # nothing uploaded, nothing called
        keys = [k for k in __import__("redis").Redis(port=redis_server.port).scan_iter("tryon:batch:*")]
        assert not keys
        smaller = {"persons": [b64(persons[0])], "outfits": [b64(garments[0])]}  # 1 look fits: the refusal held nothing back
        assert httpx.post(app.url + "api/batches", json=smaller, timeout=60).status_code == 200
    finally:
        stop_app(app)
