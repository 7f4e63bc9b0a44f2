"""TTLCache and SingleFlight: the building blocks of the upload cache."""

from __future__ import annotations

import threading
import time

import pytest

from tryon.cache import SingleFlight, TTLCache


def test_entries_expire_and_the_oldest_is_evicted():
    cache = TTLCache(capacity=2)
    cache.put("a", 1, ttl_s=0.05)
    cache.put("b", 2)
    assert cache.get("a") == 1
    time.sleep(0.08)
    assert cache.get("a") is None
    cache.put("c", 3)
    cache.put("d", 4)
    assert cache.get("b") is None and cache.get("c") == 3 and len(cache) == 2


def test_single_flight_runs_once_for_concurrent_callers():
    flight = SingleFlight()
    runs, results = [], []
    started = threading.Event()

    def work():
        runs.append(1)
        started.set()
        time.sleep(0.1)
        return "value"

    def call():
        results.append(flight.run("k", work))

    first = threading.Thread(target=call)
    first.start()
    started.wait()
    others = [threading.Thread(target=call) for _ in range(3)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join()
    assert len(runs) == 1
    assert sorted(results) == [("value", False)] + [("value", True)] * 3


def test_single_flight_shares_the_failure_and_then_retries():
    flight = SingleFlight()
    with pytest.raises(RuntimeError):
        flight.run("k", lambda: (_ for _ in ()).throw(RuntimeError("upload failed")))
    assert flight.run("k", lambda: "ok") == ("ok", False)
