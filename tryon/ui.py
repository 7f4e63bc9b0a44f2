"""The Gradio Blocks UI: declarative layout, one small handler per event.

Named API (a contract for gradio_client users, see README):
  /try_on  (person, garment_1, garment_2, garment_3, garment_4) -> (PNG image, timings dict)
  /upload  (image) -> reference string
Every other event is private to the page; none skips validation, since a
private event still answers a raw HTTP call.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from .errors import InvalidImage, TryOnError, field_label, pick_language
from .service import TryOnService
from .ui_text import I18N, say

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GARMENT_SLOTS = 4
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
        return payload.path


def shown_error(message: str) -> gr.Error:
    """An error for the page or the API client; no traceback in the log (the user's input is not our bug)."""
    return gr.Error(message, print_exception=False)


def language(request: gr.Request | None) -> str:
    headers = getattr(request, "headers", None) or {}
    return pick_language(headers.get("accept-language"))


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
    return pd.DataFrame([{"step": step, "ms": round(float(ms), 1)} for step, ms in bars])


def examples() -> list[list[str | None]]:
    """Example rows [person, garment_1..4] from assets/, skipping any file that is missing."""
    rows = [
        ["person_illustration.png", "garment_tshirt_red.png", "garment_jacket_denim.png"],
        ["person_astronaut.png", "garment_sweater_striped.png", None],
        ["person_illustration.png", "garment_hoodie_yellow.png", None],
    ]
    found = []
    for row in rows:
        paths = [str(ASSETS / name) if name else None for name in row]
        if all(p is None or Path(p).exists() for p in paths):
            found.append(paths + [None] * (1 + GARMENT_SLOTS - len(paths)))
    return found


class Handlers:
    """One function per UI event; each takes the request to answer in the browser's language."""

    def __init__(self, service: TryOnService):
        self.service = service

    def try_on(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None, request: gr.Request = None, progress=gr.Progress()):
        """Dress the person in 1 to 4 garments (applied one after another); returns the picture and its timings.

        Args:
            person: photo of one person, ideally facing the camera on a plain background (JPEG, PNG or WebP)
            garment_1: photo of the first garment, e.g. a product photo on a plain background
            garment_2: optional second garment
            garment_3: optional third garment
            garment_4: optional fourth garment
        """
        lang = language(request)

        def on_progress(step: int, total: int, field: str) -> None:
            progress((step - 1, total), desc=say("applying", lang, step=step, total=total))

        try:
            result = self.service.try_on_sync(person, [garment_1, garment_2, garment_3, garment_4], on_progress)
        except TryOnError as error:
            raise shown_error(error.message(lang)) from None
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception("try_on failed (request %s)", request_id)
            raise shown_error(say("internal_error", lang, request_id=request_id)) from None
        return result.to_pil(), result.timings

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

    def submit_job(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None, request: gr.Request = None):
        """Queue one async job that dresses the person in every garment in one model call; returns its id at once.
        Poll it with job_status.

        Args:
            person: photo of one person (JPEG, PNG or WebP)
            garment_1: photo of the first garment
            garment_2: optional second garment
            garment_3: optional third garment
            garment_4: optional fourth garment
        """
        try:
            return self.service.submit_job(person, [garment_1, garment_2, garment_3, garment_4]).job_id
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
                picture = self.service.job_image(job_id)
                seconds = (job["timestamps"]["finished_at"] - job["timestamps"]["created_at"]) / 1000
                yield say("job_done", lang, job_id=job_id, seconds=seconds), picture, job["timings"]
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

    def present(self, person, result, timings, request: gr.Request):
        """Fill the before/after slider, the timing table and the status line from a finished try-on."""
        lang = language(request)
        if result is None or not timings:
            return None, gr.update(visible=False), gr.update(visible=False), say("status_idle", lang)
        before = Image.open(person).convert("RGB") if isinstance(person, str) and not person.startswith("data:") else None
        seconds = (timings.get("total_backend_ms") or 0) / 1000
        status = say("status_done_preview", lang, seconds=seconds) if timings.get("offline_preview") else say(
            "status_done", lang, seconds=seconds, provider=self.service.label_of(timings.get("provider"))
        )
        slider = (before, Image.open(result)) if before is not None else None
        headers = [say("step", lang), say("ms", lang), say("detail", lang)]
        # The table appears with its first result: gradio's i18n cannot translate Dataframe headers, so they are built here.
        table = gr.update(value=pd.DataFrame(timing_rows(timings, lang), columns=headers), visible=True)
        bars = timing_bars(timings, lang)
        chart = gr.update(value=bars, sort=list(bars["step"]), visible=True)  # in the order the time was spent
        return slider, table, chart, status


def build_demo(service: TryOnService, redis_description: str | None = None) -> gr.Blocks:
    provider = service.provider
    handlers = Handlers(service)

    # delete_cache: gradio removes uploads and results older than a day, checked hourly (photos of people).
    with gr.Blocks(title="tryon: virtual try-on", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(I18N("title"))
        gr.Markdown(I18N("intro"))
        if provider.is_preview:
            gr.Markdown(I18N("preview_banner"), elem_id="preview-banner")
        with gr.Tabs():
            with gr.Tab(I18N("tab_try_on"), id="try-on-tab"):
                with gr.Row():
                    with gr.Column(scale=1):
                        person = PhotoInput(label=I18N("person"), sources=["upload", "webcam", "clipboard"], height=360, elem_id="person")
                        garments = [PhotoInput(label=I18N("garment_1"), sources=["upload", "clipboard"], height=240, elem_id="garment_1")]
                        with gr.Accordion(I18N("more_garments"), open=False, elem_id="more-garments"):
                            with gr.Row():
                                for slot in range(2, GARMENT_SLOTS + 1):
                                    garments.append(PhotoInput(label=I18N(f"garment_{slot}"), sources=["upload", "clipboard"], height=200, elem_id=f"garment_{slot}"))
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
                        compare = gr.ImageSlider(label=I18N("before_after"), type="pil", interactive=False, elem_id="compare")
                        table = gr.Dataframe(
                            headers=["Step", "ms", "Detail"], label=I18N("timings"), visible=False, interactive=False, wrap=True,
                            column_widths=["38%", "12%", "50%"], elem_id="timings",
                        )
                        chart = gr.BarPlot(x="step", y="ms", label=I18N("timing_chart"), visible=False, sort=None,
                                           x_title=" ", y_title="ms", height=320, x_label_angle=-20, elem_id="timing-chart")
                        with gr.Accordion(I18N("timing_record"), open=False):
                            record = gr.JSON(elem_id="timing-record")
                rows = examples()
                if rows:
                    gallery = gr.Examples(rows, inputs=[person, *garments], label=I18N("examples"), cache_examples=False)
                    # gradio's i18n does not reach Dataset headers: drop them (the pictures speak for themselves).
                    gallery.dataset.headers = []
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
        run.click(handlers.try_on, [person, *garments], [result, record], api_name="try_on", show_progress_on=[result]).success(
            handlers.present, [person, result, record], [compare, table, chart, status], api_visibility="private"
        )
        mode.change(handlers.switch_mode, mode, [run, run_async], api_visibility="private")
        run_async.click(handlers.submit_job, [person, *garments], job_id, api_name="submit_job").success(
            handlers.watch_job, job_id, [status, result, record], api_visibility="private", show_progress="minimal"
        ).success(handlers.present, [person, result, record], [compare, table, chart, status], api_visibility="private")
        check.click(handlers.watch_job, check_id, [status, result, record], api_visibility="private", show_progress="minimal").success(
            handlers.present, [person, result, record], [compare, table, chart, status], api_visibility="private"
        )
        status_in = gr.Textbox(visible=False)
        status_out = gr.JSON(visible=False)
        gr.Button(visible=False).click(handlers.job_status, status_in, status_out, api_name="job_status")
        # API-only: /upload for scripts that pre-upload once and reuse the reference (the seed's /api/images/upload).
        upload_in = PhotoInput(visible=False)
        upload_out = gr.Textbox(visible=False)
        gr.Button(visible=False).click(handlers.upload, upload_in, upload_out, api_name="upload")
        gr.on([refresh.click, metrics_tab.select], handlers.metrics_view, None, [metrics_summary, metrics_plot], api_visibility="private")
    return demo


def launch_options() -> dict[str, Any]:
    """What goes to launch() / mount_gradio_app() (theme and i18n moved there in gradio 6)."""
    return {"i18n": I18N, "theme": gr.themes.Soft(), "footer_links": ["api", "gradio"]}
