"""The named API as MCP tools (gradio's MCP server), called by a real MCP client over streamable HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.slow


def data_url(path: str) -> str:
    return "data:image/png;base64," + base64.b64encode(open(path, "rb").read()).decode()


def with_session(url: str, work, headers: dict[str, str] | None = None):
    async def run():
        http = httpx.AsyncClient(headers=headers or {}, timeout=httpx.Timeout(30, read=300), follow_redirects=True)
        async with http, streamable_http_client(url + "gradio_api/mcp/", http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    # On a thread of its own: Playwright's sync API (the browser tests) keeps an event loop
    # running on the main thread for the whole session, and asyncio.run() refuses to nest.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result()


def test_the_tools_and_their_schema(app_server):
    tools = with_session(app_server.url, lambda s: s.list_tools()).tools
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == {"try_on", "try_on_variants", "submit_job", "job_status", "upload", "compare",
                            "submit_batch_urls", "batch_status", "cancel_batch", "retry_batch", "batch_archive"}
    schema = by_name["try_on"].inputSchema
    assert schema["required"] == ["person", "garment_1"]  # the outfit options are all optional
    assert {"person", "garment_1", "garment_2", "garment_3", "garment_4", "category_1", "order", "num_images",
            "model"} <= set(schema["properties"])
    assert {"model", "other_model"} <= set(by_name["compare"].inputSchema["properties"])
    assert "Dress the person" in by_name["try_on"].description


def test_an_agent_tries_a_garment_on(app_server, asset_paths):
    arguments = {"person": data_url(asset_paths["person_illustration"]), "garment_1": data_url(asset_paths["garment_tshirt_red"])}
    result = with_session(app_server.url, lambda s: s.call_tool("try_on", arguments))
    assert not result.isError, result.content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "image.png" in text and "fal_call_1" in text and "offline_preview" in text


def test_an_agent_names_categories_and_asks_for_variants(app_server, asset_paths):
    arguments = {"person": data_url(asset_paths["person_illustration"]), "garment_1": data_url(asset_paths["garment_jacket_denim"]),
                 "garment_2": data_url(asset_paths["garment_jeans_blue"]), "category_1": "outerwear", "category_2": "bottom",
                 "num_images": 2}
    result = with_session(app_server.url, lambda s: s.call_tool("try_on_variants", arguments))
    assert not result.isError, result.content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "'variants': 2" in text and "'category': 'bottom'" in text and text.count("'image': {'path'") == 2


def test_an_agent_picks_a_model_and_compares_two(app_server, asset_paths):
    person, garment = data_url(asset_paths["person_illustration"]), data_url(asset_paths["garment_jeans_blue"])
    result = with_session(app_server.url, lambda s: s.call_tool(
        "try_on", {"person": person, "garment_1": garment, "model": "fal-ai/fashn/tryon/v1.6"}))
    assert not result.isError, result.content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "'model': 'fal-ai/fashn/tryon/v1.6'" in text and "'cost_usd': 0.0" in text
    refused = with_session(app_server.url, lambda s: s.call_tool(
        "try_on", {"person": person, "garment_1": garment, "model": "fal-ai/fashn/tryon/v1.6", "resolution": "4K"}))
    assert refused.isError and "cannot make a 4K result" in json.dumps([getattr(c, "text", "") for c in refused.content])
    compared = with_session(app_server.url, lambda s: s.call_tool(
        "compare", {"person": person, "garment_1": garment, "model": "fal-ai/nano-banana-2/edit",
                    "other_model": "fal-ai/kling/v1-5/kolors-virtual-try-on"}))
    assert not compared.isError, compared.content
    text = " ".join(getattr(c, "text", "") for c in compared.content)
    assert "'model': 'fal-ai/nano-banana-2/edit'" in text and "'model': 'fal-ai/kling/v1-5/kolors-virtual-try-on'" in text


def test_an_agent_runs_a_catalogue_batch(app_server, asset_paths):
    persons = [data_url(asset_paths["person_illustration"])] * 2
    garments = [data_url(asset_paths["garment_tshirt_red"]), data_url(asset_paths["garment_jeans_blue"])]
    submitted = with_session(app_server.url, lambda s: s.call_tool("submit_batch_urls", {"persons": json.dumps(persons), "garments": "\n".join(garments)}))
    assert not submitted.isError, submitted.content
    text = " ".join(getattr(c, "text", "") for c in submitted.content)
    batch_id = re.search(r"'batch_id': '([\w-]+)'", text).group(1)
    assert "'looks': 4" in text
    deadline = time.monotonic() + 60
    while True:
        status = with_session(app_server.url, lambda s: s.call_tool("batch_status", {"batch_id": batch_id}))
        text = " ".join(getattr(c, "text", "") for c in status.content)
        if "'finished': True" in text or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "'done': 4" in text, text


def test_tool_errors_carry_the_specific_message(app_server):
    result = with_session(app_server.url, lambda s: s.call_tool("job_status", {"job_id": "not-a-real-job-000000"}))
    assert result.isError and "Job not found" in json.dumps([getattr(c, "text", "") for c in result.content])


def test_the_first_caller_cannot_point_the_mcp_bridge_at_another_host(tmp_path, asset_paths):
    """gradio's MCP bridge replays tool calls through a loopback client. Under mount_gradio_app it
    had no address of its own and took the first caller's X-Forwarded-Host for everyone after."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from conftest import start_app, stop_app

    hits = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_error(404)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    recorder = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    app = start_app(tmp_path)  # a fresh app: the bridge's client is made on its first tool call
    try:
        arguments = {"person": data_url(asset_paths["person_illustration"]), "garment_1": data_url(asset_paths["garment_tshirt_red"])}
        poisoned = {"X-Forwarded-Host": f"127.0.0.1:{recorder.server_address[1]}", "X-Forwarded-Proto": "http"}
        first = with_session(app.url, lambda s: s.call_tool("try_on", arguments), headers=poisoned)
        later = with_session(app.url, lambda s: s.call_tool("try_on", arguments))
        assert not first.isError and not later.isError, (first.content, later.content)
        assert hits == []
    finally:
        stop_app(app)
        recorder.shutdown()
