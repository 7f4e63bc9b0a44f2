"""One function per page event, plus the named API (a contract for gradio_client and MCP users):

  /try_on           (person, garment_1..4, category_1..4, description_1..4, order, num_images,
                     aspect_ratio, resolution) -> (PNG image, timings dict)
  /try_on_variants  (the same) -> (gallery of every result, timings dict)
  /submit_job       (the same) -> job id;   /job_status (job id) -> status dict
  /compare          (the same, then other_model) -> (gallery: one result per model, [timings, timings])
  (every one of them ends with `model`, a catalogue model id; empty: the default)
  /upload           (image) -> reference string

API events answer errors with gr.Error (the client shows them); page events never raise for a
user's mistake: the message goes to the status line and to the slot it is about. Every other
event is private to the page; none skips validation, since a private event still answers a raw
HTTP call.
"""

from __future__ import annotations

import hashlib
import io
import logging
import queue
import threading
import time
import uuid
from typing import Any, Iterator

import gradio as gr
import pandas as pd
from PIL import Image

from .. import progress
from ..errors import InvalidImage, TryOnError, field_label, pick_language
from ..outfit import ASPECT_RATIOS, CATEGORIES, Outfit
from ..limits import Visitor
from ..service import TryOnResult, TryOnService
from .session_files import session_of
from .visitors import hf_user, page_visitor
from .text import category_word, decimal, say
from .views import (before_after, compared_caption, cost_short, done_text, estimate_text, model_info, model_label, gallery_paths, look_caption, progress_text, prompts_text,
                    timing_bars, timing_rows)

log = logging.getLogger(__name__)

GARMENT_SLOTS = 4
FIELDS = ["person"] + [f"garment_{n}" for n in range(1, GARMENT_SLOTS + 1)]
WATCH_INTERVAL_S = 0.5  # how often the page re-reads a job's status
WATCH_LIMIT_S = 600  # after this the page stops watching (the job goes on; check it by id)


def shown_error(message: str) -> gr.Error:
    """An error for an API client; no traceback in the log (the user's input is not our bug)."""
    return gr.Error(message, print_exception=False)


def language(request: gr.Request | None) -> str:
    headers = getattr(request, "headers", None) or {}
    return pick_language(headers.get("accept-language"))


OUTFIT_ARGS = """

Args:
    person: photo of one person, ideally facing the camera on a plain background (JPEG, PNG or WebP)
    garment_1: photo of the first garment, e.g. a product photo on a plain background
    garment_2: optional second garment
    garment_3: optional third garment
    garment_4: optional fourth garment
    category_1: what garment 1 is: auto (guessed from the picture), top, bottom, dress, outerwear, shoes or accessory
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
    model: optional model id, e.g. fal-ai/fashn/tryon/v1.6 (see the Models list in the docs); empty: the app's default
"""


def documented(summary: str):
    """The docstring gradio shows in the API page and MCP tool list: the summary, then the
    parameters the try-on endpoints share."""
    def attach(function):
        function.__doc__ = summary + OUTFIT_ARGS
        return function
    return attach


class PageRun:
    """What one press of "Try on" shows as it goes: the outputs of the run event, by name.

    Every yield sends all of them; `skip` leaves a component as it is. The order is the
    event's outputs list (page.py builds it from `PageRun.OUTPUTS`)."""

    OUTPUTS = ("status", "run", "result", "compare_toggle", "compare", "compared", "variants", "table", "chart", "record",
               "prompts", "history", "job_id", "selected_look", "look_actions", *(f"note_{f}" for f in FIELDS))

    def __init__(self, lang: str):
        self.lang = lang

    def frame(self, **values) -> tuple:
        return tuple(values.get(name, gr.skip()) for name in self.OUTPUTS)

    def busy(self, text: str, **values) -> tuple:
        # The button says it too: on a phone it is the one thing always in view.
        return self.frame(status=status_update(text, "busy"), run=gr.update(interactive=False, value=text), **values)

    def idle(self, text: str, kind: str = "ok", **values) -> tuple:
        return self.frame(status=status_update(text, kind), run=gr.update(interactive=True, value=say("try_on", self.lang)), **values)


