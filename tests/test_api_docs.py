"""/api/docs needs no internet: swagger-ui's files come from the app itself, with the right types.

The browser check (the page renders the operations with every other host blocked) is
tests/e2e/test_api_docs.py.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from tryon.web.api_docs import ASSETS_URL, DOCS_URL, assets_dir, install_docs

# A browser runs a script served as either JavaScript type (gradio registers application/javascript
# for .js when its routes load; Python's own table says text/javascript). Anything else it refuses
# (e.g. text/plain under X-Content-Type-Options: nosniff).
TYPES = {"swagger-ui-bundle.js": {"text/javascript", "application/javascript"}, "swagger-ui.css": {"text/css"},
         "favicon.png": {"image/png"}}


def bare_app() -> FastAPI:
    """The app's shape in miniature: docs installed first, then an /api router ending in a catch-all."""
    api = FastAPI(title="t", docs_url=None, openapi_url="/api/openapi.json", redoc_url=None)
    install_docs(api)
    router = APIRouter(prefix="/api")

    @router.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    @router.api_route("/{path:path}", methods=["GET"], include_in_schema=False)
    def not_found(path: str):
        return JSONResponse({"success": False, "code": "not_found"}, status_code=404)

    api.include_router(router)
    return api


def urls_in(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)


def test_the_page_names_only_its_own_files_and_links_the_openapi_document():
    with TestClient(bare_app()) as client:
        page = client.get(DOCS_URL)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        urls = urls_in(page.text)
        assert f"{ASSETS_URL}/swagger-ui-bundle.js" in urls and f"{ASSETS_URL}/swagger-ui.css" in urls
        assert all(url.startswith("/api/") for url in urls), urls  # no CDN, no other host
        assert '<a href="/api/openapi.json">/api/openapi.json</a>' in page.text


def test_the_assets_are_served_with_their_types_before_the_api_catch_all():
    with TestClient(bare_app()) as client:
        for name, kind in TYPES.items():
            response = client.get(f"{ASSETS_URL}/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].split(";")[0] in kind, name
            assert response.content == (assets_dir() / name).read_bytes()
        assert client.get(f"{ASSETS_URL}/nothing.js").status_code == 404
        assert client.get("/api/ping").json() == {"ok": True}  # the router still answers


def test_the_bundle_is_swagger_ui_5_which_reads_openapi_3_1():
    # FastAPI writes OpenAPI 3.1; swagger-ui 4 shows "Unable to render this definition" for it.
    bundle = (assets_dir() / "swagger-ui-bundle.js").read_text(errors="replace")
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert version and int(version.group(1)) >= 5, version


def test_neither_the_page_nor_the_assets_are_in_the_schema():
    with TestClient(bare_app()) as client:
        paths = client.get("/api/openapi.json").json()["paths"]
    assert list(paths) == ["/api/ping"]


def test_a_root_path_prefixes_every_url():
    with TestClient(bare_app(), root_path="/proxy") as client:
        page = client.get(DOCS_URL).text
    assert all(url.startswith("/proxy/api/") for url in urls_in(page)), urls_in(page)


def test_an_app_built_with_fastapi_s_own_docs_page_is_refused():
    with pytest.raises(ValueError, match="docs_url=None"):
        install_docs(FastAPI())


@pytest.mark.slow
def test_with_keys_set_the_docs_and_their_assets_are_public_and_get_no_cookie(rest_app_env):
    # The real app with TRYON_API_KEYS: gradio's login, AuthThrottle, McpGuard, SessionFiles and
    # BodyGuard are all in front; the docs pass them as /api/docs always did (docs/SECURITY.md).
    url, _key = rest_app_env
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/config").status_code == 401  # the page itself needs the login
        page = http.get(DOCS_URL)
        assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
        for name, kind in TYPES.items():
            response = http.get(f"{ASSETS_URL}/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].split(";")[0] in kind, name
            assert "set-cookie" not in response.headers  # SessionFiles leaves /api/ alone
        assert http.get("/api/openapi.json").status_code == 200
        paths = http.get("/api/openapi.json").json()["paths"]
        assert not [path for path in paths if "docs" in path]
        # Only the package's folder: a dot-dot (percent-encoded, so httpx sends it as is) finds nothing.
        escape = http.get("/api/docs-assets/%2e%2e/__init__.py")
        assert escape.status_code == 404 and b"FastAPIOffline" not in escape.content
