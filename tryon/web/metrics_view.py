"""The Metrics tab's words: `Metrics.summary()` and the providers' health as Markdown, and the
latency series for its plot.

Plain words first: one headline ("Last 24 h: 12 looks: 10 succeeded, 1 failed (provider
unreachable), 1 was a user mistake (no garment)…"), then the numbers by mode and by provider:
measures as rows, at most two modes or providers as columns per table, every cell a few short
words, so that a 390 px phone breaks nothing mid-word (measured in Chromium; units and meanings
are in the caption under each table), every error code by its name in the page's language
(`metrics_code_<code>` in tryon/web/text.py), the estimated spend (tryon/prices.py), and each
provider's circuit breaker. What counts as a failure is decided in tryon/metrics.py.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..metrics import outcome_class
from ..prices import OFFLINE
from .text import STRINGS, decimal, dollars, say

PROVIDER_NAMES = {"fal": "FAL", "replicate": "Replicate", "runpod": "RunPod"}  # proper names, in every language
COLUMNS = 2  # modes or providers side by side in one table (more do not fit a 390 px phone)
MODE_ORDER = ("sync", "async")
HEADLINE_REASONS = 3  # error names in the headline's parentheses; the lists below the tables have them all


def _counted(key: str, n: int, lang: str, **params: Any) -> str:
    """`key` with its count: the `<key>_1` wording for exactly one."""
    table = STRINGS.get(lang, STRINGS["en"])
    return say(f"{key}_1" if n == 1 and f"{key}_1" in table else key, lang, n=n, **params)


def percent(rate: float | None, lang: str = "en") -> str:
    return "–" if rate is None else f"{decimal(rate * 100, 1, lang)}\u00a0%"


def seconds(ms: float | None, lang: str = "en") -> str:
    return "–" if ms is None else decimal(ms / 1000, 1, lang)


def money(usd: float | None, lang: str = "en") -> str:
    """An estimate in US$: cents, or a tenth of a cent below ten cents ($0.039)."""
    if usd is None:
        return "–"
    amount = decimal(usd, 2 if usd == 0 or usd >= 0.1 else 3, lang)
    return f"{amount} US$" if lang == "es" else f"${amount}"


def code_label(code: str, lang: str = "en") -> str:
    """An error code in a few words of the page's language ("no_garment" -> "no garment")."""
    key = f"metrics_code_{code}"
    return say(key if key in STRINGS["en"] else "metrics_code_other", lang)


def mode_label(mode: str, lang: str = "en") -> str:
    key = f"metrics_mode_{mode}"
    return say(key, lang) if key in STRINGS["en"] else mode


def provider_label(provider: str, lang: str = "en") -> str:
    if provider == OFFLINE:
        return say("metrics_provider_local", lang)
    return PROVIDER_NAMES.get(provider, provider)


def _reasons(errors: dict[str, int], wanted: str, lang: str) -> list[tuple[str, int]]:
    """(label, count) of the codes in one outcome class, most frequent first; codes sharing a
    label (our two internal errors) are one line."""
    found: dict[str, int] = {}
    for code, count in sorted(errors.items(), key=lambda item: (-item[1], item[0])):
        if outcome_class(code) == wanted:
            label = code_label(code, lang)
            found[label] = found.get(label, 0) + count
    return sorted(found.items(), key=lambda item: -item[1])


def _why(reasons: list[tuple[str, int]]) -> str:
    names = [label for label, _ in reasons[:HEADLINE_REASONS]]
    return ", ".join(names) + (", …" if len(reasons) > HEADLINE_REASONS else "")


def headline(summary: dict[str, Any], lang: str = "en") -> str:
    """One line in plain words: looks, what became of them, the success rate, the spend, the caches."""
    window = say("metrics_window", lang, hours=f"{summary.get('window_s', 86400) / 3600:g}")
    looks = int(summary.get("requests") or 0)
    if not looks:
        return f"**{window}:** {say('metrics_none', lang)}"
    errors = summary.get("errors") or {}
    parts = [_counted("metrics_ok", int(summary.get("succeeded") or 0), lang)]
    failures, mistakes = _reasons(errors, "failure", lang), _reasons(errors, "user_error", lang)
    if summary.get("failed"):
        parts.append(_counted("metrics_failed", int(summary["failed"]), lang, why=_why(failures)))
    if summary.get("user_errors"):
        parts.append(_counted("metrics_user", int(summary["user_errors"]), lang, why=_why(mistakes)))
    if summary.get("refused"):
        parts.append(_counted("metrics_refused", int(summary["refused"]), lang))
    sentences = [f"**{window}:** {_counted('metrics_looks', looks, lang)}: {', '.join(parts)}.",
                 say("metrics_rate", lang, rate=percent(summary.get("success_rate"), lang))]
    sentences.append(spend_sentence(summary, lang))
    return " ".join(sentences)


