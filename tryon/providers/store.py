"""Where the offline preview keeps its pictures: `local:<sha256>` -> encoded image.

With a directory (the app's `<data dir>/preview`), every picture is a file named by
the sha256 of its bytes, so a restarted app, or a `python -m tryon.worker` on the
same data dir, finds every reference a job record holds. A small LRU in memory
sits in front. Files expire with the job TTL: at most once a minute, a put removes
those older than it. Without a directory (tests, benchmarks) the LRU is the store.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

from ..errors import ProviderError

log = logging.getLogger(__name__)

REF_PREFIX = "local:"
SWEEP_EVERY_S = 60.0
TEMP_GRACE_S = 60.0  # a temp file this old was left by a process killed mid-write
_DIGEST = re.compile(r"[0-9a-f]{64}")


def unknown() -> ProviderError:
    return ProviderError("unknown_reference", http_status=400)


class ImageStore:
    """Thread-safe. Memory: at most `capacity` pictures and `max_bytes` (128 and 64 MiB by default)."""

    def __init__(self, directory: Path | str | None = None, ttl_s: float | None = None,
                 capacity: int = 128, max_bytes: int = 64 * 2**20):
        self.directory = Path(directory) if directory is not None else None
        self.ttl_s = ttl_s
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # digest -> (data, stored at)
        self._bytes = 0
        self._lock = threading.Lock()
        self._next_sweep = 0.0
        if self.directory is not None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # photos of people: ours only

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        now = time.time()
        if self.directory is not None:
            try:
                self._write(digest, data)
            except OSError as error:  # e.g. a full disk: still served from memory, as before
                log.warning("preview picture %s kept in memory only: %s", digest[:12], error.strerror)
            self._maybe_sweep(now)
        self._remember(digest, data, now)
        return REF_PREFIX + digest

    def get(self, ref: str) -> bytes:
        digest = ref[len(REF_PREFIX):] if ref.startswith(REF_PREFIX) else ""
        if not _DIGEST.fullmatch(digest):  # also keeps any path out of the file name
            raise unknown()
        now = time.time()
        with self._lock:
            item = self._items.get(digest)
            if item is not None and not self._expired(item[1], now):
                self._items.move_to_end(digest)
                return item[0]
        if self.directory is None:
            raise unknown()
        data, stamp = self._read(digest, now)
        self._remember(digest, data, stamp)
        return data

    def sweep(self, now: float | None = None) -> int:
        """Remove expired pictures and temp files left by a crash; returns how many."""
        if self.directory is None:
            return 0
        now = time.time() if now is None else now
        removed = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.endswith(".tmp"):
                    limit = TEMP_GRACE_S
                elif entry.name.endswith(".jpg") and self.ttl_s is not None:
                    limit = self.ttl_s
                else:
                    continue
                try:
                    if now - entry.stat().st_mtime > limit:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass  # another process on this data dir swept it first
        return removed

    def _path(self, digest: str) -> Path:
        return self.directory / f"{digest}.jpg"

    def _expired(self, stamp: float, now: float) -> bool:
        return self.ttl_s is not None and now - stamp > self.ttl_s

    def _write(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        try:
            if path.read_bytes() == data:
                os.utime(path)  # stored already: this use starts its TTL again
                return
        except FileNotFoundError:
            pass
        # Written aside, then renamed: a reader (or a restart after kill -9) never sees half a
        # picture. No fsync: a crash of the process keeps the page cache; see docs/RELIABILITY.md.
        temp = path.with_name(f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            temp.write_bytes(data)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)

    def _read(self, digest: str, now: float) -> tuple[bytes, float]:
        path = self._path(digest)
        try:
            with open(path, "rb") as file:
                stamp = os.fstat(file.fileno()).st_mtime
                data = file.read()
        except FileNotFoundError:
            raise unknown() from None
        if self._expired(stamp, now):
            path.unlink(missing_ok=True)
            raise unknown()
        if hashlib.sha256(data).hexdigest() != digest:
            log.warning("preview picture %s refused and removed: its content does not match its name", path.name)
            path.unlink(missing_ok=True)
            raise unknown()
        return data, stamp

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

    def _maybe_sweep(self, now: float) -> None:
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_EVERY_S
        try:
            self.sweep(now)
        except OSError as error:
            log.warning("preview sweep failed: %s", error)
