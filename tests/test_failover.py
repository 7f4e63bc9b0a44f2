"""Failover between providers (TRYON_PROVIDER=fal,replicate,...) and the circuit breaker: the real
clients against the FAL, Replicate and RunPod protocol servers, and real Redis for async jobs."""

from __future__ import annotations

import threading
import time

import fal_client.client
import pytest

from test_jobs import make_service as make_job_service, wait_for
from tryon.config import Settings
from tryon.errors import ProviderError
from tryon.providers import ProviderChain, build_provider
from tryon.providers.breaker import CircuitBreaker, SharedCircuitBreaker
from tryon.service import TryOnService
from tryon.jobs.worker import WorkerPool
from vendor_servers import REPLICATE_FRAME


def chain_settings(tmp_path, *servers, **extra) -> Settings:
    env = {"TRYON_DATA_DIR": str(tmp_path / "data")}
    for server in servers:
        env.update(server.env())
    env["TRYON_PROVIDER"] = ",".join(server.env()["TRYON_PROVIDER"] for server in servers)
    env.update(extra)
    return Settings.from_env(env)


def chain_service(tmp_path, *servers, **extra) -> TryOnService:
    settings = chain_settings(tmp_path, *servers, **extra)
    return TryOnService(settings, build_provider(settings))


# --- the breaker alone ---------------------------------------------------------------------------


def test_the_breaker_opens_after_failures_in_a_row_and_probes_once_after_the_cooldown():
    now = [0.0]
    breaker = CircuitBreaker(failures=3, cooldown_s=30, clock=lambda: now[0])
    breaker.failed(), breaker.failed(), breaker.succeeded(), breaker.failed(), breaker.failed()
    assert breaker.state == "closed" and breaker.allow()  # a success in between resets the count
    breaker.failed()
    assert breaker.state == "open" and not breaker.allow() and breaker.retry_in() == 30
    now[0] = 30.5
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failed()
    assert breaker.state == "open" and breaker.retry_in() == 30  # the probe failed: another cool-down
    now[0] = 61
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow()


def shared_pair(redis_server, **options):
    """The same provider's breaker in two app processes (replicas) on one Redis."""
    import redis as redis_py

    from tryon.redis_server import client_for

    a = SharedCircuitBreaker(client_for(host="127.0.0.1", port=redis_server.port), "fal", **options)
    b = SharedCircuitBreaker(redis_py.Redis(port=redis_server.port), "fal", **options)
    return a, b


def test_the_shared_breaker_keeps_the_same_rules(redis_server):
    now = [1000.0]
    breaker, _ = shared_pair(redis_server, failures=3, cooldown_s=30, clock=lambda: now[0])
    breaker.failed(), breaker.failed(), breaker.succeeded(), breaker.failed(), breaker.failed()
    assert breaker.state == "closed" and breaker.allow()  # a success in between resets the count
    breaker.failed()
    assert breaker.state == "open" and not breaker.allow() and breaker.retry_in() == pytest.approx(30)
    now[0] = 1030.5
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failed()
    assert breaker.state == "open" and breaker.retry_in() == pytest.approx(30)  # the probe failed: another cool-down
    now[0] = 1061
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow()


