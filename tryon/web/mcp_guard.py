"""ASGI middleware: gradio's MCP routes need the same login as the page when the app is protected.

gradio mounts its MCP server (`/gradio_api/mcp/` streamable HTTP, `/sse`, `/messages/`,
`/schema`) as a plain Starlette app that checks no login, so `initialize` and `tools/list`
answered anyone. Every path under `/gradio_api/mcp` now needs `Authorization: Bearer <api key>`
(what an MCP client can send) or gradio's login cookie; otherwise 401 in the seed's shape.
"""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection

from .access import GradioLogins, bearer_token, key_is_valid
from ..errors import InvalidRequest
from .rest import error_response

PREFIX = "/gradio_api/mcp"


def is_mcp(path: str) -> bool:
    path = re.sub(r"/{2,}", "/", path)  # however the client spells it, as the router would see it
    return path == PREFIX or path.startswith(PREFIX + "/")


class McpGuard:
    def __init__(self, app, keys: tuple[str, ...], logins: GradioLogins):
        self.app = app
        self.keys = keys
        self.logins = logins

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_mcp(scope["path"]):
            return await self.app(scope, receive, send)
        conn = HTTPConnection(scope)
        if key_is_valid(bearer_token(conn.headers.get("authorization")), self.keys) or self.logins.user(conn.cookies):
            return await self.app(scope, receive, send)
        response = error_response(InvalidRequest("bad_api_key", http_status=401), conn)
        response.headers["WWW-Authenticate"] = 'Bearer realm="tryon"'
        await response(scope, receive, send)
