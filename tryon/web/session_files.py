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

COOKIE = "tryon_session"
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
UPLOAD_ROUTE = "/gradio_api/upload"
MAX_UPLOAD_ANSWER = 1 << 20  # the JSON list of stored paths; larger is not an upload answer
MAX_GRANTS_PER_UPLOAD = 20
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


class FileOwners:
    """path -> the sessions it was handed to; bounded, forgotten after `ttl_s` (gradio deletes
    its cache files after a day, so an older entry names a file that is gone). A session holds at
    most `max_per_session` paths: past that its own oldest go, so one session's flood does not push
    other sessions' files out (the global bound still holds against many sessions at once)."""

    def __init__(self, ttl_s: float = 86400, max_paths: int = 200_000, max_per_session: int = 1_000):
        self.ttl_s = ttl_s
        self.max_paths = max_paths
        self.max_per_session = max_per_session
        self._owners: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        self._held: dict[str, OrderedDict[str, None]] = {}  # session -> its paths, oldest first
        self._public: set[str] = set()
        self._lock = threading.Lock()

    def grant(self, path: str, session: str) -> None:
        with self._lock:
            _, sessions = self._owners.pop(path, (0.0, set()))
            sessions.add(session)
            self._owners[path] = (time.monotonic(), sessions)
            held = self._held.setdefault(session, OrderedDict())
            held.pop(path, None)
            held[path] = None
            if len(held) > self.max_per_session:
                self._revoke(next(iter(held)), session)
            while len(self._owners) > self.max_paths:
                oldest, (_, owners) = self._owners.popitem(last=False)
                for owner in owners:
                    self._forget(owner, oldest)

    def _revoke(self, path: str, session: str) -> None:
        self._forget(session, path)
        entry = self._owners.get(path)
        if entry is not None:
            entry[1].discard(session)
            if not entry[1]:
                del self._owners[path]

    def _forget(self, session: str, path: str) -> None:
        held = self._held.get(session)
        if held is not None:
            held.pop(path, None)
            if not held:
                del self._held[session]

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
        try:  # scope["path"] is already percent-decoded: decoding again would misname "a%41.png"
            path = canonical(requested)
        except ValueError:  # an embedded NUL: no file has that name
            return await _answer(send, 400, b'{"detail":"Malformed file path."}')
        if is_under(path, self.roots) and not self.owners.may_read(path, session):
            return await _answer(send, 404, b'{"detail":"File not found."}')
        return await self.app(scope, receive, send)

    def _grant_uploads(self, body: bytes, session: str) -> None:
        """gradio's upload answer is the JSON list of the paths it stored."""
        try:
            paths = json.loads(body)
        except ValueError:
            return
        # The page uploads one file per drop; a request of thousands must not flood the owners table.
        for path in paths[:MAX_GRANTS_PER_UPLOAD] if isinstance(paths, list) else []:
            stored = resolved_under(path, self.roots) if isinstance(path, str) else None
            if stored is not None:
                self.owners.grant(stored, session)


def canonical(path: str) -> str:
    """One spelling per file (absolute, `..` and symlinks resolved); ValueError for an embedded NUL."""
    if "\x00" in path:
        raise ValueError("embedded NUL")
    return os.path.realpath(os.path.abspath(path))


def is_under(path: str, roots: list[str]) -> bool:
    """A canonical path is one of the (canonical) roots or inside one."""
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def resolved_under(path: str, roots: list[str]) -> str | None:
    """`path`'s canonical spelling if it names a file under one of `roots`; None otherwise (a NUL too)."""
    try:
        path = canonical(path)
    except ValueError:
        return None
    return path if is_under(path, roots) else None


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
