"""Replicate (the official client) and RunPod (its /run + /status protocol) against local protocol
servers: real HTTP, the vendors' shapes, faults on demand."""

from __future__ import annotations

import logging

import pytest

from tryon.config import Settings
from tryon.errors import ProviderError
from tryon.providers import build_provider
from tryon.providers.replicate import ReplicateProvider
from tryon.providers.runpod import RunPodProvider
from tryon.service import TryOnService
from vendor_servers import REPLICATE_FRAME, RUNPOD_FRAME


def make_service(server, tmp_path, **extra) -> TryOnService:
    settings = Settings.from_env({**server.env(**extra), "TRYON_DATA_DIR": str(tmp_path / "data")})
    return TryOnService(settings, build_provider(settings))


@pytest.fixture(params=["replicate", "runpod"])
def vendor(request, replicate_server, runpod_server):
    """Each vendor's test server; the same behaviour tests run against both."""
    return {"replicate": replicate_server, "runpod": runpod_server}[request.param]


def error_from(service, person, garments) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        service.try_on_sync(person, garments)
    return caught.value


def frame_colour_at_first_swatch(picture):
    return picture.getpixel((picture.width - 8 - 153 // 2, 8 - 2 + 1))


# --- Replicate ---------------------------------------------------------------------------------


def test_replicate_uploads_through_its_files_api_and_polls_a_prediction(replicate_server, tmp_path, person_png, garment_pngs):
    service = make_service(replicate_server, tmp_path)
    assert isinstance(service.provider, ReplicateProvider) and service.provider.model == "google/nano-banana"
    result = service.try_on_sync(person_png, garment_pngs[:2])
    assert len(replicate_server.received("POST", "/v1/files")) == 3  # person + 2 garments, once each
    created = replicate_server.predictions
    assert [r.path for r in created] == ["/v1/models/google/nano-banana/predictions"] * 2  # the chain: one per garment
    for n, request in enumerate(created):
        model_input = request.body["input"]
        assert set(model_input) == {"prompt", "image_input", "output_format", "aspect_ratio"} and "Figure 2" in model_input["prompt"]
        assert model_input["aspect_ratio"] == "match_input_image"  # "same as the person photo", in the model's words
        assert all(u.startswith(replicate_server.url + "/v1/files/") for u in model_input["image_input"][n > 0:])
        assert request.headers["authorization"] == f"Bearer {replicate_server.token}"
        assert "prefer" not in request.headers  # no blocking wait: created, then polled
    assert created[1].body["input"]["image_input"][0].startswith(replicate_server.url + "/files/")  # result 1 -> person 2
    assert len(replicate_server.received("GET", "/v1/predictions/")) >= 2
    assert result.timings["provider"] == "replicate" and len(result.timings["provider_request_ids"]) == 2
    assert frame_colour_at_first_swatch(result.to_pil().convert("RGB")) == pytest.approx(REPLICATE_FRAME, abs=40)


def test_a_pinned_replicate_version_uses_the_versioned_endpoint(replicate_server, tmp_path, person_png, garment_pngs):
    service = make_service(replicate_server, tmp_path, TRYON_REPLICATE_MODEL="acme/tryon:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa")
    service.try_on_sync(person_png, garment_pngs[:1])
    (request,) = replicate_server.predictions
    assert request.path == "/v1/predictions" and request.body["version"].startswith("5c7d5dc6")


@pytest.mark.parametrize("model, aspect, resolution, sent", [
    ("google/nano-banana", "same", "1K", {"aspect_ratio": "match_input_image"}),  # no resolution: it takes none
    ("google/nano-banana", "3:4", "1K", {"aspect_ratio": "3:4"}),
    ("google/nano-banana-pro", "same", "1K", {"aspect_ratio": "match_input_image", "resolution": "1K"}),  # not its 2K default
    ("google/nano-banana-pro", "16:9", "4K", {"aspect_ratio": "16:9", "resolution": "4K"}),
])
def test_replicate_gets_aspect_ratio_and_resolution_in_each_model_s_words(replicate_server, tmp_path, person_png, garment_pngs,
                                                                          model, aspect, resolution, sent):
    from tryon.outfit import Outfit

    service = make_service(replicate_server, tmp_path, TRYON_REPLICATE_MODEL=model)
    service.try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(aspect_ratio=aspect, resolution=resolution))
    (prediction,) = replicate_server.predictions
    chosen = {k: v for k, v in prediction.body["input"].items() if k in ("aspect_ratio", "resolution")}
    assert chosen == sent


def test_a_resolution_google_nano_banana_cannot_make_is_refused_before_anything_is_paid(replicate_server, tmp_path,
                                                                                        person_png, garment_pngs):
    from tryon.errors import InvalidRequest
    from tryon.outfit import Outfit

    service = make_service(replicate_server, tmp_path, TRYON_REPLICATE_MODEL="google/nano-banana")
    with pytest.raises(InvalidRequest) as raised:
        service.try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(resolution="4K"))
    assert raised.value.code == "model_cannot" and "cannot make a 4K result: use 1K" in raised.value.message("en")
    assert replicate_server.predictions == [] and replicate_server.received("POST", "/v1/files") == []


