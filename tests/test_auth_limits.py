"""Failed logins and keys are limited per address; MCP needs the login or a key (the app as a process).

Each test speaks from its own loopback address (127.0.0.N: Linux routes all of 127/8 to lo), so
the per-address buckets of one test do not leak into another, and "another client" is a real
other address, not a header.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import start_app, stop_app

pytestmark = pytest.mark.slow

KEY, OTHER_KEY = "limits-key-0001", "limits-key-0002"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    env = {"TRYON_API_KEYS": f"{KEY},{OTHER_KEY}", "TRYON_AUTH": "ann:secret-pass", "TRYON_RATE_LIMIT": "100000",
           "TRYON_WORKERS": "0"}
    running = start_app(tmp_path_factory.mktemp("limits-app"), env)
    yield running
    stop_app(running)


def client(app, n: int, **kwargs) -> httpx.Client:
    """A client speaking from 127.0.0.n."""
    return httpx.Client(base_url=app.url, timeout=30, transport=httpx.HTTPTransport(local_address=f"127.0.0.{n}"), **kwargs)


def wrong_login(http: httpx.Client, n: int) -> httpx.Response:
    return http.post("/login", data={"username": "ann", "password": f"guess-{n}"})


def test_the_eleventh_wrong_password_in_a_minute_is_refused_and_another_client_still_logs_in(app):
    with client(app, 11) as attacker:
        started = time.monotonic()
        statuses = [wrong_login(attacker, n).status_code for n in range(10)]
        refused = wrong_login(attacker, 10)
        assert time.monotonic() - started < 6  # all within one token's refill
        assert statuses == [400] * 10
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 7
        assert "Too many failed logins" in refused.json()["detail"]
        # The right password does not get through while the address is refused: no oracle.
        assert attacker.post("/login", data={"username": "ann", "password": "secret-pass"}).status_code == 429
        # The page says why: gradio's login form shows the auth_message of its /config answer.
        config = attacker.get("/config")
        assert config.status_code == 401 and "Too many failed logins" in config.json()["detail"]["auth_message"]
    with client(app, 12) as someone_else:
        assert someone_else.post("/login", data={"username": "ann", "password": "secret-pass"}).status_code == 200
        assert someone_else.get("/config").status_code == 200  # logged in: the cookie works
        assert someone_else.post("/login", data={"username": "api", "password": KEY}).status_code == 200


def test_the_refused_address_gets_a_token_back_after_six_seconds(app):
    with client(app, 13) as attacker:
        for n in range(10):
            wrong_login(attacker, n)
        refused = wrong_login(attacker, 10)
        assert refused.status_code == 429
        time.sleep(int(refused.headers["retry-after"]))
        assert attacker.post("/login", data={"username": "ann", "password": "secret-pass"}).status_code == 200


def test_a_burst_of_parallel_guesses_gets_no_more_than_ten_tries(app):
    with client(app, 14) as attacker, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda n: wrong_login(attacker, n).status_code, range(40)))
    assert statuses.count(400) <= 10 and statuses.count(429) >= 30 and set(statuses) <= {400, 429}


def test_successful_logins_cost_nothing(app):
    with client(app, 15) as user:
        statuses = [user.post("/login", data={"username": "ann", "password": "secret-pass"}).status_code for _ in range(25)]
    assert statuses == [200] * 25


def test_wrong_metrics_keys_are_limited_too(app):
    with client(app, 16) as scraper:
        statuses = [scraper.get("/metrics", headers={"authorization": f"Bearer wrong-key-{n:04d}"}).status_code for n in range(11)]
        assert statuses == [401] * 10 + [429]
        assert scraper.get("/metrics", headers={"authorization": f"Bearer {KEY}"}).status_code == 429  # refused, whatever the key
    with client(app, 17) as other:
        answer = other.get("/metrics", headers={"authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200 and "tryon_requests_total" in answer.text


def test_wrong_rest_keys_are_limited_in_the_seed_s_shape(app):
    with client(app, 18) as guesser:
        statuses = [guesser.post("/api/images/upload", json={"apiKey": f"wrong-key-{n:04d}", "image": "AAAA"}).status_code
                    for n in range(10)]
        limited = guesser.post("/api/images/upload", json={"apiKey": KEY, "image": "AAAA"})
    assert statuses == [401] * 10
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json() == {"success": False, "error": limited.json()["error"], "code": "rate_limited"}
    with client(app, 19) as other:  # a right key elsewhere: past the key check to the image's own error
        assert other.post("/api/images/upload", json={"apiKey": KEY, "image": "AAAA"}).json()["code"] != "rate_limited"


# MCP: every route under /gradio_api/mcp needs the login cookie or a key.

@pytest.mark.parametrize("method, path, body", [
    ("POST", "/gradio_api/mcp/", INIT),
    ("POST", "/gradio_api/mcp/", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ("POST", "/gradio_api/mcp", INIT),
    ("POST", "/gradio_api/mcp/http/", INIT),
    ("GET", "/gradio_api/mcp/schema", None),
    ("GET", "/gradio_api/mcp/sse", None),
    ("POST", "/gradio_api/mcp/messages/?session_id=00000000000000000000000000000000", {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    ("GET", "//gradio_api//mcp/schema", None),
], ids=["initialize", "tools-list", "no-slash", "http", "schema", "sse", "messages", "double-slashes"])
def test_mcp_without_credentials_is_401(app, method, path, body):
    with client(app, 20) as anonymous:
        response = anonymous.request(method, app.url.rstrip("/") + path, json=body, headers=MCP_HEADERS)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "bad_api_key" and response.headers["www-authenticate"].startswith("Bearer")
    assert "try_on" not in response.text


def test_mcp_with_a_wrong_key_is_401(app):
    with client(app, 21) as guesser:
        response = guesser.post("/gradio_api/mcp/", json=INIT, headers={**MCP_HEADERS, "authorization": "Bearer not-a-key-00"})
        schema = guesser.get("/gradio_api/mcp/schema", headers={"authorization": f"Basic {KEY}"})
    assert response.status_code == 401 and schema.status_code == 401


def list_tools(app, headers=None, cookies=None) -> list[str]:
    """A real MCP client over streamable HTTP: initialize, then tools/list."""
    async def run():
        async with httpx.AsyncClient(headers=headers, cookies=cookies, timeout=30) as http:
            async with streamable_http_client(app.url + "gradio_api/mcp/", http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return [tool.name for tool in (await session.list_tools()).tools]

    with ThreadPoolExecutor(1) as thread:  # asyncio.run refuses to nest under Playwright's loop
        return thread.submit(asyncio.run, run()).result()


def test_mcp_with_a_bearer_key_lists_the_tools(app):
    assert "try_on" in list_tools(app, headers={"authorization": f"Bearer {OTHER_KEY}"})
    schema = httpx.get(app.url + "gradio_api/mcp/schema", headers={"authorization": f"Bearer {KEY}"})
    assert schema.status_code == 200 and "try_on" in schema.text


def test_mcp_with_the_login_cookie_lists_the_tools(app):
    with client(app, 22) as browser:
        assert browser.post("/login", data={"username": "ann", "password": "secret-pass"}).status_code == 200
        cookies = dict(browser.cookies)
    assert "try_on" in list_tools(app, cookies=cookies)
