"""SIGTERM: no new work, work in flight finishes or is handed back, the embedded Redis is flushed."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import redis as redis_py

from conftest import ROOT, encode, start_app
from synthetic import draw_garment, draw_person

pytestmark = pytest.mark.slow


def body(seed: int) -> dict:
    person = base64.b64encode(encode(draw_person(shirt=(seed % 255, 90, 140)).image)).decode()
    garment = base64.b64encode(encode(draw_garment("tshirt", colour=(200, seed % 255, 60)))).decode()
    return {"userImage": person, "garments": [garment]}


def wait_status(client: redis_py.Redis, job_id: str, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.hget(f"tryon:job:{job_id}", "status")) not in wanted:
        assert time.monotonic() < deadline, f"job {job_id} stayed {status}"
        time.sleep(0.05)
    return status


def terminate(app, timeout: float) -> float:
    started = time.monotonic()
    app.process.send_signal(signal.SIGTERM)
    assert app.process.wait(timeout=timeout) == 0
    return time.monotonic() - started


def test_a_job_in_flight_finishes_before_the_app_exits(tmp_path, fal_server, redis_server):
    fal_server.behaviour.latency_s = 3.0
    app = start_app(tmp_path, fal_server.env(REDIS_URL=redis_server.url, TRYON_SHUTDOWN_GRACE="15", TRYON_WORKERS="2"))
    jobs = redis_py.Redis(port=redis_server.port, decode_responses=True)
    job_id = httpx.post(app.url + "api/jobs/submit", json=body(1), timeout=30).json()["job_id"]
    wait_status(jobs, job_id, {"processing"}, 20)
    took = terminate(app, timeout=30)
    assert jobs.hget(f"tryon:job:{job_id}", "status") == "done"  # finished inside the grace period
    assert took < 15
    with pytest.raises(httpx.HTTPError):
        httpx.post(app.url + "api/jobs/submit", json=body(2), timeout=5)  # no new work
    log = app.log()
    assert "shutting down" in log and "stopped" in log and "Traceback" not in log


def test_a_job_longer_than_the_grace_is_handed_back_and_resumed_elsewhere_at_once(tmp_path, fal_server, redis_server):
    fal_server.behaviour.latency_s = 6.0
    env = fal_server.env(REDIS_URL=redis_server.url, TRYON_SHUTDOWN_GRACE="1", TRYON_WORKERS="1", TRYON_JOB_VISIBILITY="120")
    app = start_app(tmp_path / "app", env)
    jobs = redis_py.Redis(port=redis_server.port, decode_responses=True)
    job_id = httpx.post(app.url + "api/jobs/submit", json=body(3), timeout=30).json()["job_id"]
    deadline = time.monotonic() + 20
    while not jobs.hget(f"tryon:job:{job_id}", "provider_request_id"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert terminate(app, timeout=30) < 10
    assert jobs.hget(f"tryon:job:{job_id}", "status") == "processing"
    # Another worker takes it well before the 120 s visibility timeout: it was handed back.
    worker_env = {**os.environ, **env, "TRYON_DATA_DIR": str(tmp_path / "worker")}
    worker = subprocess.Popen([sys.executable, "-m", "tryon.worker"], cwd=ROOT, env=worker_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_status(jobs, job_id, {"done", "error"}, 30) == "done"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert len(fal_server.jobs) == 1  # resumed the same FAL request
    assert jobs.hget(f"tryon:job:{job_id}", "attempts") == "2"


def test_the_embedded_redis_keeps_queued_jobs_across_a_restart(tmp_path):
    env = {"TRYON_WORKERS": "0"}  # nobody takes the jobs: they must still be there after the restart
    app = start_app(tmp_path, env)
    ids = [httpx.post(app.url + "api/jobs/submit", json=body(n), timeout=30).json()["job_id"] for n in range(5)]
    terminate(app, timeout=30)
    again = start_app(tmp_path, env)
    try:
        for job_id in ids:
            answer = httpx.get(again.url + f"api/jobs/{job_id}/status", timeout=10).json()
            assert answer["status"] == "queued", answer
    finally:
        terminate(again, timeout=30)
