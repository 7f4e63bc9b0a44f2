"""The Gradio Blocks UI: declarative layout, one small handler per event.

Named API (a contract for gradio_client users, see README):
  /try_on  (person, garment_1, garment_2, garment_3, garment_4) -> (PNG image, timings dict)
  /upload  (image) -> reference string
Every other event is private to the page; none skips validation, since a
private event still answers a raw HTTP call.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from .errors import InvalidImage, TryOnError, field_label, pick_language
from .outfit import ASPECT_RATIOS, CATEGORIES, MAX_VARIANTS, RESOLUTIONS, Outfit
from .service import TryOnService
from .file_gate import FileGate, GatedBlocks
from .session_files import FileOwners, session_of
from .ui_text import I18N, category_word, say

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GARMENT_SLOTS = 4
CATEGORY_CHOICES = [(I18N(f"category_choice_{name}"), name) for name in CATEGORIES]
ASPECT_CHOICES = [(I18N("aspect_same"), "same")] + [(ratio, ratio) for ratio in ASPECT_RATIOS if ratio != "same"]
ORDER_CHOICES = [(I18N(f"garment_{n}"), f"garment_{n}") for n in range(1, GARMENT_SLOTS + 1)]
WATCH_INTERVAL_S = 0.5  # how often the page re-reads a job's status
WATCH_LIMIT_S = 600  # after this the page stops watching (the job goes on; check it by id)


class PhotoInput(gr.Image):
    """A gr.Image that hands the raw upload to tryon's intake instead of decoding it itself.

    gr.Image opens every upload with Pillow before the handler runs, so a
    corrupt or non-image file fails there with gradio's generic error. Our
    intake gives the specific reason ("truncated", "not an image", ...).
    """

    is_template = True  # render with the stock Image frontend component

    def __init__(self, **kwargs: Any):
        super().__init__(type="filepath", image_mode=None, format="png", **kwargs)

    def get_config(self, cls=None):
        # The frontend's props are read off the __init__ signature: use gr.Image's, not ours.
        return super().get_config(cls or gr.Image)

    def preprocess(self, payload):  # type: ignore[override]
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return payload.url
        # A Path, not a str: the service reads files only from a Path, which only a gradio
        # input (checked by the FileGate) can be; text from REST or MCP is never opened as a path.
        return Path(payload.path)


class ResultCount(gr.Slider):
    """The number-of-results slider; its value reaches Outfit.parse unchecked.

    gr.Slider's own bounds check answers API callers in English only and logs a
    traceback for what is only a bad input; Outfit.parse names the limit in the
    user's language.
    """

    is_template = True  # render with the stock Slider frontend component

    def get_config(self, cls=None):
        return super().get_config(cls or gr.Slider)

    def preprocess(self, payload):  # type: ignore[override]
        return payload


def shown_error(message: str) -> gr.Error:
    """An error for the page or the API client; no traceback in the log (the user's input is not our bug)."""
    return gr.Error(message, print_exception=False)


def language(request: gr.Request | None) -> str:
    headers = getattr(request, "headers", None) or {}
    return pick_language(headers.get("accept-language"))


def gallery_paths(value) -> list[str]:
    """File paths from a type="filepath" gallery's value ([(path, caption)], [{"image": {"path"}}] or [path])."""
    paths = []
    for item in value or []:
        if isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, dict):
            item = (item.get("image") or {}).get("path") or item.get("path")
        if item:
            paths.append(str(item))
    return paths


def before_after(person, result: str):
    """The before/after pair, when the person photo is a file (not a pasted data URL)."""
    if not isinstance(person, Path):
        return None
    return Image.open(person).convert("RGB"), Image.open(result)


