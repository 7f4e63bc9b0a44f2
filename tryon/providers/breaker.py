"""A circuit breaker per provider: after `failures` outages in a row, skip it for `cooldown_s`.

Closed: calls go through. Open: calls are skipped until the cool-down ends. Then one call is let
through (half-open); its success closes the breaker, its failure opens it for another cool-down.

`SharedCircuitBreaker` keeps that state in Redis, so every app process behind a load balancer (and
every `python -m tryon.worker`) agrees: one replica seeing FAL down opens FAL's breaker for all,
and the half-open probe goes to one caller in all of them. `CircuitBreaker` is the same in one
process's memory, for a chain built without Redis (tests, benchmarks).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import redis

from ..redis_server import LUA_NOW

log = logging.getLogger(__name__)

KEY = "tryon:breaker:{}"  # hash: failures (in a row), open_until (seconds on the breaker's clock)
PROBE_KEY = "tryon:breaker:{}:probe"  # SET NX PX: the one caller let through while half-open
FORGET_AFTER_S = 300.0  # a breaker untouched this long past its cool-down starts closed again
PROBE_S = 120.0  # a probe whose caller never reports (its process died) is given to another caller after this


class _Readings:
    """What a breaker tells from its `status()`, in memory or in Redis alike."""

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a call through again (0 when closed)."""
        return self.status()[1]

    @property
    def state(self) -> str:
        return self.status()[0]


class CircuitBreaker(_Readings):
    """In one process's memory."""

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


    def status(self) -> tuple[str, float]:
        """(state, retry_in) read together."""
        with self._lock:
            if self._failures < self.threshold:
                return "closed", 0.0
            wait = self._open_until - self._clock()
            return ("open", wait) if wait > 0 else ("half-open", 0.0)


# Every script takes ARGV[1] = now on the caller's clock, or "" for Redis's own (one clock for all
# replicas). Numbers go back as strings: Redis turns a Lua number into an integer.
_NOW = LUA_NOW

_ALLOW = _NOW + """
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures < tonumber(ARGV[2]) then return 1 end
if now < tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

_FAILED = _NOW + """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('DEL', KEYS[2])
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + tonumber(ARGV[3])))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return failures
"""

_STATUS = _NOW + """
return {redis.call('HGET', KEYS[1], 'failures') or '0', redis.call('HGET', KEYS[1], 'open_until') or '0', tostring(now)}
"""


class SharedCircuitBreaker(_Readings):
    """The same breaker with its state in Redis, for the provider `name`: every process that builds
    one with that name shares it. Each update is one Lua script (atomic); the half-open probe is a
    `SET NX PX` key, so one caller among all processes gets it. `clock` (seconds): the tests'; by
    default Redis's `TIME`, the one clock every replica reads. With Redis unreachable the breaker
    stays out of the way (closed): it must not stop calls that the provider could serve."""

    def __init__(self, client: redis.Redis, name: str, failures: int = 3, cooldown_s: float = 60.0,
                 clock: Callable[[], float] | None = None, probe_s: float = PROBE_S):
        self.redis = client
        self.name = name
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.probe_s = probe_s
        self._clock = clock
        self._keys = [KEY.format(name), PROBE_KEY.format(name)]
        self._expiry_ms = int((cooldown_s + FORGET_AFTER_S) * 1000)
        self._allow = client.register_script(_ALLOW)
        self._failed = client.register_script(_FAILED)
        self._status = client.register_script(_STATUS)
        self._warned = float("-inf")

    def _now(self) -> str:
        return "" if self._clock is None else repr(float(self._clock()))

    def _unreachable(self, error: redis.RedisError) -> None:
        if time.monotonic() - self._warned > 60:  # once a minute, not once a call
            self._warned = time.monotonic()
            log.warning("breaker %s: Redis unreachable (%s); treated as closed", self.name, type(error).__name__)

    def allow(self) -> bool:
        """May a call go to this provider now? In half-open state, only one caller (of every process) gets a yes."""
        try:
            return bool(self._allow(keys=self._keys, args=[self._now(), self.threshold, max(1, int(self.probe_s * 1000))]))
        except redis.RedisError as error:
            self._unreachable(error)
            return True

    def succeeded(self) -> None:
        try:
            self.redis.delete(*self._keys)
        except redis.RedisError as error:
            self._unreachable(error)

    def failed(self) -> None:
        try:
            self._failed(keys=self._keys, args=[self._now(), self.threshold, repr(float(self.cooldown_s)), self._expiry_ms])
        except redis.RedisError as error:
            self._unreachable(error)


    def status(self) -> tuple[str, float]:
        """(state, retry_in) in one round trip."""
        try:
            failures, open_until, now = self._status(keys=self._keys, args=[self._now()])
        except redis.RedisError as error:
            self._unreachable(error)
            return "closed", 0.0
        if int(failures) < self.threshold:
            return "closed", 0.0
        wait = float(open_until) - float(now)
        return ("open", wait) if wait > 0 else ("half-open", 0.0)