def status_update(text: str, kind: str = "ok"):
    """The status line: busy (a spinner), ok, or error (marked, and said by screen readers at once)."""
    icon = {"busy": "⏳ ", "error": "⚠️ "}.get(kind, "")
    return gr.update(value=icon + text, elem_classes=[f"status-{kind}"])


def note_update(message: str | None):
    """The line under a slot: its error (the slot is marked by CSS while it shows), or nothing."""
    if not message:
        return gr.update(value="", visible=False, elem_classes=["slot-note"])
    return gr.update(value="⚠️ " + message, visible=True, elem_classes=["slot-note", "slot-bad"])


class Handlers:
    """The page's events and the named API; each takes the request to answer in the browser's language."""

    def __init__(self, service: TryOnService):
        self.service = service

    # -- the named API ----------------------------------------------------------------------

    # try_on and try_on_variants spell out the same parameters on purpose: gradio builds each
    # endpoint's API page, gradio_client keywords and MCP schema from the signature itself.
    @documented("Dress the person in 1 to 4 garments (applied one after another, inner layer first); returns the first picture and its timings.")
    def try_on(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None,
               category_1="auto", category_2="auto", category_3="auto", category_4="auto",
               description_1=None, description_2=None, description_3=None, description_4=None,
               order=None, num_images=1, aspect_ratio="same", resolution="1K", model=None, request: gr.Request = None):
        result = self._api_try_on(request, person, [garment_1, garment_2, garment_3, garment_4],
                                  [category_1, category_2, category_3, category_4],
                                  [description_1, description_2, description_3, description_4], order, num_images, aspect_ratio,
                                  resolution, model)
        return result.to_pil(), result.timings

    @documented("Like try_on, but returns every result (num_images of them) as a gallery, and the timings.")
    def try_on_variants(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None,
                        category_1="auto", category_2="auto", category_3="auto", category_4="auto",
                        description_1=None, description_2=None, description_3=None, description_4=None,
                        order=None, num_images=1, aspect_ratio="same", resolution="1K", model=None, request: gr.Request = None):
        result = self._api_try_on(request, person, [garment_1, garment_2, garment_3, garment_4],
                                  [category_1, category_2, category_3, category_4],
                                  [description_1, description_2, description_3, description_4], order, num_images, aspect_ratio,
                                  resolution, model)
        return pictures_of(result), result.timings

    @documented("Run the same look (sync) on two models side by side: model (empty: the default) and other_model. "
                "Returns a gallery with one result per model, captioned with its model, time and cost, and both timing "
                "records. No fallback model steps in: each result is its own model's.")
    def compare(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None,
                category_1="auto", category_2="auto", category_3="auto", category_4="auto",
                description_1=None, description_2=None, description_3=None, description_4=None,
                order=None, num_images=1, aspect_ratio="same", resolution="1K", model=None, other_model=None,
                request: gr.Request = None):
        lang = language(request)
        try:
            outfit = Outfit.parse([category_1, category_2, category_3, category_4],
                                  [description_1, description_2, description_3, description_4],
                                  order, num_images, aspect_ratio, resolution, model)
            outcomes = self.service.compare(person, [garment_1, garment_2, garment_3, garment_4], outfit, other_model,
                                            visitor=self._visitor(request))
        except TryOnError as error:
            raise shown_error(error.message(lang)) from None
        except Exception:
            raise shown_error(internal_error(lang, "compare")) from None
        # A side that failed is in the records as its error (the other side's picture is kept).
        models = [outfit.model or self.service.default_model().id, other_model.strip()]
        records = [o.timings if isinstance(o, TryOnResult) else {"model": m, "code": o.code, "error": o.message(lang)}
                   for o, m in zip(outcomes, models)]
        return [(o.to_pil(), compared_caption(o.timings, lang)) for o in outcomes if isinstance(o, TryOnResult)], records

    def _api_try_on(self, request, person, garments, categories, descriptions, order, num_images, aspect_ratio, resolution,
                    model=None) -> TryOnResult:
        lang = language(request)
        try:
            outfit = Outfit.parse(categories, descriptions, order, num_images, aspect_ratio, resolution, model)
            return self.service.try_on_sync(person, garments, outfit=outfit, visitor=self._visitor(request))
        except TryOnError as error:
            raise shown_error(error.message(lang)) from None
        except Exception:
            raise shown_error(internal_error(lang, "try_on")) from None

    def upload(self, image, request: gr.Request = None):
        """Normalize one image (resize, strip metadata) and store it with the provider; returns its reference.

        Args:
            image: a photo (JPEG, PNG or WebP)
        """
        try:
            return self.service.upload(image).ref
        except TryOnError as error:
            raise shown_error(error.message(language(request))) from None

    @documented("Queue one async job that dresses the person in every garment in one model call (its prompt names the "
                "layering order); returns its id at once. Poll it with job_status.")
    def submit_job(self, person, garment_1, garment_2=None, garment_3=None, garment_4=None,
                   category_1="auto", category_2="auto", category_3="auto", category_4="auto",
                   description_1=None, description_2=None, description_3=None, description_4=None,
                   order=None, num_images=1, aspect_ratio="same", resolution="1K", model=None, request: gr.Request = None):
        try:
            outfit = Outfit.parse([category_1, category_2, category_3, category_4],
                                  [description_1, description_2, description_3, description_4],
                                  order, num_images, aspect_ratio, resolution, model)
            return self.service.submit_job(person, [garment_1, garment_2, garment_3, garment_4], outfit=outfit,
                                           visitor=self._visitor(request)).job_id
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

    # -- the slots --------------------------------------------------------------------------

    def check_slot(self, field: str):
        """A slot's change handler: validate the photo and upload it at once, in the background;
        for a garment, guess what it is. A bad file stays in its slot, marked, with the reason
        under it and in the status line. By the time "Try on" is pressed the upload is usually
        done (the service reuses it)."""

        def checked(image, lang: str):
            """(the slot's note, the status line, the guess for a garment or None)."""
            if image is None:
                return note_update(None), gr.skip(), None
            try:
                self.service.upload(image, field)
                return note_update(None), gr.skip(), (self.service.garment_category(image, field) if field != "person" else None)
            except TryOnError as error:
                if not isinstance(error, InvalidImage):  # a provider hiccup is not the photo's fault
                    return note_update(None), gr.skip(), None
                return note_update(error.message(lang)), status_update(error.message(lang), "error"), None

        if field == "person":
            def check_person(image, request: gr.Request):
                return checked(image, language(request))[:2]
            return check_person

        def check_garment(image, category, request: gr.Request):
            lang = language(request)
            shown, status, guess = checked(image, lang)
            return shown, status, category_choices(lang, guess)
        return check_garment

    def readiness(self, person, g1, g2, g3, g4, c1, c2, c3, c4, d1, d2, d3, d4, order, request: gr.Request = None):
        """Whether "Try on" can run (and why not), the layering order it will use, and the order picker's choices."""
        lang = language(request)
        descriptions = (d1, d2, d3, d4)
        # A file the intake refuses stays in its slot (marked there), but is no garment to try on.
        bad = [field for field, photo in zip(FIELDS, (person, g1, g2, g3, g4)) if photo and not self._usable(photo, field)]
        photos = tuple(None if f"garment_{n}" in bad else photo for n, photo in enumerate((g1, g2, g3, g4), start=1))
        filled = [f"garment_{n}" for n, photo in enumerate(photos, start=1) if photo]
        missing = [say(key, lang) for key, gone in (("need_person", not person), ("need_garment", not filled and not bad)) if gone]
        hint = say("need", lang, what=f" {say('and', lang)} ".join(missing)) if missing else ""
        if bad:
            hint = (hint + " " if hint else "") + say("need_fix", lang, fields=", ".join(field_label(f, lang) for f in bad))
        categories, guessed = self._categories_used((c1, c2, c3, c4), photos)
        order_line = self._order_line(filled, categories, guessed, descriptions, order, lang)
        choices = [(self._slot_name(f, categories, descriptions, lang), f) for f in filled]
        ready = not missing and not bad
        return gr.update(interactive=ready), gr.update(value=hint, visible=bool(hint)), order_line, gr.update(choices=choices)

    def _usable(self, photo, field: str) -> bool:
        try:
            self.service.intake(photo, field)  # a cache hit: the slot's own check read it when it was dropped
            return True
        except InvalidImage:
            return False
        except TryOnError:
            return True  # not the file's fault; the run will say what it is

    def _categories_used(self, chosen, photos) -> tuple[list[str], dict[int, bool]]:
        """Each slot's category as the try-on will use it (Auto replaced by the picture's guess), and
        which were guessed ({slot index: whether the guess is sure})."""
        used, guessed = [], {}
        for n, (category, photo) in enumerate(zip(chosen, photos)):
            category = category or "auto"
            if category == "auto" and photo:
                try:
                    guess = self.service.garment_category(photo, f"garment_{n + 1}")
                    category, guessed[n] = guess["category"], guess.get("sure", True)
                except TryOnError:  # the slot's own check says what is wrong with the file
                    pass
            used.append(category)
        return used, guessed

    def _slot_name(self, field: str, categories, descriptions, lang: str) -> str:
        n = int(field.rsplit("_", 1)[1])
        what = (descriptions[n - 1] or "").strip() or category_word(categories[n - 1] or "auto", lang)
        return f"{field_label(field, lang)} · {what}"

    def _order_line(self, filled: list[str], categories, guessed: dict[int, bool], descriptions, order, lang: str) -> str:
        if not filled:
            return say("order_empty", lang)
        own_order = [f for f in (order or []) if f in filled]
        try:
            outfit = Outfit.parse(categories, descriptions, own_order)
            specs = outfit.specs(filled)
        except TryOnError as error:
            return "⚠️ " + error.message(lang)

        def named(spec) -> str:
            how = guessed.get(spec.slot - 1)
            what = category_word(spec.category, lang) + ("" if how is None else " · " + say("detected" if how else "not_sure", lang))
            return f"{field_label(spec.field, lang)} ({spec.description + ', ' if spec.description else ''}{what})"

        steps = [f"{n}. {named(s)}" for n, s in enumerate(specs, start=1)]
        line = say("order_line", lang, how=say("order_custom" if own_order else "order_auto", lang)) + " " + " → ".join(steps)
        if own_order:
            used = {f"garment_{n}": c for n, c in enumerate(categories, start=1)}
            for key, params in outfit.order_warnings(filled, used):
                words = {k: field_label(v, lang) if k in ("outer", "inner", "bottom", "dress", "shoes", "accessory", "clothes") else
                         category_word(v, lang) if k.endswith("category") else v for k, v in params.items()}
                line += "\n\n⚠️ " + say(key, lang, **words)
        return line

    # -- one look, from the press of the button to its picture --------------------------------

    def run_look(self, mode, person, g1, g2, g3, g4, c1, c2, c3, c4, d1, d2, d3, d4, order, num_images, aspect_ratio,
                 resolution, model=None, compare_with=None, own_key=None, request: gr.Request = None) -> Iterator[tuple]:
        """Try on (sync, one model call per garment) or start a job (async) and watch it: the status
        line says each step as it happens; the result, table and chart are this run's only. With a
        second model in "Compare with", the look runs on both (sync) and both are shown side by side.
        `own_key`: a FAL key the visitor pasted for this session (used for this run, kept nowhere)."""
        lang = language(request)
        visitor = self._visitor(request, own_key)
        page = PageRun(lang)
        garments = [g1, g2, g3, g4]
        settings = {"categories": [c1, c2, c3, c4], "descriptions": [d1, d2, d3, d4], "order": list(order or []),
                    "num_images": num_images, "aspect_ratio": aspect_ratio, "resolution": resolution, "model": model}
        # Nothing from the last run stays on screen while this one is being made.
        cleared = dict(result=None, compare=gr.update(value=None, visible=False), compare_toggle=gr.update(value=False, visible=False),
                       compared=gr.update(value=None, visible=False),
                       variants=gr.update(value=None, visible=False), table=gr.update(visible=False), chart=gr.update(visible=False),
                       record=None, prompts="", **{f"note_{f}": note_update(None) for f in FIELDS})
        yield page.busy(say("progress_starting", lang), **cleared)
        try:
            outfit = Outfit.parse(settings["categories"], settings["descriptions"], order, num_images, aspect_ratio, resolution, model)
            if compare_with:
                yield from self._compare(request, page, person, garments, settings, outfit, compare_with, visitor)
                return
            if mode == "async":
                job_id = self.service.submit_job(person, garments, outfit=outfit, visitor=visitor).job_id
                yield page.busy(say("job_queued_now", lang), job_id=gr.update(value=job_id, visible=True))
                watched = yield from self._watch(job_id, page)
                if watched is None:
                    return
                pictures, timings = watched
                finished = {"job_id": gr.update(value=job_id, visible=True)}
            else:
                result = yield from self._in_background(
                    lambda: self.service.try_on_sync(person, garments, outfit=outfit, visitor=visitor), page)
                pictures, timings = pictures_of(result), result.timings
                finished = {}
            history = self._remember(request, person, garments, settings, pictures, timings)
            # The history changed (this look is first, an identical older one gone): no look is selected now.
            yield page.idle(done_text(timings, self._served_label(timings, lang), len(pictures), lang),
                            **self._shown(person, pictures, timings, lang), history=history,
                            selected_look=None, look_actions=gr.update(visible=False), **finished)
        except TryOnError as error:
            yield self._failed(page, error)
        except Exception:  # our bug: the visitor gets a request id to quote, the log the traceback
            yield page.idle(internal_error(lang, "page run"), "error")

    def _compare(self, request, page: PageRun, person, garments, settings, outfit: Outfit, other: str,
                 visitor: Visitor) -> Iterator[tuple]:
        """The same look on two models at once; both results side by side, each kept in the history."""
        lang = page.lang
        yield page.busy(say("comparing", lang))
        outcomes = yield from self._in_background(lambda: self.service.compare(person, garments, outfit, other, visitor), page)
        results = [o for o in outcomes if isinstance(o, TryOnResult)]
        history = None
        for result in results:
            history = self._remember(request, person, garments, {**settings, "model": result.timings.get("model")},
                                     pictures_of(result), result.timings)
        first = results[0]
        side_by_side = [(r.to_pil(), compared_caption(r.timings, lang)) for r in results]
        if len(results) == 2:
            said, kind = say("compare_done", lang, a=side_by_side[0][1], b=side_by_side[1][1]), "ok"
        else:  # one model refused or failed: its reason, beside the other's picture
            (failed,) = [o for o in outcomes if isinstance(o, TryOnError)]
            wanted = other if outcomes[1] is failed else (outfit.model or self.service.default_model().id)
            said, kind = say("compare_one_failed", lang, model=model_label(wanted), reason=failed.message(lang)), "error"
        yield page.idle(said, kind, **self._shown(person, pictures_of(first), first.timings, lang),
                        compared=gr.update(value=side_by_side, visible=True), history=history,
                        selected_look=None, look_actions=gr.update(visible=False))

    # -- the model picker and the cost before the run -------------------------------------------

    def model_options(self, model_id, resolution, aspect_ratio, num_images, request: gr.Request = None):
        """Only what the chosen model can make is offered; a value it cannot take moves to one it can."""
        lang = language(request)
        try:
            model = self.service.model(model_id)
        except TryOnError:
            model = None
        if model is None:
            return (gr.skip(),) * (3 + GARMENT_SLOTS)
        sizes = list(model.resolutions)
        ratios = [r for r in ASPECT_RATIOS if ("auto" if r == "same" else r) in model.aspect_ratios]
        try:  # a private event still answers raw HTTP: a count that is not a number is 1 here (the run says why)
            count = max(1, min(int(float(num_images or 1)), model.max_results))
        except (TypeError, ValueError, OverflowError):
            count = 1
        return (gr.update(choices=sizes, value=resolution if resolution in sizes else sizes[0]),
                gr.update(choices=[(say("aspect_same", lang) if r == "same" else r, r) for r in ratios],
                          value=aspect_ratio if aspect_ratio in ratios else "same"),
                # One result only (Kling): no slider at all (gradio refuses a slider from 1 to 1).
                gr.update(maximum=model.max_results, value=count, visible=True) if model.max_results > 1 else
                gr.update(value=1, visible=False),
                # A model that reads no prompt takes no descriptions: hidden, and emptied (no hidden text refuses the run).
                *(gr.update(visible=True) if model.reads_prompt else gr.update(visible=False, value="") for _ in range(GARMENT_SLOTS)))

    def cost_view(self, model_id, mode, compare_with, num_images, resolution, g1, g2, g3, g4, request: gr.Request = None):
        """The model's line (what it is good at, its price) and what this look will cost."""
        lang = language(request)
        garments = sum(1 for g in (g1, g2, g3, g4) if g)
        try:
            outfit = Outfit.parse(num_images=num_images, resolution=resolution, model=model_id)
            model = self.service.model(outfit.model)
            sync = self.service.estimate(outfit, garments, "sync")
            compared = None
            if compare_with:
                compared = self.service.estimate(Outfit.parse(num_images=num_images, resolution=resolution, model=compare_with),
                                                 garments, "sync")
            ran_async = self.service.estimate(outfit, garments, "async") if self.service.queue is not None else None
        except TryOnError as error:
            return gr.skip(), error.message(lang)
        return model_info(model, lang), estimate_text(sync, ran_async, garments, lang, compared, outfit.resolution)

    def check_job(self, job_id, request: gr.Request = None) -> Iterator[tuple]:
        """"Check a job" in Advanced: watch a job by its id (from this page or a script) until it is done."""
        lang = language(request)
        page = PageRun(lang)
        job_id = (job_id or "").strip()
        yield page.busy(say("progress_checking", lang))
        try:
            watched = yield from self._watch(job_id, page)
        except TryOnError as error:
            yield self._failed(page, error)
            return
        if watched is not None:
            pictures, timings = watched
            yield page.idle(done_text(timings, self._served_label(timings, lang), len(pictures), lang),
                            **self._shown(None, pictures, timings, lang))

    def _failed(self, page: PageRun, error: TryOnError) -> tuple:
        """A user's mistake or a provider's refusal: said in the status line and, if it is about one photo, under it."""
        message = error.message(page.lang)
        notes = {f"note_{error.field}": note_update(message)} if error.field in FIELDS else {}
        return page.idle(message, "error", **notes)

    def _in_background(self, work, page: PageRun):
        """Run `work` in a thread and yield a status frame for each new progress phase; return its result."""
        events: queue.SimpleQueue = queue.SimpleQueue()

        def run() -> None:
            with progress.listening(lambda phase, facts: events.put(("progress", phase, facts))):
                try:
                    events.put(("done", work(), None))
                except BaseException as error:  # handed to the page's thread, which decides what to say
                    events.put(("failed", error, None))

        threading.Thread(target=run, name="tryon-page-run", daemon=True).start()
        last, step = None, None
        while True:
            kind, value, facts = events.get()
            if kind == "done":
                return value
            if kind == "failed":
                raise value
            if value == "applying":
                step = facts
            text = progress_text(value, facts, page.lang, step)
            if text != last:  # FAL is polled ten times a second: say only what changed
                last = text
                yield page.busy(text)

    def _watch(self, job_id: str, page: PageRun):
        """Poll a job, yielding its status, until it is done; (pictures, timings), or None if we stopped watching."""
        lang = page.lang
        deadline = time.monotonic() + WATCH_LIMIT_S
        while True:
            job = self.service.job_status(job_id)
            now = time.time() * 1000
            if job["status"] == "done":
                return self.service.job_images(job_id), job["timings"]
            if job["status"] == "error":
                raise _JobFailed(job["error"])
            since = job["timestamps"]["started_at"] or job["timestamps"]["created_at"]
            if job["status"] == "queued":
                text = say("job_queued", lang, job_id=job_id, seconds=(now - since) / 1000, waiting=job.get("jobs_waiting", 0))
            else:
                text = say("job_processing", lang, job_id=job_id, seconds=(now - since) / 1000)
            # The id rides on every frame: gradio may skip frames for a slow client, and the id must not be lost.
            shown_id = gr.update(value=job_id, visible=True)
            yield page.busy(text, job_id=shown_id)
            if time.monotonic() > deadline:
                yield page.idle(say("job_still_running", lang, job_id=job_id), job_id=shown_id)
                return None
            time.sleep(WATCH_INTERVAL_S)

    def _shown(self, person, pictures: list[Image.Image], timings: dict[str, Any], lang: str) -> dict[str, Any]:
        """The result area for a finished look: the first picture, the variants only when there are
        several, before/after when the person photo is at hand, and this run's table and chart."""
        headers = [say("step", lang), say("ms", lang), say("detail", lang)]
        pair = before_after(person, pictures[0]) if pictures else None
        return dict(
            result=pictures[0] if pictures else None,
            compare=gr.update(value=pair, visible=False),
            compare_toggle=gr.update(value=False, visible=pair is not None),
            variants=gr.update(value=pictures, visible=len(pictures) > 1),
            # gradio's i18n cannot translate Dataframe headers, so they are built here.
            # The ms as the visitor's language writes them (88,4 in Spanish), as text: gradio would write 88.4.
            table=gr.update(value=pd.DataFrame([[step, "" if ms is None else decimal(float(ms), 1, lang), detail]
                                                for step, ms, detail in timing_rows(timings, lang)], columns=headers),
                            visible=True),
            # No `sort` in the update: with one, gradio 6.31 kept the previous run's data and re-sorted it.
            chart=gr.update(value=timing_bars(timings, lang), visible=True),
            record=timings,
            prompts=prompts_text(timings, lang),
        )

    # -- results ----------------------------------------------------------------------------

    @staticmethod
    def choose_variant(person, variants, selected: gr.SelectData):
        """A variant clicked in the gallery becomes the result: the one downloaded and compared."""
        pictures = gallery_paths(variants)
        if not pictures or selected.index is None:
            return gr.skip(), gr.skip()
        chosen = pictures[selected.index if isinstance(selected.index, int) else selected.index[0]]
        return chosen, gr.update(value=before_after(person, chosen))

    @staticmethod
    def toggle_compare(on: bool):
        """Before/after replaces the result picture while it is on."""
        return gr.update(visible=not on), gr.update(visible=bool(on))

    @staticmethod
    def switch_mode(mode: str):
        """Async shows the job id box (with the id once there is one); sync hides it."""
        return gr.update(visible=mode == "async")

    # -- examples ---------------------------------------------------------------------------

    @staticmethod
    def pick_person(people: list[str]):
        def pick(selected: gr.SelectData):
            return people[selected.index] if isinstance(selected.index, int) and selected.index < len(people) else gr.skip()
        return pick

    @staticmethod
    def pick_garment(garments: list[str]):
        """An example garment clicked: it goes into the first empty garment slot (Auto, so its guess shows)."""
        def pick(g1, g2, g3, g4, selected: gr.SelectData, request: gr.Request = None):
            skip = (gr.skip(),) * (2 * GARMENT_SLOTS + 1)
            if not isinstance(selected.index, int) or selected.index >= len(garments):
                return skip
            slots = [g1, g2, g3, g4]
            if all(slots):
                return (*(gr.skip(),) * (2 * GARMENT_SLOTS), gr.update(value="⚠️ " + say("slots_full", language(request)), visible=True))
            free = slots.index(None) if None in slots else next(n for n, s in enumerate(slots) if not s)
            values = [gr.skip()] * GARMENT_SLOTS
            values[free] = garments[selected.index]
            categories = [gr.skip()] * GARMENT_SLOTS
            categories[free] = "auto"
            return (*values, *categories, gr.skip())
        return pick

    # -- who asks ---------------------------------------------------------------------------

    def _visitor(self, request, own_key: str | None = None) -> Visitor:
        """The visitor quotas are counted against (tryon.web.visitors); a FAL key they brought comes
        from the page's field, or from an API caller's X-Fal-Key header."""
        headers = getattr(request, "headers", None) or {}
        return page_visitor(request, self.service.settings, own_key or headers.get("x-fal-key"))

    def _served_label(self, timings: dict[str, Any], lang: str) -> str:
        if timings.get("own_key"):  # not this app's provider, whatever it is (the offline preview too)
            return say("own_key_label", lang)
        return self.service.label_of(timings.get("provider"))

    def _history_owner(self, request) -> str | None:
        """Whose history: a signed-in visitor's own, on every device; else this browser session's."""
        user = hf_user(request) if self.service.settings.hf_oauth else None
        if user:
            return "user-" + hashlib.sha256(user.encode()).hexdigest()[:32]
        return session_of(request)

    # -- history ----------------------------------------------------------------------------

    def _remember(self, request, person, garments, settings, pictures, timings):
        """Keep a finished look in this browser session's history; the history gallery, or skip."""
        session = self._history_owner(request)
        if self.service.history is None or not session or not pictures:
            return gr.skip()
        inputs = {field: self._normalized(source, field)
                  for field, source in [("person", person), *((f"garment_{n}", g) for n, g in enumerate(garments, start=1))]}
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
        """The session's looks as a gallery, newest first: what was worn, when, and by which model."""
        session = self._history_owner(request)
        looks = self.service.history.looks(session) if self.service.history is not None else []
        lang = language(request)
        return [(look.get("thumbnail") or look["results"][0], look_caption(look, self._made_by(look, lang), lang)) for look in looks]

    def _made_by(self, look: dict[str, Any], lang: str) -> str:
        timings = look.get("timings") or {}
        if timings.get("offline_preview"):
            return say("made_by_preview", lang) + (f" · {model_label(timings['model'])}" if timings.get("model") else "")
        if timings.get("model"):
            return f"{model_label(timings['model'])} · {cost_short(timings, lang)}"
        return self.service.label_of(timings.get("provider"))

    def restore(self, selected: gr.SelectData, request: gr.Request = None):
        """A look clicked in the history: its inputs, settings, results and timings come back, and
        Try again / Delete act on it."""
        lang = language(request)
        session = self._history_owner(request)
        looks = self.service.history.looks(session) if self.service.history is not None else []
        index = selected.index if isinstance(selected.index, int) else (selected.index or [0])[0]
        page = PageRun(lang)
        if index is None or index >= len(looks):
            return (*(gr.skip(),) * RESTORED_INPUTS, *page.idle(say("look_gone", lang), "error", selected_look=None,
                                                                 look_actions=gr.update(visible=False)))
        look = looks[index]
        inputs, settings = look["inputs"], look["settings"]
        garments = [inputs.get(f"garment_{n}") for n in range(1, GARMENT_SLOTS + 1)]
        restored = (inputs.get("person"), *garments, *settings["categories"], *settings["descriptions"], settings["order"],
                    settings["num_images"], settings["aspect_ratio"], settings["resolution"],
                    settings.get("model") or look["timings"].get("model") or gr.skip())
        pictures = [Image.open(path) for path in look["results"]]
        shown = self._shown(inputs.get("person"), pictures, look["timings"], lang)
        when = time.strftime("%H:%M:%S", time.localtime(look["created_at"] / 1000))
        return (*restored, *page.idle(say("look_restored", lang, when=when), **shown, selected_look=look["id"],
                                      look_actions=gr.update(visible=True)))

    def delete_look(self, look_id, request: gr.Request = None):
        """Delete the selected look (its pictures too) from this session's history; said beside the history."""
        lang = language(request)
        gone = bool(self.service.history is not None and look_id and self.service.history.remove(self._history_owner(request), str(look_id)))
        said = say("look_deleted", lang) if gone else "⚠️ " + say("look_gone", lang)
        return self.history_view(request), None, gr.update(visible=False), said

    # -- metrics ----------------------------------------------------------------------------

    def metrics_view(self, request: gr.Request):
        """The Metrics tab: a summary in plain words and the latency of recent successful requests."""
        lang = language(request)
        if self.service.metrics is None:
            return say("metrics_off", lang), None
        from .metrics_view import metrics_page, metrics_series

        summary = self.service.metrics.summary()
        return metrics_page(summary, self.service.provider_health(), lang, self.service.spend_today()), metrics_series(summary)


