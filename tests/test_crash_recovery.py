"""kill -9 of the app on embedded defaults: no job lost, no picture lost, no redis-server left behind."""

from __future__ import annotations

import base64
import io
import signal
import time

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from conftest import encode, start_app, stop_app
from synthetic import draw_garment, draw_person
from redis_process import servers_on, wait_until

pytestmark = pytest.mark.slow
JOBS = 10
ENV = {"TRYON_JOB_VISIBILITY": "2", "TRYON_WORKERS": "1", "TRYON_RATE_LIMIT": "100000"}


def body(seed: int) -> dict:
    """Four garments and four variants: slow enough (about a second on the CPU) to kill mid-queue."""
    person = encode(draw_person(shirt=(seed * 20 % 255, 90, 140)).image)
    garments = [encode(draw_garment(kind, colour=(200, seed * 20 % 255, 40 * n)))
                for n, kind in enumerate(("tshirt", "sweater", "hoodie", "jacket"))]
    return {"userImage": base64.b64encode(person).decode(),
            "garments": [base64.b64encode(g).decode() for g in garments], "numImages": 4}


def statuses(http: httpx.Client, ids: list[str]) -> dict[str, dict]:
    return {job_id: http.get(f"/api/jobs/{job_id}/status").json() for job_id in ids}


def decoded(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/jpeg;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    picture.load()
    return picture


def test_kill_9_of_the_app_loses_no_job_no_picture_and_leaves_no_redis(tmp_path, asset_paths):
    app = start_app(tmp_path, ENV)
    socket = app.data_dir / "redis" / "redis.sock"
    assert len(servers_on(socket)) == 1
    with httpx.Client(base_url=app.url, timeout=30) as http:
        ids = [http.post("/api/jobs/submit", json=body(n)).json()["job_id"] for n in range(JOBS)]
    ids.append(Client(app.url, verbose=False).predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
        None, None, None, api_name="/submit_job"))
    with httpx.Client(base_url=app.url, timeout=30) as http:
        assert wait_until(lambda: sum(s["status"] == "done" for s in statuses(http, ids).values()) >= 2, 60)
        before = statuses(http, ids)
    app.process.send_signal(signal.SIGKILL)
    app.process.wait()
    killed_at = time.time() * 1000
    done_before = {job_id for job_id, answer in before.items() if answer["status"] == "done"}
    assert len(done_before) < len(ids) - 2, "every job finished before the kill: nothing was tested"
    assert all(answer["status"] != "error" for answer in before.values())

    assert wait_until(lambda: not servers_on(socket), 5), f"redis-server left running: {servers_on(socket)}"
    gone_s = time.time() - killed_at / 1000
    assert not (app.data_dir / "redis" / "redis.pid").exists()  # it shut down on SIGTERM, not killed

    again = start_app(tmp_path, ENV)  # the same data dir
    try:
        with httpx.Client(base_url=again.url, timeout=30) as http:
            assert wait_until(lambda: all(s["status"] in ("done", "error") for s in statuses(http, ids).values()), 120)
            after = statuses(http, ids)
        assert {job_id: a["status"] for job_id, a in after.items()} == {job_id: "done" for job_id in ids}, after
        finished_after = [job_id for job_id in ids if after[job_id]["timestamps"]["finished_at"] > killed_at]
        assert len(finished_after) >= 2  # jobs unfinished at the kill were run by the restarted app
        print(f"{len(done_before)} of {len(ids)} jobs done before kill -9, {len(finished_after)} finished after the "
              f"restart, 0 in error; redis-server gone {gone_s:.2f} s after the kill")
        for job_id, answer in after.items():  # pictures made before the kill are still served
            variants = 1 if job_id == ids[-1] else 4
            assert len(answer["image_urls"]) == variants and answer["image_url"] == answer["image_urls"][0]
            assert all(decoded(url).size[0] > 0 for url in answer["image_urls"])
        client = Client(again.url, verbose=False)
        for job_id in [*sorted(done_before)[:2], *finished_after[:2], ids[-1]]:
            answer = client.predict(job_id, api_name="/job_status")
            assert answer["status"] == "done" and decoded(answer["image_url"]).size[0] > 0
        log = again.log()
        assert "Traceback" not in log and "Unknown image reference" not in log
    finally:
        stop_app(again)
    assert wait_until(lambda: not servers_on(socket), 5)
