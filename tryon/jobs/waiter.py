"""The waiter: one event loop that holds every parked wait of a worker process.

A worker thread submits a job's step to the provider, writes its request id down (the job's
journal), and parks the job here instead of blocking on it: each wait is a task on one asyncio
loop that sleeps between polls (FAL: `FalProvider.poll`, fal-client's own handle run on a small
pool of threads) and, once the request is finished or its deadline has passed, hands the
job back to the worker threads, which resume it from its journal (reading the result, then the
next step or the outcome). So hundreds of looks wait at the provider on one thread, and the
worker threads only do the short parts: submits, results, writes.

The first poll comes when requests have usually been finishing (0.8 x a moving average of how
long they took, at least FIRST_POLL_S), then every NEAR_POLL_S; before that typical time is
known, polls back off from FIRST_POLL_S to MAX_POLL_S. A hundred 2 s looks in flight so cost
the provider about a hundred status calls a second (the sync path's 0.1 s would be a thousand),
and a look is seen about a tenth of a second after it is done.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

FIRST_POLL_S = 0.5
MAX_POLL_S = 1.0
BACKOFF = 1.5
NEAR_POLL_S = 0.25  # once a request has waited about as long as they usually take


@dataclass(frozen=True)
class ParkedWait:
    message_id: str
    job_id: str
    request_id: str  # as the service's provider names it (a chain's "fal:<id>")
    options: Any  # the EditOptions it was submitted with (they name the model whose queue holds it)
    deadline: float  # monotonic: past it, the job is resumed anyway (and its own wait times out)


class Parked(Exception):
    """Raised through the try-on flow to hand a submitted request's wait to the waiter."""

    def __init__(self, wait: ParkedWait):
        super().__init__(wait.request_id)
        self.wait = wait


class Waiter:
    def __init__(self, provider, on_ready: Callable[[ParkedWait], None]):
        self.provider = provider
        self.on_ready = on_ready
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="tryon-waiter", daemon=True)
        self._lock = threading.Lock()
        self._waiting: dict[str, ParkedWait] = {}  # message id -> wait
        self._stopping = False
        self._typical_s: float | None = None  # how long requests have taken to finish (a moving average)

    def start(self) -> "Waiter":
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def can_hold(self, request_id: str) -> bool:
        can_poll = getattr(self.provider, "can_poll", None)
        return can_poll is not None and can_poll(request_id)

    def hold(self, wait: ParkedWait) -> None:
        with self._lock:
            self._waiting[wait.message_id] = wait
        asyncio.run_coroutine_threadsafe(self._watch(wait), self.loop)

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def waits(self) -> list[ParkedWait]:
        with self._lock:
            return list(self._waiting.values())

    def _first_poll_s(self) -> float:
        """Near when requests have been finishing (most of the typical wait), never before FIRST_POLL_S."""
        return FIRST_POLL_S if self._typical_s is None else max(FIRST_POLL_S, 0.8 * self._typical_s)

    def _learn(self, waited_s: float) -> None:
        self._typical_s = waited_s if self._typical_s is None else 0.9 * self._typical_s + 0.1 * waited_s

    async def _watch(self, wait: ParkedWait) -> None:
        parked = time.monotonic()
        delay = self._first_poll_s()
        try:
            while not self._stopping:
                left = wait.deadline - time.monotonic()
                if left <= 0:
                    break
                await asyncio.sleep(min(delay, left))
                try:
                    if await self.provider.poll(wait.request_id, wait.options):
                        self._learn(time.monotonic() - parked)
                        break
                except Exception:  # the worker's own wait reads and reports whatever this was
                    log.debug("poll of %s failed; handing the job back", wait.request_id, exc_info=True)
                    break
                delay = NEAR_POLL_S if time.monotonic() - parked >= self._first_poll_s() else min(MAX_POLL_S, delay * BACKOFF)
        finally:
            with self._lock:
                self._waiting.pop(wait.message_id, None)
            if not self._stopping:
                self.on_ready(wait)

    def stop(self) -> list[ParkedWait]:
        """Stop polling; the waits still held (for the pool to hand back to the queue)."""
        with self._lock:
            left = list(self._waiting.values())
        self._stopping = True

        def cancel_all() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        self.loop.call_soon_threadsafe(cancel_all)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        return left
