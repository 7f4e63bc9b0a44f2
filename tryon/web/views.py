"""What the page shows, built from the service's answers: pure functions, no gradio events.

The timing table and chart come from one timing record, so they always describe the same run;
the status line's words come from the `tryon.progress` phases.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from .. import models as catalogue
from ..errors import field_label
from .text import category_word, decimal, dollars, say


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


def before_after(person, result: Image.Image | str):
    """The before/after pair, when the person photo is a file (not a pasted data URL)."""
    if not isinstance(person, (Path, str)) or str(person).startswith("data:") or not Path(person).is_file():
        return None
    return Image.open(person).convert("RGB"), result if isinstance(result, Image.Image) else Image.open(result)


def garment_name(order_entry: dict[str, Any], lang: str) -> str:
    """'Garment 2 (jeans)' / 'Garment 2 (bottom)': the slot, with the user's words or the category used."""
    what = order_entry.get("description") or category_word(order_entry.get("category", "auto"), lang)
    return f"{field_label(order_entry['field'], lang)} ({what})"


def timing_rows(timings: dict[str, Any], lang: str = "en") -> list[list[Any]]:
    """The timing record as table rows: step, milliseconds, detail (in plain words)."""
    rows: list[list[Any]] = [[say("row_inputs", lang), timings.get("inputs_ms"), ""]]
    for upload in timings.get("uploads", []):
        reused = upload.get("upload") in ("cached", "shared")
        detail = say("detail_photo", lang, size=upload["size"], kb=upload["bytes"] / 1024)
        if reused:
            detail += " · " + say("detail_reused", lang)
        rows.append([say("row_upload", lang, field=field_label(upload["field"], lang)),
                     round(upload["preprocess_ms"] + upload["upload_ms"], 1), detail])
    if "queue_wait_ms" in timings:
        rows.append([say("row_queue", lang), timings["queue_wait_ms"], say("detail_attempts", lang, attempts=timings.get("attempts", 1))])
    for skip in timings.get("failover") or []:
        rows.append([say("row_skipped", lang, provider=skip["provider"]), None, skip["reason"]])
    served_by = timings.get("served_by") or []
    order = timings.get("order") or []
    calls = call_count(timings)
    for n in range(1, calls + 1):
        who = served_by[n - 1] if n <= len(served_by) else timings.get("provider", "")
        who = "" if timings.get("offline_preview") else who  # the preview says so in the status line and on the picture
        # Sync: one call per garment, inner layer first; async: one call for the whole outfit.
        what = garment_name(order[n - 1], lang) if calls == len(order) and calls > 1 else ""
        rows.append([say("row_call", lang, n=n), timings[f"fal_call_{n}"], " · ".join(x for x in (what, who) if x)])
    if "download_ms" in timings:
        rows.append([say("row_download", lang), timings["download_ms"], ""])
    for passed in timings.get("model_fallback") or []:
        rows.append([say("row_passed_over", lang, model=model_label(passed.get("model"))), None, passed.get("reason", "")])
    if timings.get("model"):
        rows.append([say("row_model", lang), None, model_label(timings["model"])])
    if "cost_usd" in timings:
        rows.append([say("row_cost", lang), None, cost_detail(timings, lang)])
    rows += [
        [say("row_provider_total", lang), timings.get("fal_duration_ms"), ""],
        [say("row_overhead", lang), timings.get("backend_overhead_ms"), say("detail_cold", lang) if timings.get("cold_start") else ""],
        [say("row_total", lang), timings.get("total_backend_ms"), ""],
    ]
    return rows


def call_count(timings: dict[str, Any]) -> int:
    n = 0
    while f"fal_call_{n + 1}" in timings:
        n += 1
    return n


