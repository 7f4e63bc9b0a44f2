"""The Catalogue tab and the batch API: many persons x many outfits as one batch (tryon.jobs.batch).

The tab: drop persons and garments, see the grid that will run and its cost, start it, watch the
cells fill (a timer polls while the batch runs), retry the failed ones, cancel the rest, open any
picture full size, download the ZIP. The batch id goes in the page's URL (?batch=<id>), so a
reload or another device shows the same batch.

The named API (gradio_client and MCP): submit_batch, batch_status, cancel_batch, retry_batch,
batch_archive. Every one goes through the service's Batches, as REST does.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import gradio as gr
from PIL import Image

from ..cache import TTLCache
from ..errors import InvalidRequest, TryOnError
from ..jobs.batch import MAX_GARMENTS_PER_OUTFIT, MAX_OUTFITS, MAX_PERSONS, OutfitRequest
from ..outfit import Outfit
from ..service import TryOnService
from .events import internal_error, language, shown_error
from .text import dollars, say
from .visitors import page_visitor

POLL_S = 2.0
MAX_OUTFITS_TEXT = 1000
LIST_LIMITS = {"persons": MAX_PERSONS, "garments": MAX_OUTFITS * MAX_GARMENTS_PER_OUTFIT}
SET_URL_JS = """(batchId) => {
  const url = new URL(window.location.href);
  if (batchId) { url.searchParams.set('batch', batchId); } else { url.searchParams.delete('batch'); }
  window.history.replaceState(null, '', url.toString());
}"""
STATUS_CLASS = {"queued": "cell-queued", "processing": "cell-running", "done": "cell-done", "error": "cell-error",
                "cancelled": "cell-cancelled", "expired": "cell-error"}
CSS = """
#batch-grid table { border-collapse: collapse; font-size: .85em; }
#batch-grid th, #batch-grid td { border: 1px solid var(--border-color-primary, #ddd); padding: 4px 6px; text-align: center; }
#batch-grid td.cell-done { background: #dcfce7; } #batch-grid td.cell-error { background: #fee2e2; color: #991b1b; }
#batch-grid td.cell-running { background: #dbeafe; } #batch-grid td.cell-cancelled { background: #f3f4f6; color: #6b7280; }
#batch-grid td.cell-queued { background: #fefce8; }
#batch-grid .cell-error-text { display: block; font-size: .8em; max-width: 14em; white-space: normal; }
#batch-grid-wrap { overflow-x: auto; }
/* Each finished look's name under its picture, whole, as in the history. */
#batch-results .caption-label { position: static; white-space: normal; overflow: visible; text-overflow: clip; max-width: 100%;
  margin: 4px 0 0; font-size: .8em; }
