"""The REST API's Swagger UI page (`/api/docs`), served with no CDN.

FastAPI's own docs page loads swagger-ui's script and stylesheet from a CDN, so without internet
(or behind a firewall) it is blank. Here the same page (`fastapi.openapi.docs.get_swagger_ui_html`)
loads them from `/api/docs-assets/`, a static mount of the swagger-ui dist files that the
`fastapi-offline` package ships (`fastapi_offline/static`: swagger-ui-bundle.js, swagger-ui.css,
favicon.png; swagger-ui is Apache-2.0, the package MIT). Only the files are used, not its
`FastAPIOffline` constructor, so the app's FastAPI(...) stays as it is.

Everything here is under `/api/`, so the middlewares treat it as they treat `/api/docs`: no
session cookie (`SessionFiles` skips `/api/`), no body to hold, no login (gradio's login covers
only the mounted page) and no key (documentation is public, docs/SECURITY.md). Install it right
after FastAPI(...) is built: `/api/{path}`'s catch-all 404 (tryon/web/rest.py) is added later and would
otherwise answer first.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/docs"
ASSETS_URL = "/api/docs-assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def assets_dir() -> Path:
    """The folder of swagger-ui's dist files in the installed fastapi-offline package."""
    folder = Path(str(files("fastapi_offline") / "static"))
    missing = [name for name in ASSETS if not (folder / name).is_file()]
    if missing:  # a release that moved its files: fail at start-up, not with a blank page
        raise RuntimeError(f"fastapi-offline has no {', '.join(missing)} in {folder}; pin the version in pyproject.toml")
    return folder


def install_docs(api: FastAPI, docs_url: str = DOCS_URL, assets_url: str = ASSETS_URL) -> None:
    """Serve swagger-ui's files at `assets_url` and the page at `docs_url` (build `api` with docs_url=None)."""
    if api.docs_url or not api.openapi_url:
        raise ValueError("build the FastAPI app with docs_url=None and an openapi_url")
    api.mount(assets_url, StaticFiles(directory=assets_dir()), name="api-docs-assets")  # mounts are never in the schema

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        openapi_url = root + api.openapi_url
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{api.title} - Swagger UI",
            swagger_js_url=f"{root}{assets_url}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets_url}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets_url}/favicon.png",
            oauth2_redirect_url=None,  # no OAuth2 here: the API takes its key in the body
            swagger_ui_parameters=api.swagger_ui_parameters,
        )
        return HTMLResponse(_with_spec_link(page.body.decode(), openapi_url))

    api.add_route(docs_url, swagger_ui, methods=["GET"], include_in_schema=False)


def _with_spec_link(page: str, openapi_url: str) -> str:
    """The page with a plain link to the OpenAPI JSON above swagger-ui (readable without JavaScript too)."""
    url = html.escape(openapi_url, quote=True)
    link = (f'<p id="openapi-link" style="font-family: sans-serif; margin: 12px 20px 0">'
            f'OpenAPI document: <a href="{url}">{url}</a></p>\n')
    marker = '<div id="swagger-ui">'
    if marker not in page:  # FastAPI changed its template: still link the document, at the top of the body
        return page.replace("<body>", "<body>\n" + link, 1)
    return page.replace(marker, link + marker, 1)
