"""The Catalogue tab as a visitor uses it, on `python app.py` with the FAL test server and a real Redis:
many persons × many outfits planned and priced before the run, the grid filling in as the looks finish,
the archive, the batch's link (?batch=<id>) reopened in another browser, a Spanish phone, and a batch
cancelled half way and retried. Every number checked is this run's: the plan's estimate against the
batch's own record and the model's list price, the looks against what the FAL test server received."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import start_app, stop_app
from e2e.pagekit import DESKTOP, PHONE, PlaywrightTimeout, wait_for_text
from synthetic import draw_garment, draw_person

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHIRTS = [(236, 236, 230), (90, 160, 90), (200, 120, 60)]
GARMENTS = [("tshirt", (200, 40, 50)), ("jeans", (40, 60, 200)), ("dress", (30, 150, 80)), ("jacket", (230, 200, 40))]
HANDED_BACK = Path("/tmp/h")  # the two screenshots a reviewer looks at first
GRID_CELLS = "#batch-grid td[data-status]"
# Words of the tab that must not be left in English on the Spanish page.
ENGLISH = ["Person photos", "Garment photos", "Outfits", "Outfit", "Person", "Start", "Retry", "Cancel", "Finished",
           "Running", "queued", "running", "done", "cancelled", "Download", "estimated cost", "Batch", "looks done"]


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture
def photos(tmp_path) -> tuple[list[str], list[str]]:
    """Three person photos (different shirts) and four garments, as PNG files a visitor would drop."""
    folder = tmp_path / "photos"
    folder.mkdir()
    persons, garments = [], []
    for n, shirt in enumerate(SHIRTS, start=1):
        draw_person(shirt=shirt).image.save(folder / f"person-{n}.png")
        persons.append(str(folder / f"person-{n}.png"))
    for n, (kind, colour) in enumerate(GARMENTS, start=1):
        draw_garment(kind, colour=colour).save(folder / f"garment-{n}-{kind}.png")
        garments.append(str(folder / f"garment-{n}-{kind}.png"))
    return persons, garments


@pytest.fixture
def catalogue_app(tmp_path, fal_server, redis_server):
    """catalogue_app(latency_s, **env): the app on the FAL test server (model time latency_s) with a real
    Redis and four in-app workers, stopped after the test."""
    apps = []

    def start(latency_s: float, **env: str):
        fal_server.behaviour.latency_s = latency_s
        app = start_app(tmp_path / f"app-{len(apps)}", fal_server.env(REDIS_URL=redis_server.url, TRYON_WORKERS="4", **env))
        apps.append(app)
        return app

    yield start
    for app in apps:
        stop_app(app)


@pytest.fixture
def visit(browser):
    """visit(app, locale, viewport, query): a page in a browser context of its own (its own cookies: another device)."""
    contexts = []

    def open_page(app, locale: str = "en-US", viewport: tuple[int, int] = DESKTOP, query: str = ""):
        # The finished pictures load straight from the provider's CDN, here the FAL test server with its own
        # self-signed certificate (a browser trusts fal.media's): the only certificate this context overlooks.
        context = browser.new_context(locale=locale, viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True,
                                      ignore_https_errors=True)
        contexts.append(context)
        page = context.new_page()
        page.goto(app.url + query)
        page.wait_for_selector("#try-on")
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def shot(tmp_path):
    """shot(page, "step") -> the full-page screenshot's path, numbered in order under tmp_path/screens."""
    folder = tmp_path / "screens"
    folder.mkdir()
    count = [0]

    def take(page, step: str, hand_back: str | None = None) -> Path:
        count[0] += 1
        path = folder / f"{count[0]:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        if hand_back:
            HANDED_BACK.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, HANDED_BACK / hand_back)
        return path

    return take


# -- what a visitor does -----------------------------------------------------------------------------

def open_catalogue(page, tab_name: str) -> None:
    page.get_by_role("tab", name=tab_name, exact=True).click()
    page.locator("#batch-persons").wait_for(state="visible", timeout=10_000)


def drop(page, gallery: str, paths: list[str]) -> None:
    """Drop the photos into the gallery (its file input) and wait until each shows as a thumbnail."""
    page.locator(f"#{gallery} input[type=file]").set_input_files(paths)
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[f"#{gallery} img", len(paths)],
                           timeout=15_000)


def type_outfits(page, text: str) -> None:
    page.locator("#batch-outfits textarea, #batch-outfits input").first.fill(text)


def statuses(page) -> list[str]:
    return page.eval_on_selector_all(GRID_CELLS, "cells => cells.map(c => c.dataset.status)")


