"""Uploaded photos and results are served only to the session they were handed to."""

from __future__ import annotations

import os

import httpx
import pytest
from gradio_client import Client, handle_file

from tryon.web.session_files import COOKIE, FileOwners


def session(app_url: str) -> httpx.Client:
    """A client that has opened the page once, as a browser does, and so holds a session cookie."""
    client = httpx.Client(base_url=app_url, timeout=30)
    assert client.get("/").status_code == 200
    assert COOKIE in client.cookies
    return client


def upload(client: httpx.Client, data: bytes, name: str = "person.png") -> str:
    response = client.post("/gradio_api/upload", files={"files": (name, data, "image/png")})
    response.raise_for_status()
    return response.json()[0]


# --- the parts, without a server --------------------------------------------------------------


def test_owners_are_per_session_and_forgotten_after_their_lifetime(monkeypatch):
    owners = FileOwners(ttl_s=60, max_paths=2)
    owners.grant("/c/a.png", "alice")
    owners.grant("/c/a.png", "bob")  # the same photo uploaded by two people: both may read it
    assert owners.may_read("/c/a.png", "alice") and owners.may_read("/c/a.png", "bob")
    assert not owners.may_read("/c/a.png", "eve") and not owners.may_read("/c/a.png", None)
    owners.grant("/c/b.png", "alice")
    owners.grant("/c/c.png", "alice")  # over the bound: the oldest path is dropped
    assert len(owners) == 2 and not owners.may_read("/c/a.png", "alice")
    import tryon.web.session_files as module
    later = module.time.monotonic() + 61
    monkeypatch.setattr(module.time, "monotonic", lambda: later)
    assert not owners.may_read("/c/c.png", "alice")


def test_one_session_s_flood_pushes_out_only_its_own_files():
    owners = FileOwners(max_paths=10_000, max_per_session=100)
    owners.grant("/c/victim.png", "victim")
    for n in range(1_000):
        owners.grant(f"/c/flood-{n}.png", "attacker")
    assert owners.may_read("/c/victim.png", "victim")
    assert len(owners) == 101  # the attacker's newest 100, and the victim's one
    assert owners.may_read("/c/flood-999.png", "attacker") and not owners.may_read("/c/flood-0.png", "attacker")
    owners.grant("/c/shared.png", "victim")
    owners.grant("/c/shared.png", "attacker")  # the same photo uploaded by both
    for n in range(200):
        owners.grant(f"/c/more-{n}.png", "attacker")
    assert owners.may_read("/c/shared.png", "victim") and not owners.may_read("/c/shared.png", "attacker")


def test_only_file_components_grant_what_an_answer_names(tmp_path):
    """A JSON or text output is whatever the client sent: a tagged path inside it grants nothing."""
    import gradio as gr

    from tryon.web.file_gate import FileGate

    uploads = tmp_path / "uploads"
    (uploads / "h").mkdir(parents=True)
    victim = uploads / "h" / "victim.png"
    victim.write_bytes(b"x")
    gate = FileGate(FileOwners(), str(uploads))
    tagged = {"path": str(victim), "meta": {"_type": "gradio.FileData"}}
    gate.grant([{"timings": [tagged]}, str(victim), None], [gr.JSON(), gr.Textbox(), gr.Image()], "attacker")
    assert not gate.may_use(str(victim), "attacker")
    gate.grant([{"path": str(victim)}], [gr.Image()], "attacker")  # untagged: not something gradio made
    assert not gate.may_use(str(victim), "attacker")
    gate.grant([tagged], [gr.Image()], "owner")
    assert gate.may_use(str(victim), "owner") and not gate.may_use(str(victim), "attacker")


# --- the running app -------------------------------------------------------------------------


@pytest.mark.slow
def test_an_upload_is_served_to_its_session_only(app_server, person_png):
    alice, bob = session(app_server.url), session(app_server.url)
    path = upload(alice, person_png)
    assert alice.get(f"/gradio_api/file={path}").content == person_png
    assert bob.get(f"/gradio_api/file={path}").status_code == 404
    assert httpx.get(f"{app_server.url}gradio_api/file={path}").status_code == 404  # no cookie at all
    forged = httpx.get(f"{app_server.url}gradio_api/file={path}", cookies={COOKIE: "x" * 32})
    assert forged.status_code == 404
    # Other spellings of the same file are the same file.
    assert bob.get(f"/gradio_api/file/{path}").status_code == 404
    folder, name = os.path.split(path)
    dotted = f"{folder}/../{os.path.basename(folder)}/{name}"
    assert alice.get(f"/gradio_api/file={dotted}").status_code == 200
    assert bob.get(f"/gradio_api/file={dotted}").status_code == 404


@pytest.mark.slow
def test_the_same_photo_uploaded_by_two_sessions_is_readable_by_both(app_server, person_png):
    alice, bob = session(app_server.url), session(app_server.url)
    first, second = upload(alice, person_png), upload(bob, person_png)
    assert first == second  # gradio names cache files by content
    assert alice.get(f"/gradio_api/file={first}").status_code == 200
    assert bob.get(f"/gradio_api/file={second}").status_code == 200


@pytest.mark.slow
def test_a_result_reaches_the_gradio_client_that_asked_and_nobody_else(app_server, asset_paths):
    client = Client(app_server.url, verbose=False, download_files=False)
    assert COOKIE in client.cookies
    result, _timings = client.predict(
        handle_file(asset_paths["person_illustration"]), handle_file(asset_paths["garment_tshirt_red"]),
        None, None, None, api_name="/try_on",
    )
    url = result["url"]
    assert "/gradio_api/file=" in url
    mine = httpx.get(url, cookies=client.cookies)
    assert mine.status_code == 200 and mine.content.startswith(b"\x89PNG")
    assert httpx.get(url).status_code == 404
    assert session(app_server.url).get(url).status_code == 404


@pytest.mark.slow
def test_static_files_and_the_rest_api_are_unaffected(app_server):
    page = httpx.get(app_server.url)
    assert page.status_code == 200 and COOKIE in page.cookies
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie  # plain HTTP: a first-party cookie
    behind_https = httpx.get(app_server.url, headers={"X-Forwarded-Proto": "https"}).headers["set-cookie"]
    assert "SameSite=None" in behind_https and "Secure" in behind_https and "Partitioned" in behind_https
    rest = httpx.get(f"{app_server.url}api/metrics")
    assert rest.status_code == 200 and "set-cookie" not in rest.headers
