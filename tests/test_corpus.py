"""Every case of the bad-input corpus, through the UI function, the gradio API and the REST API:
its specific error and status, the process still up, no temp file left behind."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from corpus.make_corpus import cases, write
from tryon.errors import MESSAGES
from tryon.web.events import Handlers

CASES = {case.name: case for case in cases()}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("corpus")
    write(directory)
    return directory


def english(code: str) -> str:
    """The fixed start of a code's English message (before any {placeholder})."""
    return MESSAGES[code]["en"].split("{")[0]


def test_the_corpus_is_large_enough():
    assert len(CASES) + len(REQUEST_CASES) >= 30
    assert sum(1 for c in CASES.values() if c.code) >= 15


@pytest.mark.parametrize("name", CASES)
def test_ui_function(name, corpus_dir, service, asset_paths):
    case = CASES[name]
    handlers = Handlers(service)
    person = Path(asset_paths["person_illustration"])  # handlers get Paths from PhotoInput
    if case.code is None:
        image, timings = handlers.try_on(person, corpus_dir / f"{name}.jpg", None, None, None, None)
        assert timings["garments"] == 1
    else:
        with pytest.raises(Exception) as caught:
            handlers.try_on(person, corpus_dir / f"{name}.jpg", None, None, None, None)
        assert str(caught.value.message).startswith("Garment 1: " + english(case.code))


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


@pytest.mark.parametrize("name", CASES)
def test_gradio_api(name, corpus_dir, client, asset_paths):
    case = CASES[name]
    call = lambda: client.predict(handle_file(asset_paths["person_illustration"]), handle_file(str(corpus_dir / f"{name}.jpg")),  # noqa: E731
                                  None, None, None, api_name="/try_on")
    if case.code is None:
        _, timings = call()
        assert timings["garments"] == 1
    else:
        with pytest.raises(Exception) as caught:
            call()
        assert "Garment 1: " + english(case.code) in str(caught.value)


@pytest.fixture(scope="module")
def person_b64(asset_paths) -> str:
    return base64.b64encode(Path(asset_paths["person_illustration"]).read_bytes()).decode()


@pytest.mark.parametrize("name", CASES)
def test_rest_api(name, app_server, person_b64):
    case = CASES[name]
    response = httpx.post(app_server.url + "api/images/generate", timeout=30,
                          json={"userImage": person_b64, "garments": [base64.b64encode(case.data).decode()]})
    if case.code is None:
        assert response.status_code == 200, response.text
    elif case.name == "empty-file":  # base64 of nothing is an empty string: an empty slot, so no garment at all
        assert response.status_code == 400 and response.json()["code"] == "no_garment"
    else:
        assert response.status_code == case.status, response.text
        body = response.json()
        assert body["code"] == case.code and body["field"] == "garment_1" and body["success"] is False


# Request-level cases: (name, body, status, code). PERSON and G stand for valid pictures.
REQUEST_CASES = [
    ("zero-garments", {"userImage": "PERSON", "garments": []}, 400, "no_garment"),
    ("five-garments", {"userImage": "PERSON", "garments": ["G"] * 5}, 400, "too_many_garments"),
    ("none-in-the-middle", {"userImage": "PERSON", "garments": ["G", None, "G"]}, 200, None),
    ("malformed-base64", {"userImage": "PERSON", "garments": ["@@@ not base64 ###"]}, 400, "bad_base64"),
    ("data-url-wrong-type", {"userImage": "PERSON", "garments": ["data:application/pdf;base64,JVBERi0="]}, 400, "bad_data_url_type"),
    ("private-address-url", {"userImage": "https://192.168.1.10/me.jpg", "garments": ["G"]}, 400, "url_refused"),
    ("metadata-address-url", {"userImage": "PERSON", "garments": ["https://169.254.169.254/latest"]}, 400, "url_refused"),
    ("plain-http-url", {"userImage": "http://example.com/me.jpg", "garments": ["G"]}, 400, "url_refused"),
    ("unicode-in-fields", {"userImage": "📷 ñandú 写真", "garments": ["G"]}, 400, "bad_base64"),
    ("unicode-api-key", {"apiKey": "ключ🔑", "userImage": "PERSON", "garments": ["G"]}, 200, None),
    ("person-empty", {"userImage": "", "garments": ["G"]}, 400, "no_person"),
    ("garments-a-string", {"userImage": "PERSON", "garments": "G"}, 400, "bad_field"),
    ("garments-numbers", {"userImage": "PERSON", "garments": [1, 2]}, 400, "bad_field"),
    ("person-a-number", {"userImage": 12345, "garments": ["G"]}, 400, "bad_field"),
    ("body-a-list", ["PERSON", "G"], 400, "bad_field"),
]


@pytest.mark.parametrize("name, body, status, code", REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES])
def test_rest_request_cases(name, body, status, code, app_server, person_b64, asset_paths):
    garment = base64.b64encode(Path(asset_paths["garment_tshirt_red"]).read_bytes()).decode()
    text = json.dumps(body).replace('"PERSON"', json.dumps(person_b64)).replace('"G"', json.dumps(garment))
    response = httpx.post(app_server.url + "api/images/generate", content=text, timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    if code:
        assert response.json()["code"] == code


def test_a_10_kb_job_id(app_server, client):
    response = httpx.get(app_server.url + "api/jobs/" + "j" * 10_000 + "/status", timeout=10)
    assert response.status_code == 404 and response.json()["code"] == "job_not_found"
    with pytest.raises(Exception) as caught:
        client.predict("j" * 10_000, api_name="/job_status")
    assert "Job not found" in str(caught.value)


def test_the_app_is_still_up_and_left_no_temp_files(app_server):
    assert app_server.process.poll() is None
    assert httpx.get(app_server.url, timeout=10).status_code == 200
    assert "Traceback" not in app_server.log()
    leftovers = [p for p in app_server.tmp_dir.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
