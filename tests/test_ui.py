"""The UI's event functions and the Blocks wiring, without a server."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image

from tryon.errors import pick_language
from tryon.outfit import CATEGORIES
from tryon.ui import GARMENT_SLOTS, Handlers, PhotoInput, build_demo, examples, timing_rows


def request(lang: str | None = None):
    return SimpleNamespace(headers={"accept-language": lang} if lang else {})


@pytest.fixture
def handlers(service):
    return Handlers(service)


@pytest.fixture
def files(tmp_path, person_png, garment_pngs):
    paths = {}
    for name, data in [("person", person_png), ("g1", garment_pngs[0]), ("g2", garment_pngs[1]), ("text", b"hello")]:
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        paths[name] = path  # as PhotoInput hands them over: a Path, never text
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(person_png[: len(person_png) // 3])
    paths["truncated"] = truncated
    return paths


def test_try_on_returns_the_picture_and_the_timing_record(handlers, files):
    image, timings = handlers.try_on(files["person"], files["g1"], None, files["g2"], None, request=request())
    assert isinstance(image, Image.Image) and image.size == (768, 1024)
    assert timings["garments"] == 2 and "fal_call_2" in timings


@pytest.mark.parametrize(
    "lang, expected",
    [("en-US,en;q=0.9", "Garment 1: This file is not an image."), ("es-ES,es;q=0.9", "Prenda 1: Este archivo no es una imagen.")],
)
def test_errors_are_gr_errors_in_the_browser_s_language(handlers, files, lang, expected):
    with pytest.raises(gr.Error) as caught:
        handlers.try_on(files["person"], files["text"], None, None, None, request=request(lang))
    assert str(caught.value.message).startswith(expected)


def test_a_truncated_upload_gets_the_specific_message(handlers, files):
    with pytest.raises(gr.Error) as caught:
        handlers.try_on(files["truncated"], files["g1"], None, None, None, request=request())
    assert "Person photo: The image file is truncated or corrupt" in caught.value.message


def test_no_garment_error(handlers, files):
    with pytest.raises(gr.Error) as caught:
        handlers.try_on(files["person"], None, None, None, None, request=request("es"))
    assert caught.value.message == "Se requiere al menos una prenda."


def test_an_unexpected_failure_hides_its_details(handlers, files, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("internal detail with FAL_KEY=abc")

    monkeypatch.setattr(handlers.service, "try_on_sync", boom)
    with pytest.raises(gr.Error) as caught:
        handlers.try_on(files["person"], files["g1"], None, None, None, request=request())
    assert "Something went wrong on our side" in caught.value.message
    assert "FAL_KEY" not in caught.value.message and "internal detail" not in caught.value.message


def test_upload_returns_a_reference_and_rejects_bad_files(handlers, files):
    assert handlers.upload(files["person"], request()).startswith("local:")
    with pytest.raises(gr.Error):
        handlers.upload(files["text"], request())


def test_dropping_a_bad_file_clears_its_slot_and_a_good_one_is_kept(handlers, files):
    check = handlers.prepare_slot("garment_2")
    with pytest.warns(UserWarning, match="Garment 2: This file is not an image"):  # gr.Warning outside a live page
        assert check(files["text"], request()) is None
    kept = check(files["g1"], request())
    assert not isinstance(kept, (str, type(None)))  # gr.skip(): leave the slot as it is


def test_present_fills_slider_table_and_status(handlers, files):
    image, timings = handlers.try_on(files["person"], files["g1"], files["g2"], None, None, request=request())
    result_path = str(files["person"]).replace("person", "result")
    image.save(result_path)
    shown, slider, table, chart, status = handlers.present(files["person"], [(result_path, None)], timings, request("es"))
    assert shown == result_path and slider[0].size == slider[1].size
    assert table["visible"] is True
    frame = table["value"]
    assert list(frame.columns) == ["Paso", "ms", "Detalle"]
    assert "Llamada al proveedor 2" in frame["Paso"].tolist()
    assert status.startswith("Vista previa sin conexión")
    bars = chart["value"]
    # No sort in the update: with one, gradio kept the previous run's bars (the labels carry the order instead).
    assert chart["visible"] is True and list(bars["step"])[:1] == ["1. Imágenes"] and "sort" not in chart
    assert "3. Llamada al proveedor 2" in list(bars["step"])


def test_timing_rows_cover_every_call_and_total():
    timings = {"inputs_ms": 30, "uploads": [], "fal_call_1": 5000, "fal_call_2": 5100, "download_ms": 3,
               "fal_duration_ms": 10100, "backend_overhead_ms": 40, "total_backend_ms": 10140, "requestId": "r1", "provider": "fal"}
    rows = timing_rows(timings)
    steps = [row[0] for row in rows]
    assert steps.count("Provider call 1") == 1 and "Provider call 2" in steps and "Provider call 3" not in steps
    assert rows[-1] == ["Total", 10140, "r1"]


def test_timing_bars_add_up_to_the_total():
    from tryon.ui import timing_bars

    timings = {"inputs_ms": 30, "queue_wait_ms": 200, "fal_call_1": 5000, "fal_call_2": 5100, "download_ms": 3,
               "total_backend_ms": 10400}
    bars = timing_bars(timings)
    assert list(bars["step"]) == ["1. Inputs", "2. Waiting in the job queue", "3. Provider call 1", "4. Provider call 2",
                                  "5. Fetch result", "6. Other overhead"]
    assert list(bars["step"]) == sorted(bars["step"])  # the chart orders bars by label: that is the order of the time
    assert bars["ms"].sum() == pytest.approx(10400) and bars["ms"].iloc[-1] == pytest.approx(67)
    most = {"inputs_ms": 1, "queue_wait_ms": 1, **{f"fal_call_{n}": 1 for n in range(1, 5)}, "download_ms": 1, "total_backend_ms": 9}
    assert list(timing_bars(most)["step"]) == sorted(timing_bars(most)["step"])  # all 8 bars: still one digit


def test_language_pick():
    assert pick_language("es-MX,es;q=0.9,en;q=0.5") == "es"
    assert pick_language("fr-FR,en;q=0.8") == "en"
    assert pick_language(None) == "en"


def test_photo_input_renders_as_a_stock_image_and_passes_paths_through(tmp_path):
    component = PhotoInput(label="x")
    config = component.get_config()
    assert config["name"] == "image" and config["buttons"] == ["download", "share", "fullscreen"]
    payload = SimpleNamespace(url=None, path=str(tmp_path / "f.png"))
    assert component.preprocess(payload) == tmp_path / "f.png"  # a Path: the service opens only those
    assert component.preprocess(SimpleNamespace(url="data:image/png;base64,AAAA", path=None)) == "data:image/png;base64,AAAA"


def test_named_api_is_exactly_the_documented_five(service):
    demo = build_demo(service)
    public = {d["api_name"]: d for d in demo.config["dependencies"] if d.get("api_visibility") == "public"}
    assert set(public) == {"try_on", "try_on_variants", "upload", "submit_job", "job_status"}
    # The original parameters first, in their order; the outfit options after them (all optional).
    for name in ("try_on", "try_on_variants", "submit_job"):
        # person, garments, then categories, descriptions, order, num_images, aspect_ratio, resolution
        assert len(public[name]["inputs"]) == 1 + GARMENT_SLOTS + 2 * GARMENT_SLOTS + 4
    assert len(public["try_on"]["outputs"]) == 2 and len(public["try_on_variants"]["outputs"]) == 2
    assert len(public["submit_job"]["outputs"]) == 1
    assert len(public["job_status"]["inputs"]) == 1 and len(public["job_status"]["outputs"]) == 1


@pytest.fixture
def async_handlers(settings, redis_server):
    from tryon.jobs import JobQueue
    from tryon.providers.local import LocalPreviewProvider
    from tryon.redis_server import client_for
    from tryon.service import TryOnService
    from tryon.worker import WorkerPool

    service = TryOnService(settings, LocalPreviewProvider(), JobQueue(client_for(port=redis_server.port)))
    pool = WorkerPool(service, 1).start()
    yield Handlers(service)
    pool.stop()


def test_async_submit_then_watch_moves_the_status_line_and_ends_with_the_picture(async_handlers, files):
    job_id = async_handlers.submit_job(files["person"], files["g1"], files["g2"], None, None, request=request())
    updates = list(async_handlers.watch_job(job_id, request()))
    status, pictures, timings = updates[-1]
    assert status.startswith(f"Job {job_id}: done in")
    assert isinstance(pictures[0], Image.Image) and timings["garments"] == 2 and timings["fal_call_1"] > 0
    assert all(update[0].startswith(f"Job {job_id}: ") for update in updates)
    answer = async_handlers.job_status(job_id, request())
    assert answer["status"] == "done" and answer["timestamps"]["finished_at"] >= answer["timestamps"]["created_at"]


def test_an_unknown_job_id_is_a_clear_error(async_handlers):
    with pytest.raises(gr.Error) as caught:
        async_handlers.job_status("no-such-job-0123456789", request())
    assert caught.value.message.startswith("Job not found")
    with pytest.raises(gr.Error):
        list(async_handlers.watch_job("x" * 10_000, request("es")))


def test_the_mode_switch_shows_the_matching_button():
    sync_button, async_button = Handlers.switch_mode("async")
    assert sync_button["visible"] is False and async_button["visible"] is True


def test_examples_point_at_shipped_pictures():
    rows = examples()
    assert len(rows) >= 2
    for row in rows:
        assert len(row) == 1 + 2 * GARMENT_SLOTS and row[0] and row[1]  # person, garments, their categories
        for path in filter(None, row[:1 + GARMENT_SLOTS]):
            Image.open(path).verify()
        assert all(category in CATEGORIES for category in row[1 + GARMENT_SLOTS:])
