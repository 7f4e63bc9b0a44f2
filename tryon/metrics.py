"""Request metrics (the seed's recordEvent()) and the structured request log.

Every finished try-on, sync or async, becomes one event in a Redis stream per
UTC day (`tryon:metrics:YYYYMMDD`, capped at MAX_EVENTS_PER_DAY, expiring
after DAYS_KEPT) and bumps all-time counters: per mode and outcome, and per
provider its model calls and their estimated cost. From those: looks per
outcome class, the success rate, p50/p95 of total and provider time per mode
and per provider, paid calls and estimated spend per provider, the two photo
caches and a latency series; as JSON (/api/metrics), as Prometheus text
(/metrics) and on the page's Metrics tab (tryon/web/metrics_view.py). Metrics
never break a request: a Redis error there is logged and dropped.

Outcomes fall in four classes (`outcome_class`):
  ok          the look was made;
  user_error  the request could not be served as sent: a missing person or garment, a file
              that is not a usable photo, an invalid option, a wrong key. Nothing failed.
  refused     the model declined under its content policy (`content_policy`). Not our
              failure nor the provider's (it worked as designed), and not quite the user's
              mistake (a fully proper photo can be refused), so it is counted on its own and
              left out of the success rate; a rising count is worth a look at the prompts.
  failure     provider outages, time-outs, bad answers, and our own errors: what the success
              rate is about. Any code not listed below counts here, so nothing is hidden.
success_rate = ok / (ok + failure).

The same event is written as one JSON line to the `tryon.requests` logger:
ids, mode, provider, outcome, timings, model calls and their estimated cost;
never image data, never keys.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import redis

from .prices import OFFLINE, price_per_image

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)
request_log = logging.getLogger("tryon.requests")

STREAM = "tryon:metrics:{}"
COUNTERS = "tryon:metrics:counters"  # "<mode>|<outcome>" -> count
CALLS = "tryon:metrics:calls"  # "calls|<provider>", "unpriced|<provider>" -> count; "usd|<provider>" -> US$
MODELS = "tryon:metrics:models"  # "calls|<model id>" -> count; "usd|<model id>" -> US$ (priced calls)
MAX_EVENTS_PER_DAY = 50_000
DAYS_KEPT = 8

CLASSES = ("ok", "user_error", "refused", "failure")
USER_ERRORS = frozenset({
    # the photos
    "empty_file", "not_an_image", "unsupported_format", "animated_image", "corrupt_image", "file_too_large",
    "too_many_pixels", "image_too_small", "bad_aspect_ratio", "bad_base64", "bad_data_url_type",
    "url_refused", "url_failed", "url_not_accepted", "file_not_yours", "unsupported_input", "unknown_reference",
    # the request
    "no_person", "no_garment", "too_many_garments", "bad_category", "description_too_long", "bad_order",
    "bad_variants", "bad_option", "bad_api_key", "rate_limited", "body_too_large", "bad_json", "bad_field",
    "job_not_found", "batch_not_found", "batch_no_person", "batch_no_outfit", "batch_too_many_persons",
    "batch_too_many_outfits", "batch_outfit_garments", "batch_too_large", "batch_bad_outfits", "batch_outfit_garment_missing", "unknown_model", "model_cannot", "model_unavailable",
    # the visitor's allowance (tryon/limits): refused before any model call
    "quota_exceeded", "budget_exhausted", "own_key_not_allowed", "own_key_sync_only", "bad_own_key", "own_key_refused",
})
REFUSALS = frozenset({"content_policy"})
# Listed so that every code has been decided on (tests check errors.MESSAGES against the three sets).
# provider_rejected_input is the provider's 4xx or a failed prediction without a content-policy
# marker: we cannot tell the user what to change, so it counts against us.
FAILURES = frozenset({
    "provider_failed", "provider_auth", "all_providers_failed", "providers_paused", "provider_rejected_input",
    "provider_busy", "provider_unavailable", "provider_unreachable", "provider_timeout", "no_image_returned",
    "bad_result_image", "busy", "async_unavailable", "gave_up", "internal_error_id", "internal_error",
})


def outcome_class(outcome: str) -> str:
    """'ok', 'user_error', 'refused' or 'failure' (any unknown code is a failure)."""
    if outcome == "ok":
        return "ok"
    if outcome in USER_ERRORS:
        return "user_error"
    if outcome in REFUSALS:
        return "refused"
    return "failure"


def success_rate(ok: int, failed: int) -> float | None:
    """Succeeded out of the looks that either succeeded or failed (user errors and refusals apart)."""
    return round(ok / (ok + failed), 4) if ok + failed else None


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y%m%d")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))], 1)


def model_calls(timings: dict[str, Any], settings: "Settings | None" = None) -> dict[str, dict[str, Any]]:
    """The model calls of one timing record, per provider: {"fal": {"calls", "images", "usd"}}.

    From the record's `calls` (each with its provider, model, images and list-price `usd`, see
    TryOnService._model_fields); a record from before the catalogue has only `fal_call_N`, each
    made by `served_by[N-1]` (a chain) or `provider`, priced by tryon.prices. `usd` is None when
    the price of any of those images is unknown.
    """
    found: dict[str, dict[str, Any]] = {}
    if isinstance(timings.get("calls"), list):
        for call in timings["calls"]:
            mine = found.setdefault(str(call.get("provider") or timings.get("provider") or ""), {"calls": 0, "images": 0, "usd": 0.0})
            mine["calls"] += 1
            mine["images"] += int(call.get("images") or 1)
            usd = call.get("usd")
            mine["usd"] = None if usd is None or mine["usd"] is None else round(mine["usd"] + float(usd), 6)
        return found
    count = 0
    while f"fal_call_{count + 1}" in timings:
        count += 1
    served = list(timings.get("served_by") or [])
    resolution = str((timings.get("options") or {}).get("resolution") or "1K")
    variants = max(1, int(timings.get("variants") or 1))
    for n in range(1, count + 1):
        who = served[n - 1] if n <= len(served) else str(timings.get("provider") or "")
        images = variants if n == count else 1
        price = price_per_image(who, resolution, settings)
        mine = found.setdefault(who, {"calls": 0, "images": 0, "usd": 0.0})
        mine["calls"] += 1
        mine["images"] += images
        mine["usd"] = None if price is None or mine["usd"] is None else round(mine["usd"] + price * images, 6)
    return found


def spend_by_model(timings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"model id": {"calls", "usd"}} of one record (the offline preview's calls are $0)."""
    found: dict[str, dict[str, Any]] = {}
    for call in timings.get("calls") or []:
        name = str(call.get("model") or call.get("provider") or "?")
        mine = found.setdefault(name, {"calls": 0, "usd": 0.0})
        mine["calls"] += 1
        usd = call.get("usd")
        mine["usd"] = None if usd is None or mine["usd"] is None else round(mine["usd"] + float(usd), 6)
    return found