#batch-results .thumbnail-item { display: flex; flex-direction: column; height: auto; aspect-ratio: auto; }
#batch-results .thumbnail-item img { max-height: 220px; object-fit: contain; }
"""


def paths_of(files: Any) -> list[Path]:
    """A gallery's, a File's or a list's paths ([(path, caption)], [path], [{"path": ...}]): files
    gradio received from this session (the page's file gate checks every event's inputs)."""
    found = []
    for item in files or []:
        if isinstance(item, (list, tuple)):
            item = item[0]
        if isinstance(item, dict):
            item = item.get("path") or item.get("name")
        if hasattr(item, "path"):
            item = item.path
        if item:
            found.append(Path(str(item)))
    return found


def texts_of(value: Any, name: str) -> list[str]:
    """An agent's list of photos as text (URLs, data URLs, references); never a server path: text
    is read as a URL or base64, not as a file."""
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()] if not value.strip().startswith("[") else json.loads(value)
    if isinstance(value, list) and len(value) > LIST_LIMITS[name]:  # counted before anything is read
        raise InvalidRequest(f"batch_too_many_{'persons' if name == 'persons' else 'outfits'}", count=len(value),
                             limit=LIST_LIMITS[name])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest("bad_field", name=name, expected={"en": "a list of image URLs", "es": "debe ser una lista de URL de imágenes"})
    return [item.strip() for item in value]


def parse_outfits(text: str | None, garments: int) -> list[list[int]]:
    """Which garments (1-based) make each outfit: "1+2, 3, 4" (one outfit per group); empty: every
    garment alone. A JSON list ([{"garments": [1, 2]}, [3]]) says the same."""
    text = (text or "").strip()
    if len(text) > MAX_OUTFITS_TEXT:  # 50 outfits of 4 two-digit numbers fit in far less
        raise InvalidRequest("batch_bad_outfits", text=text[:60])
    if not text:
        return [[n] for n in range(1, garments + 1)]
    groups: list[list[int]] = []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise InvalidRequest("batch_bad_outfits", text=text[:60]) from None
        for item in items if isinstance(items, list) else []:
            numbers = item.get("garments") if isinstance(item, dict) else item
            groups.append([int(n) for n in numbers] if isinstance(numbers, list) else [int(numbers)])
    else:
        for part in re.split(r"[,;\n]+", text):
            if part.strip():
                # One way to match each space (a "+" with spaces around it, or spaces alone): an
                # ambiguous pattern backtracked exponentially on "1  1  1 ... x" and froze the app.
                if not re.fullmatch(r"\s*\d+(?:(?:\s*\+\s*|\s+)\d+)*\s*", part):
                    raise InvalidRequest("batch_bad_outfits", text=part.strip()[:60])
                groups.append([int(n) for n in re.findall(r"\d+", part)])
    if len(groups) > MAX_OUTFITS:
        raise InvalidRequest("batch_too_many_outfits", count=len(groups), limit=MAX_OUTFITS)
    for group in groups:
        for n in group:
            if not 1 <= n <= garments:
                raise InvalidRequest("batch_outfit_garment_missing", number=n, garments=garments)
    if not groups:
        raise InvalidRequest("batch_bad_outfits", text=text[:60])
    return groups


def outfit_requests(garments: Sequence[Any], groups: list[list[int]], categories: dict | None = None) -> list[OutfitRequest]:
    return [OutfitRequest([garments[n - 1] for n in group],
                          [((categories or {}).get(str(n)) or "auto") for n in group]) for group in groups]


ARCHIVE_KEEP_S = 3600


def write_archive(folder: Path, batch_id: str, chunks) -> Path:
    """The ZIP as a file, for gradio_client (which downloads an endpoint's file output): under the
    data dir, mode 700; archives older than an hour are swept on each write (gradio serves its own
    copy from its cache, which it deletes after a day)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("*/*.zip"):
        if now - old.stat().st_mtime > ARCHIVE_KEEP_S:
            old.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                old.parent.rmdir()
    # One file per batch, replaced as the batch changes: asking again does not add a copy.
    target = folder / f"batch-{hashlib.sha256(batch_id.encode()).hexdigest()[:24]}" / f"tryon-batch-{batch_id[:8]}.zip"
    target.parent.mkdir(mode=0o700, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    with partial.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    partial.replace(target)
    return target


class CatalogueHandlers:
    """The tab's events and the batch API; each answers in the browser's language."""

    def __init__(self, service: TryOnService):
        self.service = service
        self._seen: TTLCache[bytes] = TTLCache(capacity=256)  # an offline-preview result's bytes, for the results gallery

    def _visitor(self, request):
        headers = getattr(request, "headers", None) or {}
        return page_visitor(request, self.service.settings, headers.get("x-fal-key"))

    # -- the named API ------------------------------------------------------------------------

    def submit_batch(self, persons, garments, outfits="", num_images=1, aspect_ratio="same", resolution="1K", model=None,
                     request: gr.Request = None):
        """Queue a catalogue batch: every person in every outfit, one async job per look; returns the batch (id, grid, estimate).

        Args:
            persons: 1 to 20 person photos
            garments: the garment photos; each is an outfit of its own unless `outfits` groups them
            outfits: optional grouping of garments (1-based) into outfits, e.g. "1+2, 3, 4"; empty: one outfit per garment
            num_images: results per look, 1 to 4
            aspect_ratio: "same" (as the person photo) or 1:1, 4:5, 3:4, 2:3, 9:16, 5:4, 4:3, 3:2, 16:9, 21:9
            resolution: 1K, 2K or 4K (models that support it)
            model: a model id (empty: the app's default)
        """
        return self._api(lambda: self._submit(paths_of(persons), paths_of(garments), outfits, model, request, num_images,
                                              aspect_ratio, resolution), request)

    def submit_batch_urls(self, persons, garments, outfits="", num_images=1, aspect_ratio="same", resolution="1K", model=None,
                          request: gr.Request = None):
        """Like submit_batch, with the photos as lists of https URLs, data URLs or references from upload (for agents).

        Args:
            persons: 1 to 20 person photos as a JSON list of strings (or one per line), each an https URL, a data URL or an upload reference
            garments: the garment photos in the same form; each is an outfit of its own unless `outfits` groups them
            outfits: optional grouping of garments (1-based) into outfits, e.g. "1+2, 3, 4"; empty: one outfit per garment
            num_images: results per look, 1 to 4
            aspect_ratio: "same" (as the person photo) or 1:1, 4:5, 3:4, 2:3, 9:16, 5:4, 4:3, 3:2, 16:9, 21:9
            resolution: 1K, 2K or 4K (models that support it)
            model: a model id (empty: the app's default)
        """
        return self._api(lambda: self._submit(texts_of(persons, "persons"), texts_of(garments, "garments"), outfits, model,
                                              request, num_images, aspect_ratio, resolution), request)

    def _submit(self, persons, garments, outfits, model, request, num_images=1, aspect_ratio="same", resolution="1K"):
        options = Outfit.parse(None, None, None, num_images, aspect_ratio, resolution, model or None)
        requests = outfit_requests(garments, parse_outfits(outfits, len(garments))) if garments else []
        return self.service.batches.submit(persons, requests, options, visitor=self._visitor(request))

    def batch_status(self, batch_id, request: gr.Request = None):
        """A batch's looks (person, outfit, status, error, cost) and its counts by status.

        Args:
            batch_id: the id submit_batch returned
        """
        return self._api(lambda: self.service.batches.status((batch_id or "").strip()), request)

    def cancel_batch(self, batch_id, request: gr.Request = None):
        """Cancel the looks of a batch that no worker has started; returns the batch.

        Args:
            batch_id: the id submit_batch returned
        """
        return self._api(lambda: self.service.batches.cancel((batch_id or "").strip()), request)

    def retry_batch(self, batch_id, request: gr.Request = None):
        """Run again every look of a batch that failed or was cancelled; returns the batch.

        Args:
            batch_id: the id submit_batch returned
        """
        return self._api(lambda: self.service.batches.retry((batch_id or "").strip(), visitor=self._visitor(request)), request)

    def batch_archive(self, batch_id, request: gr.Request = None):
        """The batch as a ZIP: person-<n>_outfit-<m>.png per look, contact_sheet.png, manifest.json and manifest.csv.

        Args:
            batch_id: the id submit_batch returned
        """
        def write() -> str:
            chunks = self.service.batches.archive((batch_id or "").strip())
            return str(write_archive(Path(self.service.settings.data_dir) / "archives", batch_id.strip(), chunks))

        return self._api(write, request)

    def _api(self, work, request):
        lang = language(request)
        try:
            return work()
        except TryOnError as error:
            raise shown_error(error.message(lang)) from None
        except Exception:
            raise shown_error(internal_error(lang, "batch")) from None

    # -- the tab ---------------------------------------------------------------------------------

    def plan(self, persons, garments, outfits, model, request: gr.Request = None):
        """The grid that will run and what it should cost, before anything is uploaded."""
        lang = language(request)
        people, items = paths_of(persons), paths_of(garments)
        if not people or not items:
            return say("batch_plan_empty", lang)
        try:
            groups = parse_outfits(outfits, len(items))
            options = Outfit.parse(model=model or None)
            estimate = self.service.batches.estimate(len(people), [len(g) for g in groups], options)
        except TryOnError as error:
            return f"⚠️ {error.message(lang)}"
        looks = len(people) * len(groups)
        cost = say("batch_free", lang) if estimate["offline_preview"] else dollars(estimate["usd"], lang)
        line = say("batch_plan", lang, persons=counted(len(people), "person", lang), outfits=counted(len(groups), "outfit", lang),
                   looks=counted(looks, "look", lang), cost=cost)
        limit = self.service.settings.batch_max_looks
        if looks > limit:
            line += " ⚠️ " + say("batch_plan_over", lang, limit=limit)
        # Named by their files: the galleries do not number their pictures.
        names = [html.escape(Path(p).name) for p in items]
        return line + "\n\n" + "; ".join(f"{say('batch_outfit', lang, n=m)}: {' + '.join(names[n - 1] for n in group)}"
                                          for m, group in enumerate(groups, start=1))

    def start(self, persons, garments, outfits, model, shown, request: gr.Request = None):
        lang = language(request)
        try:
            status = self._submit(paths_of(persons), paths_of(garments), outfits, model, request)
        except TryOnError as error:
            return (gr.update(), f"⚠️ {error.message(lang)}", *self._unchanged())
        except Exception:
            return (gr.update(), f"⚠️ {internal_error(lang, 'submit_batch')}", *self._unchanged())
        return (status["batch_id"], *self._view(status, lang, shown=None))

    def refresh(self, batch_id, shown, request: gr.Request = None):
        lang = language(request)
        if not batch_id:
            return ("", *self._unchanged(active=False))
        try:
            status = self.service.batches.status(batch_id)
        except TryOnError as error:
            return (f"⚠️ {error.message(lang)}", "", [], gr.Timer(active=False), "", gr.Row(visible=False), 0)
        return self._view(status, lang, shown)

    def restore(self, request: gr.Request = None):
        """A page opened with ?batch=<id> shows that batch, on its tab (and polls it while it runs)."""
        batch_id = (getattr(request, "query_params", None) or {}).get("batch") if request is not None else None
        if not batch_id:
            return ("", say("batch_plan_empty", language(request)), "", "", gr.update(), gr.Timer(active=False), "",
                    gr.Row(visible=False), 0, gr.update())
        return (batch_id, gr.update(), *self.refresh(batch_id, None, request), gr.Tabs(selected="catalogue"))

    def cancel(self, batch_id, shown, request: gr.Request = None):
        return self._change(lambda: self.service.batches.cancel(batch_id), batch_id, shown, request)

    def retry(self, batch_id, shown, request: gr.Request = None):
        return self._change(lambda: self.service.batches.retry(batch_id, visitor=self._visitor(request)), batch_id, shown, request)

    def _change(self, work, batch_id, shown, request):
        lang = language(request)
        if not batch_id:
            return (say("batch_none", lang), *self._unchanged()[1:])
        try:
            work()
        except TryOnError as error:
            return (f"⚠️ {error.message(lang)}", *self.refresh(batch_id, shown, request)[1:])
        return self.refresh(batch_id, shown, request)

    @staticmethod
    def _unchanged(active: bool | None = None) -> tuple:
        """(grid, pictures, timer, actions, controls, pictures shown) left as they are."""
        timer = gr.update() if active is None else gr.Timer(active=active)
        return "", gr.update(), timer, "", gr.update(), gr.update()

    def _view(self, status: dict[str, Any], lang: str, shown: int | None) -> tuple:
        """(summary, grid, pictures, timer, actions, controls, pictures shown): the pictures are
        fetched again only when more looks are done than the page shows."""
        done = status["counts"].get("done", 0)
        pictures = gr.update() if shown == done else self._pictures(status, lang)
        return (self._summary(status, lang), grid_html(status, lang), pictures, gr.Timer(active=not status["finished"]),
                self._actions(status, lang), gr.Row(visible=True), done)

    def _summary(self, status: dict[str, Any], lang: str) -> str:
        counts = status["counts"]
        estimate = status.get("estimate") or {}
        if status["offline_preview"]:
            cost = say("batch_free", lang)
        else:
            cost = say("batch_cost", lang, spent=dollars(status["cost_usd"], lang), estimate=dollars(estimate.get("usd"), lang))
        state = say("batch_finished", lang) if status["finished"] else say("batch_running", lang)
        return say("batch_summary", lang, state=state, done=counts.get("done", 0), looks=status["looks"],
                   running=counts.get("processing", 0), queued=counts.get("queued", 0), failed=counts.get("error", 0),
                   cancelled=counts.get("cancelled", 0), cost=cost, batch_id=status["batch_id"])

    def _actions(self, status: dict[str, Any], lang: str) -> str:
        """The download link: the REST archive, streamed as it is built."""
        done = status["counts"].get("done", 0)
        if not done:
            return ""
        return (f'<a id="batch-archive" href="{html.escape(status["archive"])}" download>'
                f'{html.escape(say("batch_download", lang, done=done))}</a>')

    def _pictures(self, status: dict[str, Any], lang: str) -> list[tuple[Any, str]]:
        """The finished looks, captioned "Person 1 · Outfit 2" (click one: full size); each
        picture is fetched once per process (a small cache), not at every refresh."""
        pictures: list[tuple[Any, str]] = []
        for cell in status["cells"]:
            if cell["status"] != "done":
                continue
            refs = cell.get("refs") or []
            for k, ref in enumerate(refs, start=1):
                caption = say("batch_cell", lang, person=cell["person"], outfit=cell["outfit"]) + (f" · v{k}" if len(refs) > 1 else "")
                if str(ref).startswith("https://"):
                    pictures.append((ref, caption))  # the browser loads it from the provider's CDN
                    continue
                data = self._seen.get(ref)  # the offline preview's, from its store: fetched once
                if data is None:
                    try:
                        data = self.service._fetch_result(ref)
                    except TryOnError:
                        continue
                    self._seen.put(ref, data, ttl_s=600)
                pictures.append((Image.open(io.BytesIO(data)), caption))
        return pictures


def counted(n: int, noun: str, lang: str) -> str:
    """"1 person", "3 persons" / "1 persona", "3 personas"."""
    return say(f"batch_{noun}_{'one' if n == 1 else 'many'}", lang, n=n)


def grid_html(status: dict[str, Any], lang: str) -> str:
    """Person x outfit, each cell its status word (and a failed one's reason)."""
    outfits = status["outfits"]
    rows = {}
    for cell in status["cells"]:
        rows.setdefault(cell["person"], {})[cell["outfit"]] = cell
    head = "".join(f"<th scope='col'>{html.escape(say('batch_outfit', lang, n=m))}</th>" for m in range(1, outfits + 1))
    body = []
    for person in sorted(rows):
        cells = []
        for m in range(1, outfits + 1):
            cell = rows[person].get(m, {"status": "expired"})
            word = html.escape(say(f"batch_status_{cell['status']}", lang))
            reason = f"<span class='cell-error-text'>{html.escape(cell.get('error') or '')}</span>" if cell["status"] == "error" else ""
            cells.append(f"<td class='{STATUS_CLASS.get(cell['status'], '')}' data-status='{cell['status']}'>{word}{reason}</td>")
        body.append(f"<tr><th scope='row'>{html.escape(say('batch_person', lang, n=person))}</th>{''.join(cells)}</tr>")
    return f"<div id='batch-grid-wrap'><table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def build_tab(demo: gr.Blocks, tabs: gr.Tabs, service: TryOnService, I18N, model_choices, default_model) -> CatalogueHandlers:
    """The Catalogue tab's components and events (inside the page's Blocks and Tabs)."""
    handlers = CatalogueHandlers(service)
    private = dict(api_visibility="private", show_progress="hidden")
    with gr.Tab(I18N("tab_catalogue"), id="catalogue", elem_id="catalogue-tab"):
        gr.Markdown(I18N("batch_intro"))
        with gr.Row(equal_height=False):
            persons = gr.Gallery(label=I18N("batch_persons"), type="filepath", interactive=True, columns=4, height=200,
                                 file_types=["image"], elem_id="batch-persons", min_width=280, object_fit="contain")
            garments = gr.Gallery(label=I18N("batch_garments"), type="filepath", interactive=True, columns=4, height=200,
                                  file_types=["image"], elem_id="batch-garments", min_width=280, object_fit="contain")
        with gr.Row():
            outfits = gr.Textbox(label=I18N("batch_outfits"), placeholder="1+2, 3, 4", info=I18N("batch_outfits_info"),
                                 elem_id="batch-outfits", scale=3, min_width=260)
            model = gr.Dropdown(model_choices, value=default_model, label=I18N("model"), elem_id="batch-model", scale=2, min_width=260,
                                visible=bool(model_choices))
        plan = gr.Markdown(elem_id="batch-plan")
        start = gr.Button(I18N("batch_start"), variant="primary", elem_id="batch-start")
        # A hidden textbox, not a State: the browser reads it to put the id in the page's URL.
        batch_id = gr.Textbox(visible=False, elem_id="batch-id")
        shown_count = gr.State(0)  # finished pictures the results gallery shows
        summary = gr.Markdown(elem_id="batch-summary")
        grid = gr.HTML(elem_id="batch-grid")
        with gr.Row(visible=False, elem_id="batch-controls") as controls:
            retry = gr.Button(I18N("batch_retry"), size="sm", elem_id="batch-retry", min_width=160)
            cancel = gr.Button(I18N("batch_cancel"), size="sm", variant="stop", elem_id="batch-cancel", min_width=160)
        actions = gr.HTML(elem_id="batch-actions")
        pictures = gr.Gallery(label=I18N("batch_results"), columns=6, height="auto", object_fit="contain", interactive=False,
                              elem_id="batch-results")
        timer = gr.Timer(POLL_S, active=False)
    shown = [summary, grid, pictures, timer, actions, controls, shown_count]
    gr.on([persons.change, garments.change, outfits.change, model.change], handlers.plan, [persons, garments, outfits, model],
          plan, **private)
    # Start is off while a batch is being submitted: a second press would start (and pay for) it twice.
    start.click(lambda: gr.Button(interactive=False), None, start, queue=False, **private) \
        .then(handlers.start, [persons, garments, outfits, model, shown_count], [batch_id, *shown], **private) \
        .then(lambda: gr.Button(interactive=True), None, start, queue=False, **private) \
        .then(None, batch_id, None, js=SET_URL_JS, **private)
    timer.tick(handlers.refresh, [batch_id, shown_count], shown, **private)
    retry.click(handlers.retry, [batch_id, shown_count], shown, **private)
    cancel.click(handlers.cancel, [batch_id, shown_count], shown, **private)
    demo.load(handlers.restore, None, [batch_id, plan, *shown, tabs], **private)
    return handlers


def add_api(handlers: CatalogueHandlers) -> None:
    """The batch endpoints for gradio_client and MCP (hidden buttons: the tab runs its own events)."""
    batch_in, batch_out = gr.Textbox(visible=False), gr.JSON(visible=False)
    submit_in = [gr.File(file_count="multiple", file_types=["image"], visible=False),
                 gr.File(file_count="multiple", file_types=["image"], visible=False),
                 gr.Textbox("", visible=False), gr.Number(1, visible=False), gr.Textbox("same", visible=False),
                 gr.Textbox("1K", visible=False), gr.Textbox("", visible=False)]
    # gradio's MCP bridge cannot describe a list of files (its schema points at a $defs it drops), so
    # agents get submit_batch_urls, and submit_batch (files, for gradio_client) is not an MCP tool.
    handlers.submit_batch.__func__._mcp_type = "api_only"
    gr.Button(visible=False).click(handlers.submit_batch, submit_in, batch_out, api_name="submit_batch")
    urls_in = [gr.Textbox(visible=False), gr.Textbox(visible=False), *submit_in[2:]]
    gr.Button(visible=False).click(handlers.submit_batch_urls, urls_in, batch_out, api_name="submit_batch_urls")
    gr.Button(visible=False).click(handlers.batch_status, batch_in, batch_out, api_name="batch_status")
    gr.Button(visible=False).click(handlers.cancel_batch, batch_in, batch_out, api_name="cancel_batch")
    gr.Button(visible=False).click(handlers.retry_batch, batch_in, batch_out, api_name="retry_batch")
    gr.Button(visible=False).click(handlers.batch_archive, batch_in, gr.File(visible=False), api_name="batch_archive")
