"""ASGI middleware: a visitor who declines "Sign in with Hugging Face" comes back to the page.

The provider answers a refusal by sending the browser to `/login/callback?error=access_denied`;
gradio hands that to authlib, whose OAuthError reaches the visitor as "500 Internal Server Error"
(and a traceback in the log). Any callback carrying `error` is sent back to the page instead,
signed out, before gradio sees it.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.responses import RedirectResponse


class SignInRefusal:
    def __init__(self, app, path: str = "/login/callback"):
        self.app = app
        self.path = path

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") == self.path:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if "error" in query:
                await RedirectResponse("/", status_code=302)(scope, receive, send)
                return
        await self.app(scope, receive, send)
