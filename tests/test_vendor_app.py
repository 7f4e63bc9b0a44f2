"""The app as users start it, with TRYON_PROVIDER=replicate,runpod on the vendors' protocol servers:
each provider through gradio_client and the REST API, and the failover between them."""

from __future__ import annotations

import base64

import httpx
import pytest
from gradio_client import Client, handle_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(vendor_app):
    return Client(vendor_app.url, verbose=False)


@pytest.fixture
def vendors(replicate_server, runpod_server):
    return replicate_server, runpod_server


def try_on(client, asset_paths, *garments):
    slots = [handle_file(asset_paths[g]) for g in garments] + [None] * (4 - len(garments))
    return client.predict(handle_file(asset_paths["person_astronaut"]), *slots, api_name="/try_on")


def generate(vendor_app, asset_paths, *garments) -> httpx.Response:
    encoded = lambda name: base64.b64encode(open(asset_paths[name], "rb").read()).decode()  # noqa: E731
    return httpx.post(f"{vendor_app.url}api/images/generate", timeout=60,
                      json={"userImage": encoded("person_astronaut"), "garments": [encoded(g) for g in garments]})


def test_replicate_serves_gradio_client_first(client, vendors, asset_paths):
    replicate, runpod = vendors
    image_path, timings = try_on(client, asset_paths, "garment_tshirt_red", "garment_jacket_denim")
    assert timings["provider"] == "replicate" and timings["provider_chain"] == "replicate,runpod"
    assert timings["failover"] == [] and len(replicate.predictions) == 2 and runpod.runs == []
    assert image_path.endswith(".png")


def test_runpod_serves_gradio_client_when_replicate_is_down(client, vendors, asset_paths):
    replicate, runpod = vendors
    replicate.behaviour.submit_failures = [500]
    _, timings = try_on(client, asset_paths, "garment_hoodie_yellow")
    assert timings["provider"] == "runpod" and timings["served_by"] == ["runpod"]
    assert timings["failover"][0]["provider"] == "replicate" and "HTTP 500" in timings["failover"][0]["reason"]
    assert len(runpod.runs) == 1


def test_the_rest_api_on_replicate_then_runpod(vendor_app, vendors, asset_paths):
    replicate, runpod = vendors
    served = generate(vendor_app, asset_paths, "garment_tshirt_red")
    assert served.status_code == 200 and served.json()["success"] is True
    # Results on a plain-http host (these test servers) come inlined; https ones would be passed on as URLs.
    assert served.json()["resultImage"].startswith("data:image/jpeg;base64,")
    assert served.json()["metadata"]["timings"]["provider"] == "replicate"
    replicate.behaviour.hang = True  # Replicate hangs: it gets half the 20 s, then RunPod answers
    moved = generate(vendor_app, asset_paths, "garment_tshirt_red")
    timings = moved.json()["metadata"]["timings"]
    assert moved.status_code == 200 and timings["provider"] == "runpod"
    assert timings["failover"][0]["provider"] == "replicate" and "did not finish" in timings["failover"][0]["reason"]
    assert len(replicate.cancels) == 1 and len(runpod.runs) == 1


def test_both_down_is_a_502_naming_each(vendor_app, vendors, asset_paths):
    replicate, runpod = vendors
    replicate.behaviour.submit_failures = [503]
    runpod.behaviour.submit_failures = [500]
    response = generate(vendor_app, asset_paths, "garment_tshirt_red")
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "all_providers_failed" and "replicate: " in body["error"] and "runpod: " in body["error"]
    assert replicate.token not in response.text and runpod.token not in response.text


def test_the_metrics_api_lists_the_chain_and_its_breakers(vendor_app):
    providers = httpx.get(f"{vendor_app.url}api/metrics").json()["providers"]
    assert [p["provider"] for p in providers] == ["replicate", "runpod"]
    assert all(p["state"] in ("closed", "open", "half-open") for p in providers)


def test_the_vendor_keys_appear_in_no_page_or_log(vendor_app, vendors, client):
    replicate, runpod = vendors
    page = httpx.get(vendor_app.url).text + httpx.get(f"{vendor_app.url}config").text
    for secret in (replicate.token, runpod.token):
        assert secret not in page and secret not in vendor_app.log()