def timing_rows(timings: dict[str, Any], lang: str = "en") -> list[list[Any]]:
    """The timing record as table rows: step, milliseconds, detail."""
    rows: list[list[Any]] = [[say("row_inputs", lang), timings.get("inputs_ms"), ""]]
    for upload in timings.get("uploads", []):
        rows.append([
            say("row_upload", lang, field=field_label(upload["field"], lang)),
            round(upload["preprocess_ms"] + upload["upload_ms"], 1),
            say(
                "detail_upload", lang, kb=upload["bytes"] / 1024,
                intake=say(f"how_{upload.get('intake', 'decoded')}", lang), upload=say(f"how_{upload.get('upload', 'uploaded')}", lang),
                **{k: upload[k] for k in ("size", "preprocess_ms", "upload_ms")},
            ),
        ])
    if "queue_wait_ms" in timings:
        rows.append([say("row_queue", lang), timings["queue_wait_ms"], say("detail_attempts", lang, attempts=timings.get("attempts", 1))])
    for skip in timings.get("failover") or []:
        rows.append([say("row_skipped", lang, provider=skip["provider"]), None, skip["reason"]])
    served_by = timings.get("served_by") or []
    n = 1
    while f"fal_call_{n}" in timings:
        who = served_by[n - 1] if n <= len(served_by) else timings.get("provider", "")
        rows.append([say("row_call", lang, n=n), timings[f"fal_call_{n}"], who])
        n += 1
    order = timings.get("order") or []
    if order:
        rows.append([say("row_order", lang), None, " → ".join(f"{field_label(o['field'], lang)} ({category_word(o['category'], lang)})" for o in order)])
    for n, prompt in enumerate(timings.get("prompts") or [], start=1):
        rows.append([say("row_prompt", lang, n=n), None, prompt])
    rows += [
        *([[say("row_download", lang), timings["download_ms"], ""]] if "download_ms" in timings else []),
        [say("row_provider_total", lang), timings.get("fal_duration_ms"), ""],
        [say("row_overhead", lang), timings.get("backend_overhead_ms"), say("detail_cold", lang) if timings.get("cold_start") else ""],
        [say("row_total", lang), timings.get("total_backend_ms"), timings.get("requestId", "")],
    ]
    return rows


def timing_bars(timings: dict[str, Any], lang: str = "en") -> pd.DataFrame:
    """Where the time went, as bars: inputs, queue wait, each provider call, fetch, and the rest."""
    bars = [(say("bar_inputs", lang), timings.get("inputs_ms") or 0.0)]
    if timings.get("queue_wait_ms"):
        bars.append((say("row_queue", lang), timings["queue_wait_ms"]))
    n = 1
    while f"fal_call_{n}" in timings:
        bars.append((say("row_call", lang, n=n), timings[f"fal_call_{n}"]))
        n += 1
    if timings.get("download_ms"):
        bars.append((say("row_download", lang), timings["download_ms"]))
    accounted = sum(ms for _, ms in bars)
    bars.append((say("bar_other", lang), max(0.0, (timings.get("total_backend_ms") or 0.0) - accounted)))
    # Numbered, because the chart orders its bars by label: "1. Inputs" … "8. Other" is the order the
    # time was spent (at most 8 bars: inputs, queue, 4 calls, fetch, the rest).
    return pd.DataFrame([{"step": f"{n}. {step}", "ms": round(float(ms), 1)} for n, (step, ms) in enumerate(bars, start=1)])


def examples() -> list[list[str | None]]:
    """Example rows [person, garment_1..4, category_1..4] from assets/, skipping any with a missing file."""
    rows = [
        # Dropped in no particular order: the layering puts the jeans on first and the jacket last.
        (["person_illustration.png", "garment_jacket_denim.png", "garment_jeans_blue.png", "garment_tshirt_red.png"],
         ["outerwear", "bottom", "top"]),
        (["person_illustration.png", "garment_tshirt_red.png", "garment_jacket_denim.png"], ["top", "outerwear"]),
        (["person_astronaut.png", "garment_sweater_striped.png"], ["top"]),
        (["person_illustration.png", "garment_hoodie_yellow.png"], ["auto"]),
    ]
    found = []
    for names, categories in rows:
        paths = [str(ASSETS / name) for name in names]
        if all(Path(p).exists() for p in paths):
            found.append(paths + [None] * (1 + GARMENT_SLOTS - len(paths)) + categories + ["auto"] * (GARMENT_SLOTS - len(categories)))
    return found


