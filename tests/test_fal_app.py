"""The app started as users start it, with TRYON_PROVIDER=fal pointed at the FAL test server."""

from __future__ import annotations

import urllib.request

import pytest
from gradio_client import Client, handle_file
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(fal_app):
    return Client(fal_app.url, verbose=False)


def try_on(client, asset_paths, *garments):
    slots = [handle_file(asset_paths[g]) for g in garments] + [None] * (4 - len(garments))
    return client.predict(handle_file(asset_paths["person_astronaut"]), *slots, api_name="/try_on")


def test_try_on_returns_the_servers_picture_with_fal_timings(client, fal_server, asset_paths):
    image_path, timings = try_on(client, asset_paths, "garment_tshirt_red", "garment_jacket_denim")
    assert timings["provider"] == "fal" and timings["offline_preview"] is False
    assert timings["garments"] == 2 and timings["fal_call_2"] >= 50
    assert len(fal_server.submits) == 2
    last_job = fal_server.jobs[timings["provider_request_ids"][-1]]
    expected = Image.open(__import__("io").BytesIO(fal_server.file_for(last_job.result["images"][0]["url"]))).convert("RGB")
    with Image.open(image_path) as got:
        assert got.format == "PNG" and got.size == expected.size
        # the PNG the client got is the server's JPEG re-encoded: same picture
        diff = max(abs(a - b) for a, b in zip(got.convert("RGB").getpixel((400, 40)), expected.getpixel((400, 40))))
        assert diff < 12


def test_the_same_photos_are_not_uploaded_twice(client, fal_server, asset_paths):
    try_on(client, asset_paths, "garment_hoodie_yellow")
    fal_server.reset()
    _, timings = try_on(client, asset_paths, "garment_hoodie_yellow")
    assert fal_server.uploads == []
    assert [u["upload"] for u in timings["uploads"]] == ["cached", "cached"]


def test_upload_returns_a_fal_storage_url(client, fal_server, asset_paths):
    url = client.predict(handle_file(asset_paths["garment_sweater_striped"]), api_name="/upload")
    assert url.startswith(fal_server.url + "/files/") and fal_server.file_for(url)


@pytest.mark.parametrize(
    "fault, message",
    [
        ({"no_image": True}, "The model returned no image."),
        ({"submit_failures": [500]}, "The image provider failed (HTTP 500) even after retrying."),
        ({"hang": True}, "The image provider did not finish within 4 s; the request was cancelled."),
        ({"content_policy": True}, "The model refused this photo or garment under its content policy."),
        ({"completed_error": "Runner disconnected"}, "The image provider failed: Runner disconnected (runner_disconnected)"),
        ({"status_hang_s": 10}, "The image provider did not finish within 4 s"),
    ],
    ids=["no-image", "provider-500", "timeout", "content-policy", "runner-disconnected", "hung-status-poll"],
)
def test_provider_failures_reach_the_client_as_clear_messages(client, fal_server, asset_paths, fault, message):
    for name, value in fault.items():
        setattr(fal_server.behaviour, name, value)
    with pytest.raises(Exception) as caught:
        try_on(client, asset_paths, "garment_tshirt_red")
    assert message in str(caught.value)


def test_the_key_appears_in_no_page_api_answer_or_log(fal_app, client, fal_server, asset_paths):
    fal_server.behaviour.submit_failures = [401]
    with pytest.raises(Exception) as caught:
        try_on(client, asset_paths, "garment_jacket_denim")
    assert "rejected our API key" in str(caught.value) and fal_server.key not in str(caught.value)
    for path in ("", "config", "gradio_api/info", "gradio_api/openapi.json"):
        try:
            with urllib.request.urlopen(fal_app.url + path, timeout=10) as response:
                body = response.read().decode(errors="replace")
        except OSError:
            continue
        assert fal_server.key not in body, path
    assert fal_server.key not in fal_app.log()


def test_async_job_on_an_external_redis_url_with_one_model_call(client, fal_app, fal_server, asset_paths):
    import time

    fal_server.behaviour.latency_s = 0.5
    garments = [handle_file(asset_paths[g]) for g in ("garment_tshirt_red", "garment_jacket_denim", "garment_hoodie_yellow")]
    started = time.monotonic()
    job_id = client.predict(handle_file(asset_paths["person_astronaut"]), *garments, None, api_name="/submit_job")
    assert time.monotonic() - started < 5
    statuses = []
    while True:
        answer = client.predict(job_id, api_name="/job_status")
        if not statuses or statuses[-1] != answer["status"]:
            statuses.append(answer["status"])
        if answer["status"] in ("done", "error"):
            break
        assert time.monotonic() - started < 30
        time.sleep(0.1)
    assert statuses[-1] == "done" and "processing" in statuses
    assert answer["image_url"].startswith(fal_server.url + "/files/")
    assert len(fal_server.submits) == 1 and len(fal_server.submits[0].body["image_urls"]) == 4
    # the record lives in the app's external Redis, with its expiry
    import redis as redis_py

    external = redis_py.Redis(port=fal_app.redis.port, decode_responses=True)
    assert external.hget(f"tryon:job:{job_id}", "status") == "done"
    assert 0 < external.ttl(f"tryon:job:{job_id}") <= 86400


