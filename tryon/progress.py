"""What a try-on is doing right now, for whoever is watching it (the page's status line).

The service and the providers call `report(phase, **facts)` at each step; a caller that wants
to hear them wraps its call in `listening(callback)`. A context variable, not a parameter threaded
through every provider: the chain, the providers and the service all run in the caller's
thread, and a call nobody listens to costs one lookup.

Phases: "uploading" (count), "applying" (step, total), "queued" (position, when the provider
says it), "running", "fetching".
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

Listener = Callable[[str, dict[str, Any]], None]

_listener: ContextVar[Listener | None] = ContextVar("tryon_progress_listener", default=None)


def report(phase: str, **facts: Any) -> None:
    """Tell the current listener (if any) what is happening; never raises into the try-on."""
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(phase, facts)
    except Exception:  # a broken status line must not fail the look
        pass


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Within this block, `report()` calls reach `listener(phase, facts)`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
