"""Who is asking, for every way in: the page and the gradio API (a `gr.Request`), MCP (gradio's
loopback call carries the caller's headers) and REST (a starlette `Request`).

`ClientAddress` (ASGI, outermost) settles the client's address once per request: the peer, or,
from a trusted proxy (TRYON_TRUSTED_PROXIES), the address X-Forwarded-For names. It writes that
address into `scope["client"]` and replaces X-Forwarded-For with it, so nothing further in (gradio,
the login throttle, MCP's loopback call) can be fooled by a header the client wrote itself.
uvicorn's own proxy-header handling is off (app.py) so that this is the one rule.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from ..config import Settings
from ..limits import Visitor, client_address
from .access import KEY_LOGINS, bearer_token, key_is_valid


class ClientAddress:
    def __init__(self, app, proxies):
        self.app = app
        self.proxies = tuple(proxies)

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            peer = (scope.get("client") or (None, 0))[0]
            forwarded = b", ".join(v for k, v in scope.get("headers", []) if k == b"x-forwarded-for").decode("latin1")
            address = client_address(peer, forwarded or None, self.proxies)
            headers = [(k, v) for k, v in scope.get("headers", []) if k != b"x-forwarded-for"]
            headers.append((b"x-forwarded-for", address.encode("latin1")))
            scope = {**scope, "client": (address, (scope.get("client") or (None, 0))[1]), "headers": headers}
        await self.app(scope, receive, send)


def _session(request: Any) -> Mapping[str, Any]:
    """The starlette session gradio's OAuth writes (empty when there is none): read from the ASGI
    scope, as gradio does, so an app without OAuth's middleware does not raise."""
    underlying = getattr(request, "request", None) or request
    scope = getattr(underlying, "scope", None)
    if isinstance(scope, dict):
        return scope.get("session") or {}
    return {}


def hf_user(request: Any) -> str | None:
    """The Hugging Face account signed in through gradio's OAuth (its `oauth_info` in the session):
    its `sub`, which survives a change of user name, else the user name."""
    info = _session(request).get("oauth_info") or {}
    if not isinstance(info, dict):
        return None
    expires_at = info.get("expires_at")
    if isinstance(expires_at, (int, float)) and expires_at < time.time():
        return None
    userinfo = info.get("userinfo") or {}
    for claim in ("sub", "preferred_username"):
        if isinstance(userinfo.get(claim), str) and userinfo[claim]:
            return userinfo[claim]
    return None


def page_visitor(request: Any, settings: Settings, own_fal_key: str | None = None) -> Visitor:
    """A page or gradio API caller: the HF user, else the gradio login (a person with TRYON_AUTH, or
    a script whose password is an API key), else an MCP caller's bearer key, else the address."""
    user = hf_user(request) if settings.hf_oauth else None
    if user:
        visitor = Visitor.signed_in(user)
    elif getattr(request, "username", None):
        digest = KEY_LOGINS.digest_of(request.username)  # a name an API key logged in with counts as that key
        visitor = Visitor("api_key", f"key:{digest}") if digest else Visitor.logged_in(request.username)
    else:
        headers = getattr(request, "headers", None) or {}
        token = bearer_token(headers.get("authorization"))
        if token and key_is_valid(token, settings.api_keys):
            visitor = Visitor.with_api_key(token)
        else:
            client = getattr(request, "client", None)
            visitor = Visitor.from_address(getattr(client, "host", None) or "unknown")
    return visitor.bringing(own_fal_key)


def rest_visitor(request: Any, api_key: str | None, settings: Settings, own_fal_key: str | None = None) -> Visitor:
    """A REST caller: its checked API key, else its address."""
    if api_key and key_is_valid(api_key, settings.api_keys):
        visitor = Visitor.with_api_key(api_key)
    else:
        visitor = Visitor.from_address(request.client.host if request.client else "unknown")
    return visitor.bringing(own_fal_key)