def test_the_replicate_server_refuses_what_the_model_s_schema_does_not_take(replicate_server, tmp_path, person_png, garment_pngs):
    from tryon.providers.base import EditOptions

    service = make_service(replicate_server, tmp_path, TRYON_REPLICATE_MODEL="google/nano-banana-pro")
    person, garment = service.upload(person_png).ref, service.upload(garment_pngs[0]).ref
    with pytest.raises(ProviderError) as caught:
        service.provider.edit("Dress the person.", person, [garment], options=EditOptions(resolution="8K"))
    assert caught.value.code == "provider_rejected_input" and "resolution must be one of" in str(caught.value)


def test_replicate_validation_errors_carry_its_detail(replicate_server, tmp_path, person_png, garment_pngs):
    service = make_service(replicate_server, tmp_path)
    service.upload(person_png)
    replicate_server.files.clear()  # the uploaded files vanish: the model cannot read them
    error = error_from(service, person_png, garment_pngs[:1])
    assert error.code == "provider_rejected_input" and "input.image_input.0: could not fetch the file" in str(error)


# --- RunPod ------------------------------------------------------------------------------------


def test_runpod_sends_the_documented_input_and_reads_the_output(runpod_server, tmp_path, person_png, garment_pngs):
    service = make_service(runpod_server, tmp_path, TRYON_REQUEST_TIMEOUT="30")
    assert isinstance(service.provider, RunPodProvider)
    result = service.try_on_sync(person_png, garment_pngs[:2])
    runs = runpod_server.runs
    assert [r.path for r in runs] == [f"/v2/{runpod_server.endpoint}/run"] * 2
    first = runs[0].body
    assert set(first["input"]) == {"prompt", "image_urls", "num_images", "output_format", "aspect_ratio", "resolution"}
    assert all(u.startswith("data:image/jpeg;base64,") for u in first["input"]["image_urls"])  # no storage at RunPod
    assert 5000 <= first["policy"]["executionTimeout"] <= 30000
    assert runs[1].body["input"]["image_urls"][0].startswith(runpod_server.url + "/files/")  # result 1 -> person 2
    assert runs[0].headers["authorization"] == f"Bearer {runpod_server.token}"
    assert len(runpod_server.received("GET", "/status/")) >= 2
    assert result.timings["provider"] == "runpod"
    assert frame_colour_at_first_swatch(result.to_pil().convert("RGB")) == pytest.approx(RUNPOD_FRAME, abs=40)


def test_a_wrong_endpoint_id_is_a_clear_error(runpod_server, tmp_path, person_png, garment_pngs):
    service = make_service(runpod_server, tmp_path, RUNPOD_ENDPOINT_ID="not-mine")
    error = error_from(service, person_png, garment_pngs[:1])
    assert error.code == "provider_rejected_input" and "endpoint not found" in str(error)


def test_replicate_makes_one_prediction_per_variant(replicate_server, tmp_path, person_png, garment_pngs):
    from tryon.outfit import Outfit

    service = make_service(replicate_server, tmp_path)
    result = service.try_on_sync(person_png, garment_pngs[:2], outfit=Outfit.parse(num_images=3))
    assert len(replicate_server.predictions) == 1 + 3  # step 1 once; the last step once per variant
    assert len(result.variants) == 3 and len(set(result.variants)) == 3 and result.timings["variants"] == 3