def spend_sentence(summary: dict[str, Any], lang: str = "en") -> str:
    paid = int(summary.get("paid_calls") or 0)
    if not paid:
        return say("metrics_spend_none", lang)
    calls = _counted("metrics_calls", paid, lang)
    spend = summary.get("spend_usd")
    priced = [p for p in (summary.get("by_provider") or {}).values() if p.get("paid_calls") and p.get("spend_usd") is not None]
    if spend is None or not priced:
        return say("metrics_spend_unknown", lang, calls=calls)
    key = "metrics_spend" if summary.get("spend_complete", True) else "metrics_spend_partial"
    return say(key, lang, spend=money(sum(p["spend_usd"] for p in priced), lang), calls=calls)


def cache_line(summary: dict[str, Any], lang: str = "en") -> str | None:
    """The two photo caches, each named for what it counts (the timing table's "cache hit" after
    "prepare" is the first; the upload's "cache hit" the second)."""
    parts = []
    if summary.get("photos"):
        parts.append(say("metrics_cache_intake", lang, rate=percent(summary.get("intake_cache_hit_rate"), lang),
                         n=summary["photos"]))
    if summary.get("uploads_to_provider"):
        parts.append(say("metrics_cache_upload", lang, rate=percent(summary.get("upload_cache_hit_rate"), lang),
                         n=summary["uploads_to_provider"]))
    return " ".join(parts) or None


def _tables(title: str, columns: list[str], rows: list[tuple[str, list[str]]], caption: str) -> list[str]:
    """Measures as rows, modes or providers as columns, at most COLUMNS of them per table: on a
    390 px phone gradio's cells (14 px padding) leave too little room for more, and its tables
    break words anywhere (`overflow-wrap: anywhere`) when they run out of room."""
    lines = [f"**{title}**"]
    for first in range(0, len(columns), COLUMNS):
        chunk = slice(first, first + COLUMNS)
        lines += ["", "| | " + " | ".join(columns[chunk]) + " |", "|---|" + "---:|" * len(columns[chunk])]
        lines += [f"| {label} | " + " | ".join(values[chunk]) + " |" for label, values in rows]
    return lines + ["", f"*{caption}*"]


def mode_table(summary: dict[str, Any], lang: str = "en") -> list[str]:
    found = summary.get("by_mode") or {}
    modes = {mode: found[mode] for mode in sorted(found, key=lambda m: (MODE_ORDER.index(m) if m in MODE_ORDER else 9, m))}
    stats = list(modes.values())
    rows = [
        (say("metrics_h_looks", lang), [str(m["requests"]) for m in stats]),
        (say("metrics_h_failed", lang), [str(m.get("failed", 0)) for m in stats]),
        (say("metrics_h_user", lang), [str(m.get("user_errors", 0)) for m in stats]),
        (say("metrics_h_rate", lang), [percent(m["success_rate"], lang) for m in stats]),
        ("p50", [seconds(m["total_ms"]["p50"], lang) for m in stats]),
        ("p95", [seconds(m["total_ms"]["p95"], lang) for m in stats]),
    ]
    return _tables(say("metrics_by_mode", lang), [mode_label(m, lang) for m in modes], rows, say("metrics_mode_caption", lang))


def provider_table(summary: dict[str, Any], lang: str = "en") -> list[str]:
    providers = summary.get("by_provider") or {}
    stats = list(providers.values())
    rows = [
        (say("metrics_h_looks", lang), [str(p["looks"]) for p in stats]),
        (say("metrics_h_calls", lang), [str(p["paid_calls"]) for p in stats]),
        (say("metrics_h_spend", lang), [money(p["spend_usd"], lang) for p in stats]),
        ("p50", [seconds(p["provider_ms"]["p50"], lang) for p in stats]),
        ("p95", [seconds(p["provider_ms"]["p95"], lang) for p in stats]),
    ]
    return _tables(say("metrics_by_provider", lang), [provider_label(name, lang) for name in providers], rows,
                   say("metrics_provider_caption", lang))


