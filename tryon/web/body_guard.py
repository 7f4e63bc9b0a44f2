"""ASGI middleware: a cap on each request body, and a budget for all bodies in flight together.

Every route is covered (REST, gradio's queue/join, call, run and upload, the login form), with or
without Content-Length. A declared length over the cap is refused before a byte is read. Any
other body is read here first, its bytes reserved from the process-wide `Budget` as they arrive
(so a client that declares a large body and sends it slowly holds only what it sent), and
replayed to the app once complete. Over the cap, or over the budget, the app never sees it: 413
`body_too_large`, or 429 `busy` with Retry-After, in the seed's shape; never a wait.

Why read here rather than count while the app reads: an error raised into the app's `receive`
comes back as the app's own answer (FastAPI: 400 `{"detail": ...}`), and its traceback keeps
the chunks read so far alive in a reference cycle until the next full garbage collection
(measured: 250 MB still held after six cut-off 130 MB bodies).
"""

from __future__ import annotations

from collections import deque

from starlette.requests import Request

from ..budget import Budget
from ..errors import InvalidRequest, TryOnError
from .rest import error_response  # the seed's shape, in the client's language

TRIM_AT = 16 << 20  # after a body this large, freed memory is given back once the budget is idle


class BodyGuard:
    def __init__(self, app, max_bytes: int, budget_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.budget = Budget(budget_bytes, trim_at=TRIM_AT)  # one per app: every request shares it

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        declared = int(declared) if declared is not None and declared.isdigit() else None
        if not declared and _header(scope, b"transfer-encoding") is None:
            return await self.app(scope, receive, send)  # no body: nothing to hold
        if declared is not None and declared > self.max_bytes:
            return await _refuse(scope, send, self._too_large(declared))
        if declared and not self.budget.fits(declared):  # it would be cut off halfway: say so now
            return await _refuse(scope, send, _busy())
        chunks: deque[bytes] = deque()
        reserved = 0  # bytes read so far, all of them held against the budget
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client left before the body was complete: no one to answer
                chunk = message.get("body", b"")
                if reserved + len(chunk) > self.max_bytes:
                    chunks.clear()
                    return await _refuse(scope, send, self._too_large(reserved + len(chunk)))
                if not self.budget.try_reserve(len(chunk)):  # exactly what arrived: a small body holds little
                    chunks.clear()
                    return await _refuse(scope, send, _busy())
                reserved += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            await self.app(scope, _replay(chunks, receive), send)
        finally:
            self.budget.release(reserved)

    def _too_large(self, size: int) -> TryOnError:
        return InvalidRequest("body_too_large", http_status=413, size_mb=size / 2**20, limit_mb=self.max_bytes / 2**20)


def _replay(chunks: deque[bytes], receive):
    """The body as the app would have read it, then the client's own messages (a disconnect)."""

    async def replayed():
        if not chunks:
            return await receive()
        chunk = chunks.popleft()  # handed over: the app's copy is the only one left
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    if not chunks:
        chunks.append(b"")
    return replayed


def _busy() -> TryOnError:
    return InvalidRequest("busy", http_status=429, seconds=2)


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value
    return None


async def _refuse(scope, send, error: TryOnError) -> None:
    async def no_body():
        return {"type": "http.disconnect"}

    await error_response(error, Request(scope))(scope, no_body, send)
