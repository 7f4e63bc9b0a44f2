"""The page, declared: person | garments | result side by side (stacked in that order on a phone).

Layout only; every event's function is in events.py, every word in ui_text.py, every number
on screen comes from this run's timing record (views.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from .api_page import LAUNCH_OPTIONS, PlainApiPage
from .file_gate import FileGate, GatedBlocks
from ..outfit import ASPECT_RATIOS, CATEGORIES, MAX_VARIANTS, RESOLUTIONS
from ..service import TryOnService
from .session_files import FileOwners
from .text import I18N, say
from .components import LoginButton, PhotoInput, ResultCount
from .events import FIELDS, GARMENT_SLOTS, Handlers, PageRun, language
from . import catalogue

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CATEGORY_CHOICES = [(I18N(f"category_choice_{name}"), name) for name in CATEGORIES]
ASPECT_CHOICES = [(I18N("aspect_same"), "same")] + [(ratio, ratio) for ratio in ASPECT_RATIOS if ratio != "same"]

CSS = """
#status { min-height: 2.4em; font-size: 1.05em; }
/* gradio's own timer ("0.1s", "processing | 0.3/1.7s") would sit in the status line: it says the words instead. */
#status [data-testid=status-tracker] { display: none !important; }
#status.status-error, .status-error { color: var(--error-text-color, #b91c1c); font-weight: 600; }
.slot-note { color: var(--error-text-color, #b91c1c); font-size: .9em; }
.slot:has(.slot-bad) { outline: 3px solid #dc2626; outline-offset: 2px; border-radius: 10px; }
#run-hint { font-size: .9em; opacity: .85; }
#cost-estimate { font-size: .9em; }
#model-info { font-size: .85em; opacity: .85; margin-top: -6px; }
/* Each side's caption (model · time · cost) under its picture, whole, not over it. */
#models-compared .caption-label, #history .caption-label { position: static; white-space: normal; overflow: visible; text-overflow: clip; max-width: 100%;
  margin: 4px 0 0; font-size: .85em; }
#models-compared .thumbnail-item, #history .thumbnail-item { display: flex; flex-direction: column; height: auto; aspect-ratio: auto; }
#models-compared .thumbnail-item img { max-height: 360px; object-fit: contain; }
#history .thumbnail-item img { max-height: 150px; object-fit: contain; }
/* A number is never broken inside: "158.1", not "158." over "1". */
#timings [role=gridcell]:nth-child(2), #timings td:nth-child(2) { white-space: nowrap; text-align: right; }
#preview-pill { flex: 0 1 auto; width: auto; min-width: 0; }
#preview-pill p { display: inline-block; margin: 0; padding: 4px 12px; border-radius: 999px;
                  background: #fef3c7; color: #78350f; font-size: .9em; }
#header { align-items: center; }
/* Sign in with Hugging Face: as wide as its words, at the header's end, never wrapped. */
#login { flex: 0 0 auto; width: auto; min-width: 0; margin-left: auto; white-space: nowrap; }
#header h1 { margin: 0; font-size: 1.5em; }
.step-title h3 { margin: 0 0 4px 0; }
/* Example pictures: four to a row whatever the column's width, captions under them. */
#example-people .grid-container, #example-garments .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)) !important;
  grid-auto-rows: 84px !important; gap: 6px !important; }
#example-people .grid-wrap, #example-garments .grid-wrap { overflow-x: hidden; }
/* Their names are the pictures' alt text, the thumbnails' accessible names and a tooltip; a
   caption chip cut to "Red T-…" over a 90 px picture only hid it. */
#example-people .caption-label, #example-garments .caption-label { display: none; }
#metrics-summary th, #metrics-summary td { overflow-wrap: normal; word-break: normal; }
/* gradio 6 draws the table's cells as ARIA grid cells: keep each number on one line. */
#timings [role=gridcell][data-col="1"] { white-space: nowrap; text-align: right; }
@media (max-width: 767px) {
  /* The action stays at the bottom of the screen on a phone, whatever is scrolled into view. */
  #run-bar { position: fixed; left: 0; right: 0; bottom: 0; z-index: 1000; margin: 0; padding: 8px 12px;
             background: var(--background-fill-primary); box-shadow: 0 -2px 10px rgba(0,0,0,.18); }
  .gradio-container { padding-bottom: 120px !important; }
  #timings [role=gridcell], #timings [role=columnheader] { font-size: .85em; }
}
"""

# On load: the status line becomes a live region (screen readers hear each step), and each slot
# can take the focus, so an upload leaves it where the visitor was instead of on the page body.
JS = """
() => {
  const mark = () => {
    // The line itself, not the whole block: gradio's progress timer beside it is not news.
    const status = document.querySelector('#status [data-testid=markdown]');
    if (status && !status.hasAttribute('role')) { status.setAttribute('role', 'status'); status.setAttribute('aria-live', 'polite'); }
    // A slot's error is announced when it appears.
    document.querySelectorAll('.slot-note').forEach((note) => { if (!note.hasAttribute('role')) note.setAttribute('role', 'alert'); });
    // gradio names each thumbnail "Thumbnail 3 of 8": say what it shows (its caption, the img's alt) instead.
    document.querySelectorAll('.thumbnail-item').forEach((item) => {
      const img = item.querySelector('img');
      if (img && img.alt && item.getAttribute('aria-label') !== img.alt) { item.setAttribute('aria-label', img.alt); item.title = img.alt; }
    });
  };
  mark();
  // alt too: a caption translated in place changes the attribute and adds no node.
  new MutationObserver(mark).observe(document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ['alt']});
}
"""


def focus_js(elem_id: str) -> str:
    """After an upload gradio re-renders the slot and the focus falls to the body: give it back to the slot."""
    return ("() => { setTimeout(() => { const el = document.getElementById('%s');"
            " if (el) { el.setAttribute('tabindex', '-1'); el.focus({preventScroll: true}); } }, 300); }" % elem_id)


SCROLL_TO_STATUS_JS = """
() => { const s = document.getElementById('result-column'); if (s) s.scrollIntoView({block: 'start'}); }
"""
FOCUS_STATUS_JS = """
() => { const s = document.querySelector('#status [data-testid=markdown]'); if (s) { s.setAttribute('tabindex', '-1'); s.focus({preventScroll: true}); } }
"""

SCROLL_TO_RESULT_JS = """
() => { if (window.innerWidth < 768) { const s = document.getElementById('result-column'); if (s) s.scrollIntoView({block: 'start'}); } }
"""

# Example pictures shipped in assets/: (file, caption key). Missing files are skipped.
EXAMPLE_PEOPLE = [("person_astronaut.png", "example_person_astronaut"), ("person_illustration.png", "example_person_mannequin"),
                  ("person_illustration_2.png", "example_person_2"), ("person_illustration_3.png", "example_person_3")]
EXAMPLE_GARMENTS = [("garment_tshirt_red.png", "example_tshirt"), ("garment_jeans_blue.png", "example_jeans"),
                    ("garment_jacket_denim.png", "example_jacket"), ("garment_sweater_striped.png", "example_sweater"),
                    ("garment_hoodie_yellow.png", "example_hoodie"), ("garment_dress_green.png", "example_dress"),
                    ("garment_skirt_plum.png", "example_skirt"), ("garment_shoes.png", "example_shoes")]


class TryOnBlocks(PlainApiPage, GatedBlocks):
    """The page's Blocks: the file gate on every event, and gradio's API page in plain words."""


def shipped(examples: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(str(ASSETS / name), key) for name, key in examples if (ASSETS / name).exists()]


def captioned(examples: list[tuple[str, str]], lang: str) -> list[tuple[str, str]]:
    """A gallery value: each picture with its caption (also its alt text) in the visitor's language."""
    return [(path, say(key, lang)) for path, key in examples]