def test_a_content_policy_refusal_reaches_rest_and_mcp_with_its_code(fal_app, fal_server, asset_paths):
    import base64
    import json

    import httpx

    from test_mcp import data_url, with_session

    fal_server.behaviour.content_policy = True
    encoded = {name: base64.b64encode(open(asset_paths[name], "rb").read()).decode()
               for name in ("person_astronaut", "garment_tshirt_red")}
    answer = httpx.post(f"{fal_app.url}api/images/generate", timeout=60,
                        json={"userImage": encoded["person_astronaut"], "garments": [encoded["garment_tshirt_red"]]})
    assert answer.status_code == 400 and answer.json()["code"] == "content_policy"
    spanish = httpx.post(f"{fal_app.url}api/images/generate", timeout=60, headers={"Accept-Language": "es"},
                         json={"userImage": encoded["person_astronaut"], "garments": [encoded["garment_tshirt_red"]]})
    assert spanish.json()["error"].startswith("El modelo rechazó esta foto o prenda")
    arguments = {"person": data_url(asset_paths["person_astronaut"]), "garment_1": data_url(asset_paths["garment_tshirt_red"])}
    result = with_session(fal_app.url, lambda s: s.call_tool("try_on", arguments))
    assert result.isError and "content policy" in json.dumps([getattr(c, "text", "") for c in result.content])


def test_a_fal_runner_failure_is_served_by_replicate_in_the_running_app(tmp_path, fal_server, replicate_server, asset_paths):
    """TRYON_PROVIDER=fal,replicate: FAL's COMPLETED-with-error moves the try-on to Replicate, through
    gradio_client and REST alike, and the timing record says why."""
    import base64

    import httpx

    from conftest import start_app, stop_app

    env = {**fal_server.env(), **replicate_server.env(), "TRYON_PROVIDER": "fal,replicate", "TRYON_BREAKER_FAILURES": "100",
           "TRYON_REQUEST_TIMEOUT": "20"}
    app = start_app(tmp_path, env)
    try:
        fal_server.behaviour.completed_error = "Runner disconnected"
        _, timings = try_on(Client(app.url, verbose=False), asset_paths, "garment_tshirt_red")
        assert timings["provider"] == "replicate" and timings["failover"][0]["provider"] == "fal"
        assert "Runner disconnected (runner_disconnected)" in timings["failover"][0]["reason"]
        encoded = [base64.b64encode(open(asset_paths[name], "rb").read()).decode() for name in ("person_astronaut", "garment_jeans_blue")]
        answer = httpx.post(f"{app.url}api/images/generate", json={"userImage": encoded[0], "garments": encoded[1:]}, timeout=60)
        assert answer.status_code == 200 and answer.json()["metadata"]["timings"]["provider"] == "replicate"
    finally:
        stop_app(app)


@pytest.mark.parametrize("model_id, extra", [
    ("fal-ai/nano-banana-pro/edit", {}), ("fal-ai/nano-banana-2/edit", {}), ("fal-ai/fashn/tryon/v1.6", {}),
    ("fal-ai/kling/v1-5/kolors-virtual-try-on", {}), ("fal-ai/bytedance/seedream/v4.5/edit", {"resolution": "2K"}),
])
def test_every_catalogue_model_by_keyword_through_the_running_app(client, fal_server, asset_paths, model_id, extra):
    from tryon import models as catalogue

    fal_server.reset()
    _, timings = client.predict(handle_file(asset_paths["person_astronaut"]), handle_file(asset_paths["garment_tshirt_red"]),
                                model=model_id, api_name="/try_on", **extra)
    assert timings["model"] == model_id and len(fal_server.submits_for(model_id)) == 1
    (job,) = fal_server.jobs_for(model_id)
    assert job.drawn_by == model_id  # the server checked the arguments against this model's schema and drew it
    price = catalogue.MODELS[model_id].price(extra.get("resolution", "1K"))
    assert timings["cost_usd"] == price and timings["estimate"]["usd"] == price