def spend_tables(summary: dict[str, Any], lang: str = "en") -> list[str]:
    """Estimated spend per model, per mode and per day: one row each (model names wrap at spaces)."""
    from .views import model_label  # the catalogue's names ("FASHN Try-On v1.6")

    parts = {"spend_by_model": model_label, "spend_by_mode": lambda key: mode_label(key, lang), "spend_by_day": lambda key: key}
    lines: list[str] = []
    for field, name in parts.items():
        table = summary.get(field) or {}
        if not table:
            continue
        head = [say(field, lang), say("spend_col_looks", lang), say("spend_col_calls", lang), say("spend_col_usd", lang)]
        lines += ["", f"**{say('spend_title', lang)}: {say(field, lang).lower()}**", "",
                  "| " + " | ".join(head) + " |", "|---|---:|---:|---:|"]
        lines += [f"| {name(key)} | {row['looks']} | {row['calls']} | {money(row['usd'], lang)} |" for key, row in table.items()]
    if lines:
        lines += ["", f"*{say('spend_caption', lang)}*"]
    return lines


def health_lines(health: list[dict[str, Any]], lang: str = "en") -> list[str]:
    """Each chain member's circuit breaker, in failover order (nothing for a single provider)."""
    if not health:
        return []
    lines = [say("metrics_providers", lang), ""]
    lines += [f"{n}. **{h['label']}**: {say('breaker_' + h['state'], lang, seconds=h.get('retry_in_s') or 0)}"
              for n, h in enumerate(health, start=1)]
    return lines


def spend_line(today: dict[str, Any] | None, lang: str) -> str | None:
    """Today's estimated spend against the daily budget (TRYON_DAILY_BUDGET_USD), every replica's."""
    if not today:
        return None
    spent = dollars(today["spent_usd"], lang)
    wait = _wait_words(today["resets_in_s"])
    if today.get("cap_usd") is None:
        return say("metrics_spend_uncapped", lang, spent=spent, calls=today["calls"], wait=wait)
    cap = today["cap_usd"]
    share = 0 if not cap else round(100 * today["spent_usd"] / cap)
    return say("metrics_spend_today", lang, spent=spent, cap=dollars(cap, lang), share=share, calls=today["calls"], wait=wait)


def _wait_words(seconds: float) -> str:
    hours, minutes = divmod(max(1, round(seconds / 60)), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def metrics_page(summary: dict[str, Any], health: list[dict[str, Any]], lang: str, today: dict[str, Any] | None = None) -> str:
    """The Metrics tab as Markdown: `summary` from `Metrics.summary()`, `health` from
    `TryOnService.provider_health()`, `lang` "en" or "es", `today` the day's spend and budget
    (`TryOnService.spend_today()`)."""
    lines = [headline(summary, lang)]
    spend = spend_line(today, lang)
    if spend:
        lines += ["", spend]
    cache = cache_line(summary, lang)
    if cache:
        lines += ["", cache]
    if summary.get("by_mode"):
        lines += ["", *mode_table(summary, lang)]
    if summary.get("by_provider"):
        lines += ["", *provider_table(summary, lang)]
    lines += spend_tables(summary, lang)
    errors = summary.get("errors") or {}
    for wanted, title in (("failure", "metrics_failures_list"), ("user_error", "metrics_user_list")):
        reasons = _reasons(errors, wanted, lang)
        if reasons:
            lines += ["", say(title, lang) + " " + ", ".join(f"{label} × {count}" for label, count in reasons) + "."]
    health_part = health_lines(health, lang)
    if health_part:
        lines += ["", *health_part]
    return "\n".join(lines)


def metrics_series(summary: dict[str, Any]) -> pd.DataFrame:
    """The latency plot's points: time, total_ms, mode (successful looks, oldest first)."""
    return pd.DataFrame(
        [{"time": pd.Timestamp(p["ts"], unit="ms"), "total_ms": p["total_ms"], "mode": p["mode"]}
         for p in summary.get("series") or []],
        columns=["time", "total_ms", "mode"],
    )