RESTORED_INPUTS = 1 + GARMENT_SLOTS * 3 + 5  # person, garments, categories, descriptions, order, num, aspect, resolution, model


class _JobFailed(TryOnError):
    """A job that ended in error: its stored message (already in words) is what the page says."""

    def __init__(self, text: str):
        super().__init__("job_failed")
        self.text = text

    def message(self, lang: str = "en") -> str:
        return self.text


def category_choices(lang: str, guess: dict[str, Any] | None = None) -> Any:
    """The category menu, its Auto entry saying what Auto will do for this picture."""
    auto = say("category_choice_auto", lang)
    if guess is not None:
        word = category_word(guess["category"], lang)
        auto = say("auto_guess", lang, category=word) if guess.get("sure", True) else say("auto_unsure", lang, category=word)
    return gr.update(choices=[(auto, "auto")] + [(say(f"category_choice_{name}", lang), name) for name in CATEGORIES if name != "auto"])


def pictures_of(result: TryOnResult) -> list[Image.Image]:
    return [Image.open(io.BytesIO(picture)) for picture in result.variants]


def internal_error(lang: str, what: str) -> str:
    request_id = uuid.uuid4().hex[:12]
    log.exception("%s failed (request %s)", what, request_id)
    return say("internal_error", lang, request_id=request_id)