def wait_for_cells(page, timeout: int = 60_000, **counts: int) -> list[str]:
    """Wait until the grid holds exactly these many cells of each status (done=12, queued=0, ...)."""
    try:
        page.wait_for_function(
            "([sel, counts]) => Object.entries(counts).every(([status, n]) =>"
            " [...document.querySelectorAll(sel)].filter(c => c.dataset.status === status).length === n)",
            arg=[GRID_CELLS, counts], timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"the grid never showed {counts}; it shows {statuses(page)}") from None
    return statuses(page)


def wait_for_pictures(page, count: int, timeout: int = 20_000) -> list[str]:
    """The finished looks' thumbnails, decoded (so a screenshot shows them): their captions."""
    page.wait_for_function(
        "n => { const imgs = [...document.querySelectorAll('#batch-results .thumbnail-item img')];"
        " return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0); }", arg=count, timeout=timeout)
    return page.locator("#batch-results .thumbnail-item .caption-label").all_inner_texts()


def batch_in_url(page, timeout: int = 10_000) -> str:
    page.wait_for_function("new URLSearchParams(location.search).get('batch')", timeout=timeout)
    return page.evaluate("new URLSearchParams(location.search).get('batch')")


def plan_usd(text: str, lang: str = "en") -> float:
    """The dollars of the plan line: "estimated cost $1.80." / "coste estimado 1,80 US$."."""
    pattern = r"estimated cost \$(\d+(?:\.\d+)?)" if lang == "en" else r"coste estimado (\d+(?:,\d+)?) US\$"
    found = re.search(pattern, text)
    assert found, f"no dollar estimate in the plan line: {text!r}"
    return float(found.group(1).replace(",", "."))


def no_horizontal_overflow(page) -> None:
    """Nothing wider than the screen: the page does not scroll sideways, and the grid's own scroll
    wrapper (the only thing allowed to be wider inside) stays within the screen."""
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    wrap = page.evaluate("() => { const w = document.querySelector('#batch-grid-wrap'); if (!w) return null;"
                         " const r = w.getBoundingClientRect(); return {left: r.left, right: r.right,"
                         " overflow: getComputedStyle(w).overflowX, scroll: w.scrollWidth, client: w.clientWidth}; }")
    if wrap is not None:
        assert wrap["left"] >= -1 and wrap["right"] <= width + 1, wrap
        if wrap["scroll"] > wrap["client"] + 1:  # the table is wider than the phone: it scrolls inside its wrapper
            assert wrap["overflow"] in ("auto", "scroll"), wrap


def check_archive(data: bytes, persons: int, outfits: int) -> dict:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = set(archive.namelist())
    pictures = {f"person-{p}_outfit-{m}.png" for p in range(1, persons + 1) for m in range(1, outfits + 1)}
    assert {name for name in names if re.fullmatch(r"person-\d+_outfit-\d+(_v\d+)?\.png", name)} == pictures, sorted(names)
    assert {"contact_sheet.png", "manifest.json", "manifest.csv"} <= names, sorted(names)
    for name in pictures | {"contact_sheet.png"}:
        assert Image.open(io.BytesIO(archive.read(name))).format == "PNG", name
    manifest = json.loads(archive.read("manifest.json"))
    assert len(manifest["looks"]) == persons * outfits and all(look["status"] == "done" for look in manifest["looks"])
    rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"))))  # prompts span lines, quoted
    every_look = [(p, m) for p in range(1, persons + 1) for m in range(1, outfits + 1)]
    assert sorted((int(r["person"]), int(r["outfit"])) for r in rows) == every_look
    assert all(r["status"] == "done" for r in rows)
    return manifest


# -- the tests -------------------------------------------------------------------------------------------

