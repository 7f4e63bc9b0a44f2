"""No server file leaves the app unless the app made it for that caller: attacks from outside.

Every test here talks to `python app.py` over raw HTTP (gradio's queue join/data protocol, its
/run and /call routes, the REST API), as an attacker would, or through gradio_client. The generic
test offers files that are not the caller's to every event the page registers, public and
private, in every input position, in every shape gradio accepts a file in.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.utils import encode_file_path
from PIL import Image

from tryon.errors import MESSAGES
from tryon.web.session_files import COOKIE

pytestmark = pytest.mark.slow

REFUSAL = MESSAGES["file_not_yours"]["en"]


class RawClient:
    """gradio's wire protocol by hand: one cookie jar, like a browser tab or a script."""

    def __init__(self, url: str, login: tuple[str, str] | None = None):
        self.http = httpx.Client(base_url=url, timeout=60)
        if login:
            answer = self.http.post("/login", data={"username": login[0], "password": login[1]})
            assert answer.status_code == 200, answer.text
        assert self.http.get("/").status_code == 200
        self.config = self.http.get("/config").json()
        self.types = {c["id"]: c["type"] for c in self.config["components"]}

    def events(self):
        """(fn_index, dependency) for every event on the page."""
        return list(enumerate(self.config["dependencies"]))

    def input_types(self, dependency) -> list[str]:
        return [self.types[i] for i in dependency["inputs"]]

    def upload(self, name: str, data: bytes) -> str:
        answer = self.http.post("/gradio_api/upload", files={"files": (name, data, "image/png")})
        answer.raise_for_status()
        return answer.json()[0]

    def call(self, fn_index: int, data: list) -> str:
        """Run one event; its whole answer (every message of the stream) as text."""
        dependency = self.config["dependencies"][fn_index]
        session_hash = secrets.token_hex(6)
        body = {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
        if dependency.get("queue") is False:
            return self.http.post("/gradio_api/run/predict", json=body).text
        joined = self.http.post("/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return joined.text
        event_id = joined.json()["event_id"]
        lines = []
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                        break
        return "\n".join(lines)

    def served(self, answer: str) -> list[bytes]:
        """Whatever every file URL and path in an answer serves to this client."""
        contents = []
        for url in set(re.findall(r"/gradio_api/file=[^\"'\s]+", answer)):
            response = self.http.get(url)
            if response.status_code == 200:
                contents.append(response.content)
        for path in set(re.findall(r'"path": ?"([^"]+)"', answer)):
            response = self.http.get(f"/gradio_api/file={path}")
            if response.status_code == 200:
                contents.append(response.content)
        return contents


def png_with_marker(marker: bytes, colour=(10, 200, 30)) -> bytes:
    """A valid PNG (so no image check stops it) carrying `marker` in a text chunk."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("secret", marker.decode())
    buffer = io.BytesIO()
    Image.new("RGB", (300, 400), colour).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def file_shapes(path: str) -> list:
    """Every way a file can be named in a component value."""
    tagged = {"path": path, "meta": {"_type": "gradio.FileData"}}
    return [tagged, {"path": path}, [{"image": tagged, "caption": None}], {"value": tagged, "__type__": "update"}]


def leaked(client: RawClient, answer: str, secrets_: dict[str, bytes]) -> list[str]:
    contents = client.served(answer) + [answer.encode()]
    return [name for name, marker in secrets_.items() if any(marker in content for content in contents)]


@pytest.fixture(scope="module")
def targets(app_server, tmp_path_factory):
    """Files an attacker names: outside the upload folder, and another session's upload inside it."""
    markers = {name: f"TRYON-SECRET-{name}-{secrets.token_hex(8)}".encode() for name in ("tmp", "data", "victim")}
    outside = app_server.tmp_dir / "secret.png"  # the app's own temp dir: gradio would even allow returning it
    outside.write_bytes(png_with_marker(markers["tmp"]))
    in_data_dir = app_server.data_dir / "secret.png"
    in_data_dir.write_bytes(png_with_marker(markers["data"]))
    victim = RawClient(app_server.url)
    victim_path = victim.upload("victim.png", png_with_marker(markers["victim"], (200, 10, 10)))
    paths = {"tmp": str(outside), "data": str(in_data_dir), "victim": victim_path, "environ": "/proc/self/environ",
             "passwd": "/etc/passwd", "dotted": f"{app_server.data_dir}/uploads/../secret.png",
             # Not URLs to gradio (its test is case-sensitive and wants "//"): local paths in disguise.
             "HTTPS": "HTTPS://x/../../../../../../.." + str(in_data_dir), "Https": "Https://../../../../../../etc/passwd",
             "https-one-slash": "https:/../../../../../../proc/self/environ", "http": "http://127.0.0.1:1/secret.png"}
    return paths, markers, victim


def test_every_event_refuses_files_that_are_not_the_caller_s(app_server, targets):
    paths, markers, victim = targets
    attacker = RawClient(app_server.url)
    offered = 0
    for fn_index, dependency in attacker.events():
        types = attacker.input_types(dependency)
        for position in range(len(types)):
            # Every file in gradio's own shape, and every other shape with another session's upload.
            offers = [(name, file_shapes(path)[0]) for name, path in paths.items()]
            offers += [("victim", shape) for shape in file_shapes(paths["victim"])[1:]]
            for name, shape in offers:
                data = [None] * len(types)
                data[position] = shape
                answer = attacker.call(fn_index, data)
                offered += 1
                where = f"event {fn_index} ({dependency.get('api_name')}), input {position} ({types[position]}), {name}"
                assert REFUSAL in answer, f"{where} was not refused: {answer[:300]}"
                assert not leaked(attacker, answer, markers), f"{where} leaked a file"
    assert offered > 1000  # every event, position, file and shape was tried
    # Nothing broke: the victim still reads their own upload, the app still answers.
    assert victim.http.get(f"/gradio_api/file={paths['victim']}").status_code == 200
    assert httpx.get(app_server.url).status_code == 200


def test_the_issue_s_reproduction_reads_nothing(app_server):
    """A private event that takes the results gallery (the issue's `present`, now `choose_variant`) with
    /proc/self/environ in it: the answer is a refusal, no URL, no environment."""
    attacker = RawClient(app_server.url)
    chooser = next(i for i, d in attacker.events() if d.get("api_name") == "choose_variant")
    answer = attacker.call(chooser, [None, [{"image": {"path": "/proc/self/environ", "meta": {"_type": "gradio.FileData"}}}]])
    assert REFUSAL in answer and "/gradio_api/file=" not in answer and "PATH=" not in answer


def test_a_named_endpoint_refuses_a_server_path_over_call_and_gradio_client(app_server):
    http = httpx.Client(base_url=app_server.url, timeout=30)
    started = http.post("/gradio_api/call/upload", json={"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]})
    answer = http.get(f"/gradio_api/call/upload/{started.json()['event_id']}").text
    assert "event: error" in answer and REFUSAL in answer and "root:" not in answer
    # gradio_client sends a dict without gradio's file tag as it is: the server must refuse it.
    client = Client(app_server.url, verbose=False)
    with pytest.raises(Exception, match="not uploaded in this browser session"):
        client.predict({"path": "/etc/passwd"}, api_name="/upload")


def test_a_victim_s_path_echoed_back_by_gradio_is_not_granted(app_server, targets):
    """gradio's 422 echoes bad input; answers are no longer scanned for paths, so echoing one grants nothing."""
    paths, _markers, _victim = targets
    attacker = RawClient(app_server.url)
    echoed = attacker.http.post("/gradio_api/queue/join", json={"data": [], "fn_index": paths["victim"], "session_hash": "x1"})
    assert echoed.status_code == 422 and paths["victim"] in echoed.text
    assert attacker.http.get(f"/gradio_api/file={paths['victim']}").status_code == 404


@pytest.mark.parametrize("name", ["my photo.png", "a&b.png", "c#1.png", "it's.png", "ñandú 100%.png", "a%41.png", "b%2e%2e%2fc.png"])
def test_any_file_name_works_for_its_owner_and_nobody_else(app_server, person_png, name):
    owner, other = RawClient(app_server.url), RawClient(app_server.url)
    path = owner.upload(name, person_png)
    assert Path(path).name == name
    encoded = f"/gradio_api/file={encode_file_path(path)}"  # as gradio writes the URL it hands the page
    assert owner.http.get(encoded).content == person_png
    assert other.http.get(encoded).status_code == 404
    # The owner can also give it back as an input: the gate and the file route agree on the name.
    upload = next(i for i, d in owner.events() if d.get("api_name") == "upload")
    answer = owner.call(upload, [{"path": path, "meta": {"_type": "gradio.FileData"}}])
    assert REFUSAL not in answer and "process_completed" in answer


def test_the_app_s_private_folders_are_never_served(app_server):
    client = RawClient(app_server.url)
    aof = next((app_server.data_dir / "redis").glob("appendonly*"))
    for path in [aof, app_server.data_dir / "redis" / "redis.sock", app_server.data_dir / "looks", app_server.data_dir / "secret.png"]:
        assert client.http.get(f"/gradio_api/file={path}").status_code in (403, 404), path


def test_malformed_file_paths_are_a_4xx_and_the_app_stays_up(app_server):
    http = httpx.Client(base_url=app_server.url, timeout=30)
    for spelling in ["%00", "/etc/passwd%00.png", f"{app_server.data_dir}/uploads/%00x", "%2e%2e/%2e%2e/etc/passwd"]:
        answer = http.get(f"/gradio_api/file={spelling}")
        assert 400 <= answer.status_code < 500, (spelling, answer.status_code)
        assert "Traceback" not in answer.text
    assert http.get("/").status_code == 200
    assert "Traceback" not in app_server.log()[-20000:]


def test_rest_image_strings_are_never_paths_and_the_answer_does_not_tell_what_exists(app_server, person_png):
    def answer(text):
        response = httpx.post(f"{app_server.url}api/images/upload", json={"image": text}, timeout=30)
        assert response.status_code == 400, response.text
        return response.json()["code"], response.json()["error"]

    for name in ["person.png", "looks/person.jpg"]:
        existing = app_server.tmp_dir / name
        existing.parent.mkdir(exist_ok=True)
        existing.write_bytes(person_png)  # a real image the server could read, if text were a path
        while_present = answer(str(existing))
        existing.unlink()
        assert answer(str(existing)) == while_present
        assert while_present[0] in {"bad_base64", "not_an_image"}


def test_logged_in_users_cannot_read_server_files_either(rest_app_env):
    """With TRYON_API_KEYS set, a valid login is still only a caller: the same rule holds."""
    url, key = rest_app_env
    attacker = RawClient(url, login=("anyone", key))
    refused = 0
    for fn_index, dependency in attacker.events():
        types = attacker.input_types(dependency)
        for position in range(len(types)):
            data = [None] * len(types)
            data[position] = {"path": "/proc/self/environ", "meta": {"_type": "gradio.FileData"}}
            answer = attacker.call(fn_index, data)
            assert REFUSAL in answer and key not in answer, (fn_index, position, answer[:200])
            assert not any(key.encode() in content for content in attacker.served(answer))
            refused += 1
    assert refused > 50


def test_gradio_still_skips_its_own_check_under_mount():
    """A canary: gradio 6.31 runs `_check_allowed` only after launch(). If an upgrade makes it run
    under mount_gradio_app too, this fails: keep our gate (it also checks the session) and update
    docs/SECURITY.md's account of gradio's behaviour."""
    import gradio as gr
    from fastapi import FastAPI
    from gradio import processing_utils
    from gradio.context import LocalContext

    with gr.Blocks() as demo:
        gr.Image()
    gr.mount_gradio_app(FastAPI(), demo, path="/")
    token = LocalContext.blocks.set(demo)
    try:
        assert demo.has_launched is False
        processing_utils._check_allowed("/etc/passwd", check_in_upload_folder=True)  # no error: nothing checked
    finally:
        LocalContext.blocks.reset(token)


def test_one_upload_request_of_many_files_grants_only_the_first_few(app_server):
    """gradio takes many files per upload request; the owners table takes 20 of them (the page sends one)."""
    client = RawClient(app_server.url)
    files = [("files", (f"f{n}.png", png_with_marker(f"m{n}".encode(), (n, n, n)), "image/png")) for n in range(25)]
    paths = client.http.post("/gradio_api/upload", files=files).json()
    readable = [client.http.get(f"/gradio_api/file={encode_file_path(p)}").status_code == 200 for p in paths]
    assert readable == [True] * 20 + [False] * 5


def test_a_private_event_given_junk_answers_without_python_s_words(app_server, person_png):
    """gradio shows an unexpected exception's text to the caller unless show_error is off."""
    client = RawClient(app_server.url)
    mine = {"path": client.upload("me.png", person_png), "meta": {"_type": "gradio.FileData"}}
    # choose_variant without the click's event data: its handler fails on None, an exception of ours.
    chooser = next(i for i, d in client.events() if d.get("api_name") == "choose_variant")
    answer = client.call(chooser, [None, [{"image": mine, "caption": None}]])
    assert '"success": false' in answer.replace('"success":false', '"success": false')
    assert "attribute" not in answer and "Traceback" not in answer
    assert httpx.get(app_server.url).status_code == 200