def build_demo(service: TryOnService, redis_description: str | None = None) -> TryOnBlocks:
    """The page; app.py hands `demo.file_gate.owners` to the SessionFiles middleware that serves the files."""
    provider = service.provider
    handlers = Handlers(service)
    people, garment_examples = shipped(EXAMPLE_PEOPLE), shipped(EXAMPLE_GARMENTS)
    notes: dict[str, gr.Markdown] = {}

    def note(field: str) -> None:
        notes[field] = gr.Markdown(visible=False, elem_id=f"note_{field}", elem_classes=["slot-note"])

    # delete_cache: gradio removes uploads and results older than a day, checked hourly (photos of people).
    # The tab's title is the one text that cannot follow the browser's language: the name alone.
    offered = service.offered_models()
    model_choices = [(m.label, m.id) for m in offered]
    default_model = offered[0].id if offered else None
    with TryOnBlocks(title="tryon", delete_cache=(3600, 86400)) as demo:
        with gr.Row(elem_id="header"):
            gr.Markdown(I18N("title"), elem_id="title")
            if provider.is_preview:
                gr.Markdown(I18N("preview_pill"), elem_id="preview-pill")
            if service.settings.hf_oauth:  # a Space with hf_oauth: true; signed in, a visitor has their own quota and history
                LoginButton("sign_in", "sign_out", size="sm", elem_id="login")
        with gr.Tabs() as tabs:
            with gr.Tab(I18N("tab_try_on"), id="try-on-tab"):
                with gr.Row(elem_id="workbench", equal_height=False):
                    with gr.Column(scale=4, min_width=280, elem_id="person-column"):
                        gr.Markdown(I18N("step_person"), elem_classes=["step-title"])
                        people_gallery = gr.Gallery(captioned(people, "en"), show_label=False, columns=4, rows=1, height=90, buttons=[],
                                                    allow_preview=False, interactive=False, object_fit="contain", fit_columns=True,
                                                    elem_id="example-people")
                        with gr.Column(elem_classes=["slot"]):
                            person = PhotoInput(label=I18N("person"), sources=["upload", "webcam", "clipboard"], height=320,
                                                alt_text=I18N("alt_person"), elem_id="person")
                            note("person")
                    with gr.Column(scale=5, min_width=300, elem_id="garments-column"):
                        gr.Markdown(I18N("step_garments"), elem_classes=["step-title"])
                        garment_gallery = gr.Gallery(captioned(garment_examples, "en"), show_label=False, columns=4, rows=2, height=176, buttons=[],
                                                     allow_preview=False, interactive=False, object_fit="contain", fit_columns=True,
                                                     elem_id="example-garments")
                        garments, categories = [], []
                        with gr.Row(elem_id="garment-slots"):
                            for slot in range(1, GARMENT_SLOTS + 1):
                                with gr.Column(min_width=150, elem_classes=["slot"]):
                                    garments.append(PhotoInput(label=I18N(f"garment_{slot}"), sources=["upload", "clipboard"], height=120,
                                                               alt_text=I18N(f"alt_garment_{slot}"), elem_id=f"garment_{slot}"))
                                    # allow_custom_value: an unknown value reaches Outfit.parse, whose error names the garment.
                                    categories.append(gr.Dropdown(CATEGORY_CHOICES, value="auto", label=I18N(f"category_of_{slot}"), allow_custom_value=True,
                                                                  show_label=False, container=False, elem_id=f"category_{slot}"))
                                    note(f"garment_{slot}")
                        order_view = gr.Markdown(I18N("order_empty"), elem_id="layer-order")
                        with gr.Group(elem_id="run-bar"):
                            run = gr.Button(I18N("try_on"), variant="primary", interactive=False, elem_id="try-on")
                            hint = gr.Markdown(I18N("need_both"), elem_id="run-hint")
                            estimate = gr.Markdown(elem_id="cost-estimate", visible=bool(offered))
                        with gr.Accordion(I18N("advanced"), open=False, elem_id="advanced"):
                            mode = gr.Radio([(I18N("mode_sync"), "sync"), (I18N("mode_async"), "async")], value="sync", label=I18N("mode"),
                                            info=I18N("mode_info"), interactive=service.queue is not None, elem_id="mode")
                            job_id = gr.Textbox(label=I18N("job_id"), interactive=False, buttons=["copy"], visible=False, elem_id="job-id")
                            num_images = ResultCount(1, MAX_VARIANTS, value=1, step=1, label=I18N("num_images"), elem_id="num-images")
                            with gr.Row():
                                aspect_ratio = gr.Dropdown(ASPECT_CHOICES, value="same", label=I18N("aspect_ratio"), allow_custom_value=True,
                                                           elem_id="aspect-ratio")
                                resolution = gr.Dropdown(list(RESOLUTIONS), value="1K", label=I18N("resolution"), allow_custom_value=True,
                                                         elem_id="resolution")
                            gr.Markdown(I18N("options_apply"), elem_id="options-apply")
                            order = gr.Dropdown([], value=[], multiselect=True, allow_custom_value=True, label=I18N("custom_order"),
                                                info=I18N("custom_order_info"), elem_id="order")
                            descriptions = [gr.Textbox(label=I18N(f"description_{slot}"), placeholder=I18N("description_hint"), max_length=120,
                                                       elem_id=f"description_{slot}") for slot in range(1, GARMENT_SLOTS + 1)]
                            compare_with = gr.Dropdown([(I18N("compare_none"), "")] + model_choices, value="", label=I18N("compare_with"),
                                                       info=I18N("compare_with_info"), allow_custom_value=True, visible=len(offered) > 1,
                                                       elem_id="compare-with")
                            # A visitor's own FAL key: sent with each run of this tab, kept nowhere (docs/SECURITY.md).
                            own_key = gr.Textbox(label=I18N("own_key"), info=I18N("own_key_info"), type="password", max_length=512,
                                                 placeholder="key-id:key-secret", visible=service.settings.own_keys, elem_id="own-key")
                            with gr.Row():
                                check_id = gr.Textbox(label=I18N("check_job"), placeholder=I18N("check_job_id"), scale=4, elem_id="check-job-id")
                                check = gr.Button(I18N("check"), scale=1, elem_id="check-job-button")
                    with gr.Column(scale=6, min_width=300, elem_id="result-column"):
                        # Above the result it makes: the garments column keeps "Try on" in the first screen.
                        # allow_custom_value: an id the API names reaches the service, whose error lists the models.
                        model = gr.Dropdown(model_choices, value=default_model, label=I18N("model"), allow_custom_value=True,
                                            visible=bool(offered), elem_id="model")
                        model_info = gr.Markdown(elem_id="model-info", visible=bool(offered))
                        status = gr.Markdown("", elem_id="status")
                        result = gr.Image(label=I18N("result"), type="pil", format="png", interactive=False, buttons=["download", "fullscreen"],
                                          height=460, alt_text=I18N("alt_result"), placeholder=I18N("result_placeholder"),
                                          elem_id="result")
                        compare = gr.ImageSlider(label=I18N("before_after"), type="pil", interactive=False, visible=False, height=460,
                                                 elem_id="compare")
                        compare_toggle = gr.Checkbox(label=I18N("before_after"), value=False, visible=False, elem_id="compare-toggle")
                        compared = gr.Gallery(label=I18N("side_by_side"), type="filepath", format="png", columns=2, height="auto", visible=False,
                                              allow_preview=True, interactive=False, object_fit="contain", elem_id="models-compared")
                        variants = gr.Gallery(label=I18N("variants"), type="filepath", format="png", columns=4, height=140, visible=False,
                                              allow_preview=False, interactive=False, object_fit="contain", elem_id="variants",
                                              fit_columns=False)
                        table = gr.Dataframe(headers=["Step", "ms", "Detail"], label=I18N("timings"), visible=False, interactive=False,
                                             wrap=True, max_height=900, column_widths=["40%", "15%", "45%"], elem_id="timings")
                        chart = gr.BarPlot(x="step", y="ms", label=I18N("timing_chart"), visible=False, sort=None,
                                           x_title=" ", y_title="ms", height=300, x_label_angle=-20, elem_id="timing-chart")
                        with gr.Accordion(I18N("details"), open=False, elem_id="details"):
                            prompts = gr.Markdown(elem_id="prompts")
                            record = gr.JSON(label=I18N("timing_record"), elem_id="timing-record")
                            if provider.is_preview:
                                gr.Markdown(I18N("how_to_use_model"), elem_id="how-to-use-model")
                            else:  # the chain as configured: "FAL · fal-ai/... → Replicate · google/nano-banana"
                                gr.Markdown(I18N("footer_remote"), elem_id="footer")
                                gr.Markdown(f"`{provider.label}`", elem_id="provider-chain")
                            if redis_description:
                                gr.Markdown(f"Redis: {redis_description}", elem_id="footer-redis")
                with gr.Column(elem_id="history-box"):
                    gr.Markdown(I18N("history"), elem_classes=["step-title"])
                    history = gr.Gallery(show_label=False, type="filepath", columns=6, height="auto", allow_preview=False, object_fit="contain",
                                         interactive=False, fit_columns=False, elem_id="history")
                    selected_look = gr.State(None)
                    with gr.Row(visible=False, elem_id="look-actions") as look_actions:
                        again = gr.Button(I18N("try_again"), variant="primary", elem_id="try-again")
                        delete = gr.Button(I18N("delete_look"), variant="stop", elem_id="delete-look")
                    history_note = gr.Markdown(elem_id="history-note")
            batches = catalogue.build_tab(demo, tabs, service, I18N, model_choices, default_model)
            with gr.Tab(I18N("tab_metrics"), id="metrics", elem_id="metrics-tab") as metrics_tab:
                refresh = gr.Button(I18N("refresh"), size="sm", elem_id="metrics-refresh")
                metrics_summary = gr.Markdown(elem_id="metrics-summary")
                metrics_plot = gr.LinePlot(x="time", y="total_ms", color="mode", label=I18N("latency_over_time"),
                                           x_title=I18N("plot_time"), y_title=I18N("plot_total_ms"), elem_id="metrics-plot")

        private = dict(api_visibility="private", show_progress="hidden")
        slots = [person, *garments]
        for field, slot in zip(FIELDS, slots):
            slot.upload(None, None, None, js=focus_js(slot.elem_id), **private)
            if field == "person":
                slot.change(handlers.check_slot(field), slot, [notes[field], status], **private)
            else:
                n = int(field.rsplit("_", 1)[1])
                slot.change(handlers.check_slot(field), [slot, categories[n - 1]], [notes[field], status, categories[n - 1]], **private)
        outfit_inputs = [*categories, *descriptions, order, num_images, aspect_ratio, resolution, model]
        inputs = [person, *garments, *outfit_inputs]
        gr.on([s.change for s in slots] + [c.change for c in categories] + [d.change for d in descriptions] + [order.change],
              handlers.readiness, [person, *garments, *categories, *descriptions, order], [run, hint, order_view, order], **private)
        by_name = {"status": status, "run": run, "result": result, "compare_toggle": compare_toggle, "compare": compare,
                   "variants": variants, "table": table, "chart": chart, "record": record, "prompts": prompts, "history": history,
                   "job_id": job_id, "selected_look": selected_look, "look_actions": look_actions, "compared": compared,
                   **{f"note_{f}": notes[f] for f in FIELDS}}
        run_outputs = [by_name[name] for name in PageRun.OUTPUTS]
        # "Try on" and "Try again" (on a look picked from the history) run the same event.
        # When the run ends, the focus goes to the status line (the button was disabled under it).
        gr.on([run.click, again.click], handlers.run_look, [mode, *inputs, compare_with, own_key], run_outputs, **private).then(
            None, js=FOCUS_STATUS_JS, **private)
        gr.on([run.click, again.click], None, None, None, js=SCROLL_TO_RESULT_JS, **private)
        check.click(handlers.check_job, check_id, run_outputs, **private)
        variants.select(handlers.choose_variant, [person, variants], [result, compare], **private)
        compare_toggle.change(handlers.toggle_compare, compare_toggle, [result, compare], **private)
        mode.change(handlers.switch_mode, mode, job_id, **private)
        # The model decides which options exist; the estimate follows everything that changes the bill.
        model.change(handlers.model_options, [model, resolution, aspect_ratio, num_images],
                     [resolution, aspect_ratio, num_images, *descriptions], **private)
        gr.on([model.change, mode.change, compare_with.change, num_images.change, resolution.change, demo.load]
              + [g.change for g in garments],
              handlers.cost_view, [model, mode, compare_with, num_images, resolution, *garments], [model_info, estimate], **private)
        people_gallery.select(handlers.pick_person([p for p, _ in people]), None, person, **private)
        garment_gallery.select(handlers.pick_garment([g for g, _ in garment_examples]), garments, [*garments, *categories, hint], **private)
        # A look brought back is shown in the result column: go there (the history is at the page's foot).
        history.select(handlers.restore, None, [*inputs, *run_outputs], **private).then(None, js=SCROLL_TO_STATUS_JS, **private)
        delete.click(handlers.delete_look, selected_look, [history, selected_look, look_actions, history_note], **private)
        demo.load(handlers.history_view, None, history, **private)

        def example_captions(request: gr.Request):
            return tuple(captioned(examples, language(request)) for examples in (people, garment_examples))

        demo.load(example_captions, None, [people_gallery, garment_gallery], **private)

        # The named API, for scripts and agents (hidden buttons: the page runs run_look instead).
        api_gallery, api_record = gr.Gallery(visible=False, format="png"), gr.JSON(visible=False)
        gr.Button(visible=False).click(handlers.try_on_variants, inputs, [api_gallery, api_record], api_name="try_on_variants")
        gr.Button(visible=False).click(handlers.try_on, inputs, [gr.Image(visible=False, format="png"), api_record], api_name="try_on")
        gr.Button(visible=False).click(handlers.submit_job, inputs, gr.Textbox(visible=False), api_name="submit_job")
        other_model = gr.Textbox(visible=False)
        gr.Button(visible=False).click(handlers.compare, [*inputs, other_model], [gr.Gallery(visible=False, format="png"), gr.JSON(visible=False)],
                                       api_name="compare")
        status_in, status_out = gr.Textbox(visible=False), gr.JSON(visible=False)
        gr.Button(visible=False).click(handlers.job_status, status_in, status_out, api_name="job_status")
        # /upload for scripts that pre-upload once and reuse the reference (the seed's /api/images/upload).
        upload_in, upload_out = PhotoInput(visible=False), gr.Textbox(visible=False)
        gr.Button(visible=False).click(handlers.upload, upload_in, upload_out, api_name="upload")
        catalogue.add_api(batches)
        gr.on([refresh.click, metrics_tab.select], handlers.metrics_view, None, [metrics_summary, metrics_plot], api_visibility="private")
    for fn in demo.fns.values():  # the login button's load event is the page's own, not an API or an MCP tool
        if getattr(fn.fn, "__name__", "") == "_check_login_status":
            fn.api_visibility = "private"
    demo.file_gate = FileGate(FileOwners(), gr.utils.get_upload_folder())
    return demo


def launch_options() -> dict[str, Any]:
    """What goes to launch() / mount_gradio_app() (theme, css, js and i18n moved there in gradio 6)."""
    return {"i18n": I18N, "theme": gr.themes.Soft(), "footer_links": ["api", "gradio"], "css": CSS + catalogue.CSS, "js": JS, **LAUNCH_OPTIONS}
