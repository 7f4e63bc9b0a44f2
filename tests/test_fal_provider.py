"""The FAL provider: the real fal-client against the FAL-protocol test server, over HTTPS."""

from __future__ import annotations

import io
import json
import logging
import threading

import fal_client.client
import pytest
from PIL import Image

from tryon.config import Settings
from tryon.errors import ProviderError
from tryon.providers import build_provider
from tryon.providers.fal import FalProvider
from tryon.service import TryOnService


@pytest.fixture
def service(fal_settings) -> TryOnService:
    return TryOnService(fal_settings, build_provider(fal_settings))


def submitted_bodies(fal_server) -> list[dict]:
    return [r.body for r in fal_server.submits]


def test_settings_with_a_key_build_the_fal_provider(fal_settings):
    provider = build_provider(fal_settings)
    assert isinstance(provider, FalProvider) and provider.model == "fal-ai/nano-banana-pro/edit"
    assert provider.is_preview is False


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_the_chain_sends_one_schema_and_passes_each_result_on(service, fal_server, person_png, garment_pngs, count):
    result = service.try_on_sync(person_png, garment_pngs[:count])
    bodies = submitted_bodies(fal_server)
    assert len(bodies) == count
    uploads = {u["field"]: u for u in result.timings["uploads"]}
    assert set(uploads) == {"person", *[f"garment_{i}" for i in range(1, count + 1)]}
    urls = [r.body for r in fal_server.uploads]
    assert len(urls) == 1 + count  # every image uploaded exactly once
    job_results = []
    for n, body in enumerate(bodies):
        # The model's schema, the same in every call: prompt + image_urls (never person_image/garment_image).
        assert set(body) == {"prompt", "image_urls", "num_images", "aspect_ratio", "resolution", "output_format"}
        assert "Figure 1" in body["prompt"] and "Figure 2" in body["prompt"]
        assert len(body["image_urls"]) == 2 and all(u.startswith(fal_server.url + "/files/") for u in body["image_urls"])
        assert "data:" not in json.dumps(body)  # images travel by URL, never as base64
        if n > 0:
            assert body["image_urls"][0] == job_results[-1]  # the previous result is the next person
        job = fal_server.jobs[result.timings["provider_request_ids"][n]]
        job_results.append(job.result["images"][0]["url"])
    garment_urls = [b["image_urls"][1] for b in bodies]
    assert len(set(garment_urls)) == count
    assert result.image_url == job_results[-1]
    assert result.image == fal_server.file_for(job_results[-1])  # the server's picture, byte for byte
    timings = result.timings
    assert timings["provider"] == "fal" and timings["offline_preview"] is False
    assert [timings[f"fal_call_{i}"] > 0 for i in range(1, count + 1)] == [True] * count
    assert timings["fal_duration_ms"] >= count * 50  # the server's simulated model time per call


def test_uploads_go_to_the_cdn_with_an_expiry_and_the_token_once(service, fal_server, person_png, garment_pngs):
    service.try_on_sync(person_png, garment_pngs[:2])
    cdn = fal_server.received("POST", "/files/upload")
    assert len(cdn) == 3
    for upload in cdn:
        assert upload.headers["content-type"] == "image/jpeg"
        assert json.loads(upload.headers["x-fal-object-lifecycle"]) == {"expiration_duration_seconds": 86400}
        assert upload.headers["authorization"].startswith("Bearer ")
        assert upload.body < 400_000  # normalized JPEGs, not the raw PNGs
    tokens = fal_server.received("POST", "/storage/auth/token")
    assert len(tokens) == 1 and tokens[0].query == {"storage_type": ["fal-cdn-v3"]}
    assert tokens[0].headers["authorization"] == f"Key {fal_server.key}"


def test_the_upload_expiry_is_configurable(fal_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(), "TRYON_UPLOAD_TTL": "2h", "TRYON_DATA_DIR": str(tmp_path)})
    TryOnService(settings, build_provider(settings)).upload(person_png)
    upload = fal_server.received("POST", "/files/upload")[0]
    assert json.loads(upload.headers["x-fal-object-lifecycle"]) == {"expiration_duration_seconds": 7200}


