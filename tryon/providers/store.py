"""Where the offline preview keeps its pictures: `local:<sha256>` -> encoded image.

With the app's Redis, every picture is the string `tryon:preview:<sha256 of its bytes>`, expiring
with the job TTL (a put of a stored picture starts its TTL again), so any replica, a restarted app
or a `python -m tryon.worker` on another machine finds every reference a job record holds. A small
LRU in memory sits in front; a picture read from Redis is hashed again before it is used. Without
Redis (tests, benchmarks) the LRU is the store.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict

import redis
from redis.client import NEVER_DECODE

from ..errors import ProviderError

log = logging.getLogger(__name__)

REF_PREFIX = "local:"
KEY = "tryon:preview:{}"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def unknown() -> ProviderError:
    return ProviderError("unknown_reference", http_status=400)


class ImageStore:
    """Thread-safe. Memory: at most `capacity` pictures and `max_bytes` (128 and 64 MiB by default)."""

    def __init__(self, client: redis.Redis | None = None, ttl_s: float | None = None,
                 capacity: int = 128, max_bytes: int = 64 * 2**20):
        if client is not None and not ttl_s:
            raise ValueError("pictures in Redis need a TTL")  # photos of people: nothing kept for ever
        self.redis = client
        self.ttl_s = ttl_s
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # digest -> (data, stored at)
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.redis is not None:
            key, ttl_ms = KEY.format(digest), max(1, int(self.ttl_s * 1000))
            # Stored already (an input uploaded again): its TTL starts again, without sending the bytes.
            if not self.redis.pexpire(key, ttl_ms):
                self.redis.set(key, data, px=ttl_ms)
        self._remember(digest, data, time.time())
        return REF_PREFIX + digest

    def get(self, ref: str) -> bytes:
        digest = ref[len(REF_PREFIX):] if ref.startswith(REF_PREFIX) else ""
        if not _DIGEST.fullmatch(digest):
            raise unknown()
        now = time.time()
        with self._lock:
            item = self._items.get(digest)
            if item is not None and not self._expired(item[1], now):
                self._items.move_to_end(digest)
                return item[0]
        if self.redis is None:
            raise unknown()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.execute_command("GET", KEY.format(digest), **{NEVER_DECODE: []})
            pipe.pttl(KEY.format(digest))
            data, left_ms = pipe.execute()
        if data is None:
            raise unknown()
        if hashlib.sha256(data).hexdigest() != digest:
            log.warning("preview picture %s refused and removed: its content does not match its name", digest[:12])
            self.redis.delete(KEY.format(digest))
            raise unknown()
        # Kept in memory no longer than in Redis: stamped as if stored when its TTL last started.
        self._remember(digest, data, now - max(0.0, self.ttl_s - max(0, left_ms) / 1000))
        return data

    def _expired(self, stamp: float, now: float) -> bool:
        return self.ttl_s is not None and now - stamp > self.ttl_s

    def _remember(self, digest: str, data: bytes, stamp: float) -> None:
        with self._lock:
            old = self._items.pop(digest, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._items[digest] = (data, stamp)
            self._bytes += len(data)
            while self._items and (len(self._items) > self.capacity or self._bytes > self.max_bytes):
                _, (dropped, _) = self._items.popitem(last=False)
                self._bytes -= len(dropped)