OUTFIT_ARGS = """

Args:
    person: photo of one person, ideally facing the camera on a plain background (JPEG, PNG or WebP)
    garment_1: photo of the first garment, e.g. a product photo on a plain background
    garment_2: optional second garment
    garment_3: optional third garment
    garment_4: optional fourth garment
    category_1: what garment 1 is: auto, top, bottom, dress, outerwear, shoes or accessory
    category_2: what garment 2 is
    category_3: what garment 3 is
    category_4: what garment 4 is
    description_1: optional short description of garment 1, e.g. "blue denim jacket"
    description_2: optional description of garment 2
    description_3: optional description of garment 3
    description_4: optional description of garment 4
    order: optional layering order, inner to outer, e.g. ["garment_2", "garment_1"]; empty: automatic by category
    num_images: number of results, 1 to 4
    aspect_ratio: "same" (as the person photo) or 1:1, 4:5, 3:4, 2:3, 9:16, 5:4, 4:3, 3:2, 16:9, 21:9
    resolution: 1K, 2K or 4K (models that support it)
"""


def documented(summary: str):
    """The docstring gradio shows in the API page and MCP tool list: the summary, then the
    parameters the try-on endpoints share."""
    def attach(function):
        function.__doc__ = summary + OUTFIT_ARGS
        return function
    return attach


