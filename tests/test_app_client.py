"""The app as users run it (`python app.py`), called through gradio_client's named API."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


@pytest.fixture
def bad_files(tmp_path, person_png):
    text = tmp_path / "notes.jpg"
    text.write_text("this is a text file named .jpg")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(person_png[: len(person_png) // 3])
    return {"text": str(text), "truncated": str(truncated)}


def test_api_lists_the_documented_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/try_on", "/try_on_variants", "/upload", "/submit_job", "/job_status", "/compare",
                              "/submit_batch", "/submit_batch_urls", "/batch_status", "/cancel_batch", "/retry_batch",
                              "/batch_archive"}
    names = [p["parameter_name"] for p in endpoints["/try_on"]["parameters"]]
    # The original five first, in their order; every new one after them, with a default.
    assert names[:5] == ["person", "garment_1", "garment_2", "garment_3", "garment_4"]
    assert names[5:] == [*[f"category_{n}" for n in range(1, 5)], *[f"description_{n}" for n in range(1, 5)],
                         "order", "num_images", "aspect_ratio", "resolution", "model"]
    assert all(p["parameter_has_default"] for p in endpoints["/try_on"]["parameters"][5:])


def test_try_on_with_two_garments_returns_a_png_and_timings(client, asset_paths):
    image_path, timings = client.predict(
        handle_file(asset_paths["person_illustration"]),
        handle_file(asset_paths["garment_tshirt_red"]),
        handle_file(asset_paths["garment_jacket_denim"]),
        None,
        None,
        api_name="/try_on",
    )
    with Image.open(image_path) as image:
        assert image.format == "PNG" and image.size == (768, 1024)
    assert timings["garments"] == 2 and timings["provider"] == "local" and timings["offline_preview"] is True
    assert timings["fal_call_1"] > 0 and timings["fal_call_2"] > 0 and "fal_call_3" not in timings
    assert timings["total_backend_ms"] >= timings["fal_duration_ms"]


def test_a_garment_in_the_last_slot_only_works(client, asset_paths):
    _, timings = client.predict(
        handle_file(asset_paths["person_astronaut"]), None, None, None, handle_file(asset_paths["garment_hoodie_yellow"]),
        api_name="/try_on",
    )
    assert [u["field"] for u in timings["uploads"]] == ["person", "garment_4"]


def test_bad_files_get_the_project_s_specific_message(client, asset_paths, bad_files):
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(asset_paths["person_illustration"]), handle_file(bad_files["text"]), None, None, None, api_name="/try_on")
    assert "Garment 1: This file is not an image. Use a JPEG, PNG or WebP photo." in str(caught.value)
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(bad_files["truncated"]), handle_file(asset_paths["garment_tshirt_red"]), None, None, None, api_name="/try_on")
    assert "Person photo: The image file is truncated or corrupt" in str(caught.value)


def test_no_garment_is_refused(client, asset_paths):
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(asset_paths["person_illustration"]), None, None, None, None, api_name="/try_on")
    assert "At least one garment is required." in str(caught.value)


def test_upload_returns_a_reference_and_refuses_a_non_image(client, asset_paths, bad_files):
    ref = client.predict(handle_file(asset_paths["garment_tshirt_red"]), api_name="/upload")
    assert ref.startswith("local:") and len(ref) == len("local:") + 64
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(bad_files["text"]), api_name="/upload")
    assert "This file is not an image" in str(caught.value)


def test_the_app_stays_up_after_bad_input(app_server, client, asset_paths):
    assert app_server.process.poll() is None
    _, timings = client.predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]), None, None, None,
        api_name="/try_on",
    )
    assert timings["garments"] == 1
    assert "Traceback" not in app_server.log()


def test_uploads_are_kept_in_the_data_dir(app_server, client, asset_paths):
    client.predict(handle_file(asset_paths["garment_tshirt_red"]), api_name="/upload")
    data_dir = app_server.data_dir
    assert any((data_dir / "uploads").rglob("*.png"))


def test_an_invalid_setting_stops_the_app_with_the_variable_name(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TRYON_MAX_SIDE": "huge"}
    run = subprocess.run([sys.executable, str(ROOT / "app.py")], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "TRYON_MAX_SIDE must be" in run.stderr


def test_async_job_on_the_embedded_redis(client, asset_paths):
    import time

    job_id = client.predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
        handle_file(asset_paths["garment_jacket_denim"]), None, None, api_name="/submit_job",
    )
    deadline = time.monotonic() + 30
    while True:
        answer = client.predict(job_id, api_name="/job_status")
        if answer["status"] in ("done", "error") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer["status"] == "done" and answer["offline_preview"] is True
    assert answer["image_url"].startswith("data:image/jpeg;base64,") and answer["timings"]["garments"] == 2


def test_job_status_of_an_unknown_id(client):
    with pytest.raises(Exception) as caught:
        client.predict("not-a-real-job-id-000000", api_name="/job_status")
    assert "Job not found" in str(caught.value)


def test_the_footer_says_which_redis(app_server):
    import urllib.request

    with urllib.request.urlopen(app_server.url + "config", timeout=10) as response:
        config = response.read().decode()
    assert "Redis: embedded Redis" in config and "append-only" in config


def test_outfit_controls_through_gradio_client(client, asset_paths):
    """The issue's outfit dropped in any order: jeans on first, the T-shirt, the jacket over it; 3 results."""
    looks, timings = client.predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_jacket_denim"]),
        handle_file(asset_paths["garment_jeans_blue"]), handle_file(asset_paths["garment_tshirt_red"]), None,
        category_1="outerwear", category_2="bottom", category_3="top", description_1="denim jacket",
        num_images=3, api_name="/try_on_variants",
    )
    assert len(looks) == 3 and all(Image.open(item["image"]).size == (768, 1024) for item in looks)
    assert [o["field"] for o in timings["order"]] == ["garment_2", "garment_3", "garment_1"]
    assert "the denim jacket (outerwear)" in timings["prompts"][2] and timings["variants"] == 3
    # /try_on keeps its two outputs and takes the same options by keyword.
    image_path, timings = client.predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
        category_1="dress", api_name="/try_on")
    assert image_path.endswith(".png") and timings["order"][0]["category"] == "dress"


