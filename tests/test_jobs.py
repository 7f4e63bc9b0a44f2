"""Async jobs on a real Redis with the FAL test server: records, queue, workers, crashes, restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis as redis_py

from conftest import ROOT
from tryon.config import Settings
from tryon.errors import InvalidRequest
from tryon.jobs import STREAM, JobQueue
from tryon.providers import build_provider
from tryon.providers.local import LocalPreviewProvider
from tryon.redis_server import client_for, connect
from tryon.service import TryOnService
from tryon.jobs.worker import WorkerPool


def make_service(settings: Settings, redis_server, provider=None) -> TryOnService:
    client = client_for(host="127.0.0.1", port=redis_server.port)
    queue = JobQueue(client, settings.job_ttl_s, settings.job_visibility_s, settings.job_max_attempts)
    return TryOnService(settings, provider or build_provider(settings), queue)


def wait_for(service, job_id, statuses=("done", "error"), timeout=30.0, seen=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = service.job_status(job_id)
        if seen is not None and (not seen or seen[-1] != answer["status"]):
            seen.append(answer["status"])
        if answer["status"] in statuses:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {answer['status']} after {timeout}s")


@pytest.fixture
def fal_jobs(fal_server, redis_server, tmp_path):
    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path), "TRYON_JOB_VISIBILITY": "2"})
    service = make_service(settings, redis_server)
    pools = []

    def start_workers(size=1):
        pool = WorkerPool(service, size).start()
        pools.append(pool)
        return pool

    yield service, start_workers
    for pool in pools:
        pool.stop()


def test_submit_writes_a_record_with_ttl_and_queues_it(fal_jobs, person_png, garment_pngs):
    service, _ = fal_jobs
    job = service.submit_job(person_png, garment_pngs[:2])
    assert len(job.job_id) >= 32  # token_urlsafe(24): 192 random bits
    answer = service.job_status(job.job_id)
    assert answer["status"] == "queued" and answer["image_url"] is None and answer["error"] is None
    assert answer["jobs_waiting"] == 1
    assert set(answer["timestamps"]) == {"created_at", "started_at", "provider_started_at", "finished_at"}
    assert 0 < service.queue.ttl(job.job_id) <= 86400
    assert service.queue.redis.xlen(STREAM) == 1
    assert [i["field"] for i in service.queue.get(job.job_id).inputs] == ["person", "garment_1", "garment_2"]
    service.submit_job(person_png, garment_pngs[:1])
    assert service.job_status(job.job_id)["jobs_waiting"] == 2


def test_status_goes_queued_processing_done_with_one_call_for_all_garments(fal_jobs, fal_server, person_png, garment_pngs):
    service, start_workers = fal_jobs
    fal_server.behaviour.latency_s = 1.0
    job = service.submit_job(person_png, garment_pngs[:3])
    seen = []
    assert service.job_status(job.job_id)["status"] == "queued"
    seen.append("queued")
    start_workers()
    answer = wait_for(service, job.job_id, seen=seen)
    assert seen == ["queued", "processing", "done"]
    assert answer["image_url"].startswith(fal_server.url + "/files/")
    stamps = answer["timestamps"]
    assert stamps["created_at"] <= stamps["started_at"] <= stamps["provider_started_at"] <= stamps["finished_at"]
    # one model call with every garment: ~1x the model latency, not the sync chain's 3x
    assert len(fal_server.submits) == 1
    body = fal_server.submits[0].body
    assert len(body["image_urls"]) == 4 and all(f"Figure {n}" in body["prompt"] for n in (1, 2, 3, 4))
    timings = answer["timings"]
    assert timings["fal_call_1"] >= 1000 and "fal_call_2" not in timings
    assert timings["total_backend_ms"] >= timings["fal_duration_ms"] and timings["attempts"] == 1
    assert 0 < service.queue.ttl(job.job_id) <= 86400
    # Acknowledged and removed: right after the outcome is written (finish writes the record, then acks).
    deadline = time.monotonic() + 5
    while service.queue.redis.xlen(STREAM) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.queue.redis.xlen(STREAM) == 0


def test_a_provider_failure_ends_the_job_in_error_with_the_reason(fal_jobs, fal_server, person_png, garment_pngs):
    service, start_workers = fal_jobs
    fal_server.behaviour.no_image = True
    job = service.submit_job(person_png, garment_pngs[:1])
    start_workers()
    answer = wait_for(service, job.job_id)
    assert answer["status"] == "error" and answer["error"].startswith("The model returned no image.")
    assert answer["error_code"] == "no_image_returned" and answer["image_url"] is None


@pytest.mark.parametrize("job_id", ["nope", "x" * 10_000, "../../etc/passwd", "A" * 40])
def test_unknown_or_malformed_job_ids_are_not_found(fal_jobs, job_id):
    service, _ = fal_jobs
    with pytest.raises(InvalidRequest) as caught:
        service.job_status(job_id)
    assert caught.value.code == "job_not_found" and caught.value.http_status == 404


def test_concurrent_submits_all_land(fal_jobs, person_png, garment_pngs):
    service, _ = fal_jobs
    ids, errors = [], []

    def submit(n):
        try:
            ids.append(service.submit_job(person_png, [garment_pngs[n % 4]]).job_id)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(ids)) == 40
    assert service.queue.redis.xlen(STREAM) == 40
    assert all(service.job_status(job_id)["status"] == "queued" for job_id in ids)


def test_a_killed_worker_process_s_job_finishes_elsewhere_with_one_generation(fal_jobs, fal_server, redis_server, tmp_path, person_png, garment_pngs):
    service, start_workers = fal_jobs
    fal_server.behaviour.latency_s = 4.0
    env = {**os.environ, **fal_server.env(), "REDIS_URL": redis_server.url, "TRYON_WORKERS": "1",
           "TRYON_JOB_VISIBILITY": "2", "TRYON_DATA_DIR": str(tmp_path / "worker")}
    worker = subprocess.Popen([sys.executable, "-m", "tryon.worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job = service.submit_job(person_png, garment_pngs[:2])
        deadline = time.monotonic() + 30
        while not service.queue.get(job.job_id).provider_request_id:
            assert time.monotonic() < deadline, "the worker process never submitted to FAL"
            time.sleep(0.05)
        first_owner = service.queue.get(job.job_id).worker
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert service.job_status(job.job_id)["status"] == "processing"  # orphaned, not lost
    start_workers()
    answer = wait_for(service, job.job_id, timeout=30)
    assert answer["status"] == "done" and answer["attempts"] == 2
    assert service.queue.get(job.job_id).worker != first_owner
    assert len(fal_server.submits) == 1 and len(fal_server.jobs) == 1  # resumed, not generated twice
    assert answer["timings"]["resumed_provider_request"] is True


def test_redis_killed_and_restarted_mid_job_loses_nothing(fal_jobs, fal_server, redis_server, person_png, garment_pngs):
    service, start_workers = fal_jobs
    fal_server.behaviour.latency_s = 3.0
    waiting = [service.submit_job(person_png, [garment_pngs[n % 4]]).job_id for n in range(5)]
    start_workers(2)
    deadline = time.monotonic() + 20
    while service.job_status(waiting[0])["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.2)  # past appendfsync everysec: what a crash may lose is at most the last second
    redis_server.restart()  # kill -9, then start on the same data
    for job_id in waiting:
        answer = wait_for(service, job_id, timeout=60)
        assert answer["status"] == "done", answer
    assert len(fal_server.jobs) == 5  # each generated once


def test_a_job_that_keeps_losing_its_workers_gives_up(fal_server, redis_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path),
                                  "TRYON_JOB_VISIBILITY": "0.5", "TRYON_JOB_MAX_ATTEMPTS": "1"})
    service = make_service(settings, redis_server)
    job = service.submit_job(person_png, garment_pngs[:1])
    message_id, job_id = service.queue.next_message("doomed-worker")
    assert service.queue.claim(job_id, "doomed-worker") == "1"  # ...and then it dies silently
    pool = WorkerPool(service, 1).start()
    try:
        answer = wait_for(service, job.job_id, timeout=15)
    finally:
        pool.stop()
    assert answer["status"] == "error" and answer["error_code"] == "gave_up"
    assert answer["error"].startswith("Gave up after 1 attempts")


def test_a_worker_that_lost_its_job_cannot_overwrite_the_new_owner(fal_jobs, person_png, garment_pngs):
    service, _ = fal_jobs
    queue = service.queue
    job = service.submit_job(person_png, garment_pngs[:1])
    queue.claim(job.job_id, "old-owner")
    queue.claim(job.job_id, "new-owner")  # taken over after the visibility timeout
    assert queue.update(job.job_id, "old-owner", status="done", image_url="https://stale") is False
    assert queue.update(job.job_id, "new-owner", provider_request_id="r1") is True
    record = queue.get(job.job_id)
    assert record.status == "processing" and record.image_url is None and record.provider_request_id == "r1"


def test_a_worker_whose_job_was_taken_over_stops_before_paying_again(fal_jobs, fal_server, person_png, garment_pngs):
    from tryon.outfit import Outfit

    # FASHN takes one garment per call: a job of two garments is a chain of two paid calls.
    service, start_workers = fal_jobs
    fal_server.behaviour.latency_s = 1.5
    job = service.submit_job(person_png, garment_pngs[:2], outfit=Outfit(model="fal-ai/fashn/tryon/v1.6"))
    start_workers(1)
    deadline = time.monotonic() + 20
    while not service.queue.get(job.job_id).provider_request_id:  # call 1 submitted and recorded
        assert time.monotonic() < deadline
        time.sleep(0.05)
    service.queue.claim(job.job_id, "new-owner")  # taken over (as after the visibility timeout), then silent
    answer = wait_for(service, job.job_id, timeout=40)  # the pool takes it back from the silent owner, resumes
    assert answer["status"] == "done", answer
    # Two garments, two calls: the worker that lost the job did not go on to submit call 2 as well.
    assert len(fal_server.submits_for("fal-ai/fashn/tryon/v1.6")) == 2


def test_offline_preview_jobs_run_on_in_app_workers(redis_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({"TRYON_DATA_DIR": str(tmp_path)})
    service = make_service(settings, redis_server, LocalPreviewProvider())
    job = service.submit_job(person_png, garment_pngs[:2])
    pool = WorkerPool(service, 1).start()
    try:
        answer = wait_for(service, job.job_id)
    finally:
        pool.stop()
    assert answer["status"] == "done" and answer["offline_preview"] is True
    assert answer["image_url"].startswith("data:image/jpeg;base64,")


def test_the_embedded_redis_persists_and_is_shared(tmp_path):
    first = connect(None, tmp_path)
    try:
        assert "embedded Redis" in first.description and "append-only" in first.description
        first.client.set("survives", "yes")
        second = connect(None, tmp_path)  # another process on this machine: shares, does not start twice
        assert second.server.process is None and second.client.get("survives") == "yes"
        second.close()
        assert first.client.ping()
    finally:
        first.close()
    assert first.server.process.poll() is not None  # stopped by its owner
    again = connect(None, tmp_path)
    try:
        assert again.client.get("survives") == "yes"  # the append-only file brought it back
    finally:
        again.close()


def test_an_unreachable_redis_url_fails_at_start_without_its_password(tmp_path):
    from tryon.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        connect("redis://:s3cret@127.0.0.1:9/0", tmp_path)
    assert "does not answer" in str(caught.value) and "s3cret" not in str(caught.value)
    assert isinstance(redis_py.Redis, type)
