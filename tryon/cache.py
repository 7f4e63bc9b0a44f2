"""Two small concurrency-safe building blocks for not doing the same work twice.

TTLCache: a bounded LRU map whose entries may expire (provider URLs do).
SingleFlight: concurrent calls for the same key share one execution; the UI
starts an upload when a photo is dropped, and "Try on" pressed a moment later
waits for that upload instead of starting a second one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            value, expires_at = item
            if expires_at <= time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V, ttl_s: float | None = None) -> None:
        expires_at = time.monotonic() + ttl_s if ttl_s is not None else float("inf")
        with self._lock:
            self._items[key] = (value, expires_at)
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self._pending: dict[Hashable, Future] = {}
        self._lock = threading.Lock()

    def run(self, key: Hashable, work: Callable[[], V]) -> tuple[V, bool]:
        """(value, shared): shared is True when another caller's run for `key` produced the value."""
        with self._lock:
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = Future()
        if not owner:
            return pending.result(), True
        try:
            value = work()
        except BaseException as error:
            pending.set_exception(error)
            raise
        else:
            pending.set_result(value)
            return value, False
        finally:
            with self._lock:
                self._pending.pop(key, None)
