"""FAL as it really behaves (its docs, fal-client 1.0.3's code; docs/FAL.md), through the real
fal-client against the protocol test server, and how the FAL provider answers each behaviour."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time

import fal_client.client
import pytest

from tryon.config import Settings
from tryon.errors import ProviderError
from tryon.providers import build_provider
from tryon.providers.base import EditOptions
from tryon.service import TryOnService

PROMPT = "Dress the person in the garment."
CALL_THREADS = {"fal-submit", "fal-status", "fal-result", "fal-cancel"}  # tryon.providers.fal's call_before names


@pytest.fixture(autouse=True)
def no_call_left_behind():
    """A call the provider stopped waiting for runs on (fal-client retries it); let it end here,
    not in the next test's request log."""
    yield
    for thread in threading.enumerate():
        if thread.name in CALL_THREADS:
            thread.join(timeout=20)


@pytest.fixture
def provider(fal_settings):
    return build_provider(fal_settings)


@pytest.fixture
def refs(provider, fal_settings, person_png, garment_pngs):
    """(person, garment) uploaded to the test server's storage, as the service does."""
    service = TryOnService(fal_settings, provider)
    return service.upload(person_png).ref, service.upload(garment_pngs[0], "garment_1").ref


def raised(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


# --- where FAL reports a failure -------------------------------------------------------------


def test_a_field_outside_the_model_s_schema_is_a_422_from_the_result(provider, fal_server, refs):
    error = raised(lambda: provider.edit(PROMPT, refs[0], [refs[1]], options=EditOptions(aspect_ratio="7:3")))
    assert error.code == "provider_rejected_input"
    assert "aspect_ratio: Input should be 'auto', '21:9'" in str(error)
    result_calls = [r for r in fal_server.received("GET", "/fal-ai/nano-banana-pro/requests/") if not r.path.endswith("/status")]
    assert len(fal_server.submits) == 1 and len(result_calls) == 1  # queued, ran, then refused


def test_every_option_the_app_can_send_is_in_the_model_s_schema(provider, fal_server, refs):
    for aspect in ["auto", "1:1", "4:5", "3:4", "2:3", "9:16", "5:4", "4:3", "3:2", "16:9", "21:9"]:
        for resolution in ["1K", "2K", "4K"]:
            provider.edit(PROMPT, refs[0], [refs[1]], options=EditOptions(num_images=2, aspect_ratio=aspect, resolution=resolution))
    assert len(fal_server.submits) == 33


def test_a_content_policy_refusal_has_its_own_code_and_words(provider, fal_server, refs):
    fal_server.behaviour.content_policy = True
    error = raised(lambda: provider.edit(PROMPT, refs[0], [refs[1]]))
    assert error.code == "content_policy" and error.http_status == 400
    assert str(error).startswith("The model refused this photo or garment under its content policy.")
    assert error.message("es").startswith("El modelo rechazó esta foto o prenda")


@pytest.mark.parametrize("error_type, text", [("runner_disconnected", "Runner disconnected"), ("request_timeout", "Request timed out")])
def test_an_infrastructure_failure_is_completed_with_error_and_is_an_outage(provider, fal_server, refs, error_type, text):
    fal_server.behaviour.completed_error, fal_server.behaviour.completed_error_type = text, error_type
    error = raised(lambda: provider.edit(PROMPT, refs[0], [refs[1]]))
    assert error.code == "provider_failed" and f"{text} ({error_type})" in str(error)


@pytest.mark.parametrize("flag", ["no_image", "no_media_generated"])
def test_no_image_keeps_the_seed_s_message(provider, fal_server, refs, flag):
    """A 200 with no image, or FAL's 422 no_media_generated: the model made nothing."""
    setattr(fal_server.behaviour, flag, True)
    assert raised(lambda: provider.edit(PROMPT, refs[0], [refs[1]])).code == "no_image_returned"


def test_a_request_still_queued_when_its_start_timeout_passes_is_dropped_by_fal(provider, fal_server, refs):
    fal_server.behaviour.queue_s = 30
    request_id = provider.submit_edit(PROMPT, refs[0], [refs[1]], deadline=time.monotonic() + 2.2)  # start_timeout 2.2 s
    started = time.monotonic()
    error = raised(lambda: provider.await_edit(request_id, 10))
    assert error.code == "provider_timeout" and 1.5 < time.monotonic() - started < 4
    assert fal_server.cancels == []  # FAL answered 504 with X-Fal-Request-Timeout-Type: it dropped the request itself


# --- polls that fail or hang -------------------------------------------------------------------


def test_ingress_errors_and_429s_on_status_and_result_are_retried_by_fal_client(provider, fal_server, refs):
    fal_server.behaviour.status_failures = [503, 429]
    fal_server.behaviour.result_failures = [502, 429]
    result = provider.edit(PROMPT, refs[0], [refs[1]])
    assert result.ref.startswith(fal_server.url)


def test_an_app_error_on_a_status_poll_is_reported_at_once(provider, fal_server, refs):
    fal_server.behaviour.status_failures = [500]
    error = raised(lambda: provider.edit(PROMPT, refs[0], [refs[1]]))
    assert error.code == "provider_unavailable" and "HTTP 500" in str(error)


@pytest.mark.parametrize("latency, outcome", [(10, "cancellation requested"), (0.05, "already completed")])
def test_a_hung_status_poll_never_keeps_the_caller_past_the_deadline(fal_server, tmp_path, person_png, garment_pngs, caplog,
                                                                     latency, outcome):
    settings = Settings.from_env({**fal_server.env(), "TRYON_REQUEST_TIMEOUT": "2", "TRYON_DATA_DIR": str(tmp_path)})
    service = TryOnService(settings, build_provider(settings))
    service.upload(person_png), service.upload(garment_pngs[0])  # uploads are outside the model call's deadline
    fal_server.behaviour.status_hang_s = 5  # each poll takes 5 s, and fal-client would wait 120 s for one
    fal_server.behaviour.latency_s = latency  # still running at the deadline, or finished behind the hung poll
    caplog.set_level(logging.WARNING, logger="tryon.providers.fal")
    started = time.monotonic()
    error = raised(lambda: service.try_on_sync(person_png, garment_pngs[:1]))
    waited = time.monotonic() - started
    assert error.code == "provider_timeout" and waited < 2 + 1.5, waited
    assert len(fal_server.cancels) == 1
    assert f"cancel: {outcome}" in caplog.text  # what the cancel did is recorded


def test_a_rate_limit_that_fal_client_keeps_retrying_stops_at_the_deadline(fal_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(), "TRYON_REQUEST_TIMEOUT": "2", "TRYON_DATA_DIR": str(tmp_path)})
    service = TryOnService(settings, build_provider(settings))
    service.upload(person_png), service.upload(garment_pngs[0])
    fal_server.behaviour.submit_failures = [429] * 7  # fal-client backs off 3-9 s over these
    started = time.monotonic()
    error = raised(lambda: service.try_on_sync(person_png, garment_pngs[:1]))
    assert error.code == "provider_timeout" and time.monotonic() - started < 2 + 1.5
    for thread in threading.enumerate():
        if thread.name == "fal-submit":
            thread.join(timeout=20)
    # The retries got a request in after we gave up: it is cancelled at once, not left to run and bill.
    assert len(fal_server.submits) == 8 and len(fal_server.cancels) == 1