def test_async_job_with_categories_and_variants_through_gradio_client(client, asset_paths):
    import time

    job_id = client.predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_jacket_denim"]),
        handle_file(asset_paths["garment_jeans_blue"]), category_1="outerwear", category_2="bottom", num_images=2,
        api_name="/submit_job")
    deadline = time.monotonic() + 30
    while (status := client.predict(job_id, api_name="/job_status"))["status"] not in ("done", "error"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["status"] == "done" and len(status["image_urls"]) == 2
    assert status["timings"]["prompts"][0].splitlines()[1].startswith("1. Figure 2: the garment (bottom).")


def test_a_bad_category_is_a_clear_error(client, asset_paths):
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
                       category_1="hat", api_name="/try_on")
    assert "Garment 1: Unknown category 'hat'" in str(caught.value) and "outerwear" in str(caught.value)


@pytest.mark.parametrize("count", [0, 5])
def test_a_number_of_results_out_of_range_names_the_limit(client, asset_paths, count):
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
                       num_images=count, api_name="/try_on")
    # Our own message (not the slider's generic bounds check, which would also log a traceback).
    assert "The number of results must be a whole number from 1 to 4." in str(caught.value)


def test_a_model_by_keyword_is_recorded_with_its_price_and_the_preview_s_zero(client, asset_paths):
    _, timings = client.predict(handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
                                model="fal-ai/fashn/tryon/v1.6", api_name="/try_on")
    assert timings["model"] == "fal-ai/fashn/tryon/v1.6" and timings["offline_preview"] is True
    assert timings["cost_usd"] == 0.0 and timings["estimate"]["usd"] == 0.075  # free here; $0.075 with the model


def test_an_option_the_chosen_model_cannot_make_is_refused_by_name(client, asset_paths):
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
                       resolution="4K", model="fal-ai/kling/v1-5/kolors-virtual-try-on", api_name="/try_on")
    assert "Kling Kolors Virtual Try-On v1.5 cannot make a 4K result: use 1K" in str(caught.value)
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
                       model="acme/no-such-model", api_name="/try_on")
    assert "Unknown model 'acme/no-such-model'" in str(caught.value)


def test_compare_returns_one_captioned_result_per_model(client, asset_paths):
    gallery, records = client.predict(handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_jeans_blue"]),
                                      model="fal-ai/nano-banana-2/edit", other_model="fal-ai/fashn/tryon/v1.6", api_name="/compare")
    assert [r["model"] for r in records] == ["fal-ai/nano-banana-2/edit", "fal-ai/fashn/tryon/v1.6"]
    assert len(gallery) == 2 and gallery[0]["caption"].startswith("Nano Banana 2 (Google) · ")
    assert gallery[1]["caption"].startswith("FASHN Try-On v1.6 · ") and "offline preview ($0)" in gallery[1]["caption"]
    with Image.open(gallery[0]["image"]) as first:
        assert first.size[0] > 0