class Handlers:
    """One function per UI event; each takes the request to answer in the browser's language."""

    def __init__(self, service: TryOnService):
        self.service = service

    # try_on and try_on_variants spell out the same parameters on purpose: gradio builds each
    # endpoint's API page, gradio_client keywords and MCP schema from the signature itself.
    @documented("Dress the person in 1 to 4 garments (applied one after another, inner layer first); returns the first picture and its timings.")
    def try_on(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None,
               category_1="auto", category_2="auto", category_3="auto", category_4="auto",
               description_1=None, description_2=None, description_3=None, description_4=None,
               order=None, num_images=1, aspect_ratio="same", resolution="1K",
               request: gr.Request = None, progress=gr.Progress()):
        result = self._try_on(request, progress, person, [garment_1, garment_2, garment_3, garment_4],
                              [category_1, category_2, category_3, category_4],
                              [description_1, description_2, description_3, description_4], order, num_images, aspect_ratio, resolution)
        return result.to_pil(), result.timings

    @documented("Like try_on, but returns every result (num_images of them) as a gallery, and the timings.")
    def try_on_variants(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None,
                        category_1="auto", category_2="auto", category_3="auto", category_4="auto",
                        description_1=None, description_2=None, description_3=None, description_4=None,
                        order=None, num_images=1, aspect_ratio="same", resolution="1K",
                        request: gr.Request = None, progress=gr.Progress()):
        result = self._try_on(request, progress, person, [garment_1, garment_2, garment_3, garment_4],
                              [category_1, category_2, category_3, category_4],
                              [description_1, description_2, description_3, description_4], order, num_images, aspect_ratio, resolution)
        return [Image.open(io.BytesIO(picture)) for picture in result.variants], result.timings

    def _try_on(self, request, progress, person, garments, categories, descriptions, order, num_images, aspect_ratio, resolution):
        lang = language(request)

        def on_progress(step: int, total: int, field: str) -> None:
            progress((step - 1, total), desc=say("applying", lang, step=step, total=total))

        try:
            outfit = Outfit.parse(categories, descriptions, order, num_images, aspect_ratio, resolution)
            return self.service.try_on_sync(person, garments, on_progress, outfit=outfit)
        except TryOnError as error:
            raise shown_error(error.message(lang)) from None
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception("try_on failed (request %s)", request_id)
            raise shown_error(say("internal_error", lang, request_id=request_id)) from None

    def upload(self, image, request: gr.Request = None):
        """Normalize one image (resize, strip metadata) and store it with the provider; returns its reference.

        Args:
            image: a photo (JPEG, PNG or WebP)
        """
        try:
            return self.service.upload(image).ref
        except TryOnError as error:
            raise shown_error(error.message(language(request))) from None

    def prepare_slot(self, field: str):
        """The drop handler for one slot: validate and upload the photo at once, in the background.

        A bad file is reported before "Try on", and by the time it is pressed the
        upload is usually done (the service reuses it, or joins it if still running).
        """

        def prepare(image, request: gr.Request):
            if image is None:
                return gr.skip()
            try:
                self.service.upload(image, field)
            except TryOnError as error:
                gr.Warning(error.message(language(request)))
                # Clear the slot only when the file itself is unusable; a provider hiccup is not the photo's fault.
                return None if isinstance(error, InvalidImage) else gr.skip()
            return gr.skip()

        return prepare

    @documented("Queue one async job that dresses the person in every garment in one model call (its prompt names the "
                "layering order); returns its id at once. Poll it with job_status.")
    def submit_job(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None,
                   category_1="auto", category_2="auto", category_3="auto", category_4="auto",
                   description_1=None, description_2=None, description_3=None, description_4=None,
                   order=None, num_images=1, aspect_ratio="same", resolution="1K", request: gr.Request = None):
        try:
            outfit = Outfit.parse([category_1, category_2, category_3, category_4],
                                  [description_1, description_2, description_3, description_4],
                                  order, num_images, aspect_ratio, resolution)
            return self.service.submit_job(person, [garment_1, garment_2, garment_3, garment_4], outfit=outfit).job_id
        except TryOnError as error:
            raise shown_error(error.message(language(request))) from None

    def job_status(self, job_id, request: gr.Request = None):
        """A job's status: status (queued, processing, done or error), image_url, error, timestamps, attempts, timings.

        Args:
            job_id: the id submit_job returned
        """
        try:
            return self.service.job_status((job_id or "").strip())
        except TryOnError as error:
            raise shown_error(error.message(language(request))) from None

    def watch_job(self, job_id, request: gr.Request):
        """Poll a job, updating the status line, until it is done; then show its picture and timings."""
        lang = language(request)
        job_id = (job_id or "").strip()
        deadline = time.monotonic() + WATCH_LIMIT_S
        while True:
            try:
                job = self.service.job_status(job_id)
            except TryOnError as error:
                raise shown_error(error.message(lang)) from None
            now = time.time() * 1000
            if job["status"] == "done":
                pictures = self.service.job_images(job_id)
                seconds = (job["timestamps"]["finished_at"] - job["timestamps"]["created_at"]) / 1000
                yield say("job_done", lang, job_id=job_id, seconds=seconds), pictures, job["timings"]
                return
            if job["status"] == "error":
                raise shown_error(job["error"])
            since = job["timestamps"]["started_at"] or job["timestamps"]["created_at"]
            if job["status"] == "queued":
                text = say("job_queued", lang, job_id=job_id, seconds=(now - since) / 1000, waiting=job.get("jobs_waiting", 0))
            else:
                text = say("job_processing", lang, job_id=job_id, seconds=(now - since) / 1000)
            yield text, gr.skip(), gr.skip()
            if time.monotonic() > deadline:
                yield say("job_still_running", lang, job_id=job_id), gr.skip(), gr.skip()
                return
            time.sleep(WATCH_INTERVAL_S)

    def metrics_view(self, request: gr.Request):
        """The Metrics tab: a summary table and the latency of recent successful requests."""
        lang = language(request)
        if self.service.metrics is None:
            return say("metrics_off", lang), None
        summary = self.service.metrics.summary()
        rate = lambda value: "–" if value is None else f"{value * 100:.1f} %"  # noqa: E731
        lines = [
            say("metrics_head", lang, requests=summary["requests"], success=rate(summary["success_rate"]),
                cache=rate(summary["upload_cache_hit_rate"])),
            "",
            f"| {say('mode', lang)} | {say('metrics_requests', lang)} | {say('metrics_success', lang)} | total p50 / p95 ms | provider p50 / p95 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for mode, stats in summary["by_mode"].items():
            lines.append(f"| {mode} | {stats['requests']} | {rate(stats['success_rate'])} | "
                         f"{stats['total_ms']['p50']} / {stats['total_ms']['p95']} | {stats['provider_ms']['p50']} / {stats['provider_ms']['p95']} |")
        if summary["errors"]:
            lines += ["", say("metrics_errors", lang) + " " + ", ".join(f"`{k}` × {v}" for k, v in summary["errors"].items())]
        health = self.service.provider_health()
        if health:
            lines += ["", say("metrics_providers", lang), ""]
            lines += [f"{n}. **{h['label']}**: {say('breaker_' + h['state'], lang, seconds=h['retry_in_s'])}"
                      for n, h in enumerate(health, start=1)]
        series = pd.DataFrame(
            [{"time": pd.Timestamp(p["ts"], unit="ms"), "total_ms": p["total_ms"], "mode": p["mode"]} for p in summary["series"]],
            columns=["time", "total_ms", "mode"],
        )
        return "\n".join(lines), series

    @staticmethod
    def switch_mode(mode: str):
        """Show the button of the chosen mode."""
        return gr.update(visible=mode == "sync"), gr.update(visible=mode == "async")

    def present(self, person, variants, timings, request: gr.Request):
        """From a finished try-on: the first result in the result slot and the before/after
        slider, the timing table and chart, and the status line."""
        lang = language(request)
        pictures = gallery_paths(variants)
        if not pictures or not timings:
            return None, None, gr.update(visible=False), gr.update(visible=False), say("status_idle", lang)
        seconds = (timings.get("total_backend_ms") or 0) / 1000
        status = say("status_done_preview", lang, seconds=seconds) if timings.get("offline_preview") else say(
            "status_done", lang, seconds=seconds, provider=self.service.label_of(timings.get("provider"))
        )
        if len(pictures) > 1:
            status += " " + say("variants_hint", lang, count=len(pictures))
        headers = [say("step", lang), say("ms", lang), say("detail", lang)]
        # The table appears with its first result: gradio's i18n cannot translate Dataframe headers, so they are built here.
        table = gr.update(value=pd.DataFrame(timing_rows(timings, lang), columns=headers), visible=True)
        # No `sort` in the update: with one, gradio 6.31 kept the previous run's data and re-sorted it.
        chart = gr.update(value=timing_bars(timings, lang), visible=True)
        return pictures[0], before_after(person, pictures[0]), table, chart, status

    @staticmethod
    def choose_variant(person, variants, selected: gr.SelectData):
        """A variant clicked in the gallery becomes the result: the one downloaded and compared."""
        pictures = gallery_paths(variants)
        if not pictures or selected.index is None:
            return gr.skip(), gr.skip()
        chosen = pictures[selected.index if isinstance(selected.index, int) else selected.index[0]]
        return chosen, before_after(person, chosen)

    @staticmethod
    def show_order(g1, g2, g3, g4, c1, c2, c3, c4, d1, d2, d3, d4, order, request: gr.Request = None):
        """The layering order the next try-on will use (inner to outer), as one line."""
        lang = language(request)
        photos, categories, descriptions = (g1, g2, g3, g4), (c1, c2, c3, c4), (d1, d2, d3, d4)
        fields = [f"garment_{n}" for n, photo in enumerate(photos, start=1) if photo]
        if not fields:
            return say("order_empty", lang)
        try:
            specs = Outfit.parse(categories, descriptions, order).specs(fields)
        except TryOnError as error:
            return error.message(lang)
        steps = [f"{n}. {field_label(s.field, lang)} ({s.description + ', ' if s.description else ''}{category_word(s.category, lang)})"
                 for n, s in enumerate(specs, start=1)]
        return say("order_line", lang, how=say("order_custom" if order else "order_auto", lang)) + " " + " → ".join(steps)

    def remember(self, person, g1, g2, g3, g4, c1, c2, c3, c4, d1, d2, d3, d4, order, num_images, aspect_ratio, resolution,
                 variants, timings, request: gr.Request = None):
        """Keep a finished look in this browser session's history; returns the history gallery."""
        session = session_of(request)
        garments, categories, descriptions = (g1, g2, g3, g4), (c1, c2, c3, c4), (d1, d2, d3, d4)
        pictures = gallery_paths(variants)
        if self.service.history is None or not session or not pictures or not isinstance(timings, dict) or not timings:
            return gr.skip()  # a timing record that is not one (a private event called by hand) is not kept
        inputs = {field: self._normalized(source, field)
                  for field, source in [("person", person), *((f"garment_{n}", g) for n, g in enumerate(garments, start=1))]}
        settings = {"categories": list(categories), "descriptions": list(descriptions), "order": list(order or []),
                    "num_images": num_images, "aspect_ratio": aspect_ratio, "resolution": resolution}
        self.service.history.add(session, inputs, settings, pictures, timings)
        return self.history_view(request)

    def _normalized(self, source, field: str) -> bytes | None:
        """The intake's metadata-free JPEG of an input (a cache hit: the try-on just made it)."""
        if source is None:
            return None
        try:
            return self.service.intake(source, field).jpeg
        except TryOnError:
            return None

    def history_view(self, request: gr.Request = None):
        """The session's looks as a gallery, newest first (empty without a session or Redis)."""
        session = session_of(request)
        looks = self.service.history.looks(session) if self.service.history is not None else []
        lang = language(request)
        return [(look["results"][0], say("look_caption", lang, garments=look["timings"].get("garments", "?"),
                                         when=time.strftime("%H:%M", time.localtime(look["created_at"] / 1000))))
                for look in looks]

    def restore(self, selected: gr.SelectData, request: gr.Request = None):
        """A look clicked in the history: its inputs, settings, results and timings come back."""
        session = session_of(request)
        looks = self.service.history.looks(session) if self.service.history is not None else []
        index = selected.index if isinstance(selected.index, int) else (selected.index or [0])[0]
        if index is None or index >= len(looks):
            raise shown_error(say("look_gone", language(request)))
        look = looks[index]
        inputs, settings = look["inputs"], look["settings"]
        garments = [inputs.get(f"garment_{n}") for n in range(1, GARMENT_SLOTS + 1)]
        return (inputs.get("person"), *garments, *settings["categories"], *settings["descriptions"], settings["order"],
                settings["num_images"], settings["aspect_ratio"], settings["resolution"], look["results"], look["timings"])

def build_demo(service: TryOnService, redis_description: str | None = None) -> GatedBlocks:
    """The page; app.py hands `demo.file_gate.owners` to the SessionFiles middleware that serves the files."""
    provider = service.provider
    handlers = Handlers(service)

    # delete_cache: gradio removes uploads and results older than a day, checked hourly (photos of people).
    with GatedBlocks(title="tryon: virtual try-on", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(I18N("title"))
        gr.Markdown(I18N("intro"))
        if provider.is_preview:
            gr.Markdown(I18N("preview_banner"), elem_id="preview-banner")
        with gr.Tabs():
            with gr.Tab(I18N("tab_try_on"), id="try-on-tab"):
                with gr.Row():
                    with gr.Column(scale=1):
                        person = PhotoInput(label=I18N("person"), sources=["upload", "webcam", "clipboard"], height=360, elem_id="person")
                        garments, categories, descriptions = [], [], []

                        def garment_slot(slot: int, height: int, side_by_side: bool) -> None:
                            garments.append(PhotoInput(label=I18N(f"garment_{slot}"), sources=["upload", "clipboard"], height=height,
                                                       elem_id=f"garment_{slot}"))
                            # In the narrow slots 2-4 a row would squeeze the category to "Outerwe…": stack them.
                            with gr.Row() if side_by_side else gr.Group():
                                # allow_custom_value: an unknown value reaches Outfit.parse, whose error names the garment.
                                categories.append(gr.Dropdown(CATEGORY_CHOICES, value="auto", label=I18N("category"), min_width=120,
                                                              allow_custom_value=True, elem_id=f"category_{slot}"))
                                descriptions.append(gr.Textbox(label=I18N("description"), placeholder=I18N("description_hint"),
                                                               max_length=120, min_width=160, elem_id=f"description_{slot}"))

                        garment_slot(1, 240, side_by_side=True)
                        with gr.Accordion(I18N("more_garments"), open=False, elem_id="more-garments"):
                            with gr.Row():
                                for slot in range(2, GARMENT_SLOTS + 1):
                                    with gr.Column(min_width=200):
                                        garment_slot(slot, 200, side_by_side=False)
                        order_view = gr.Markdown(I18N("order_empty"), elem_id="layer-order")
                        with gr.Accordion(I18N("options"), open=False, elem_id="options"):
                            order = gr.Dropdown(ORDER_CHOICES, value=[],
                                                multiselect=True, allow_custom_value=True, label=I18N("custom_order"),
                                                info=I18N("custom_order_info"), elem_id="order")
                            num_images = ResultCount(1, MAX_VARIANTS, value=1, step=1, label=I18N("num_images"), elem_id="num-images")
                            aspect_ratio = gr.Dropdown(ASPECT_CHOICES, value="same", label=I18N("aspect_ratio"), allow_custom_value=True,
                                                       elem_id="aspect-ratio")
                            resolution = gr.Dropdown(list(RESOLUTIONS), value="1K", label=I18N("resolution"), info=I18N("resolution_info"),
                                                     allow_custom_value=True, elem_id="resolution")
                        mode = gr.Radio(
                            choices=[("Sync", "sync"), ("Async", "async")],
                            value="sync",
                            label=I18N("mode"),
                            info=I18N("mode_info"),
                            interactive=service.queue is not None,
                            elem_id="mode",
                        )
                        run = gr.Button(I18N("try_on"), variant="primary", elem_id="try-on")
                        run_async = gr.Button(I18N("submit_job"), variant="primary", visible=False, elem_id="submit-job")
                        job_id = gr.Textbox(label=I18N("job_id"), interactive=False, buttons=["copy"], elem_id="job-id")
                        with gr.Accordion(I18N("check_job"), open=False, elem_id="check-job"):
                            with gr.Row():
                                check_id = gr.Textbox(show_label=False, placeholder=I18N("check_job_id"), scale=4, elem_id="check-job-id")
                                check = gr.Button(I18N("check"), scale=1, elem_id="check-job-button")
                    with gr.Column(scale=1):
                        status = gr.Markdown(I18N("status_idle"), elem_id="status")
                        result = gr.Image(label=I18N("result"), type="filepath", format="png", interactive=False, buttons=["download", "fullscreen"], elem_id="result")
                        variants = gr.Gallery(label=I18N("variants"), type="filepath", format="png", columns=4, height=180,
                                              allow_preview=False, interactive=False, object_fit="contain", elem_id="variants",
                                              fit_columns=False)  # fit_columns would stretch a lone result across the row
                        compare = gr.ImageSlider(label=I18N("before_after"), type="pil", interactive=False, elem_id="compare")
                        table = gr.Dataframe(
                            headers=["Step", "ms", "Detail"], label=I18N("timings"), visible=False, interactive=False, wrap=True,
                            column_widths=["38%", "12%", "50%"], elem_id="timings",
                        )
                        chart = gr.BarPlot(x="step", y="ms", label=I18N("timing_chart"), visible=False, sort=None,
                                           x_title=" ", y_title="ms", height=320, x_label_angle=-20, elem_id="timing-chart")
                        with gr.Accordion(I18N("timing_record"), open=False):
                            record = gr.JSON(elem_id="timing-record")
                with gr.Column(elem_id="history-box"):  # not a Group: it would flatten the button into plain text
                    history = gr.Gallery(label=I18N("history"), type="filepath", columns=6, height=200, allow_preview=False, object_fit="contain",
                                         interactive=False, fit_columns=False, elem_id="history")
                    again = gr.Button(I18N("try_again"), size="sm", elem_id="try-again")
                rows = examples()
                if rows:
                    gallery = gr.Examples(rows, inputs=[person, *garments, *categories], label=I18N("examples"), cache_examples=False)
                    # gradio's i18n does not reach Dataset headers: drop them (the pictures speak for themselves).
                    gallery.dataset.headers = []
                    # Nor does it reach a Dropdown's choice labels in an example row: show plain words there.
                    for component, props in zip(gallery.dataset._components, gallery.dataset.component_props):
                        if isinstance(component, gr.Dropdown):
                            props["choices"] = [(name.capitalize(), name) for name in CATEGORIES]
            with gr.Tab(I18N("tab_metrics"), id="metrics", elem_id="metrics-tab") as metrics_tab:
                refresh = gr.Button(I18N("refresh"), size="sm", elem_id="metrics-refresh")
                metrics_summary = gr.Markdown(elem_id="metrics-summary")
                metrics_plot = gr.LinePlot(x="time", y="total_ms", color="mode", label=I18N("latency_over_time"),
                                           x_title="time", y_title="total ms", elem_id="metrics-plot")
        if provider.is_preview:
            gr.Markdown(I18N("footer_local"), elem_id="footer")
        else:  # the chain as configured: "FAL · fal-ai/... → Replicate · google/nano-banana"
            gr.Markdown(I18N("footer_remote"), elem_id="footer")
            gr.Markdown(f"`{provider.label}`", elem_id="provider-chain")
        if redis_description:
            gr.Markdown(f"Redis: {redis_description}", elem_id="footer-redis")

        for slot, field in zip([person, *garments], ["person"] + [f"garment_{n}" for n in range(1, GARMENT_SLOTS + 1)]):
            slot.upload(handlers.prepare_slot(field), slot, slot, api_visibility="private", show_progress="hidden")
        outfit_inputs = [*categories, *descriptions, order, num_images, aspect_ratio, resolution]
        inputs = [person, *garments, *outfit_inputs]
        finished = [person, variants, record]
        shown = [result, compare, table, chart, status]
        remember_inputs = [person, *garments, *outfit_inputs, variants, record]
        gr.on([*[g.change for g in garments], *[c.change for c in categories], *[d.change for d in descriptions], order.change],
              handlers.show_order, [*garments, *categories, *descriptions, order], order_view, api_visibility="private",
              show_progress="hidden")
        # "Try on" and "Try again" (after picking a look from the history) run the same event.
        gr.on([run.click, again.click], handlers.try_on_variants, inputs, [variants, record], api_name="try_on_variants",
              show_progress_on=[result]).success(
            handlers.present, finished, shown, api_visibility="private"
        ).success(handlers.remember, remember_inputs, history, api_visibility="private", show_progress="hidden")
        variants.select(handlers.choose_variant, [person, variants], [result, compare], api_visibility="private")
        mode.change(handlers.switch_mode, mode, [run, run_async], api_visibility="private")
        run_async.click(handlers.submit_job, inputs, job_id, api_name="submit_job").success(
            handlers.watch_job, job_id, [status, variants, record], api_visibility="private", show_progress="minimal"
        ).success(handlers.present, finished, shown, api_visibility="private").success(
            handlers.remember, remember_inputs, history, api_visibility="private", show_progress="hidden")
        check.click(handlers.watch_job, check_id, [status, variants, record], api_visibility="private", show_progress="minimal").success(
            handlers.present, finished, shown, api_visibility="private"
        )
        history.select(handlers.restore, None, [*inputs, variants, record], api_visibility="private").success(
            handlers.present, finished, shown, api_visibility="private")
        demo.load(handlers.history_view, None, history, api_visibility="private")
        # API-only: /try_on keeps its original answer (the first picture, the timings) for existing scripts.
        gr.Button(visible=False).click(handlers.try_on, inputs, [result, record], api_name="try_on")
        status_in = gr.Textbox(visible=False)
        status_out = gr.JSON(visible=False)
        gr.Button(visible=False).click(handlers.job_status, status_in, status_out, api_name="job_status")
        # API-only: /upload for scripts that pre-upload once and reuse the reference (the seed's /api/images/upload).
        upload_in = PhotoInput(visible=False)
        upload_out = gr.Textbox(visible=False)
        gr.Button(visible=False).click(handlers.upload, upload_in, upload_out, api_name="upload")
        gr.on([refresh.click, metrics_tab.select], handlers.metrics_view, None, [metrics_summary, metrics_plot], api_visibility="private")
    demo.file_gate = FileGate(FileOwners(), gr.utils.get_upload_folder())
    return demo


def launch_options() -> dict[str, Any]:
    """What goes to launch() / mount_gradio_app() (theme and i18n moved there in gradio 6)."""
    return {"i18n": I18N, "theme": gr.themes.Soft(), "footer_links": ["api", "gradio"]}
