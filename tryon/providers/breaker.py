"""A circuit breaker per provider: after `failures` outages in a row, skip it for `cooldown_s`.

Closed: calls go through. Open: calls are skipped until the cool-down ends. Then one call is let
through (half-open); its success closes the breaker, its failure opens it for another cool-down.
"""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, failures: int = 3, cooldown_s: float = 60.0, clock=time.monotonic):
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a call go to this provider now? In half-open state, only one caller gets a yes."""
        with self._lock:
            if self._failures < self.threshold:
                return True
            if self._clock() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._probing = 0, False

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            self._probing = False
            if self._failures >= self.threshold:
                self._open_until = self._clock() + self.cooldown_s

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a call through again (0 when closed)."""
        with self._lock:
            if self._failures < self.threshold:
                return 0.0
            return max(0.0, self._open_until - self._clock())

    @property
    def state(self) -> str:
        with self._lock:
            if self._failures < self.threshold:
                return "closed"
            return "open" if self._clock() < self._open_until else "half-open"