def test_replicate_cancels_the_other_variants_when_one_fails(replicate_server, tmp_path, person_png, garment_pngs):
    from tryon.outfit import Outfit

    replicate_server.behaviour.fail_with = "NSFW content detected"
    with pytest.raises(ProviderError) as caught:
        make_service(replicate_server, tmp_path).try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(num_images=3))
    assert caught.value.code == "provider_rejected_input"
    assert len(replicate_server.predictions) == 3
    # The first failed: the other two would be paid for and never shown, so they are cancelled.
    assert len(replicate_server.cancels) == 2


def test_runpod_asks_its_endpoint_for_the_variants(runpod_server, tmp_path, person_png, garment_pngs):
    from tryon.outfit import Outfit

    result = make_service(runpod_server, tmp_path).try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(num_images=2))
    (run,) = runpod_server.runs
    assert run.body["input"]["num_images"] == 2 and len(result.variants) == 2


# --- both vendors: the same faults, the same messages as FAL's ------------------------------------


def test_a_wrong_key_names_the_variable_and_never_the_key(vendor, tmp_path, person_png, garment_pngs, caplog):
    caplog.set_level(logging.DEBUG)
    service = make_service(vendor, tmp_path)
    secret = vendor.token
    vendor.token = "rotated-on-the-server"
    try:
        error = error_from(service, person_png, garment_pngs[:1])
    finally:
        vendor.token = secret
    assert error.code == "provider_auth" and service.provider.key_variable in str(error)
    assert secret not in str(error) and secret not in caplog.text


def test_a_hung_run_times_out_and_is_cancelled(vendor, tmp_path, person_png, garment_pngs):
    service = make_service(vendor, tmp_path, TRYON_REQUEST_TIMEOUT="1.5")
    vendor.behaviour.hang = True
    error = error_from(service, person_png, garment_pngs[:1])
    assert error.code == "provider_timeout" and error.http_status == 504 and "1.5 s" in str(error)
    assert len(vendor.cancels) == 1
    assert all(work.cancelled for work in vendor.work.values())


def test_a_failed_run_reports_the_vendor_s_error(vendor, tmp_path, person_png, garment_pngs):
    vendor.behaviour.fail_with = "NSFW content detected"
    error = error_from(make_service(vendor, tmp_path), person_png, garment_pngs[:1])
    assert str(error) == "The model rejected the request: NSFW content detected"


def test_no_image_returned(vendor, tmp_path, person_png, garment_pngs):
    vendor.behaviour.no_image = True
    error = error_from(make_service(vendor, tmp_path), person_png, garment_pngs[:1])
    assert error.code == "no_image_returned"


@pytest.mark.parametrize("status, code", [(500, "provider_unavailable"), (429, "provider_busy")])
def test_submit_failures_map_to_fal_s_messages(vendor, tmp_path, person_png, garment_pngs, status, code):
    vendor.behaviour.submit_failures = [status]
    error = error_from(make_service(vendor, tmp_path), person_png, garment_pngs[:1])
    assert error.code == code


def test_a_status_read_that_fails_once_is_polled_again(vendor, tmp_path, person_png, garment_pngs):
    vendor.behaviour.latency_s = 0.4
    vendor.behaviour.status_failures = [500]
    result = make_service(vendor, tmp_path).try_on_sync(person_png, garment_pngs[:1])
    assert result.image


def test_status_reads_that_keep_failing_are_an_outage(vendor, tmp_path, person_png, garment_pngs):
    vendor.behaviour.latency_s = 5
    vendor.behaviour.status_failures = [500] * 20
    error = error_from(make_service(vendor, tmp_path), person_png, garment_pngs[:1])
    assert error.code == "provider_unavailable"


def test_an_unreachable_vendor(vendor, tmp_path, person_png, garment_pngs):
    env = {"REPLICATE_BASE_URL": "http://127.0.0.1:9"} if vendor.env().get("REPLICATE_BASE_URL") else {"RUNPOD_ENDPOINT_BASE_URL": "http://127.0.0.1:9/v2"}
    error = error_from(make_service(vendor, tmp_path, **env), person_png, garment_pngs[:1])
    assert error.code == "provider_unreachable"