def test_the_same_photo_is_uploaded_once_across_requests(service, fal_server, person_png, garment_pngs):
    first = service.try_on_sync(person_png, garment_pngs[:1]).timings
    second = service.try_on_sync(person_png, garment_pngs[1:2]).timings
    assert len(fal_server.uploads) == 3  # person once, two garments
    assert [u["upload"] for u in first["uploads"]] == ["uploaded", "uploaded"]
    assert [u["upload"] for u in second["uploads"]] == ["cached", "uploaded"]
    assert second["uploads"][0]["intake"] == "cached"
    person_urls = {b["image_urls"][0] for b in submitted_bodies(fal_server)}
    assert len(person_urls) == 1


def test_a_url_is_not_reused_close_to_its_expiry(fal_server, tmp_path, person_png):
    # With a 60 s lifecycle the safety margin (at least 60 s) leaves no time to reuse the URL.
    settings = Settings.from_env({**fal_server.env(), "TRYON_UPLOAD_TTL": "60", "TRYON_DATA_DIR": str(tmp_path)})
    service = TryOnService(settings, build_provider(settings))
    assert service.upload(person_png).upload == "uploaded"
    assert service.upload(person_png).upload == "uploaded"
    assert len(fal_server.uploads) == 2


def test_concurrent_uploads_of_one_photo_share_a_single_upload(service, fal_server, person_png):
    fal_server.behaviour.upload_latency_s = 0.3
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(service.upload(person_png).upload)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["shared", "shared", "uploaded"]
    assert len(fal_server.uploads) == 1


def test_a_failing_cdn_upload_falls_back_to_storage_upload(service, fal_server, person_png):
    fal_server.behaviour.upload_failures = [500]
    url = service.upload(person_png).ref
    assert url.startswith(fal_server.url + "/files/")
    assert fal_server.file_for(url) is not None
    initiate = fal_server.received("POST", "/storage/upload/initiate")
    assert len(initiate) == 1
    assert json.loads(initiate[0].headers["x-fal-object-lifecycle-preference"]) == {"expiration_duration_seconds": 86400}


# --- errors, each with its message -----------------------------------------------------------


def error_from(service, person_png, garment_pngs) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        service.try_on_sync(person_png, garment_pngs[:1])
    return caught.value


def test_a_wrong_key_is_reported_without_the_key(fal_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(FAL_KEY="sk-wrong-secret-123"), "TRYON_DATA_DIR": str(tmp_path)})
    error = error_from(TryOnService(settings, build_provider(settings)), person_png, garment_pngs)
    assert error.code == "provider_auth" and "HTTP 401" in str(error) and "FAL_KEY" in str(error)
    assert "sk-wrong-secret-123" not in str(error) and "sk-wrong-secret-123" not in error.message("es")


def test_invalid_input_carries_fal_s_detail_from_the_result_endpoint(fal_settings, fal_server):
    """FAL queues any input; its runner validates it, and the result call answers 422 with the detail list."""
    provider = build_provider(fal_settings)
    gone = f"{fal_server.url}/files/never-uploaded.jpg"
    with pytest.raises(ProviderError) as caught:
        provider.edit("Dress the person in the garment.", gone, [gone])
    assert caught.value.code == "provider_rejected_input" and caught.value.http_status == 400
    assert str(caught.value).startswith("The model rejected the request: image_urls.0: Could not download the image")
    assert len(fal_server.submits) == 1  # accepted at submit, refused at the result


def test_rate_limits_are_retried_by_fal_client(service, fal_server, person_png, garment_pngs):
    fal_server.behaviour.submit_failures = [429, 429]
    result = service.try_on_sync(person_png, garment_pngs[:1])
    assert len(fal_server.submits) == 3 and result.timings["fal_call_1"] > 0


