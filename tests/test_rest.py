"""The seed's REST API on the same server: shapes, statuses, keys, limits, metrics, logs."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import pytest
from gradio_client import Client, handle_file

from conftest import RedisProcess, encode, free_port, start_app, stop_app
from synthetic import draw_garment, draw_person

pytestmark = pytest.mark.slow

KEY, RATE_KEY = "key-main-00001", "key-rate-00002"
OUTFIT_KEY = "key-outfit-0003"  # its own rate-limit bucket: the outfit tests add requests


@pytest.fixture(scope="module")
def rest_app(tmp_path_factory, fal_server_session):
    redis_for_app = RedisProcess(free_port(), tmp_path_factory.mktemp("rest-redis")).start()
    env = fal_server_session.env(
        REDIS_URL=redis_for_app.url, TRYON_API_KEYS=f"{KEY},{RATE_KEY},{OUTFIT_KEY}", TRYON_AUTH="ann:secret-pass",
        TRYON_RATE_LIMIT="20", TRYON_MAX_UPLOAD_MB="2", TRYON_CONCURRENCY="1", TRYON_REQUEST_TIMEOUT="3",
        # As behind a proxy on this machine: a test names another client with X-Forwarded-For.
        TRYON_TRUSTED_PROXIES="127.0.0.1",
    )
    app = start_app(tmp_path_factory.mktemp("rest-app"), env)
    yield app
    stop_app(app)
    redis_for_app.stop()


@pytest.fixture
def http(rest_app):
    with httpx.Client(base_url=rest_app.url, timeout=30) as client:
        yield client


def b64(image) -> str:
    return base64.b64encode(encode(image)).decode()


@pytest.fixture(scope="module")
def person_b64():
    return b64(draw_person(shirt=(70, 110, 160)).image)


@pytest.fixture(scope="module")
def garment_b64():
    return [b64(draw_garment("tshirt", colour=(180, 40, 40))), b64(draw_garment("jacket", colour=(40, 80, 140)))]


def test_generate_answers_the_seed_s_shape(http, fal_server, person_b64, garment_b64):
    response = http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["resultImage"].startswith(fal_server.url + "/files/")
    meta = body["metadata"]
    assert meta["generatedAt"].endswith("Z") and meta["inputsCount"] == {"garments": 2}
    for key in ("requestId", "be_received_ts", "be_response_sent_ts", "total_backend_ms", "fal_duration_ms",
                "backend_overhead_ms", "cold_start", "fal_call_1", "fal_call_2"):
        assert key in meta["timings"], key
    assert "download_ms" not in meta["timings"]  # the URL is handed on; the picture is not downloaded


def test_data_urls_and_nulls_in_the_garment_list_are_accepted(http, person_b64, garment_b64):
    response = http.post("/api/images/generate", json={
        "apiKey": KEY, "userImage": "data:image/png;base64," + person_b64,
        "garments": [None, "data:image/png;base64," + garment_b64[0]]})
    assert response.status_code == 200 and response.json()["metadata"]["inputsCount"]["garments"] == 1


def test_upload_then_generate_with_the_returned_url_uploads_nothing_again(http, fal_server, person_b64, garment_b64):
    uploaded = http.post("/api/images/upload", json={"apiKey": KEY, "image": garment_b64[1]}).json()
    assert uploaded["success"] is True and uploaded["url"].startswith(fal_server.url) and uploaded["uploadTime"] >= 0
    before = len(fal_server.uploads)
    response = http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": [uploaded["url"]]})
    assert response.status_code == 200
    assert len(fal_server.uploads) == before  # the person was cached, the garment is our own URL
    assert fal_server.submits[-1].body["image_urls"][1] == uploaded["url"]


def test_submit_and_poll_status(http, fal_server, person_b64, garment_b64):
    submitted = http.post("/api/jobs/submit", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64})
    assert submitted.status_code == 200
    body = submitted.json()
    assert body["success"] is True and body["status"] == "queued" and len(body["job_id"]) >= 32
    deadline = time.monotonic() + 30
    while True:
        status = http.get(f"/api/jobs/{body['job_id']}/status").json()
        if status["status"] in ("done", "error") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status["status"] == "done" and status["error"] is None
    assert status["image_url"].startswith(fal_server.url) and status["timestamps"]["finished_at"]


def test_generate_takes_categories_order_and_variants(http, fal_server, person_b64, garment_b64):
    response = http.post("/api/images/generate", json={
        "apiKey": OUTFIT_KEY, "userImage": person_b64, "garments": garment_b64, "categories": ["outerwear", "top"],
        "descriptions": ["denim jacket", None], "numImages": 2, "aspectRatio": "1:1", "resolution": "2K"})
    assert response.status_code == 200, response.text
    body = response.json()
    timings = body["metadata"]["timings"]
    assert [o["field"] for o in timings["order"]] == ["garment_2", "garment_1"]  # the top goes on before the jacket
    assert "denim jacket (outerwear)" in timings["prompts"][1]
    assert len(body["resultImages"]) == 2 and body["resultImages"][0] == body["resultImage"]
    last = fal_server.submits[-1].body
    assert last["num_images"] == 2 and last["aspect_ratio"] == "1:1" and last["resolution"] == "2K"
    assert fal_server.submits[0].body["num_images"] == 1  # variants come from the last step only


def test_generate_takes_a_model_and_lists_the_models_with_prices(http, fal_server, person_b64, garment_b64):
    listed = http.get("/api/models", params={"apiKey": OUTFIT_KEY}).json()
    assert listed["default"] == "fal-ai/nano-banana-pro/edit"
    prices = {m["id"]: m["price_usd"] for m in listed["models"]}
    assert prices["fal-ai/fashn/tryon/v1.6"] == {"*": 0.075} and prices["fal-ai/nano-banana-pro/edit"]["4K"] == 0.3
    response = http.post("/api/images/generate", json={"apiKey": OUTFIT_KEY, "userImage": person_b64, "garments": garment_b64,
                                                       "model": "fal-ai/fashn/tryon/v1.6"})
    assert response.status_code == 200, response.text
    timings = response.json()["metadata"]["timings"]
    assert timings["model"] == "fal-ai/fashn/tryon/v1.6" and timings["cost_usd"] == 0.15
    assert len(fal_server.submits_for("fal-ai/fashn/tryon/v1.6")) == 2
    refused = http.post("/api/images/generate", json={"apiKey": OUTFIT_KEY, "userImage": person_b64, "garments": garment_b64,
                                                      "model": "fal-ai/fashn/tryon/v1.6", "resolution": "4K"})
    assert refused.status_code == 400 and refused.json()["code"] == "model_cannot"
    assert "cannot make a 4K result" in refused.json()["error"]


def test_a_job_with_variants_reports_every_picture(http, fal_server, person_b64, garment_b64):
    submitted = http.post("/api/jobs/submit", json={"apiKey": OUTFIT_KEY, "userImage": person_b64, "garments": garment_b64,
                                                    "categories": ["top", "bottom"], "numImages": 3}).json()
    deadline = time.monotonic() + 30
    while (status := http.get(f"/api/jobs/{submitted['job_id']}/status").json())["status"] not in ("done", "error"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["status"] == "done" and len(status["image_urls"]) == 3 and status["image_url"] == status["image_urls"][0]
    (body,) = [r.body for r in fal_server.submits]
    assert body["num_images"] == 3 and "1. Figure 2: the garment (bottom)" in body["prompt"]


@pytest.mark.parametrize("extra, code", [
    ({"categories": ["hat"]}, "bad_category"),
    ({"numImages": 9}, "bad_variants"),
    ({"order": ["garment_3"]}, "bad_order"),
    ({"aspectRatio": "wide"}, "bad_option"),
])
def test_bad_outfit_values_are_400_with_their_code(http, person_b64, garment_b64, extra, code):
    response = http.post("/api/images/generate", json={"apiKey": OUTFIT_KEY, "userImage": person_b64, "garments": garment_b64, **extra})
    assert response.status_code == 400 and response.json()["code"] == code


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({"apiKey": KEY, "userImage": "PERSON", "garments": []}, 400, "no_garment"),
        ({"apiKey": KEY, "userImage": "PERSON", "garments": ["G"] * 5}, 400, "too_many_garments"),
        ({"apiKey": KEY, "userImage": "not base64 @@", "garments": ["G"]}, 400, "bad_base64"),
        ({"apiKey": KEY, "userImage": "PERSON", "garments": "G"}, 400, "bad_field"),
        ({"apiKey": KEY, "garments": ["G"]}, 400, "bad_field"),
        ({"apiKey": KEY, "userImage": "data:text/html;base64,PGI+", "garments": ["G"]}, 400, "bad_data_url_type"),
        ({"apiKey": KEY, "userImage": "https://127.0.0.1/me.jpg", "garments": ["G"]}, 400, "url_refused"),
        ({"apiKey": KEY, "userImage": "https://169.254.169.254/latest/meta-data", "garments": ["G"]}, 400, "url_refused"),
        ({"apiKey": "wrong-key-000", "userImage": "PERSON", "garments": ["G"]}, 401, "bad_api_key"),
        ({"userImage": "PERSON", "garments": ["G"]}, 401, "bad_api_key"),
    ],
    ids=["no-garment", "five-garments", "bad-base64", "garments-not-a-list", "no-person", "html-data-url",
         "loopback-url", "metadata-url", "wrong-key", "no-key"],
)
def test_errors_have_the_seed_s_shape_and_the_right_status(http, person_b64, garment_b64, payload, status, code):
    payload = json.loads(json.dumps(payload).replace('"PERSON"', json.dumps(person_b64)).replace('"G"', json.dumps(garment_b64[0])))
    response = http.post("/api/images/generate", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["error"]


@pytest.mark.parametrize("payload, lang, message", [
    ({"garments": "G"}, "en", "Field 'garments' must be a list."),
    ({"garments": "G"}, "es", "El campo 'garments' debe ser una lista."),
    ({"garments": ["G"], "numImages": "two"}, "en", "Field 'numImages' must be a whole number."),
    ({"garments": ["G"], "descriptions": [7]}, "es", "El campo 'descriptions.0' debe ser texto."),
    ({"userImage": None, "garments": ["G"]}, "en", "Field 'userImage' must be text."),
], ids=["list-en", "list-es", "whole-number", "text-es", "null-person"])
def test_a_field_of_the_wrong_type_is_named_in_plain_words(http, payload, lang, message):
    response = http.post("/api/images/generate", json={"apiKey": KEY, "userImage": "x", **payload}, headers={"accept-language": lang})
    assert response.status_code == 400 and response.json() == {"success": False, "error": message, "code": "bad_field"}


def test_a_missing_field_is_named_in_either_language(http):
    english = http.post("/api/images/generate", json={"apiKey": KEY, "garments": ["x"]})
    spanish = http.post("/api/images/generate", json={"apiKey": KEY, "garments": ["x"]}, headers={"accept-language": "es"})
    assert english.json()["error"] == "Field 'userImage' must be present."
    assert spanish.json()["error"] == "El campo 'userImage' es obligatorio."


def test_invalid_json_is_a_400(http):
    response = http.post("/api/images/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["code"] == "bad_json"


def test_unknown_job_is_a_404(http):
    response = http.get("/api/jobs/" + "x" * 40 + "/status")
    assert response.status_code == 404 and response.json()["error"].startswith("Job not found")


def test_a_too_large_image_and_a_too_large_body_are_413(http, person_b64):
    big = base64.b64encode(b"\xff" * (3 * 2**20)).decode()  # 3 MB against TRYON_MAX_UPLOAD_MB=2
    response = http.post("/api/images/upload", json={"apiKey": KEY, "image": big})
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    huge = b'{"apiKey": "' + KEY.encode() + b'", "image": "' + b"A" * (15 * 2**20) + b'"}'
    response = http.post("/api/images/upload", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


def test_provider_failures_are_502_and_504(http, fal_server, person_b64, garment_b64):
    fal_server.behaviour.submit_failures = [500]
    response = http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64[:1]})
    assert response.status_code == 502 and response.json()["code"] == "provider_unavailable"
    fal_server.behaviour.hang = True
    response = http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64[:1]})
    assert response.status_code == 504 and response.json()["code"] == "provider_timeout"


def test_when_busy_a_second_generate_gets_429_not_a_hung_request(http, rest_app, fal_server, person_b64, garment_b64):
    fal_server.behaviour.latency_s = 2.5  # TRYON_CONCURRENCY=1: the first request holds the only slot
    first = threading.Thread(target=lambda: http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64[:1]}))
    first.start()
    time.sleep(0.5)
    started = time.monotonic()
    with httpx.Client(base_url=rest_app.url, timeout=30) as other:
        response = other.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64[1:]})
    first.join()
    assert response.status_code == 429 and response.json()["code"] == "busy"
    assert time.monotonic() - started < 5 and "retry-after" in response.headers


def test_the_rate_limit_is_per_client_with_retry_after(http):
    statuses = [http.post("/api/images/upload", json={"apiKey": RATE_KEY, "image": "AAAA"}).status_code for _ in range(25)]
    assert statuses.count(429) >= 4 and statuses[0] != 429
    limited = http.post("/api/images/upload", json={"apiKey": RATE_KEY, "image": "AAAA"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # another client (another key) is not affected
    assert http.post("/api/images/upload", json={"apiKey": KEY, "image": "AAAA"}).status_code == 400


def test_made_up_keys_do_not_dodge_the_rate_limit(rest_app):
    with httpx.Client(base_url=rest_app.url, timeout=30, headers={"x-forwarded-for": "1.2.3.4"}) as other:
        statuses = [other.post("/api/images/upload", json={"apiKey": f"made-up-{n:06d}", "image": "AAAA"}).status_code
                    for n in range(45)]
    assert 429 in statuses  # counted against the address, whatever key each request claims


def test_openapi_documents_the_routes_and_their_errors(http):
    spec = http.get("/api/openapi.json").json()
    for path in ("/api/images/generate", "/api/images/upload", "/api/jobs/submit", "/api/jobs/{job_id}/status"):
        assert path in spec["paths"], path
    responses = spec["paths"]["/api/images/generate"]["post"]["responses"]
    assert {"200", "400", "401", "413", "429", "502", "504"} <= set(responses)


def test_the_page_and_the_gradio_api_need_a_login_or_a_key(rest_app, asset_paths):
    config = httpx.get(rest_app.url + "config")
    assert config.status_code == 401 and config.json()["detail"]["error"] == "Not authenticated"
    with pytest.raises(Exception):
        Client(rest_app.url, verbose=False).predict(handle_file(asset_paths["garment_tshirt_red"]), api_name="/upload")
    for auth in (("api", KEY), ("ann", "secret-pass")):
        client = Client(rest_app.url, auth=auth, verbose=False)
        assert client.predict(handle_file(asset_paths["garment_tshirt_red"]), api_name="/upload").startswith("https://")
    with pytest.raises(Exception):
        Client(rest_app.url, auth=("ann", "wrong"), verbose=False)


def test_an_open_app_needs_no_key(fal_app, fal_server, person_png, garment_pngs):  # fal_server: default behaviour
    response = httpx.post(fal_app.url + "api/images/generate", timeout=30, json={
        "userImage": base64.b64encode(person_png).decode(), "garments": [base64.b64encode(garment_pngs[2]).decode()]})
    assert response.status_code == 200 and response.json()["success"] is True, response.text
    assert "access: OPEN" in fal_app.log()


def test_metrics_count_what_was_done(http, rest_app, person_b64, garment_b64):
    before = http.get("/api/metrics", params={"apiKey": KEY}).json()
    http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64[:1]})
    http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": []})
    after = http.get("/api/metrics", params={"apiKey": KEY}).json()
    assert after["requests"] - before["requests"] == 2
    assert after["succeeded"] - before["succeeded"] == 1
    # No garment is the user's mistake, not a failure: counted apart, out of the success rate.
    assert after["user_errors"] - before["user_errors"] == 1 and after["failed"] - before["failed"] == 0
    assert after["errors"].get("no_garment", 0) - before["errors"].get("no_garment", 0) == 1
    assert after["by_mode"]["sync"]["total_ms"]["p50"] > 0 and 0 <= after["upload_cache_hit_rate"] <= 1
    assert after["by_provider"]["fal"]["paid_calls"] - before.get("by_provider", {}).get("fal", {}).get("paid_calls", 0) == 1
    assert http.get("/api/metrics").status_code == 401  # metrics are behind the key too
    assert http.get("/metrics").status_code == 401  # with keys set, scrapers need one too
    prometheus = http.get("/metrics", headers={"authorization": f"Bearer {KEY}"}).text
    assert 'tryon_requests_total{mode="sync",outcome="ok"}' in prometheus
    assert 'tryon_request_duration_ms{mode="sync",quantile="0.50"}' in prometheus
    assert 'tryon_outcomes_total{mode="sync",result="user_error"}' in prometheus
    assert 'tryon_model_calls_total{provider="fal"}' in prometheus


def test_one_json_log_line_per_request_without_images_or_keys(rest_app, http, person_b64, garment_b64):
    response = http.post("/api/images/generate", json={"apiKey": KEY, "userImage": person_b64, "garments": garment_b64[:1]})
    request_id = response.json()["metadata"]["timings"]["requestId"]
    lines = [line for line in rest_app.log().splitlines() if "tryon.requests:" in line]
    mine = [json.loads(line.split("tryon.requests: ", 1)[1]) for line in lines if request_id in line]
    assert len(mine) == 1 and mine[0]["mode"] == "sync" and mine[0]["outcome"] == "ok" and mine[0]["provider"] == "fal"
    log = rest_app.log()
    assert KEY not in log and RATE_KEY not in log and "secret-pass" not in log and person_b64[:200] not in log


def test_no_route_lists_jobs(http, rest_app):
    for path in ("/api/jobs", "/api/jobs/", "/api/jobs/status", "/api/jobs/list"):
        assert http.get(path).status_code in (404, 405), path
    assert http.post("/api/jobs", json={"apiKey": KEY}).status_code in (404, 405)
    spec = http.get("/api/openapi.json").json()
    assert [p for p in spec["paths"] if p.startswith("/api/jobs")] == ["/api/jobs/submit", "/api/jobs/{job_id}/status"]