def timing_bars(timings: dict[str, Any], lang: str = "en") -> pd.DataFrame:
    """Where the time went, as bars: inputs, queue wait, each provider call, fetch, and the rest."""
    bars = [(say("bar_inputs", lang), timings.get("inputs_ms") or 0.0)]
    # A step the table lists is a bar too, even at 0 ms (a job picked up at once still waited 0 ms).
    if "queue_wait_ms" in timings:
        bars.append((say("row_queue", lang), timings["queue_wait_ms"]))
    for n in range(1, call_count(timings) + 1):
        bars.append((say("row_call", lang, n=n), timings[f"fal_call_{n}"]))
    if "download_ms" in timings:
        bars.append((say("row_download", lang), timings["download_ms"]))
    accounted = sum(ms for _, ms in bars)
    bars.append((say("bar_other", lang), max(0.0, (timings.get("total_backend_ms") or 0.0) - accounted)))
    # Numbered, because the chart orders its bars by label: "1. Inputs" … "8. Other" is the order the
    # time was spent (at most 8 bars: inputs, queue, 4 calls, fetch, the rest).
    return pd.DataFrame([{"step": f"{n}. {step}", "ms": round(float(ms), 1)} for n, (step, ms) in enumerate(bars, start=1)])


def progress_text(phase: str, facts: dict[str, Any], lang: str, step: dict[str, Any] | None = None) -> str:
    """The status line for one `tryon.progress` phase. `step`: the garment being applied, if any,
    so the model's own news keeps it in view ("Applying garment 2 of 3: waiting in the model's
    queue (position 4)…")."""
    if phase == "uploading":
        return say("progress_uploading", lang)
    if phase == "fetching":
        return say("progress_fetching", lang)
    # One garment: "Applying garment 1 of 1" says nothing; the model's news stands alone.
    applying = say("progress_applying", lang, step=step["step"], total=step["total"]) if step and step["total"] > 1 else ""
    if phase == "applying":
        if facts["total"] == 1:
            return say("progress_applying_one", lang)
        return say("progress_applying", lang, step=facts["step"], total=facts["total"])
    if phase == "queued":
        news = say("progress_queued_at", lang, position=facts["position"]) if facts.get("position") else say("progress_queued", lang)
    elif phase == "running":
        news = say("progress_running", lang)
    else:
        news = say("progress_working", lang)
    return f"{applying.rstrip('…')}: {news[0].lower()}{news[1:]}" if applying else news


def model_label(model_id: str | None) -> str:
    """A model's name as people know it ("Nano Banana Pro (Google)"); its id if not in the catalogue."""
    if not model_id:
        return "–"
    return catalogue.MODELS[model_id.partition(":")[0]].label if catalogue.known(model_id) else model_id


def cost_detail(timings: dict[str, Any], lang: str) -> str:
    """What the look cost: "$0.30 at list price", or for the preview "$0 (… $0.30 with the model)"."""
    if timings.get("offline_preview"):
        would = (timings.get("estimate") or {}).get("usd")
        return say("detail_cost_preview", lang, usd=dollars(would, lang))
    if timings.get("cost_usd") is None:
        return say("detail_cost_unknown", lang)
    return say("detail_cost", lang, usd=dollars(timings["cost_usd"], lang))


def cost_short(timings: dict[str, Any], lang: str) -> str:
    if timings.get("offline_preview"):
        return dollars(0.0, lang)
    if timings.get("own_key"):  # the visitor's FAL account pays, not this app
        return say("own_key_cost", lang, cost=dollars(timings.get("cost_usd"), lang))
    return dollars(timings.get("cost_usd"), lang)


def compared_caption(timings: dict[str, Any], lang: str) -> str:
    """One side of a comparison: "Nano Banana Pro (Google) · 8.1 s · $0.15"."""
    seconds = decimal((timings.get("total_backend_ms") or 0) / 1000, 1, lang)
    key = "compared_caption_preview" if timings.get("offline_preview") else "compared_caption"
    return say(key, lang, model=model_label(timings.get("model")), seconds=seconds, cost=cost_short(timings, lang))


def price_text(model: "catalogue.Model", lang: str) -> str:
    """ "$0.15 per image (4K: $0.30)." from the catalogue's prices."""
    prices = {size: model.price(size) for size in model.resolutions}
    known_prices = {k: v for k, v in prices.items() if v is not None}
    if not known_prices:
        return say("price_unknown", lang)
    lowest = min(known_prices.values())
    if len(set(known_prices.values())) == 1:
        return say("price_per_image", lang, usd=dollars(lowest, lang))
    sizes = ", ".join(f"{size}: {dollars(usd, lang)}" for size, usd in known_prices.items() if usd != lowest)
    return say("price_per_image_by_size", lang, usd=dollars(lowest, lang), sizes=sizes)


