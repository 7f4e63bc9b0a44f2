"""The Metrics tab's Markdown (tryon/web/metrics_view.py), from summaries of events in a real Redis:
plain words in English and Spanish, no raw codes, spend per provider, tables that fit a phone."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tryon.errors import MESSAGES
from tryon.metrics import Metrics
from tryon.web.metrics_view import code_label, metrics_page, metrics_series
from tryon.redis_server import client_for
from tryon.web.text import STRINGS

from test_metrics import record, timings

SNAKE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
HEALTH = [
    {"provider": "fal", "label": "FAL · fal-ai/nano-banana-pro/edit", "state": "closed", "retry_in_s": 0},
    {"provider": "replicate", "label": "Replicate · google/nano-banana", "state": "open", "retry_in_s": 42},
    {"provider": "runpod", "label": "RunPod · endpoint abc123", "state": "half-open", "retry_in_s": 0},
]


@pytest.fixture
def metrics(redis_server) -> Metrics:
    return Metrics(client_for(host="127.0.0.1", port=redis_server.port))


@pytest.fixture
def day(metrics) -> dict:
    """12 looks: 10 made (FAL, Replicate after a failover, the offline preview, RunPod), 1 failed at
    the provider, 1 user mistake."""
    for _ in range(6):
        record(metrics, "sync", "ok", timings(total_ms=9000, provider_ms=8000))
    record(metrics, "sync", "ok", timings(calls=2, variants=2, total_ms=15000, provider_ms=14000))
    record(metrics, "async", "ok", timings(resolution="4K", total_ms=20000, provider_ms=12000))
    record(metrics, "sync", "ok", timings(provider="replicate", total_ms=6000, provider_ms=5000))
    record(metrics, "sync", "ok", timings(provider="local", total_ms=400, provider_ms=150, intake="cached"))
    record(metrics, "sync", "provider_unreachable")
    record(metrics, "sync", "no_garment")
    return metrics.summary()


def test_the_headline_says_it_in_plain_words(day):
    # Spend: FAL 6 × $0.15 + 3 images × $0.15 + one 4K image $0.30 = $1.65; Replicate $0.039; the preview $0.
    assert metrics_page(day, [], "en").splitlines()[0] == (
        "**Last 24 h:** 12 looks: 10 succeeded, 1 failed (provider unreachable), 1 was a user mistake (no garment). "
        "Success rate 90.9\u00a0% (user mistakes and refusals not counted). "
        "Estimated spend $1.69 for 10 paid model calls."
    )
    assert metrics_page(day, [], "es").splitlines()[0] == (
        "**Últimas 24 h:** 12 looks: 10 correctos, 1 falló (proveedor inalcanzable), 1 fue un error del usuario (sin prenda). "
        "Tasa de éxito 90,9\u00a0% (sin contar errores del usuario ni rechazos). "
        "Gasto estimado 1,69 US$ por 10 llamadas de pago al modelo."
    )


def test_refusals_and_unknown_prices_are_said_as_such(metrics):
    record(metrics, "async", "content_policy")
    record(metrics, "sync", "ok", timings(provider="runpod"))
    page = metrics_page(metrics.summary(), [], "en")
    assert "1 refused by the model's content policy" in page
    assert "1 paid model call, price unknown." in page
    assert "| Spend | – |" in page


def test_an_empty_day(metrics):
    assert metrics_page(metrics.summary(), [], "en") == "**Last 24 h:** no looks yet."
    assert metrics_page(metrics.summary(), [], "es") == "**Últimas 24 h:** todavía no hay looks."


def test_spend_and_calls_per_provider(day):
    page = metrics_page(day, [], "en")
    assert "| | FAL | Offline preview |" in page and "| | Replicate |" in page
    assert "| Calls | 9 | 0 |" in page and "| Spend | $1.65 | $0.00 |" in page  # the preview: free, labelled offline
    assert "| Spend | $0.039 |" in page
    assert "| | sync | async |" in page
    assert "| Failed | 1 | 0 |" in page and "| Mistakes | 1 | 0 |" in page and "| Rate | 90.0\u00a0% | 100.0\u00a0% |" in page
    assert "| p50 | 9.0 | 20.0 |" in page  # seconds of the successful looks (the caption says so)
    assert "Photo cache: 5.0\u00a0% of 20 photos were already prepared" in page
    assert "Upload cache: 0.0\u00a0% of 18 uploads to the provider were reused." in page


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_code_has_a_human_name(lang):
    for code in MESSAGES:
        assert f"metrics_code_{code}" in STRINGS[lang], code  # said in this language, not the fallback
        label = code_label(code, lang)
        assert label and not SNAKE.search(label) and label != code, (code, label)
    assert code_label("a_code_from_next_year", lang) == STRINGS[lang]["metrics_code_other"]
    assert code_label("no_garment", "es") == "sin prenda"


@pytest.mark.parametrize("lang", ["en", "es"])
def test_nothing_snake_case_on_the_page(metrics, lang):
    for code in [*MESSAGES, "a_code_from_next_year"]:
        record(metrics, "sync", code)
    record(metrics, "async", "ok", timings(provider="local"))
    page = metrics_page(metrics.summary(), HEALTH, lang)
    assert not SNAKE.findall(page), SNAKE.findall(page)
    assert "`" not in page  # no code spans either
    assert STRINGS[lang]["breaker_closed"] in page and STRINGS[lang]["breaker_half-open"] in page
    assert "FAL · fal-ai/nano-banana-pro/edit" in page


def tables(page: str) -> list[list[list[str]]]:
    found, current = [], None
    for line in page.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if current is None:
                current = []
                found.append(current)
            if not set("".join(cells)) <= set("-:"):
                current.append(cells)
        else:
            current = None
    return found


@pytest.mark.parametrize("lang", ["en", "es"])
def test_tables_fit_a_phone(metrics, lang):
    """Measured in Chromium at 390 px (gradio's Markdown: 326 px wide, 14 px padding per cell side,
    `overflow-wrap: anywhere`): 6 columns broke even "Mode" and "p50" mid-word. A table of at
    most 3 columns whose cells are a few short words stays whole (widest: 288 px)."""
    for provider in ("fal", "replicate", "runpod", "local"):
        record(metrics, "sync", "ok", timings(provider=provider))
    record(metrics, "async", "ok", timings())
    found = tables(metrics_page(metrics.summary(), HEALTH, lang))
    assert len(found) == 3  # modes, then providers two by two
    for table in found:
        assert all(len(row) <= 3 for row in table)
        header, *rows = table
        for cell in header + [row[0] for row in rows]:
            assert len(cell) <= 15 and all(len(word) <= 10 for word in cell.split()), cell
        for row in rows:
            assert all(len(cell) <= 10 for cell in row[1:]), row


def test_the_series_for_the_plot(day):
    series = metrics_series(day)
    assert list(series.columns) == ["time", "total_ms", "mode"] and len(series) == 10
    assert pd.api.types.is_datetime64_any_dtype(series["time"])
    assert set(series["mode"]) == {"sync", "async"}
    empty = metrics_series({"series": []})
    assert list(empty.columns) == ["time", "total_ms", "mode"] and empty.empty
