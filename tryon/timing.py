"""The timing record every try-on returns, with the seed's field names.

Durations come from a monotonic clock (perf_counter); the two `*_ts` fields
are wall-clock epoch milliseconds, as the seed's clients expect.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

_first_request = True
_first_request_lock = threading.Lock()


def claim_cold_start() -> bool:
    """True exactly once per process: for its first request (the seed's `cold_start`)."""
    global _first_request
    with _first_request_lock:
        cold, _first_request = _first_request, False
    return cold


def elapsed_ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


class RequestTimer:
    """Collects one request's timing record as it goes."""

    def __init__(self, mode: str, provider: str, request_id: str | None = None):
        self.started = time.perf_counter()
        self.record: dict[str, Any] = {
            "requestId": request_id or uuid.uuid4().hex,
            "mode": mode,
            "provider": provider,
            "be_received_ts": int(time.time() * 1000),
            "cold_start": claim_cold_start(),
        }
        self.provider_calls: list[float] = []

    def add(self, name: str, ms: float) -> None:
        self.record[name] = round(ms, 1)

    def provider_call(self, ms: float) -> None:
        self.provider_calls.append(ms)
        self.record[f"fal_call_{len(self.provider_calls)}"] = round(ms, 1)

    def finish(self, **extra: Any) -> dict[str, Any]:
        """Close the record: totals, overhead and the response timestamp."""
        total = (time.perf_counter() - self.started) * 1000
        provider_total = sum(self.provider_calls)
        self.record.update(extra)
        self.record["fal_duration_ms"] = round(provider_total, 1)
        self.record["total_backend_ms"] = round(total, 1)
        self.record["backend_overhead_ms"] = round(total - provider_total, 1)
        self.record["be_response_sent_ts"] = int(time.time() * 1000)
        return self.record