def model_info(model: "catalogue.Model | None", lang: str) -> str:
    if model is None:
        return ""
    return say("model_info", lang, good_at=model.good_at.get(lang, model.good_at["en"]), price=price_text(model, lang))


def estimate_text(sync: dict[str, Any], async_: dict[str, Any] | None, garments: int, lang: str,
                  compared: dict[str, Any] | None = None, resolution: str = "1K") -> str:
    """Before running: "≈ $0.60: 4 garments × 1 call each in sync; $0.15 as one async call" (with
    "(2K)" after the amount when the price is not the 1K one)."""
    if garments == 0:
        return say("estimate_need_garment", lang)
    if sync.get("usd") is None:
        return say("estimate_unknown", lang)
    if compared is not None:
        both = None if compared.get("usd") is None else sync["usd"] + compared["usd"]
        text = say("estimate_compare", lang, usd=dollars(both, lang))
        return text + (say("estimate_preview", lang) if sync.get("offline_preview") else "")
    count = say("garment_word", lang) if garments == 1 else say("garments_word", lang, count=garments)
    amount = dollars(sync["usd"], lang) + ("" if resolution == "1K" else f" ({resolution})")
    text = (say("estimate_sync_one", lang, usd=amount) if sync["calls"] == 1 else
            say("estimate_sync", lang, usd=amount, garments=count))
    if sync["images"] > sync["calls"]:
        text += say("estimate_results", lang, images=sync["images"])
    if async_ is not None and async_.get("usd") is not None:
        key = "estimate_async_one" if async_["calls"] == 1 else "estimate_async_chain"
        text += "; " + say(key, lang, usd=dollars(async_["usd"], lang), calls=async_["calls"])
    if sync.get("offline_preview"):
        text += say("estimate_preview", lang)
    return text


def done_text(timings: dict[str, Any], provider_label: str, variants: int, lang: str) -> str:
    seconds = (timings.get("total_backend_ms") or 0) / 1000
    if timings.get("offline_preview"):
        text = say("status_done_preview", lang, seconds=decimal(seconds, 2, lang))
    elif timings.get("model"):
        vendor = {"fal": "FAL", "replicate": "Replicate"}.get(str(timings.get("provider")), "")
        if timings.get("own_key"):
            vendor = say("own_key_label", lang)
        model = " · ".join(x for x in (vendor, model_label(timings["model"])) if x)
        text = say("status_done_model", lang, seconds=decimal(seconds, 2, lang), model=model, cost=cost_short(timings, lang))
    else:
        text = say("status_done", lang, seconds=decimal(seconds, 2, lang), provider=provider_label)
    for passed in timings.get("model_fallback") or []:
        text += " " + say("status_fallback", lang, model=model_label(passed.get("model")), used=model_label(timings.get("model")))
    if variants > 1:
        text += " " + say("variants_hint", lang, count=variants)
    return text


def look_caption(look: dict[str, Any], provider_label: str, lang: str) -> str:
    """'T-shirt, jeans · 14:03:27 · offline preview': what was worn, when, and by which model."""
    timings = look.get("timings") or {}
    worn = [entry.get("description") or category_word(entry.get("category", "auto"), lang) for entry in timings.get("order") or []]
    when = time.strftime("%H:%M:%S", time.localtime(look["created_at"] / 1000))
    parts = [", ".join(worn) or say("look_garments", lang, count=timings.get("garments", "?")), when, provider_label]
    return " · ".join(p for p in parts if p)


def prompts_text(timings: dict[str, Any], lang: str) -> str:
    """The prompts the model got, for the Details section."""
    prompts = timings.get("prompts") or []
    if not prompts:
        return ""
    return "\n\n".join(f"**{say('row_prompt', lang, n=n)}.** {prompt}" for n, prompt in enumerate(prompts, start=1))
