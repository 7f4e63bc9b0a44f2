"""Run a blocking vendor-client call, but never wait for it past a deadline.

fal-client retries each queue call itself (up to 10 attempts with back-off) and gives each a
120 s read timeout, so a status poll against a hung or flapping FAL can take minutes. Its
functions take no deadline of ours, and we do not patch them: the call runs on a daemon thread
and the caller stops waiting when the deadline passes. The thread finishes (or fails) on its own
later; its outcome is dropped.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")


class DeadlinePassed(Exception):
    """The call was still running when the deadline came."""


def call_before(deadline: float, call: Callable[[], T], name: str = "vendor-call",
                on_late: Callable[[T], None] | None = None) -> T:
    """`call()`'s value or exception, if it comes before `deadline` (time.monotonic()); else
    DeadlinePassed. A value that arrives after the caller gave up goes to `on_late` (e.g. cancel
    a request that a retried submit created when nobody was waiting for it any more)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlinePassed()
    outcome: list = []
    lock = threading.Lock()
    done = threading.Event()
    abandoned = False

    def run() -> None:
        try:
            result = (True, call())
        except BaseException as error:  # handed to the caller, who decides
            result = (False, error)
        with lock:
            outcome.append(result)
            late = abandoned
        done.set()
        if late and result[0] and on_late is not None:
            on_late(result[1])

    threading.Thread(target=run, name=name, daemon=True).start()
    if not done.wait(remaining):
        with lock:
            if not outcome:
                abandoned = True
        if abandoned:
            raise DeadlinePassed()
    ok, value = outcome[0]
    if ok:
        return value
    raise value