def test_the_deadline_is_sent_as_start_timeout(provider, fal_server, refs):
    provider.edit(PROMPT, refs[0], [refs[1]], timeout_s=30)
    sent = float(fal_server.submits[0].headers["x-fal-request-timeout"])
    assert 28 < sent <= 30


# --- cancel, as FAL answers it ---------------------------------------------------------------


def test_cancel_of_a_finished_request_is_a_400_and_says_so(provider, fal_server, refs):
    request_id = provider.submit_edit(PROMPT, refs[0], [refs[1]])
    provider.await_edit(request_id, 10)
    handle = provider.client.get_handle(provider.model, request_id)
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        handle.cancel()
    assert caught.value.status_code == 400
    assert provider._cancel(handle) == "already completed"


def test_a_cancelled_running_request_may_still_finish_and_bill(provider, fal_server, refs):
    fal_server.behaviour.latency_s, fal_server.behaviour.finishes_after_cancel = 0.4, True
    request_id = provider.submit_edit(PROMPT, refs[0], [refs[1]])
    time.sleep(0.1)
    handle = provider.client.get_handle(provider.model, request_id)
    handle.cancel()  # 202: only a signal
    result = provider.await_edit(request_id, 10)
    assert result.ref.startswith(fal_server.url)


def test_a_cancelled_queued_request_completes_as_cancelled(provider, fal_server, refs):
    fal_server.behaviour.queue_s = 5
    request_id = provider.submit_edit(PROMPT, refs[0], [refs[1]])
    handle = provider.client.get_handle(provider.model, request_id)
    handle.cancel()
    status = handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "client_cancelled"


