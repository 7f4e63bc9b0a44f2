"""Files in gradio's cache are served only to the browser session they were handed to.

gradio serves uploads and results at `/gradio_api/file=<path>` to anyone who knows the path. This
ASGI middleware gives every client a session cookie (and puts a new one into the request itself,
so the event it triggers already belongs to that session) and answers a file request for a path
under the app's folders with 404 unless that session was handed the path. What a session was
handed is noted from two places the app itself controls, never from text in answers: gradio's
upload route (its JSON list of stored paths) and every event's output
(`file_gate.GatedBlocks`). Paths outside the app's folders (static assets) pass through to
gradio's own checks.

The browser sends the cookie on same-origin requests (on Spaces the page runs in a cross-site
iframe, so over HTTPS the cookie is `SameSite=None; Secure; Partitioned`); gradio_client keeps the
cookies of its first `/config` answer and sends them on every call and download.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from urllib.parse import unquote

COOKIE = "tryon_session"
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
UPLOAD_ROUTE = "/gradio_api/upload"
MAX_UPLOAD_ANSWER = 1 << 20  # the JSON list of stored paths; larger is not an upload answer
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


class FileOwners:
    """path -> the sessions it was handed to; bounded, forgotten after `ttl_s` (gradio deletes
    its cache files after a day, so an older entry names a file that is gone)."""

    def __init__(self, ttl_s: float = 86400, max_paths: int = 200_000):
        self.ttl_s = ttl_s
        self.max_paths = max_paths
        self._owners: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        self._public: set[str] = set()
        self._lock = threading.Lock()

    def grant(self, path: str, session: str) -> None:
        with self._lock:
            _, sessions = self._owners.pop(path, (0.0, set()))
            sessions.add(session)
            self._owners[path] = (time.monotonic(), sessions)
            while len(self._owners) > self.max_paths:
                self._owners.popitem(last=False)

    def publish(self, path: str) -> None:
        """A file of the page itself, for every session, for as long as the app runs."""
        with self._lock:
            self._public.add(path)

    def may_read(self, path: str, session: str | None) -> bool:
        with self._lock:
            if path in self._public:
                return True
            entry = self._owners.get(path)
            if entry is None or time.monotonic() - entry[0] > self.ttl_s:
                return False
            return session is not None and session in entry[1]

    def __len__(self) -> int:
        return len(self._owners)


class SessionFiles:
    """ASGI middleware in front of the whole app (REST routes under `skip` are left alone)."""

    def __init__(self, app, cache_roots: list[str], owners: FileOwners | None = None,
                 skip: tuple[str, ...] = ("/api/", "/metrics", "/gradio_api/mcp")):
        # MCP is skipped: its tool arguments are URLs or data: URLs (never server paths), and gradio's
        # MCP bridge replays the caller's headers on its own loopback calls, so a cookie given to the
        # caller would put the bridge's join in a different session from the bridge's upload.
        self.app = app
        self.roots = [canonical(root) for root in cache_roots]
        self.owners = owners if owners is not None else FileOwners()
        self.skip = skip

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            return await self.app(scope, receive, send)
        session = _session_of(scope)
        if scope["path"].startswith(FILE_ROUTES):
            return await self._serve_file(scope, receive, send, session)

        new_session = session is None
        if new_session:
            session = secrets.token_urlsafe(24)
            scope = {**scope, "headers": _with_cookie(scope.get("headers", []), session)}
        upload = scope["path"] == UPLOAD_ROUTE and scope.get("method") == "POST"
        answer = bytearray()
        status = 0

        async def watched_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if new_session:
                    headers.append((b"set-cookie", _cookie(session, _is_https(scope)).encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and upload and status == 200:
                if len(answer) <= MAX_UPLOAD_ANSWER:
                    answer.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    self._grant_uploads(bytes(answer), session)  # before the client can ask for them
            await send(message)

        await self.app(scope, receive, watched_send)

    async def _serve_file(self, scope, receive, send, session):
        route = scope["path"]
        requested = route.split("file=", 1)[1] if "file=" in route else route[len("/gradio_api/file/"):]
        try:
            path = canonical(unquote(requested))
        except ValueError:  # an embedded NUL: no file has that name
            return await _answer(send, 400, b'{"detail":"Malformed file path."}')
        if self._in_roots(path) and not self.owners.may_read(path, session):
            return await _answer(send, 404, b'{"detail":"File not found."}')
        return await self.app(scope, receive, send)

    def _grant_uploads(self, body: bytes, session: str) -> None:
        """gradio's upload answer is the JSON list of the paths it stored."""
        try:
            paths = json.loads(body)
        except ValueError:
            return
        for path in paths if isinstance(paths, list) else []:
            if isinstance(path, str):
                try:
                    path = canonical(path)
                except ValueError:
                    continue
                if self._in_roots(path):
                    self.owners.grant(path, session)

    def _in_roots(self, path: str) -> bool:
        return any(path == root or path.startswith(root + os.sep) for root in self.roots)


def canonical(path: str) -> str:
    """One spelling per file (absolute, `..` and symlinks resolved); ValueError for an embedded NUL."""
    if "\x00" in path:
        raise ValueError("embedded NUL")
    return os.path.realpath(os.path.abspath(path))


def session_of(request) -> str | None:
    """The session a gradio request (gr.Request, or anything with headers) belongs to."""
    return session_from_cookies((getattr(request, "headers", None) or {}).get("cookie"))


def _session_of(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return session_from_cookies(value.decode("latin-1"))
    return None


def _with_cookie(headers, session: str) -> list:
    """The request's headers with the new session added to its Cookie header (or as one)."""
    addition = f"{COOKIE}={session}".encode()
    others = [(name, value) for name, value in headers if name != b"cookie"]
    cookies = [value for name, value in headers if name == b"cookie"]
    return others + [(b"cookie", b"; ".join([*cookies, addition]))]


def session_from_cookies(header: str | None) -> str | None:
    """The session token in a Cookie header, if it carries a well-formed one."""
    for part in (header or "").split(";"):
        key, _, token = part.strip().partition("=")
        if key == COOKIE and _TOKEN.match(token):
            return token
    return None


def _is_https(scope) -> bool:
    forwarded = dict(scope.get("headers", [])).get(b"x-forwarded-proto", b"").split(b",")[0].strip()
    return scope.get("scheme") == "https" or forwarded == b"https"


def _cookie(session: str, https: bool) -> str:
    # Over HTTPS (Spaces) the page is a cross-site iframe: a partitioned third-party cookie works
    # there; plain HTTP (local runs) can only use a first-party Lax cookie.
    where = "SameSite=None; Secure; Partitioned" if https else "SameSite=Lax"
    return f"{COOKIE}={session}; Path=/; HttpOnly; {where}"


async def _answer(send, status: int, body: bytes) -> None:
    # 404, not 403, for another session's file: its existence is not confirmed.
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