def event_from(mode: str, provider: str, outcome: str, timings: dict[str, Any] | None, garments: int,
               settings: "Settings | None" = None) -> dict[str, Any]:
    """One request as an event. `settings` name the models priced (the default models without)."""
    timings = timings or {}
    uploads = timings.get("uploads") or []
    offline = bool(timings.get("offline_preview")) or provider == OFFLINE
    # A visitor's own FAL key pays for their look: it is not the app's spend.
    paid_by_app = outcome == "ok" and not timings.get("own_key")
    calls = model_calls(timings, settings) if paid_by_app else {}
    return {
        "ts": int(time.time() * 1000),
        "request_id": timings.get("requestId", ""),
        "mode": mode,
        "provider": provider,
        "garments": garments,
        "outcome": outcome,  # "ok" or an error code; outcome_class() tells its class
        "total_ms": timings.get("total_backend_ms", ""),
        "provider_ms": timings.get("fal_duration_ms", ""),
        "uploads": len(uploads),
        # The photo cache (same bytes prepared before: the timing row's "cache hit" after "prepare")
        "intakes_cached": sum(1 for u in uploads if u.get("intake") == "cached"),
        # and the upload cache (the provider's copy reused or joined), for photos sent to a provider:
        # the offline preview keeps photos itself and has no upload to save.
        "uploads_remote": 0 if offline else len(uploads),
        "uploads_cached": 0 if offline else sum(1 for u in uploads if u.get("upload") in ("cached", "shared")),
        "calls": calls,
        "model": timings.get("model") or "",
        "models": spend_by_model(timings) if paid_by_app else {},
        "cost_usd": timings.get("cost_usd") if paid_by_app else "",
        "own_key": 1 if timings.get("own_key") else "",
    }