def test_a_rate_limit_that_outlasts_the_retries_says_so(service, fal_server, person_png, garment_pngs, monkeypatch):
    # fal-client would back off for ~50 s over 10 attempts; three keep the test short.
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 3)
    fal_server.behaviour.submit_failures = [429] * 3
    error = error_from(service, person_png, garment_pngs)
    assert error.code == "provider_busy" and error.http_status == 429
    assert len(fal_server.submits) == 3


def test_ingress_502s_are_retried_by_fal_client(service, fal_server, person_png, garment_pngs):
    fal_server.behaviour.submit_failures = [502, 502]
    service.try_on_sync(person_png, garment_pngs[:1])
    assert len(fal_server.submits) == 3


def test_a_provider_500_is_reported_after_one_attempt(service, fal_server, person_png, garment_pngs):
    fal_server.behaviour.submit_failures = [500]
    error = error_from(service, person_png, garment_pngs)
    assert error.code == "provider_unavailable" and error.http_status == 502 and "HTTP 500" in str(error)
    assert len(fal_server.submits) == 1


def test_a_hung_request_times_out_and_is_cancelled(fal_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(), "TRYON_REQUEST_TIMEOUT": "1.5", "TRYON_DATA_DIR": str(tmp_path)})
    fal_server.behaviour.hang = True
    error = error_from(TryOnService(settings, build_provider(settings)), person_png, garment_pngs)
    assert error.code == "provider_timeout" and error.http_status == 504
    assert str(error).startswith("The image provider did not finish within 1.5 s")
    assert len(fal_server.cancels) == 1
    assert fal_server.jobs[fal_server.cancels[0].path.split("/requests/")[1].split("/")[0]].cancelled_at is not None


def test_no_image_is_the_seed_s_most_common_failure(service, fal_server, person_png, garment_pngs):
    fal_server.behaviour.no_image = True
    error = error_from(service, person_png, garment_pngs)
    assert error.code == "no_image_returned" and str(error).startswith("The model returned no image.")


def test_a_broken_result_url(service, fal_server, person_png, garment_pngs):
    fal_server.behaviour.broken_url = True
    error = error_from(service, person_png, garment_pngs)
    assert error.code == "bad_result_image" and "HTTP 404" in str(error)


def test_an_infrastructure_failure_is_an_outage_not_a_rejected_input(service, fal_server, person_png, garment_pngs):
    fal_server.behaviour.completed_error = "Runner disconnected"
    error = error_from(service, person_png, garment_pngs)
    assert error.code == "provider_failed" and error.http_status == 502
    assert str(error) == "The image provider failed: Runner disconnected (runner_disconnected)"


def test_an_unreachable_provider(tmp_path, person_png, monkeypatch):
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 2)
    env = {"FAL_KEY": "k", "TRYON_PROVIDER": "fal", "TRYON_DATA_DIR": str(tmp_path),
           "TRYON_FAL_REST_URL": "https://127.0.0.1:9", "TRYON_FAL_CDN_URL": "https://127.0.0.1:9"}
    settings = Settings.from_env(env)
    with pytest.raises(ProviderError) as caught:
        TryOnService(settings, build_provider(settings)).upload(person_png)
    assert caught.value.code == "provider_unreachable"


def test_the_key_never_reaches_a_log_line(service, fal_server, person_png, garment_pngs, caplog):
    caplog.set_level(logging.DEBUG)
    service.try_on_sync(person_png, garment_pngs[:2])
    fal_server.behaviour.submit_failures = [401]
    with pytest.raises(ProviderError):
        service.try_on_sync(person_png, garment_pngs[:1])
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert text  # something was logged
    assert fal_server.key not in text


def test_the_result_is_the_server_s_picture(service, fal_server, person_png, garment_pngs):
    picture = service.try_on_sync(person_png, garment_pngs[:2]).to_pil().convert("RGB")
    assert picture.size == (768, 1024)
    # the server frames each garment swatch in magenta in the top-right corner
    assert picture.getpixel((picture.width - 8 - 153 // 2, 8 - 2 + 1))[0] > 200
    assert Image.open(io.BytesIO(person_png)).size == picture.size
