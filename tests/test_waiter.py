"""The job system's waits: parked with one waiter instead of a thread each, bounded by the
provider's concurrency (TRYON_FAL_CONCURRENCY), and never taken over while their process lives."""

from __future__ import annotations

import time

import pytest

from test_jobs import make_service, wait_for
from tryon.config import Settings
from tryon.jobs.worker import WorkerPool


def most_at_once(fal_server, latency: float) -> int:
    """The most requests the test server had in flight at one moment (each lasts `latency`)."""
    starts = sorted(job.created for job in fal_server.jobs.values())
    return max(sum(1 for other in starts if start <= other < start + latency) for start in starts)


def pool_on(fal_server, redis_server, tmp_path, threads: int, **env: str):
    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path), **env})
    service = make_service(settings, redis_server)
    return service, WorkerPool(service, threads)


def test_two_threads_keep_thirty_looks_in_flight_at_the_provider(fal_server, redis_server, tmp_path, person_png, garment_pngs):
    fal_server.behaviour.latency_s = 2.0
    service, pool = pool_on(fal_server, redis_server, tmp_path, threads=2, TRYON_FAL_CONCURRENCY="30")
    ids = [service.submit_job(person_png, [garment_pngs[n % 4]]).job_id for n in range(30)]
    pool.start()
    try:
        answers = [wait_for(service, job_id, timeout=60) for job_id in ids]
    finally:
        pool.stop()
    assert [a["status"] for a in answers] == ["done"] * 30
    assert len(fal_server.jobs) == 30  # one generation per look
    # Two threads, but the waits were parked: far more than two requests ran side by side.
    assert most_at_once(fal_server, 2.0) >= 20


def test_the_provider_s_concurrency_bounds_the_looks_in_flight(fal_server, redis_server, tmp_path, person_png, garment_pngs):
    fal_server.behaviour.latency_s = 0.6
    service, pool = pool_on(fal_server, redis_server, tmp_path, threads=16, TRYON_FAL_CONCURRENCY="4")
    ids = [service.submit_job(person_png, [garment_pngs[n % 4]]).job_id for n in range(12)]
    pool.start()
    try:
        answers = [wait_for(service, job_id, timeout=60) for job_id in ids]
    finally:
        pool.stop()
    assert [a["status"] for a in answers] == ["done"] * 12 and len(fal_server.jobs) == 12
    assert most_at_once(fal_server, 0.6) <= 4  # sixteen threads, but room for four at the provider


def test_a_wait_longer_than_the_visibility_timeout_is_not_taken_over(fal_server, redis_server, tmp_path, person_png, garment_pngs):
    fal_server.behaviour.latency_s = 3.0
    env = {"TRYON_JOB_VISIBILITY": "1", "TRYON_FAL_CONCURRENCY": "8"}
    service, first = pool_on(fal_server, redis_server, tmp_path / "a", threads=2, **env)
    _, second = pool_on(fal_server, redis_server, tmp_path / "b", threads=2, **env)  # another process's pool
    ids = [service.submit_job(person_png, [garment_pngs[0]]).job_id for _ in range(6)]
    first.start()
    deadline = time.monotonic() + 20
    while len(fal_server.jobs) < 6:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second.start()  # idle and hungry for three times the visibility timeout while the first waits
    try:
        answers = [wait_for(service, job_id, timeout=60) for job_id in ids]
    finally:
        first.stop()
        second.stop()
    assert all(a["status"] == "done" and a["attempts"] == 1 for a in answers)
    assert len(fal_server.jobs) == 6  # the lease keeper renewed every claim: nothing generated twice


def test_a_parked_job_past_its_deadline_times_out_and_is_cancelled(fal_server, redis_server, tmp_path, person_png, garment_pngs):
    fal_server.behaviour.hang = True
    service, pool = pool_on(fal_server, redis_server, tmp_path, threads=1, TRYON_REQUEST_TIMEOUT="3")
    job_id = service.submit_job(person_png, [garment_pngs[0]]).job_id
    pool.start()
    try:
        answer = wait_for(service, job_id, timeout=30)
    finally:
        pool.stop()
    assert answer["status"] == "error" and answer["error_code"] == "provider_timeout"
    assert any(job.cancelled_at is not None for job in fal_server.jobs.values())