def _stored(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _calls_of(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    try:
        calls = json.loads(event.get("calls") or "{}")
    except ValueError:
        return {}
    return calls if isinstance(calls, dict) else {}


def _number(event: dict[str, Any], field: str) -> int:
    try:
        return int(event.get(field) or 0)
    except ValueError:
        return 0


def _times(events: list[dict[str, Any]], field: str) -> dict[str, float | None]:
    values = [float(e[field]) for e in events if e.get(field)]
    return {"p50": percentile(values, 50), "p95": percentile(values, 95)}


def _classes(events: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(CLASSES, 0)
    for e in events:
        counts[outcome_class(e.get("outcome", "?"))] += 1
    return counts


class Metrics:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def record(self, event: dict[str, Any]) -> None:
        """Store one event (the service writes its log line)."""
        key = STREAM.format(_day(event["ts"]))
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(key, {k: _stored(v) for k, v in event.items()}, maxlen=MAX_EVENTS_PER_DAY, approximate=True)
            pipe.expire(key, DAYS_KEPT * 86400)
            pipe.hincrby(COUNTERS, f"{event['mode']}|{event['outcome']}", 1)
            for provider, calls in (event.get("calls") or {}).items():
                pipe.hincrby(CALLS, f"calls|{provider}", calls["calls"])
                if calls["usd"] is None:
                    pipe.hincrby(CALLS, f"unpriced|{provider}", calls["calls"])
                else:
                    pipe.hincrbyfloat(CALLS, f"usd|{provider}", calls["usd"])
            for model, calls in (event.get("models") or {}).items():
                pipe.hincrby(MODELS, f"calls|{model}", calls["calls"])
                if calls["usd"] is not None:
                    pipe.hincrbyfloat(MODELS, f"usd|{model}", calls["usd"])
            pipe.execute()
        except redis.RedisError as error:
            log.warning("metrics not recorded: %s", type(error).__name__)

    def events(self, window_s: float = 86400) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        since = now - int(window_s * 1000)
        days = sorted({_day(since), _day(now)} | {_day(since + n * 86400_000) for n in range(int(window_s // 86400) + 1)})
        found = []
        for day in days:
            for _, fields in self.redis.xrange(STREAM.format(day), min=f"{since}-0", max="+"):
                found.append(fields)
        return found

    def summary(self, window_s: float = 86400) -> dict[str, Any]:
        """The window's numbers (see the module's docstring for the outcome classes).

        `failed` counts failures only; user errors and refusals have their own counts, and
        `errors` every code that was not ok. Times are of successful looks, in ms.
        """
        events = self.events(window_s)
        ok_events = [e for e in events if e.get("outcome") == "ok"]
        by_mode: dict[str, Any] = {}
        for mode in sorted({e.get("mode", "") for e in events}):
            mine = [e for e in events if e.get("mode") == mode]
            counts = _classes(mine)
            ok = [e for e in mine if e.get("outcome") == "ok"]
            by_mode[mode] = {
                "requests": len(mine),
                "succeeded": counts["ok"],
                "failed": counts["failure"],
                "user_errors": counts["user_error"],
                "refused": counts["refused"],
                "success_rate": success_rate(counts["ok"], counts["failure"]),
                "total_ms": _times(ok, "total_ms"),
                "provider_ms": _times(ok, "provider_ms"),
            }
        counts = _classes(events)
        errors: dict[str, int] = {}
        for e in events:
            if e.get("outcome") != "ok":
                errors[e.get("outcome", "?")] = errors.get(e.get("outcome", "?"), 0) + 1
        photos = sum(_number(e, "uploads") for e in events)
        prepared_before = sum(_number(e, "intakes_cached") for e in events)
        # Events from before the two caches were told apart have no uploads_remote: all their uploads count.
        remote = sum(_number(e, "uploads_remote") if "uploads_remote" in e else _number(e, "uploads") for e in events)
        reused = sum(_number(e, "uploads_cached") for e in events)
        by_provider = self._by_provider(ok_events)
        priced = [p for p in by_provider.values() if p["spend_usd"] is not None]
        return {
            "window_s": window_s,
            "requests": len(events),
            "succeeded": counts["ok"],
            "failed": counts["failure"],
            "user_errors": counts["user_error"],
            "refused": counts["refused"],
            "outcomes": counts,
            "success_rate": success_rate(counts["ok"], counts["failure"]),
            "errors": dict(sorted(errors.items(), key=lambda item: (-item[1], item[0]))),
            "photos": photos,
            "photos_prepared_before": prepared_before,
            "intake_cache_hit_rate": round(prepared_before / photos, 4) if photos else None,
            "uploads_to_provider": remote,
            "uploads_reused": reused,
            "upload_cache_hit_rate": round(reused / remote, 4) if remote else None,
            "paid_calls": sum(p["paid_calls"] for p in by_provider.values()),
            "spend_usd": round(sum(p["spend_usd"] for p in priced), 4) if priced else None,
            "spend_complete": len(priced) == len(by_provider),  # False: some calls have no known price
            "by_mode": by_mode,
            "by_provider": by_provider,
            **self._spend(ok_events),
            "series": [
                {"ts": int(e["ts"]), "mode": e.get("mode"), "total_ms": float(e["total_ms"])}
                for e in events[-500:] if e.get("outcome") == "ok" and e.get("total_ms")
            ],
        }

    @staticmethod
    def _spend(ok_events: list[dict[str, Any]]) -> dict[str, Any]:
        """Estimated spend of successful looks per model, per mode and per UTC day (list prices,
        tryon.models; the offline preview's looks are $0). usd None: some call had no known price."""
        by_model: dict[str, dict[str, Any]] = {}
        by_mode: dict[str, dict[str, Any]] = {}
        by_day: dict[str, dict[str, Any]] = {}

        def add(table: dict[str, dict[str, Any]], key: str, calls: int, usd: float | None) -> None:
            row = table.setdefault(key, {"looks": 0, "calls": 0, "usd": 0.0})
            row["looks"] += 1
            row["calls"] += calls
            row["usd"] = None if usd is None or row["usd"] is None else round(row["usd"] + usd, 6)

        for e in ok_events:
            try:
                models = json.loads(e.get("models") or "{}")
            except ValueError:
                models = {}
            if not isinstance(models, dict) or not models:
                continue  # an event from before the catalogue
            total: float | None = 0.0
            calls = 0
            for name, mine in models.items():
                add(by_model, name, int(mine.get("calls") or 0), mine.get("usd"))
                calls += int(mine.get("calls") or 0)
                total = None if mine.get("usd") is None or total is None else total + float(mine["usd"])
            add(by_mode, e.get("mode", "?"), calls, total)
            day = datetime.fromtimestamp(int(e["ts"]) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
            add(by_day, day, calls, total)
        return {"spend_by_model": dict(sorted(by_model.items())), "spend_by_mode": dict(sorted(by_mode.items())),
                "spend_by_day": dict(sorted(by_day.items()))}

    @staticmethod
    def _by_provider(ok_events: list[dict[str, Any]]) -> dict[str, Any]:
        """Per provider: successful looks it made a call for, its calls (paid: not the offline
        preview), images, estimated spend (None if any call had no price), and the times of the
        looks it served alone (a look split between providers by a failover has no single one)."""
        found: dict[str, Any] = {}
        served_alone: dict[str, list[dict[str, Any]]] = {}
        for e in ok_events:
            calls = _calls_of(e)
            for provider, mine in calls.items():
                stats = found.setdefault(provider, {"looks": 0, "calls": 0, "paid_calls": 0, "images": 0,
                                                    "spend_usd": 0.0, "offline": provider == OFFLINE})
                stats["looks"] += 1
                stats["calls"] += int(mine.get("calls") or 0)
                stats["paid_calls"] += 0 if provider == OFFLINE else int(mine.get("calls") or 0)
                stats["images"] += int(mine.get("images") or 0)
                usd = mine.get("usd")
                stats["spend_usd"] = None if usd is None or stats["spend_usd"] is None else stats["spend_usd"] + float(usd)
            if len(calls) == 1:
                served_alone.setdefault(next(iter(calls)), []).append(e)
        for provider, stats in found.items():
            if stats["spend_usd"] is not None:
                stats["spend_usd"] = round(stats["spend_usd"], 4)
            alone = served_alone.get(provider, [])
            stats["total_ms"] = _times(alone, "total_ms")
            stats["provider_ms"] = _times(alone, "provider_ms")
        return dict(sorted(found.items()))

    def prometheus(self) -> str:
        """Prometheus text format: all-time counters, and quantiles and ratios over the last 24 hours."""
        lines = [
            "# HELP tryon_requests_total Finished try-ons by mode and outcome (ok or error code).",
            "# TYPE tryon_requests_total counter",
        ]
        counters = sorted(self.redis.hgetall(COUNTERS).items())
        by_class: dict[tuple[str, str], int] = {}
        for key, count in counters:
            mode, _, outcome = key.partition("|")
            lines.append(f'tryon_requests_total{{mode="{mode}",outcome="{outcome}"}} {count}')
            by_class[(mode, outcome_class(outcome))] = by_class.get((mode, outcome_class(outcome)), 0) + int(count)
        lines += ["# HELP tryon_outcomes_total Finished try-ons by mode and result: ok, user_error (the request as "
                  "sent could not be served), refused (the model's content policy), failure (provider or ours).",
                  "# TYPE tryon_outcomes_total counter"]
        modes = sorted({mode for mode, _ in by_class})
        lines += [f'tryon_outcomes_total{{mode="{mode}",result="{result}"}} {by_class.get((mode, result), 0)}'
                  for mode in modes for result in CLASSES]
        calls = self.redis.hgetall(CALLS)
        providers = sorted({key.partition("|")[2] for key in calls})
        if providers:
            lines += ["# HELP tryon_model_calls_total Model calls of successful try-ons by provider (local: the "
                      "offline preview, unpaid).", "# TYPE tryon_model_calls_total counter"]
            lines += [f'tryon_model_calls_total{{provider="{p}"}} {calls.get(f"calls|{p}", 0)}' for p in providers]
            lines += ["# HELP tryon_estimated_spend_usd_total Estimated cost of the priced model calls, US dollars "
                      "(list prices, tryon/prices.py).", "# TYPE tryon_estimated_spend_usd_total counter"]
            lines += [f'tryon_estimated_spend_usd_total{{provider="{p}"}} {round(float(calls.get(f"usd|{p}", 0)), 6)}'
                      for p in providers]
            lines += ["# HELP tryon_unpriced_model_calls_total Model calls with no known price (not in the spend).",
                      "# TYPE tryon_unpriced_model_calls_total counter"]
            lines += [f'tryon_unpriced_model_calls_total{{provider="{p}"}} {calls.get(f"unpriced|{p}", 0)}' for p in providers]
        by_model = self.redis.hgetall(MODELS)
        models = sorted({key.partition("|")[2] for key in by_model})
        if models:
            lines += ["# HELP tryon_model_calls_by_model_total Model calls of successful try-ons by catalogue model.",
                      "# TYPE tryon_model_calls_by_model_total counter"]
            lines += [f'tryon_model_calls_by_model_total{{model="{m}"}} {by_model.get(f"calls|{m}", 0)}' for m in models]
            lines += ["# HELP tryon_estimated_spend_by_model_usd_total Estimated cost of those calls at list price "
                      "(tryon/models.py), US dollars.", "# TYPE tryon_estimated_spend_by_model_usd_total counter"]
            lines += [f'tryon_estimated_spend_by_model_usd_total{{model="{m}"}} {round(float(by_model.get(f"usd|{m}", 0)), 6)}'
                      for m in models]
        summary = self.summary()
        lines += ["# HELP tryon_success_ratio Succeeded out of succeeded + failed (user errors and refusals apart), "
                  "last 24 h.", "# TYPE tryon_success_ratio gauge"]
        lines += [f'tryon_success_ratio{{mode="{mode}"}} {stats["success_rate"]}'
                  for mode, stats in summary["by_mode"].items() if stats["success_rate"] is not None]
        for metric, field, meaning in (("tryon_request_duration_ms", "total_ms", "Total backend time"),
                                       ("tryon_provider_duration_ms", "provider_ms", "Provider time")):
            lines += [f"# HELP {metric} {meaning} of successful try-ons, last 24 h.", f"# TYPE {metric} gauge"]
            for mode, stats in summary["by_mode"].items():
                for q in ("p50", "p95"):
                    if stats[field][q] is not None:
                        lines.append(f'{metric}{{mode="{mode}",quantile="0.{q[1:]}"}} {stats[field][q]}')
        if summary["upload_cache_hit_rate"] is not None:
            lines += ["# HELP tryon_upload_cache_hit_ratio Uploads to the provider reused (cached or joined), last 24 h.",
                      "# TYPE tryon_upload_cache_hit_ratio gauge",
                      f"tryon_upload_cache_hit_ratio {summary['upload_cache_hit_rate']}"]
        if summary["intake_cache_hit_rate"] is not None:
            lines += ["# HELP tryon_intake_cache_hit_ratio Photos already prepared (same file seen before), last 24 h.",
                      "# TYPE tryon_intake_cache_hit_ratio gauge",
                      f"tryon_intake_cache_hit_ratio {summary['intake_cache_hit_rate']}"]
        return "\n".join(lines) + "\n"