def test_a_3x4_catalogue_is_priced_runs_once_per_look_downloads_and_reopens_from_its_link(catalogue_app, visit, photos, shot,
                                                                                         fal_server):
    app = catalogue_app(0.5)
    persons, garments = photos
    page = visit(app, viewport=DESKTOP)
    # The model's list price, as the page states it on the Try on tab: the plan must be this times the looks.
    info = wait_for_text(page, "#model-info", " per image")  # filled in by the page's load event
    price = re.search(r"\$(\d+(?:\.\d+)?) per image", info)
    assert price, info
    per_look = float(price.group(1))
    open_catalogue(page, "Catalogue")
    empty_plan = page.locator("#batch-plan").inner_text().strip()
    assert empty_plan in ("", "Add at least one person photo and one garment photo to see the grid."), empty_plan
    shot(page, "empty")

    drop(page, "batch-persons", persons)
    drop(page, "batch-garments", garments)
    plan = wait_for_text(page, "#batch-plan", "3 persons × 4 outfits = 12 looks", "estimated cost $")
    estimate = plan_usd(plan)
    assert estimate == pytest.approx(12 * per_look), (plan, per_look)
    # The outfits by the garments' file names (the gallery does not number its pictures).
    assert "Outfit 1: garment-1-tshirt.png; Outfit 2: garment-2-jeans.png" in plan, plan
    # The line follows the grouping: two garments worn together are one outfit (one async call each look).
    type_outfits(page, "1+2, 3, 4")
    grouped = wait_for_text(page, "#batch-plan", "3 persons × 3 outfits = 9 looks", "Outfit 1: garment-1-tshirt.png + garment-2-jeans.png")
    assert plan_usd(grouped) == pytest.approx(9 * per_look), grouped
    type_outfits(page, "")
    plan = wait_for_text(page, "#batch-plan", "= 12 looks")
    assert plan_usd(plan) == estimate
    assert fal_server.submits == []  # planning calls no model
    shot(page, "planned")

    page.locator("#batch-start").click()
    wait_for_text(page, "#batch-summary", "of 12 looks done", timeout=30_000)
    assert len(statuses(page)) == 12
    shot(page, "started")
    wait_for_cells(page, done=12)
    summary = wait_for_text(page, "#batch-summary", "Finished: 12 of 12 looks done", timeout=10_000)
    batch_id = batch_in_url(page)
    assert batch_id in summary and "0 failed, 0 cancelled" in summary
    assert f"spent of an estimated ${estimate:.2f}" in summary, summary  # the same estimate as the plan
    captions = wait_for_pictures(page, 12)
    assert sorted(captions) == sorted(f"Person {p} · Outfit {m}" for p in range(1, 4) for m in range(1, 5)), captions
    shot(page, "finished", hand_back="catalogue-en.png")

    # The batch's own record agrees with what the page said before the run.
    record = httpx.get(app.url + f"api/batches/{batch_id}", timeout=10).json()
    assert record["looks"] == 12 and record["counts"]["done"] == 12
    assert record["estimate"]["usd"] == pytest.approx(estimate), record["estimate"]
    assert len(fal_server.submits) == 12  # one model call per look, none twice

    link = page.locator("#batch-archive")
    assert link.get_attribute("href") == f"/api/batches/{batch_id}/archive"
    assert "12 pictures" in link.inner_text()
    with page.expect_download(timeout=30_000) as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".zip"), download.suggested_filename
    manifest = check_archive(Path(download.path()).read_bytes(), 3, 4)
    assert manifest["batch"]["batch_id"] == batch_id  # this batch's archive, not another's
    assert manifest["batch"]["estimate"]["usd"] == pytest.approx(estimate)

    # The link, opened in another browser: the same batch, with nothing pressed.
    again = visit(app, viewport=DESKTOP, query=f"?batch={batch_id}")
    try:
        wait_for_cells(again, timeout=10_000, done=12)
        shown_without_a_click = again.locator("#batch-grid").is_visible()
    except AssertionError:
        shown_without_a_click = False
    shot(again, "reopened-as-landed")
    if not shown_without_a_click:  # say what the visitor then finds behind the tab, before failing on the landing
        open_catalogue(again, "Catalogue")
        wait_for_cells(again, timeout=10_000, done=12)
        shot(again, "reopened-after-clicking-the-tab")
    assert batch_id in again.locator("#batch-summary").inner_text()
    assert len(wait_for_pictures(again, 12)) == 12
    assert len(fal_server.submits) == 12  # reopening runs nothing again
    assert shown_without_a_click, ("a ?batch= link opens on the Try on tab: the batch's grid only shows after the visitor "
                                   "finds and clicks the Catalogue tab")