def test_a_breaker_opened_by_one_replica_is_open_for_the_other_and_probed_once(redis_server):
    import redis as redis_py

    a, b = shared_pair(redis_server, failures=3, cooldown_s=0.5)  # Redis's clock: the one every replica reads
    a.failed(), b.failed(), a.failed()  # failures in a row, whichever replica saw them
    assert b.status()[0] == "open" and not b.allow() and 0.3 < b.retry_in() <= 0.5
    raw = redis_py.Redis(port=redis_server.port)
    assert 0 < raw.pttl("tryon:breaker:fal") <= 300_500  # the state expires
    time.sleep(0.6)
    replicas = [SharedCircuitBreaker(redis_py.Redis(port=redis_server.port), "fal", 3, 0.5) for _ in range(8)]
    barrier, answers = threading.Barrier(16), []

    def ask(breaker):
        barrier.wait()
        answers.append(breaker.allow())

    threads = [threading.Thread(target=ask, args=(replicas[n % 8],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(answers) == 1  # the half-open probe went to one caller of all the processes
    assert 0 < raw.pttl("tryon:breaker:fal:probe") <= 120_000  # a probe whose caller died is given again later
    b.succeeded()  # the probe worked: closed everywhere
    assert a.state == "closed" and a.allow() and raw.keys("tryon:breaker:*") == []


def test_an_unreachable_redis_leaves_the_breaker_closed():
    import redis as redis_py
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from conftest import free_port

    dead = redis_py.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    breaker = SharedCircuitBreaker(dead, "fal", failures=1)
    breaker.failed()
    assert breaker.allow() and breaker.status() == ("closed", 0.0)
    breaker.succeeded()


def test_replica_b_skips_fal_after_replica_a_saw_it_fail(tmp_path, fal_server, replicate_server, redis_server,
                                                         person_png, garment_pngs):
    from tryon.redis_server import client_for

    settings = chain_settings(tmp_path, fal_server, replicate_server, TRYON_BREAKER_FAILURES="2", TRYON_BREAKER_COOLDOWN="30")
    replica_a, replica_b = (TryOnService(settings, build_provider(settings, client_for(host="127.0.0.1", port=redis_server.port)))
                            for _ in range(2))
    fal_server.behaviour.submit_failures = [500, 500]
    for _ in range(2):
        assert replica_a.try_on_sync(person_png, garment_pngs[:1]).timings["provider"] == "replicate"
    submits = len(fal_server.submits)
    timings = replica_b.try_on_sync(person_png, garment_pngs[:1]).timings
    assert len(fal_server.submits) == submits  # replica B did not even ask FAL
    assert timings["provider"] == "replicate" and timings["failover"][0]["reason"].startswith("circuit open")
    assert replica_b.provider.health()[0]["state"] == "open" and 25 < replica_b.provider.health()[0]["retry_in_s"] <= 30


# --- sync: the chain -----------------------------------------------------------------------------


def test_settings_build_a_chain_in_the_given_order(tmp_path, fal_server, replicate_server, runpod_server):
    provider = build_provider(chain_settings(tmp_path, fal_server, replicate_server, runpod_server))
    assert isinstance(provider, ProviderChain) and provider.name == "fal,replicate,runpod"
    assert provider.label.startswith("FAL · fal-ai/nano-banana-pro/edit → Replicate · google/nano-banana → RunPod")


def test_a_healthy_first_provider_serves_and_the_others_are_not_called(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    result = chain_service(tmp_path, fal_server, replicate_server).try_on_sync(person_png, garment_pngs[:2])
    timings = result.timings
    assert timings["provider"] == "fal" and timings["provider_chain"] == "fal,replicate" and timings["failover"] == []
    assert len(fal_server.submits) == 2 and replicate_server.requests == []


def test_a_failing_fal_moves_the_request_to_replicate(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.submit_failures = [500, 500]  # both garments' calls
    result = chain_service(tmp_path, fal_server, replicate_server).try_on_sync(person_png, garment_pngs[:2])
    timings = result.timings
    assert timings["provider"] == "replicate"
    assert [(f["step"], f["provider"]) for f in timings["failover"]] == [(1, "fal"), (2, "fal")]
    assert "HTTP 500" in timings["failover"][0]["reason"]
    # The photos were on FAL's storage; Replicate got its own copies through its files API.
    assert len(replicate_server.received("POST", "/v1/files")) == 3
    assert len(replicate_server.predictions) == 2
    picture = result.to_pil().convert("RGB")
    assert picture.getpixel((picture.width - 8 - 153 // 2, 7)) == pytest.approx(REPLICATE_FRAME, abs=40)


def test_a_hanging_fal_gets_a_share_of_the_time_then_replicate_serves(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.hang = True
    service = chain_service(tmp_path, fal_server, replicate_server, TRYON_REQUEST_TIMEOUT="4")
    result = service.try_on_sync(person_png, garment_pngs[:1])
    assert result.timings["provider"] == "replicate" and result.timings["total_backend_ms"] < 4000
    reason = result.timings["failover"][0]["reason"]
    assert reason.startswith("provider_timeout: The image provider did not finish within 1.9") or "within 2 s" in reason
    assert len(fal_server.cancels) == 1  # FAL's request was cancelled, not left running


def test_a_rejected_input_is_not_an_outage(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.submit_failures = [422]
    with pytest.raises(ProviderError) as caught:
        chain_service(tmp_path, fal_server, replicate_server).try_on_sync(person_png, garment_pngs[:1])
    assert caught.value.code == "provider_rejected_input" and replicate_server.predictions == []


def test_a_content_policy_refusal_is_not_an_outage(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.content_policy = True
    with pytest.raises(ProviderError) as caught:
        chain_service(tmp_path, fal_server, replicate_server).try_on_sync(person_png, garment_pngs[:1])
    assert caught.value.code == "content_policy" and replicate_server.predictions == []


def test_a_fal_infrastructure_failure_moves_the_request_to_replicate(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    """COMPLETED with error + error_type ("Runner disconnected") is FAL failing, not our input."""
    fal_server.behaviour.completed_error = "Runner disconnected"
    result = chain_service(tmp_path, fal_server, replicate_server).try_on_sync(person_png, garment_pngs[:2])
    timings = result.timings
    assert timings["provider"] == "replicate" and [f["provider"] for f in timings["failover"]] == ["fal", "fal"]
    assert timings["failover"][0]["reason"] == "provider_failed: The image provider failed: Runner disconnected (runner_disconnected)"
    assert len(replicate_server.predictions) == 2


def test_when_every_provider_fails_the_message_names_each(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.submit_failures = [500]
    replicate_server.behaviour.submit_failures = [503]
    with pytest.raises(ProviderError) as caught:
        chain_service(tmp_path, fal_server, replicate_server).try_on_sync(person_png, garment_pngs[:1])
    message = str(caught.value)
    assert caught.value.code == "all_providers_failed"
    assert message.startswith("Every image provider failed (fal: ") and "HTTP 500" in message and "replicate: " in message


def test_the_breaker_skips_a_provider_that_keeps_failing_then_tries_it_again(tmp_path, fal_server, replicate_server, person_png, garment_pngs):
    service = chain_service(tmp_path, fal_server, replicate_server, TRYON_BREAKER_FAILURES="2", TRYON_BREAKER_COOLDOWN="1")
    fal_server.behaviour.submit_failures = [500, 500]
    for _ in range(2):
        assert service.try_on_sync(person_png, garment_pngs[:1]).timings["provider"] == "replicate"
    submits_before = len(fal_server.submits)
    skipped = service.try_on_sync(person_png, garment_pngs[:1]).timings
    assert len(fal_server.submits) == submits_before  # not even asked
    assert skipped["provider"] == "replicate" and skipped["failover"][0]["reason"].startswith("circuit open")
    assert service.provider.health()[0]["state"] == "open"
    import time

    time.sleep(1.1)  # the cool-down; then one probe goes to FAL, which has recovered
    assert service.try_on_sync(person_png, garment_pngs[:1]).timings["provider"] == "fal"
    assert service.provider.health()[0]["state"] == "closed"


def test_uploads_fail_over_too(tmp_path, fal_server, replicate_server, person_png, garment_pngs, monkeypatch):
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 2)
    service = chain_service(tmp_path, fal_server, replicate_server,
                            TRYON_FAL_REST_URL="https://127.0.0.1:9", TRYON_FAL_CDN_URL="https://127.0.0.1:9")
    upload = service.upload(person_png)
    assert upload.ref.startswith(replicate_server.url + "/v1/files/")


def test_runpod_takes_over_from_replicate(tmp_path, replicate_server, runpod_server, person_png, garment_pngs):
    replicate_server.behaviour.submit_failures = [500]
    result = chain_service(tmp_path, replicate_server, runpod_server).try_on_sync(person_png, garment_pngs[:1])
    assert result.timings["provider"] == "runpod"
    (run,) = runpod_server.runs
    assert all(u.startswith("data:image/jpeg") for u in run.body["input"]["image_urls"])  # re-sent as RunPod reads them


# --- async: the job records the provider that has it ---------------------------------------------


@pytest.fixture
def chain_jobs(fal_server, replicate_server, redis_server, tmp_path):
    settings = chain_settings(tmp_path, fal_server, replicate_server, TRYON_JOB_VISIBILITY="2")
    service = make_job_service(settings, redis_server)
    pool = WorkerPool(service, 2).start()
    yield service
    pool.stop()


def test_an_async_job_fails_over_at_submit_and_records_its_provider(chain_jobs, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.submit_failures = [500]
    job = chain_jobs.submit_job(person_png, garment_pngs[:2])
    answer = wait_for(chain_jobs, job.job_id)
    assert answer["status"] == "done"
    record = chain_jobs.queue.get(job.job_id)
    assert record.provider == "replicate" and record.provider_request_id.startswith("replicate:")
    assert record.timings["provider"] == "replicate" and record.timings["failover"][0]["provider"] == "fal"
    (prediction,) = replicate_server.predictions  # one call with every garment
    assert len(prediction.body["input"]["image_input"]) == 3


def test_an_async_job_whose_fal_runner_fails_is_finished_by_replicate(chain_jobs, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.completed_error, fal_server.behaviour.completed_error_type = "Request timed out", "request_timeout"
    job = chain_jobs.submit_job(person_png, garment_pngs[:2])
    answer = wait_for(chain_jobs, job.job_id)
    assert answer["status"] == "done"
    record = chain_jobs.queue.get(job.job_id)
    assert record.provider == "replicate" and "Request timed out (request_timeout)" in record.timings["failover"][0]["reason"]


def test_an_outage_while_waiting_moves_the_job_and_records_the_new_request(chain_jobs, fal_server, replicate_server, person_png, garment_pngs):
    fal_server.behaviour.latency_s = 30
    job = chain_jobs.submit_job(person_png, garment_pngs[:1])
    wait_for(chain_jobs, job.job_id, statuses=("processing",))
    fal_server.behaviour.submit_failures = []
    # FAL starts answering its status reads with 401 (a revoked key): an outage, so the job moves on.
    fal_server.key, original = "revoked", fal_server.key
    try:
        answer = wait_for(chain_jobs, job.job_id)
    finally:
        fal_server.key = original
    assert answer["status"] == "done"
    record = chain_jobs.queue.get(job.job_id)
    assert record.provider == "replicate" and record.provider_request_id.startswith("replicate:")
    assert record.timings["failover"][0]["provider"] == "fal"


def test_a_resumed_job_polls_the_vendor_named_on_its_record(fal_server, replicate_server, redis_server, tmp_path, person_png, garment_pngs):
    settings = chain_settings(tmp_path, fal_server, replicate_server, TRYON_JOB_VISIBILITY="1")
    service = make_job_service(settings, redis_server)
    replicate_server.behaviour.latency_s = 0.5
    # A worker that died right after submitting to Replicate: the record names its request.
    job = service.submit_job(person_png, garment_pngs[:1])
    prediction_id = service.provider.submit_edit("dress", job.inputs[0]["ref"], [job.inputs[1]["ref"]], exclude=("fal",))
    service.queue.redis.hset(f"tryon:job:{job.job_id}", mapping={"provider_request_id": prediction_id, "provider": "replicate"})
    pool = WorkerPool(service, 1).start()
    try:
        answer = wait_for(service, job.job_id)
    finally:
        pool.stop()
    assert answer["status"] == "done"
    assert len(replicate_server.predictions) == 1 and fal_server.submits == []  # resumed, not submitted again
    assert service.queue.get(job.job_id).timings["resumed_provider_request"] is True


def test_a_model_goes_to_the_member_that_runs_it_and_fails_over_from_there(tmp_path, fal_server, replicate_server,
                                                                             person_png, garment_pngs):
    from tryon.outfit import Outfit

    service = chain_service(tmp_path, fal_server, replicate_server)  # FAL first in the chain
    result = service.try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(model="google/nano-banana-pro"))
    assert result.timings["model"] == "google/nano-banana-pro" and result.timings["provider"] == "replicate"
    assert fal_server.submits == [] and replicate_server.predictions[0].body["input"]["resolution"] == "1K"
    result = service.try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(model="fal-ai/fashn/tryon/v1.6"))
    assert result.timings["model"] == "fal-ai/fashn/tryon/v1.6" and result.timings["provider"] == "fal"
    assert result.timings["cost_usd"] == 0.075