# --- the queue ---------------------------------------------------------------------------------


def test_queue_position_counts_down(provider, fal_server, refs):
    fal_server.behaviour.queue_s, fal_server.behaviour.queue_step_s = 0.6, 0.1
    handle = provider.client.get_handle(provider.model, provider.submit_edit(PROMPT, refs[0], [refs[1]]))
    positions = []
    while isinstance(status := handle.status(), fal_client.Queued):
        positions.append(status.position)
        time.sleep(0.05)
    assert positions[0] >= 3 and positions == sorted(positions, reverse=True) and positions[-1] <= 1


def test_a_request_is_found_only_under_the_model_it_was_submitted_to(provider, fal_server, refs):
    request_id = provider.submit_edit(PROMPT, refs[0], [refs[1]])
    other = provider.client.get_handle("fal-ai/flux-pro/kontext", request_id)
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        other.status()
    assert caught.value.status_code == 404


# --- what FAL keeps, and for how long -----------------------------------------------------------


def test_every_model_call_asks_for_expiring_outputs_and_no_stored_payloads(fal_settings, fal_server, person_png, garment_pngs):
    service = TryOnService(fal_settings, build_provider(fal_settings))
    result = service.try_on_sync(person_png, garment_pngs[:3])  # a chain: three model calls, two intermediate pictures
    assert len(fal_server.submits) == 3
    for submit in fal_server.submits:
        assert json.loads(submit.headers["x-fal-object-lifecycle-preference"]) == {"expiration_duration_seconds": 86400}
        assert submit.headers["x-fal-store-io"] == "0"
    for job in fal_server.jobs.values():  # the intermediate steps too
        assert not job.store_io and job.result and all(
            86000 < fal_server.expiry_of(image["url"]) <= 86400 for image in job.result["images"])
    assert 86000 < fal_server.expiry_of(result.image_url) <= 86400


def test_storing_payloads_can_be_turned_back_on(fal_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(), "TRYON_FAL_STORE_IO": "1", "TRYON_UPLOAD_TTL": "1h",
                                  "TRYON_DATA_DIR": str(tmp_path)})
    TryOnService(settings, build_provider(settings)).try_on_sync(person_png, garment_pngs[:1])
    headers = fal_server.submits[0].headers
    assert "x-fal-store-io" not in headers
    assert json.loads(headers["x-fal-object-lifecycle-preference"]) == {"expiration_duration_seconds": 3600}


def test_uploads_and_results_are_gone_once_their_lifecycle_passes(fal_settings, fal_server, person_png, garment_pngs):
    import httpx

    service = TryOnService(fal_settings, build_provider(fal_settings))
    result = service.try_on_sync(person_png, garment_pngs[:1])
    upload_url = service.upload(person_png).ref
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(fal_server.cert)))
    assert http.get(result.image_url).status_code == 200
    fal_server.advance(86401)
    assert http.get(result.image_url).status_code == 404
    assert http.get(upload_url).status_code == 404


def test_a_submit_that_outlasts_its_budget_reports_that_budget(provider, fal_server, refs):
    """In a chain a provider gets a share of the time; its timeout says that share, not TRYON_REQUEST_TIMEOUT."""
    fal_server.behaviour.submit_failures = [429] * 7
    error = raised(lambda: provider.edit(PROMPT, refs[0], [refs[1]], timeout_s=2.5))
    assert error.code == "provider_timeout" and "within 2.5 s" in str(error) and provider.timeout_s == 60
