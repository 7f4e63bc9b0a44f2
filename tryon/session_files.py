"""Files in gradio's cache are served only to the browser session they were handed to.

gradio serves uploads and results at `/gradio_api/file=<path>` to anyone who knows the path. This
ASGI middleware gives every client a session cookie, notes each cache path that a response hands
to that session (upload answers, event streams, JSON results, the page's config), and answers a
file request for a cache path with 404 unless the requesting session was handed that path. Paths
outside gradio's cache (static assets) pass through to gradio's own checks.

The browser sends the cookie on same-origin requests (on Spaces the page runs in a cross-site
iframe, so over HTTPS the cookie is `SameSite=None; Secure; Partitioned`); gradio_client keeps the
cookies of its first `/config` answer and sends them on every call and download.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from urllib.parse import unquote

COOKIE = "tryon_session"
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
# Answers that can carry a path to the client; images and other files are never scanned.
SCANNED_TYPES = (b"application/json", b"text/event-stream", b"text/html", b"text/plain")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


class FileOwners:
    """path -> the sessions it was handed to; bounded, forgotten after `ttl_s` (gradio deletes
    its cache files after a day, so an older entry names a file that is gone)."""

    def __init__(self, ttl_s: float = 86400, max_paths: int = 200_000):
        self.ttl_s = ttl_s
        self.max_paths = max_paths
        self._owners: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def grant(self, path: str, session: str) -> None:
        with self._lock:
            _, sessions = self._owners.pop(path, (0.0, set()))
            sessions.add(session)
            self._owners[path] = (time.monotonic(), sessions)
            while len(self._owners) > self.max_paths:
                self._owners.popitem(last=False)

    def may_read(self, path: str, session: str | None) -> bool:
        with self._lock:
            entry = self._owners.get(path)
            if entry is None or time.monotonic() - entry[0] > self.ttl_s:
                return False
            return session is not None and session in entry[1]

    def __len__(self) -> int:
        return len(self._owners)


class SessionFiles:
    """ASGI middleware in front of the whole app (REST routes under `skip` are left alone)."""

    def __init__(self, app, cache_roots: list[str], owners: FileOwners | None = None,
                 skip: tuple[str, ...] = ("/api/", "/metrics")):
        self.app = app
        self.roots = [_canonical(root) for root in cache_roots]
        self.owners = owners or FileOwners()
        self.skip = skip
        # A cache path as it appears in JSON, HTML or a URL: the root, then up to a delimiter.
        self._paths = re.compile("|".join(re.escape(root) + r"/[^\"'\\\s<>?#&]+" for root in self.roots))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            return await self.app(scope, receive, send)
        session = _session_of(scope)
        if scope["path"].startswith(FILE_ROUTES):
            requested = scope["path"].split("file=", 1)[1] if "file=" in scope["path"] else scope["path"][len("/gradio_api/file/"):]
            path = _canonical(unquote(requested))
            if self._in_cache(path) and not self.owners.may_read(path, session):
                return await _not_found(send)
            return await self.app(scope, receive, send)

        new_session = session is None
        session = session or secrets.token_urlsafe(24)
        scanner = _PathScanner(self._paths, lambda path: self.owners.grant(_canonical(unquote(path)), session))
        scanning = False

        async def watched_send(message):
            nonlocal scanning
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = dict(headers).get(b"content-type", b"")
                encoded = dict(headers).get(b"content-encoding", b"identity") != b"identity"
                scanning = content_type.startswith(SCANNED_TYPES) and not encoded
                if new_session:
                    headers.append((b"set-cookie", _cookie(session, _is_https(scope)).encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and scanning:
                scanner.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    scanner.close()
            await send(message)

        await self.app(scope, receive, watched_send)

    def _in_cache(self, path: str) -> bool:
        return any(path == root or path.startswith(root + "/") for root in self.roots)


class _PathScanner:
    """Finds cache paths in a streamed body; keeps a tail so a path split across chunks is found."""

    TAIL = 4096

    def __init__(self, pattern: re.Pattern, found):
        self.pattern = pattern
        self.found = found
        self.tail = ""

    def feed(self, chunk: bytes) -> None:
        text = self.tail + chunk.decode("utf-8", "replace")
        last_end = 0
        for match in self.pattern.finditer(text):
            if match.end() == len(text):
                break  # may continue in the next chunk
            self.found(match.group(0))
            last_end = match.end()
        self.tail = text[max(last_end, len(text) - self.TAIL):]

    def close(self) -> None:
        for match in self.pattern.finditer(self.tail):
            self.found(match.group(0))
        self.tail = ""


def _canonical(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _session_of(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return session_from_cookies(value.decode("latin-1"))
    return None


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


async def _not_found(send) -> None:
    # 404, not 403: a path of another session's photo is not confirmed to exist.
    body = b'{"detail":"File not found."}'
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