def test_a_spanish_phone_plans_in_spanish_refuses_a_bad_grouping_and_fits_the_screen(catalogue_app, visit, photos, shot,
                                                                                   fal_server):
    app = catalogue_app(0.5)
    persons, garments = photos
    page = visit(app, locale="es-ES", viewport=PHONE)
    tabs = [tab.inner_text().strip() for tab in page.get_by_role("tab").all()]
    assert "Catálogo" in tabs and "Catalogue" not in tabs, tabs
    open_catalogue(page, "Catálogo")
    assert page.locator("#batch-start").inner_text().strip() == "Empezar el catálogo"
    drop(page, "batch-persons", persons[:2])
    drop(page, "batch-garments", garments)
    plan = wait_for_text(page, "#batch-plan", "2 personas × 4 conjuntos = 8 looks", "coste estimado", "US$")
    assert "Conjunto 1: garment-1-tshirt.png" in plan, plan
    estimate = plan_usd(plan, "es")
    no_horizontal_overflow(page)
    shot(page, "planned")

    # A grouping naming a garment that is not there: said in Spanish in the plan line, before any start.
    type_outfits(page, "1+9")
    error = wait_for_text(page, "#batch-plan", "⚠️")
    assert "Un conjunto nombra la prenda 9, pero hay 4 fotos de prendas." in error, error
    assert not re.search(r"\b(outfit|garment|photos)\b", error, re.I), error
    shot(page, "bad-grouping")
    page.locator("#batch-start").click()  # pressed anyway: refused, nothing queued, no link
    wait_for_text(page, "#batch-summary", "⚠️", "prenda 9")
    assert fal_server.submits == [] and statuses(page) == []
    assert "batch=" not in page.url

    type_outfits(page, "")
    wait_for_text(page, "#batch-plan", "= 8 looks")
    page.locator("#batch-start").click()
    running = wait_for_text(page, "#batch-summary", "de 8 looks hechos", timeout=30_000)
    assert "En curso" in running or "Terminado" in running, running
    no_horizontal_overflow(page)
    shot(page, "running")
    cells = wait_for_cells(page, done=8)
    assert len(cells) == 8
    summary = wait_for_text(page, "#batch-summary", "Terminado: 8 de 8 looks hechos", "0 con error", "0 cancelados",
                            timeout=10_000)
    assert f"gastados de {estimate:.2f}".replace(".", ",") + " US$ estimados" in summary, summary
    batch_id = batch_in_url(page)
    assert f"Lote {batch_id}" in summary, summary
    grid = page.locator("#batch-grid").inner_text()
    assert "Conjunto 4" in grid and "Persona 2" in grid and "hecho" in grid
    assert "Descargar el archivo (8 imágenes" in page.locator("#batch-archive").inner_text()
    assert len(wait_for_pictures(page, 8)) == 8
    panel = page.locator("#catalogue-tab").inner_text().replace(batch_id, "")  # a random id may hold any letters
    left_in_english = [word for word in ENGLISH if re.search(rf"\b{re.escape(word)}\b", panel)]
    assert not left_in_english, left_in_english
    no_horizontal_overflow(page)
    shot(page, "finished", hand_back="catalogue-es-phone.png")
    assert len(fal_server.submits) == 8


def test_cancel_stops_the_looks_not_started_and_retry_runs_just_those(catalogue_app, visit, photos, shot, fal_server):
    # Two looks in flight at a time, each taking 5 s: the other four wait in the queue long enough to cancel.
    app = catalogue_app(5.0, TRYON_FAL_CONCURRENCY="2")
    persons, garments = photos
    page = visit(app, viewport=DESKTOP)
    open_catalogue(page, "Catalogue")
    drop(page, "batch-persons", persons[:2])
    drop(page, "batch-garments", garments[:3])
    wait_for_text(page, "#batch-plan", "2 persons × 3 outfits = 6 looks")
    page.locator("#batch-start").click()
    page.wait_for_function("sel => document.querySelectorAll(sel).length === 6 &&"
                           " [...document.querySelectorAll(sel)].some(c => c.dataset.status === 'queued')", arg=GRID_CELLS,
                           timeout=30_000)
    shot(page, "started")

    page.locator("#batch-cancel").click()
    page.wait_for_function("sel => [...document.querySelectorAll(sel)].some(c => c.dataset.status === 'cancelled')", arg=GRID_CELLS,
                           timeout=15_000)
    after_cancel = statuses(page)
    started = [n for n, status in enumerate(after_cancel) if status != "cancelled"]
    assert "queued" not in after_cancel, after_cancel  # nothing left waiting
    assert 1 <= len(started) <= 2, after_cancel  # at most the two the concurrency let in had started
    shot(page, "cancelled")
    # The started ones finish (the vendor may bill them already); the cancelled ones stay cancelled.
    final = wait_for_cells(page, timeout=30_000, done=len(started), cancelled=6 - len(started))
    assert [n for n, status in enumerate(final) if status == "done"] == started
    summary = wait_for_text(page, "#batch-summary", "Finished:", f"{6 - len(started)} cancelled")
    assert f"{len(started)} of 6 looks done" in summary
    assert len(fal_server.submits) == len(started) and fal_server.cancels == []  # the cancelled ones never reached FAL
    assert len(wait_for_pictures(page, len(started))) == len(started)
    shot(page, "finished-after-cancel")

    page.locator("#batch-retry").click()
    page.wait_for_function("sel => ![...document.querySelectorAll(sel)].some(c => c.dataset.status === 'cancelled')", arg=GRID_CELLS,
                           timeout=15_000)
    assert "Running" in page.locator("#batch-summary").inner_text()
    shot(page, "retried")
    wait_for_cells(page, timeout=60_000, done=6)
    summary = wait_for_text(page, "#batch-summary", "Finished: 6 of 6 looks done", "0 cancelled")
    assert len(wait_for_pictures(page, 6)) == 6
    assert len(fal_server.submits) == 6  # one call per look in the end: the retry ran only the cancelled ones
    shot(page, "all-done")
