"""gradio's "Use via API" page in plain words: tryon/web/api_page.py on a tiny Blocks shaped like ours."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tryon.web.api_page import (GARMENT_EXAMPLE, LAUNCH_OPTIONS, PERSON_EXAMPLE, PlainApiPage, example_file,
                            plain_label)

ROOT = Path(__file__).resolve().parent.parent
WORDS = gr.I18n(en={"person": "Person photo", "garment_1": "Garment 1", "category": "Category", "result": "Result"},
                es={"person": "Foto de la persona", "garment_1": "Prenda 1", "category": "Categoría", "result": "Resultado"})


class TinyBlocks(PlainApiPage, gr.Blocks):
    pass


def try_on(person, garment_1, category_1="auto", category_2="auto"):
    """Dress the person in the garment.

    Args:
        person: photo of one person (JPEG, PNG or WebP)
        garment_1: photo of the garment
        category_1: what garment 1 is
        category_2: what garment 2 is

    Returns:
        picture: the person wearing it
        timings: where the time went
    """
    return person, {}


def upload(image):
    """Store one image; returns its reference.

    Args:
        image: a photo
    """
    return "ref"


def fails(person):
    """Always refuses.

    Args:
        person: photo of one person
    """
    raise gr.Error("not a person", print_exception=False)


def tiny_demo(i18n=None) -> TinyBlocks:
    with TinyBlocks() as demo:
        person = gr.Image(label=WORDS("person"), type="filepath")
        garment = gr.Image(label=WORDS("garment_1"), type="filepath")
        categories = [gr.Dropdown(["auto", "top"], value="auto", label=WORDS("category")) for _ in range(2)]
        picture, record = gr.Image(label=WORDS("result")), gr.JSON()
        gr.Button().click(try_on, [person, garment, *categories], [picture, record], api_name="try_on")
        upload_in = gr.Image(visible=False, type="filepath")  # no label: gradio's stand-in "parameter_<id>"
        gr.Button(visible=False).click(upload, upload_in, gr.Textbox(visible=False), api_name="upload")
        gr.Button(visible=False).click(fails, person, gr.Textbox(visible=False), api_name="fails")
    if i18n is not None:
        demo.i18n_instance = i18n  # what mount_gradio_app(i18n=...) does
    return demo


def mounted(demo, **options) -> FastAPI:
    return gr.mount_gradio_app(FastAPI(), demo, path="/", i18n=WORDS, **options)


def parameters(info, endpoint) -> dict[str, dict]:
    return {p["parameter_name"]: p for p in info["named_endpoints"][endpoint]["parameters"]}


def test_stock_gradio_shows_the_problems_this_module_fixes():
    # The canary: if gradio starts translating labels or drops bus.png, this module may go.
    class Stock(gr.Blocks):
        pass

    with Stock() as demo:
        person = gr.Image(label=WORDS("person"), type="filepath")
        gr.Button().click(upload, person, gr.Textbox(), api_name="upload")
    stock = demo.get_api_info()["named_endpoints"]["/upload"]["parameters"][0]
    assert "translation_metadata" in json.dumps(stock["label"], default=lambda o: o.to_dict())  # "[object Object]" on the page
    assert "bus.png" in stock["example_input"]["url"]


def test_labels_are_english_words_with_the_parameter_when_shared():
    info = tiny_demo(WORDS).get_api_info()
    params = parameters(info, "/try_on")
    assert params["person"]["label"] == "Person photo"
    assert params["garment_1"]["label"] == "Garment 1"
    assert params["category_1"]["label"] == "Category (category_1)"
    assert params["category_2"]["label"] == "Category (category_2)"
    assert parameters(info, "/upload")["image"]["label"] == "image"  # not "parameter_12"
    text = json.dumps(info, default=str)
    assert "__i18n__" not in text and "translation_metadata" not in text


def test_returns_are_named_by_the_docstring_or_in_words():
    info = tiny_demo(WORDS).get_api_info()
    assert [r["label"] for r in info["named_endpoints"]["/try_on"]["returns"]] == ["picture", "timings"]
    assert [r["label"] for r in info["named_endpoints"]["/upload"]["returns"]] == ["result"]


def test_without_an_i18n_the_key_itself_reads_as_words():
    params = parameters(tiny_demo().get_api_info(), "/try_on")
    assert params["person"]["label"] == "Person"
    assert params["garment_1"]["label"] == "Garment 1"


def test_descriptions_come_from_the_docstring_then_gradio_s_note():
    params = parameters(tiny_demo(WORDS).get_api_info(), "/try_on")
    assert params["person"]["python_type"]["description"] == (
        "Photo of one person (JPEG, PNG or WebP). A local filepath or publicly available URL.")
    assert params["category_1"]["python_type"]["description"] == "What garment 1 is."


def test_photo_examples_are_our_own_pictures_as_repository_paths():
    info = tiny_demo(WORDS).get_api_info()
    params = parameters(info, "/try_on")
    assert params["person"]["example_input"] == example_file(PERSON_EXAMPLE)
    assert params["garment_1"]["example_input"] == example_file(GARMENT_EXAMPLE)
    assert parameters(info, "/upload")["image"]["example_input"] == example_file(GARMENT_EXAMPLE)
    assert params["category_1"]["example_input"] == "auto"  # not a file: left alone
    for path in (PERSON_EXAMPLE, GARMENT_EXAMPLE):
        assert (ROOT / path).is_file(), path


def test_the_api_page_snippets_use_handle_file_on_our_pictures():
    # /gradio_api/info is what the page shows: gradio builds the snippets from the examples.
    with TestClient(mounted(tiny_demo(), **LAUNCH_OPTIONS)) as client:
        info = client.get("/gradio_api/info").json()
    snippets = info["named_endpoints"]["/try_on"]["code_snippets"]
    assert f"person=handle_file('{PERSON_EXAMPLE}')" in snippets["python"]
    assert f"garment_1=handle_file('{GARMENT_EXAMPLE}')" in snippets["python"]
    text = json.dumps(info)
    assert "bus.png" not in text and "translation_metadata" not in text
    assert parameters(info, "/try_on")["person"]["label"] == "Person photo"  # the mount's i18n


def test_the_snippet_runs_from_a_checkout(monkeypatch):
    # handle_file needs the path to exist where the script runs: the repository root, as in the README.
    from gradio_client import handle_file

    monkeypatch.chdir(ROOT)
    for path in (PERSON_EXAMPLE, GARMENT_EXAMPLE):
        assert handle_file(path)["path"] == path


def test_mcp_schemas_are_unchanged():
    # MCP reads `type` (the JSON schema) and the docstring, never the labels or examples we rewrite.
    plain = tiny_demo(WORDS).get_api_info()
    stock_info = gr.Blocks.get_api_info(tiny_demo(WORDS))
    for name, endpoint in plain["named_endpoints"].items():
        for ours, theirs in zip(endpoint["parameters"], stock_info["named_endpoints"][name]["parameters"]):
            assert ours["type"] == theirs["type"] and ours["parameter_name"] == theirs["parameter_name"]
            assert ours["parameter_default"] == theirs["parameter_default"]


def test_plain_label_reads_every_spelling_of_a_key():
    english = {"person": "Person photo"}
    assert plain_label(WORDS("person"), english) == "Person photo"
    assert plain_label({"__type__": "translation_metadata", "key": "person"}, english) == "Person photo"
    assert plain_label(str(WORDS("person")), english) == "Person photo"
    assert plain_label("parameter_12", english) is None and plain_label(None, english) is None
    assert plain_label("Job id", english) == "Job id"


def test_a_failed_call_makes_gradio_s_p50_null_which_the_page_shows_as_0_ms():
    # Why LAUNCH_OPTIONS turns monitoring off: gradio's summary over one success and one failure.
    from gradio.queueing import Queue

    queue = Queue(live_updates=False, concurrency_count=1, update_intervals=1, max_size=None, blocks=gr.Blocks())
    queue.events_recorded = 2
    summary = queue.compute_analytics_summary([
        {"time": 1.0, "status": "success", "process_time": 0.8, "function": "try_on", "session_hash": "a"},
        {"time": 2.0, "status": "failed", "process_time": None, "function": "try_on", "session_hash": "a"},
    ])
    p50 = summary["functions"]["try_on"]["process_time_percentiles"]["50th"]
    assert p50 is None or np.isnan(p50)  # the page: Math.round(null * 1000) -> "0 ms"


def test_with_launch_options_the_page_gets_no_latency_summary():
    with TestClient(mounted(tiny_demo(), **LAUNCH_OPTIONS)) as client:
        assert client.get("/monitoring/summary").status_code == 403  # the page then shows no "p50" line
    with TestClient(mounted(tiny_demo())) as client:
        assert client.get("/monitoring/summary").status_code == 200  # gradio's default, for contrast


def test_the_app_s_page_is_built_with_it(settings):
    from tryon.providers.local import LocalPreviewProvider
    from tryon.service import TryOnService
    from tryon.web.page import build_demo, launch_options

    demo = build_demo(TryOnService(settings, LocalPreviewProvider()))
    if not isinstance(demo, PlainApiPage):
        pytest.xfail("tryon/web/page.py does not build its Blocks with PlainApiPage yet (see tryon/web/api_page.py)")
    assert launch_options().get("enable_monitoring") is False
    demo.i18n_instance = launch_options()["i18n"]
    info = demo.get_api_info()
    text = json.dumps(info, default=str)
    assert "__i18n__" not in text and "bus.png" not in text
    try_on_params = parameters(info, "/try_on")
    assert try_on_params["person"]["example_input"] == example_file(PERSON_EXAMPLE)
    assert "[object Object]" not in text
