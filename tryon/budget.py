"""Process-wide budgets for what requests in flight may hold in memory, and giving it back.

Per-request caps do not bound the process: six bodies just under the REST cap, or four submits
of five 49 MP PNGs, each pass every check and together take gigabytes. A `Budget` is one shared
allowance (body bytes, decoded pixels) that a request reserves before it holds the memory and
releases after. What is left over is given back to the system with glibc's `malloc_trim`:
Pillow's and Python's large buffers otherwise stay in malloc's arenas after they are freed
(measured in docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
import time
from typing import Callable, Iterator

from .errors import InvalidRequest


class Budget:
    """`capacity` units shared by everyone; reservations wait (bounded) or are refused, never hang."""

    def __init__(self, capacity: int, trim_at: int = 0):
        self.capacity = capacity
        self.trim_at = trim_at  # a hold this large gives memory back when the budget empties
        self.in_use = 0
        self._cond = threading.Condition()

    def fits(self, amount: int) -> bool:
        # More than the whole budget still goes through when nothing else is held, alone.
        return self.in_use + amount <= self.capacity or self.in_use == 0

    def try_reserve(self, amount: int) -> bool:
        with self._cond:
            if not self.fits(amount):
                return False
            self.in_use += amount
            return True

    def reserve(self, amount: int, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for room; False if there was none (threads only, never the event loop)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self.fits(amount):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self.in_use += amount
            return True

    def release(self, amount: int) -> None:
        with self._cond:
            self.in_use = max(0, self.in_use - amount)
            idle = self.in_use == 0
            self._cond.notify_all()
        if idle and amount >= self.trim_at:
            _trimmer.soon(lambda: self.in_use == 0)

    @contextlib.contextmanager
    def hold(self, amount: int, timeout_s: float) -> Iterator[None]:
        """Hold `amount` for the block; past the wait, the request fails with `busy` (429, Retry-After)."""
        if not self.reserve(amount, timeout_s):
            raise InvalidRequest("busy", http_status=429, seconds=2)
        try:
            yield
        finally:
            self.release(amount)


def _glibc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc (musl, macOS): nothing to call
        return None


_LIBC = _glibc()
_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
BIG_IMAGE_BLOCK = 64 << 20  # above glibc's largest mmap threshold (32 MiB): always its own mapping


def tune_memory(arenas: int = 2) -> None:
    """Make freed image memory go back to the system instead of staying in malloc's arenas.

    Pillow allocates a big image in blocks (16 MiB by default); glibc serves blocks below its
    mmap threshold (which it raises up to 32 MiB as big blocks come and go) from per-thread arenas
    that keep them after free. 64 MiB blocks are always mapped on their own and unmapped on free,
    and fewer arenas (one per thread by default) keep less free memory each. Measured in
    docs/RELIABILITY.md; call once, before the intake threads start.
    """
    from PIL import Image

    Image.core.set_block_size(BIG_IMAGE_BLOCK)
    if _LIBC is not None and "MALLOC_ARENA_MAX" not in os.environ:  # the operator's own choice wins
        _LIBC.mallopt(_M_ARENA_MAX, arenas)


def give_back_memory() -> bool:
    """Return malloc's free pages to the system (glibc only); True if it ran."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True


class _Trimmer:
    """One trim a moment after a budget goes idle, off the request's thread: a trim locks malloc's
    arenas while it walks them, and in the middle of a burst it would only make the next decode
    fault the same pages in again."""

    def __init__(self, delay_s: float = 0.5):
        self.delay_s = delay_s
        self._pending = False
        self._lock = threading.Lock()

    def soon(self, still_idle: Callable[[], bool]) -> None:
        with self._lock:
            if self._pending:
                return
            self._pending = True
        timer = threading.Timer(self.delay_s, self._run, args=(still_idle,))
        timer.daemon = True
        timer.start()

    def _run(self, still_idle: Callable[[], bool]) -> None:
        with self._lock:
            self._pending = False
        if still_idle():
            give_back_memory()


_trimmer = _Trimmer()
