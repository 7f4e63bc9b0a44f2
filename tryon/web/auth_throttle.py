"""ASGI middleware: failed logins and failed keys cost a token from a bucket per client address.

gradio's login check gets no request, so it cannot tell one guesser from another; here, in front
of everything, each answer that means "wrong credentials" (gradio's `/login` 400, a 401 from the
REST API, `/metrics` or the MCP routes) takes a token from that address's bucket. While the bucket
is empty, those routes answer 429 with Retry-After, whatever the credentials, until it refills.
Successes cost nothing. While an address is refused, its login page says why (gradio's page
shows the `auth_message` of its 401 `/config` answer; its login form shows nothing for a 429).
The buckets are in Redis (`access.RateLimiter`), so an address's failures count on every replica;
each bucket call runs on a worker thread, so a slow Redis never holds up the event loop.
"""

from __future__ import annotations

import math

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from .access import GradioLogins, RateLimiter
from ..errors import InvalidRequest, pick_language
from .mcp_guard import is_mcp
from .rest import error_response

LOGIN = ("/login", "/login/")
CONFIG = ("/config", "/config/")
REFUSED = {
    "en": "Too many failed logins from your address. Try again in {seconds} s.",
    "es": "Demasiados inicios de sesión fallidos desde tu dirección. Inténtalo de nuevo en {seconds} s.",
}


def failure_status(method: str, path: str) -> tuple[int | None, bool]:
    """(the status that means "wrong credentials" on this route, or None; whether it pays first)."""
    # Logins, /metrics and MCP decide on the credentials before they answer: each takes its token
    # first (so a burst of parallel guesses cannot all pass) and gets it back unless it failed.
    # REST answers only after its work (a generate may take a minute): its 401s are counted after.
    if path in LOGIN:
        return (400 if method == "POST" else None), True  # gradio: 400 "Incorrect credentials."
    if path == "/metrics" or is_mcp(path):
        return 401, True
    if path.startswith("/api/"):
        return 401, False
    return None, False


class AuthThrottle:
    def __init__(self, app, limiter: RateLimiter, logins: GradioLogins | None = None):
        self.app = app
        self.limiter = limiter
        self.logins = logins  # None: no gradio login configured

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope["client"][0] if scope.get("client") else "?"
        path = scope["path"]
        failed, pay_first = failure_status(scope["method"], path)
        if failed is None:
            if path in CONFIG and self.logins is not None and (wait := await run_in_threadpool(self.limiter.wait, client)):
                conn = HTTPConnection(scope)
                if self.logins.user(conn.cookies) is None:
                    detail = {"error": "Not authenticated", "auth_message": _refused_text(conn, wait)}
                    return await JSONResponse({"detail": detail}, status_code=401)(scope, receive, send)
            return await self.app(scope, receive, send)
        if pay_first:
            allowed, wait = await run_in_threadpool(self.limiter.allow, client)
        else:
            wait = await run_in_threadpool(self.limiter.wait, client)
            allowed = wait == 0
        if not allowed:
            return await self._refuse(scope, receive, send, wait)
        settled = False

        async def settle(status: int | None) -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            if pay_first and status != failed:
                await run_in_threadpool(self.limiter.refund, client)
            elif not pay_first and status == failed:
                await run_in_threadpool(self.limiter.allow, client)

        async def watched_send(message):
            if message["type"] == "http.response.start":
                await settle(message["status"])  # at the start: an MCP event stream may stay open for long
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            with anyio.CancelScope(shield=True):  # a client gone mid-request still settles its token
                await settle(None)

    async def _refuse(self, scope, receive, send, wait: float) -> None:
        conn = HTTPConnection(scope)
        if scope["path"] in LOGIN:
            response = JSONResponse({"detail": _refused_text(conn, wait)}, status_code=429,
                                    headers={"Retry-After": str(math.ceil(wait))})
        else:
            response = error_response(InvalidRequest("rate_limited", http_status=429, seconds=wait), conn)
        await response(scope, receive, send)


def _refused_text(conn: HTTPConnection, wait: float) -> str:
    return REFUSED[pick_language(conn.headers.get("accept-language"))].format(seconds=math.ceil(wait))
