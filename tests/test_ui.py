"""The page's event functions and the Blocks wiring, without a server (the browser tests are in e2e/)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image

from tryon.errors import pick_language
from tryon.outfit import CATEGORIES
from tryon.web.components import PhotoInput
from tryon.web.events import GARMENT_SLOTS, Handlers, PageRun
from tryon.web.page import EXAMPLE_GARMENTS, EXAMPLE_PEOPLE, build_demo, shipped
from tryon.web.views import timing_bars, timing_rows


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


def test_a_bad_file_stays_in_its_slot_with_its_reason_and_a_good_one_shows_its_guess(handlers, files):
    check = handlers.check_slot("garment_2")
    note, status, choices = check(files["text"], "auto", request("es"))
    assert status["value"] == "⚠️ Prenda 2: Este archivo no es una imagen. Usa una foto JPEG, PNG o WebP."  # said in the line too
    assert note["visible"] is True and note["value"] == "⚠️ Prenda 2: Este archivo no es una imagen. Usa una foto JPEG, PNG o WebP."
    assert "slot-bad" in note["elem_classes"]  # the slot is marked (CSS) while its note shows
    note, status, choices = check(files["g1"], "auto", request())
    assert note["visible"] is False
    auto_label = choices["choices"][0]
    assert auto_label[1] == "auto" and auto_label[0].startswith("Auto: ")  # what Auto will do with this picture
    assert handlers.check_slot("person")(files["text"], request())[0]["visible"] is True


def test_try_on_is_enabled_only_with_a_person_and_a_garment_and_says_why(handlers, files):
    none = (None,) * 4
    run, hint, order_line, order = handlers.readiness(None, *none, *("auto",) * 4, *none, [], request())
    assert run["interactive"] is False and hint["value"] == "To try on, add a person photo and at least one garment."
    run, hint, _, _ = handlers.readiness(files["person"], *none, *("auto",) * 4, *none, [], request("es"))
    assert run["interactive"] is False and hint["value"] == "Para probar, añade al menos una prenda."
    run, hint, order_line, order = handlers.readiness(files["person"], None, files["g1"], None, None, *("auto",) * 4, *none, [], request())
    assert run["interactive"] is True and hint["visible"] is False
    assert [value for _, value in order["choices"]] == ["garment_2"]  # the order offers filled slots only
    assert "Garment 2 (" in order_line and "detected" in order_line


def frames_of(handlers, mode, person, g1, g2=None, lang=None, num_images=1):
    """Every frame the run event sends, each as {output name: value}."""
    frames = handlers.run_look(mode, person, g1, g2, None, None, "auto", "auto", "auto", "auto", None, None, None, None, [], num_images,
                               "same", "1K", request=request(lang))
    return [dict(zip(PageRun.OUTPUTS, frame)) for frame in frames]


def test_a_run_says_each_step_at_once_and_ends_with_this_run_s_table_chart_and_picture(handlers, files):
    frames = frames_of(handlers, "sync", files["person"], files["g1"], files["g2"], lang="es")
    said = [frame["status"]["value"] for frame in frames]
    assert said[0] == "⏳ Empezando…" and frames[0]["run"]["interactive"] is False  # busy at once
    assert frames[0]["run"]["value"] == "Empezando…"  # the button says it too
    assert frames[0]["table"]["visible"] is False and frames[0]["chart"]["visible"] is False  # nothing of the last run
    assert "⏳ Aplicando la prenda 1 de 2…" in said and "⏳ Aplicando la prenda 2 de 2…" in said
    last = frames[-1]
    assert last["status"]["value"].startswith("Vista previa sin conexión") and last["run"]["interactive"] is True
    assert isinstance(last["result"], Image.Image)
    assert last["variants"]["visible"] is False  # one picture: not shown again as a gallery
    frame = last["table"]["value"]
    assert list(frame.columns) == ["Paso", "ms", "Detalle"]
    bars = last["chart"]["value"]
    # The chart's bars are this run's: one per provider call in the table, same numbers.
    calls = [row for row in frame.itertuples() if row.Paso.startswith("Llamada al proveedor")]
    assert len(calls) == 2
    assert [b for b in bars["step"] if "Llamada" in b] == ["2. Llamada al proveedor 1", "3. Llamada al proveedor 2"]
    assert list(bars["ms"])[1:3] == [float(row.ms.replace(",", ".")) for row in calls]
    assert all("," in row.ms for row in calls)  # written as Spanish writes numbers
    assert "sort" not in last["chart"]  # with a sort, gradio kept the previous run's bars
    assert last["compare_toggle"]["visible"] is True and last["compare"]["visible"] is False


def test_a_bad_file_keeps_try_on_disabled_with_the_reason(handlers, files):
    none = (None,) * 4
    run, hint, order_line, order = handlers.readiness(files["person"], files["g1"], files["text"], None, None, *("auto",) * 4, *none, [],
                                                      request())
    assert run["interactive"] is False and hint["value"] == "Replace or remove the file in Garment 2: it cannot be used."
    assert [value for _, value in order["choices"]] == ["garment_1"] and "Garment 2" not in order_line


def test_deleting_a_look_that_is_gone_says_so(handlers):
    _, selected, actions, said = handlers.delete_look("0123456789abcdef", request())
    assert said == "⚠️ That look is no longer kept." and actions["visible"] is False and selected is None


def test_a_user_mistake_goes_to_the_status_line_and_its_slot_not_an_error_pill(handlers, files):
    frames = frames_of(handlers, "sync", files["person"], files["text"], lang="en")
    last = frames[-1]
    assert last["status"]["value"] == "⚠️ Garment 1: This file is not an image. Use a JPEG, PNG or WebP photo."
    assert "status-error" in last["status"]["elem_classes"] and last["run"]["interactive"] is True
    assert last["note_garment_1"]["visible"] is True and "not an image" in last["note_garment_1"]["value"]
    frames = frames_of(handlers, "sync", files["person"], None, lang="es")
    assert frames[-1]["status"]["value"] == "⚠️ Se requiere al menos una prenda."


def test_timing_rows_cover_every_call_and_total():
    timings = {"inputs_ms": 30, "uploads": [], "fal_call_1": 5000, "fal_call_2": 5100, "download_ms": 3,
               "fal_duration_ms": 10100, "backend_overhead_ms": 40, "total_backend_ms": 10140, "requestId": "r1", "provider": "fal"}
    rows = timing_rows(timings)
    steps = [row[0] for row in rows]
    assert steps.count("Provider call 1") == 1 and "Provider call 2" in steps and "Provider call 3" not in steps
    assert rows[-1] == ["Total", 10140, ""]
    assert all("cache" not in str(cell) for row in rows for cell in row)  # plain words, no developer matter


def test_timing_bars_add_up_to_the_total():
    timings = {"inputs_ms": 30, "queue_wait_ms": 200, "fal_call_1": 5000, "fal_call_2": 5100, "download_ms": 3,
               "total_backend_ms": 10400}
    bars = timing_bars(timings)
    assert list(bars["step"]) == ["1. Inputs", "2. Waiting in the job queue", "3. Provider call 1", "4. Provider call 2",
                                  "5. Fetch result", "6. Everything else"]
    assert list(bars["step"]) == sorted(bars["step"])  # the chart orders bars by label: that is the order of the time
    assert bars["ms"].sum() == pytest.approx(10400) and bars["ms"].iloc[-1] == pytest.approx(67)
    at_once = timing_bars({"inputs_ms": 3, "queue_wait_ms": 0, "fal_call_1": 50, "download_ms": 0, "total_backend_ms": 60})
    assert list(at_once["step"]) == ["1. Inputs", "2. Waiting in the job queue", "3. Provider call 1", "4. Fetch result",
                                     "5. Everything else"]  # a row of the table at 0 ms is still a bar
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


def test_named_api_is_exactly_the_documented_twelve(service):
    demo = build_demo(service)
    public = {d["api_name"]: d for d in demo.config["dependencies"] if d.get("api_visibility") == "public"}
    assert set(public) == {"try_on", "try_on_variants", "upload", "submit_job", "job_status", "compare",
                           "submit_batch", "submit_batch_urls", "batch_status", "cancel_batch", "retry_batch", "batch_archive"}
    assert len(public["submit_batch"]["inputs"]) == 7 and len(public["submit_batch_urls"]["inputs"]) == 7  # persons, garments, outfits, num_images, aspect_ratio, resolution, model
    for name in ("batch_status", "cancel_batch", "retry_batch", "batch_archive"):
        assert len(public[name]["inputs"]) == 1 and len(public[name]["outputs"]) == 1
    # The original parameters first, in their order; the outfit options after them (all optional).
    for name in ("try_on", "try_on_variants", "submit_job"):
        # person, garments, then categories, descriptions, order, num_images, aspect_ratio, resolution, model
        assert len(public[name]["inputs"]) == 1 + GARMENT_SLOTS + 2 * GARMENT_SLOTS + 5
    assert len(public["compare"]["inputs"]) == 1 + GARMENT_SLOTS + 2 * GARMENT_SLOTS + 6  # ... model, other_model
    assert len(public["try_on"]["outputs"]) == 2 and len(public["try_on_variants"]["outputs"]) == 2
    assert len(public["submit_job"]["outputs"]) == 1
    assert len(public["job_status"]["inputs"]) == 1 and len(public["job_status"]["outputs"]) == 1


@pytest.fixture
def async_handlers(settings, redis_server):
    from tryon.jobs import JobQueue
    from tryon.providers.local import LocalPreviewProvider
    from tryon.redis_server import client_for
    from tryon.service import TryOnService
    from tryon.jobs.worker import WorkerPool

    service = TryOnService(settings, LocalPreviewProvider(), JobQueue(client_for(port=redis_server.port)))
    pool = WorkerPool(service, 1).start()
    yield Handlers(service)
    pool.stop()


def test_async_mode_moves_the_status_line_and_ends_with_the_picture(async_handlers, files):
    frames = frames_of(async_handlers, "async", files["person"], files["g1"], files["g2"])
    job_id = next(f["job_id"]["value"] for f in frames if isinstance(f["job_id"], dict) and f["job_id"].get("value"))
    said = [f["status"]["value"] for f in frames]
    assert any(text.startswith(f"⏳ Job {job_id}: ") for text in said)
    # Every frame from the submit on carries the id: gradio may skip frames for a slow client.
    assert all(f["job_id"]["value"] == job_id for f in frames[1:]), [f["job_id"] for f in frames]
    last = frames[-1]
    assert last["status"]["value"].startswith("Offline preview") and isinstance(last["result"], Image.Image)
    assert last["record"]["garments"] == 2 and last["record"]["fal_call_1"] > 0
    assert [b for b in last["chart"]["value"]["step"] if "Provider call" in b][0].endswith("Provider call 1")  # one call
    answer = async_handlers.job_status(job_id, request())
    assert answer["status"] == "done" and answer["timestamps"]["finished_at"] >= answer["timestamps"]["created_at"]


def test_an_unknown_job_id_is_a_clear_error(async_handlers):
    with pytest.raises(gr.Error) as caught:
        async_handlers.job_status("no-such-job-0123456789", request())
    assert caught.value.message.startswith("Job not found")
    frames = [dict(zip(PageRun.OUTPUTS, f)) for f in async_handlers.check_job("x" * 10_000, request("es"))]
    assert frames[-1]["status"]["value"].startswith("⚠️ ") and frames[-1]["run"]["interactive"] is True


def test_the_mode_switch_shows_the_job_id_box_in_async_only():
    assert Handlers.switch_mode("async")["visible"] is True and Handlers.switch_mode("sync")["visible"] is False


def test_the_example_pictures_are_shipped_and_the_garments_are_recognised(service):
    people, garments = shipped(EXAMPLE_PEOPLE), shipped(EXAMPLE_GARMENTS)
    assert len(people) >= 3 and len(garments) >= 6
    for path, _ in people + garments:
        Image.open(path).verify()
    expected = {"example_tshirt": "top", "example_jeans": "bottom", "example_jacket": "outerwear", "example_dress": "dress",
                "example_skirt": "bottom", "example_shoes": "shoes"}
    for path, key in garments:
        if key in expected:
            assert service.garment_category(Path(path), "garment_1")["category"] == expected[key], key


def test_the_model_events_answer_any_raw_values_without_raising(service):
    """Private events still answer raw HTTP: odd values get the page's words, never an exception."""
    from tryon.web.events import Handlers

    handlers = Handlers(service)
    for count in ("abc", None, "1e400", -3, 2.5):
        resolution, ratio, results, *descriptions = handlers.model_options("fal-ai/kling/v1-5/kolors-virtual-try-on", "4K", "16:9", count)
        assert resolution["choices"] == ["1K"] and resolution["value"] == "1K" and ratio["value"] == "same"
        assert results["visible"] is False and all(d["visible"] is False and d["value"] == "" for d in descriptions)
    assert handlers.model_options("acme/unknown", "1K", "same", 1)[0] is not None  # unknown: left as it is
    info, said = handlers.cost_view("acme/unknown", "sync", None, 1, "1K", "a.png", None, None, None)
    assert "Unknown model 'acme/unknown'" in said
    info, said = handlers.cost_view("fal-ai/fashn/tryon/v1.6", "sync", None, "lots", "1K", "a.png", None, None, None)
    assert "number of results" in said.lower()
