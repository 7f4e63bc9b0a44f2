"""Request metrics (the seed's recordEvent()) and the structured request log.

Every finished try-on, sync or async, becomes one event in a Redis stream per
UTC day (`tryon:metrics:YYYYMMDD`, capped at MAX_EVENTS_PER_DAY, expiring
after DAYS_KEPT) and bumps an all-time counter per mode and outcome. From
those: requests, success rate, p50/p95 of total and provider time per mode,
the upload cache hit rate and a latency series; as JSON (/api/metrics), as
Prometheus text (/metrics) and on the page's Metrics tab. Metrics never break
a request: a Redis error there is logged and dropped.

The same event is written as one JSON line to the `tryon.requests` logger:
ids, mode, provider, outcome and timings; never image data, never keys.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

import redis

log = logging.getLogger(__name__)
request_log = logging.getLogger("tryon.requests")

STREAM = "tryon:metrics:{}"
COUNTERS = "tryon:metrics:counters"
MAX_EVENTS_PER_DAY = 50_000
DAYS_KEPT = 8


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y%m%d")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))], 1)


def event_from(mode: str, provider: str, outcome: str, timings: dict[str, Any] | None, garments: int) -> dict[str, Any]:
    timings = timings or {}
    uploads = timings.get("uploads") or []
    return {
        "ts": int(time.time() * 1000),
        "request_id": timings.get("requestId", ""),
        "mode": mode,
        "provider": provider,
        "garments": garments,
        "outcome": outcome,  # "ok" or an error code
        "total_ms": timings.get("total_backend_ms", ""),
        "provider_ms": timings.get("fal_duration_ms", ""),
        "uploads": len(uploads),
        "uploads_cached": sum(1 for u in uploads if u.get("upload") in ("cached", "shared")),
    }


class Metrics:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def record(self, event: dict[str, Any]) -> None:
        """Store one event (the service writes its log line)."""
        key = STREAM.format(_day(event["ts"]))
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(key, {k: str(v) for k, v in event.items()}, maxlen=MAX_EVENTS_PER_DAY, approximate=True)
            pipe.expire(key, DAYS_KEPT * 86400)
            pipe.hincrby(COUNTERS, f"{event['mode']}|{event['outcome']}", 1)
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
        events = self.events(window_s)
        by_mode: dict[str, Any] = {}
        for mode in sorted({e.get("mode", "") for e in events}):
            mine = [e for e in events if e.get("mode") == mode]
            ok = [e for e in mine if e.get("outcome") == "ok"]
            totals = [float(e["total_ms"]) for e in ok if e.get("total_ms")]
            providers = [float(e["provider_ms"]) for e in ok if e.get("provider_ms")]
            by_mode[mode] = {
                "requests": len(mine),
                "succeeded": len(ok),
                "success_rate": round(len(ok) / len(mine), 4) if mine else None,
                "total_ms": {"p50": percentile(totals, 50), "p95": percentile(totals, 95)},
                "provider_ms": {"p50": percentile(providers, 50), "p95": percentile(providers, 95)},
            }
        uploads = sum(int(e.get("uploads") or 0) for e in events)
        cached = sum(int(e.get("uploads_cached") or 0) for e in events)
        succeeded = sum(1 for e in events if e.get("outcome") == "ok")
        errors: dict[str, int] = {}
        for e in events:
            if e.get("outcome") != "ok":
                errors[e.get("outcome", "?")] = errors.get(e.get("outcome", "?"), 0) + 1
        return {
            "window_s": window_s,
            "requests": len(events),
            "succeeded": succeeded,
            "failed": len(events) - succeeded,
            "success_rate": round(succeeded / len(events), 4) if events else None,
            "errors": errors,
            "upload_cache_hit_rate": round(cached / uploads, 4) if uploads else None,
            "by_mode": by_mode,
            "series": [
                {"ts": int(e["ts"]), "mode": e.get("mode"), "total_ms": float(e["total_ms"])}
                for e in events[-500:] if e.get("outcome") == "ok" and e.get("total_ms")
            ],
        }

    def prometheus(self) -> str:
        """Prometheus text format: all-time counters, and quantiles over the last 24 hours."""
        lines = [
            "# HELP tryon_requests_total Finished try-ons by mode and outcome (ok or error code).",
            "# TYPE tryon_requests_total counter",
        ]
        for key, count in sorted(self.redis.hgetall(COUNTERS).items()):
            mode, _, outcome = key.partition("|")
            lines.append(f'tryon_requests_total{{mode="{mode}",outcome="{outcome}"}} {count}')
        summary = self.summary()
        for metric, field, meaning in (("tryon_request_duration_ms", "total_ms", "Total backend time"),
                                       ("tryon_provider_duration_ms", "provider_ms", "Provider time")):
            lines += [f"# HELP {metric} {meaning} of successful try-ons, last 24 h.", f"# TYPE {metric} gauge"]
            for mode, stats in summary["by_mode"].items():
                for q in ("p50", "p95"):
                    if stats[field][q] is not None:
                        lines.append(f'{metric}{{mode="{mode}",quantile="0.{q[1:]}"}} {stats[field][q]}')
        if summary["upload_cache_hit_rate"] is not None:
            lines += ["# HELP tryon_upload_cache_hit_ratio Uploads served from the cache, last 24 h.",
                      "# TYPE tryon_upload_cache_hit_ratio gauge",
                      f"tryon_upload_cache_hit_ratio {summary['upload_cache_hit_rate']}"]
        return "\n".join(lines) + "\n"
