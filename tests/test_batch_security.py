"""Catalogue batches (issue 18) attacked from outside: `python app.py` over raw HTTP and gradio_client.

What an outside caller may try against /submit_batch, /submit_batch_urls, /batch_status, /cancel_batch,
/retry_batch, /batch_archive, the Catalogue tab's private events and REST's /api/batches:

- server files named as photos (file payloads and text), other sessions' uploads, private URLs (SSRF);
- batch ids as capabilities: nothing lists them, bad ids are a clean 404, keys guard changes only;
- dodging the quota with batches: just over it, concurrent submits, cancel/retry loops, retries by others;
- resource abuse: the size bounds, a 1000-look batch and its archive, huge outfit lists and groupings;
- secrets (FAL key, API keys, a visitor's own key) in Redis, archives, answers, files and the log;
- manifest.csv formulas and archive member names.

Every server here is on 127.0.0.1 and started by this module.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import secrets
import socket
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis as redis_py
from PIL import Image, PngImagePlugin

from conftest import encode, free_port, start_app, stop_app
from redis_process import RedisProcess
from synthetic import draw_garment, draw_person

from tryon.errors import MESSAGES
from tryon.limits import Visitor

pytestmark = pytest.mark.slow

REFUSAL = MESSAGES["file_not_yours"]["en"]
NOT_FOUND = MESSAGES["batch_not_found"]["en"]
OWN_KEY_REFUSAL = MESSAGES["own_key_sync_only"]["en"]
QUOTA = 4  # TRYON_QUOTA_ANONYMOUS_CALLS of the FAL apps: one call per look
SECRET_COLOUR = (13, 222, 177)  # the secret picture's colour: found in anything the FAL test server received
API_KEYS = ("batch-key-one-" + secrets.token_hex(8), "batch-key-two-" + secrets.token_hex(8))
OWN_FAL_KEY = "visitor-key-id:visitor-secret-" + secrets.token_hex(8)
_addresses = itertools.count(10)


def new_visitor() -> dict[str, str]:
    """Headers that make a fresh anonymous visitor (the apps trust 127.0.0.1 as their proxy)."""
    return {"X-Forwarded-For": f"198.51.100.{next(_addresses)}"}


def visitor_key(headers: dict[str, str]) -> str:
    return Visitor.from_address(headers["X-Forwarded-For"]).key


# -- pictures ------------------------------------------------------------------------------------

PERSON = encode(draw_person().image)
GARMENTS = [encode(draw_garment(k, colour=c)) for k, c in
            [("tshirt", (200, 40, 50)), ("jeans", (40, 60, 200)), ("dress", (30, 150, 80)), ("jacket", (230, 200, 40))]]


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def secret_png(marker: bytes) -> bytes:
    """A valid photo (so no image check would stop it) of one colour, with `marker` in a text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("secret", marker.decode())
    buffer = io.BytesIO()
    Image.new("RGB", (600, 800), SECRET_COLOUR).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def secret_reached_fal(fal_server) -> bool:
    """Whether any file the FAL test server holds is the secret picture (re-encoded or not)."""
    with fal_server._lock:
        files = [item[0] for item in fal_server.files.values()]
    for data in files:
        try:
            picture = Image.open(io.BytesIO(data)).convert("RGB").resize((8, 8))
        except Exception:
            continue
        raw = picture.tobytes()
        pixels = [raw[i:i + 3] for i in range(0, len(raw), 3)]
        if all(sum(abs(a - b) for a, b in zip(p, SECRET_COLOUR)) < 40 for p in pixels):
            return True
    return False


# -- gradio's wire protocol by hand ----------------------------------------------------------------


class Raw:
    """One cookie jar, like a browser tab or a script; optional extra headers on every request."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, login: tuple[str, str] | None = None):
        self.http = httpx.Client(base_url=url, timeout=60, headers=headers or {})
        if login:
            answer = self.http.post("/login", data={"username": login[0], "password": login[1]})
            assert answer.status_code == 200, answer.text
        assert self.http.get("/").status_code == 200
        self.config = self.http.get("/config").json()
        self.index = {d.get("api_name"): i for i, d in enumerate(self.config["dependencies"])}

    def upload(self, name: str, data: bytes) -> str:
        answer = self.http.post("/gradio_api/upload", files={"files": (name, data, "image/png")})
        answer.raise_for_status()
        return answer.json()[0]

    def call(self, event: str | int, data: list, timeout: float = 60) -> tuple[str, dict]:
        """Run one event (by api name or fn_index): (every message of its stream, the last one)."""
        fn_index = self.index[event] if isinstance(event, str) else event
        data = list(data) + [None] * (len(self.config["dependencies"][fn_index]["inputs"]) - len(data))  # the rest: empty
        session_hash = secrets.token_hex(6)
        body = {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
        joined = self.http.post("/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return joined.text, {"success": False, "status_code": joined.status_code}
        event_id = joined.json()["event_id"]
        lines, last = [], {}
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash},
                              timeout=timeout) as stream:
            for line in stream.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                        last = message
                        break
        return "\n".join(lines), last

    def served(self, answer: str) -> list[bytes]:
        """Whatever every file URL and path in an answer serves to this client."""
        contents = []
        for url in set(re.findall(r"/gradio_api/file=[^\"'\s\\]+", answer)):
            response = self.http.get(url)
            if response.status_code == 200:
                contents.append(response.content)
        for path in set(re.findall(r'"path": ?"([^"]+)"', answer)):
            response = self.http.get(f"/gradio_api/file={path}")
            if response.status_code == 200:
                contents.append(response.content)
        return contents


def tagged(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def gallery_item(path: str) -> dict:
    return {"image": tagged(path), "caption": None}


# -- the apps --------------------------------------------------------------------------------------


def launch(tmp_path_factory, name: str, env: dict[str, str]):
    redis = RedisProcess(free_port(), tmp_path_factory.mktemp(f"{name}-redis")).start()
    app = start_app(tmp_path_factory.mktemp(name), {"REDIS_URL": redis.url, "TRYON_RATE_LIMIT": "100000",
                                                     "TRYON_TRUSTED_PROXIES": "127.0.0.1", **env})
    app.redis_process = redis
    app.redis = redis_py.Redis(port=redis.port, decode_responses=True)
    return app


def shut(app) -> None:
    try:
        if app.process.poll() is None:
            stop_app(app)
    finally:
        app.redis_process.stop()


@pytest.fixture(scope="module")
def open_app(tmp_path_factory, fal_server_session):
    """FAL (the test server), two workers, an anonymous quota of QUOTA calls, no keys."""
    app = launch(tmp_path_factory, "open", fal_server_session.env(TRYON_WORKERS="2", TRYON_QUOTA_ANONYMOUS_CALLS=str(QUOTA)))
    yield app
    shut(app)


@pytest.fixture(scope="module")
def idle_app(tmp_path_factory, fal_server_session):
    """The same without workers: looks stay queued, so cancel and retry can be looped."""
    app = launch(tmp_path_factory, "idle", fal_server_session.env(TRYON_WORKERS="0", TRYON_QUOTA_ANONYMOUS_CALLS=str(QUOTA)))
    yield app
    shut(app)


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory, fal_server_session):
    app = launch(tmp_path_factory, "keyed", fal_server_session.env(TRYON_WORKERS="2", TRYON_API_KEYS=",".join(API_KEYS)))
    yield app
    shut(app)


@pytest.fixture(scope="module")
def preview_app(tmp_path_factory):
    """The offline preview (free, so no quota stops a 1000-look batch), no workers, the largest batches allowed."""
    app = launch(tmp_path_factory, "preview", {"TRYON_WORKERS": "0", "TRYON_BATCH_MAX_LOOKS": "1000"})
    yield app
    shut(app)


def post_batch(app, body: dict, headers: dict | None = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(app.url + "api/batches", json=body, headers=headers or {}, timeout=timeout)


def batch_keys(app) -> set[str]:
    return set(app.redis.scan_iter("tryon:batch:*"))


def wait_finished(app, batch_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(app.url + f"api/batches/{batch_id}", timeout=10).json()
        if status["finished"]:
            return status
        assert time.monotonic() < deadline, status["counts"]
        time.sleep(0.2)


def ledger_calls(app, headers: dict[str, str]) -> int:
    """The calls counted against this visitor in the current quota window (every window key of theirs)."""
    total = 0
    for key in app.redis.scan_iter(f"tryon:limits:window:{visitor_key(headers)}:*"):
        total += int(app.redis.hget(key, "calls") or 0)
    return total


def jobs_of(app, headers: dict[str, str], status: str | None = None) -> list[dict]:
    """Every job record whose reservation is this visitor's."""
    mine = []
    prefix = f"tryon:limits:window:{visitor_key(headers)}:"
    for key in app.redis.scan_iter("tryon:job:*"):
        record = app.redis.hgetall(key)
        hold = json.loads(record.get("hold") or "null")
        if hold and hold["keys"][0].startswith(prefix) and (status is None or record.get("status") == status):
            mine.append(record)
    return mine


def hwm_mb(app) -> float:
    """The app process's peak resident memory so far."""
    status = Path(f"/proc/{app.process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


class Canary:
    """A TCP listener on 127.0.0.1 that counts every connection made to it (http, https or anything)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# == 1. server files ===============================================================================


def test_file_payloads_name_only_the_callers_own_uploads(open_app, fal_server):
    """/submit_batch and the tab's private Start and plan events, with every file that is not the
    caller's in every file position: refused before a handler runs; nothing read, uploaded or served."""
    marker = f"TRYON-BATCH-SECRET-{secrets.token_hex(8)}".encode()
    secret = secret_png(marker)
    (open_app.data_dir / "batch-secret.png").write_bytes(secret)
    (open_app.tmp_dir / "batch-secret.png").write_bytes(secret)
    victim = Raw(open_app.url)
    victim_path = victim.upload("victim.png", secret)
    aof = next(open_app.redis_process.dir.rglob("appendonly*"), None)
    targets = {
        "passwd": "/etc/passwd", "environ": "/proc/self/environ", "data": str(open_app.data_dir / "batch-secret.png"),
        "tmp": str(open_app.tmp_dir / "batch-secret.png"), "dotted": f"{open_app.data_dir}/uploads/../batch-secret.png",
        "victim": victim_path, "victim-dotted": str(Path(victim_path).parent) + "/./../" + "/".join(Path(victim_path).parts[-2:]),
        "HTTPS": "HTTPS://x/../../../../../../.." + str(open_app.data_dir / "batch-secret.png"),
        "redis": str(aof or open_app.redis_process.dir), "archives": str(open_app.data_dir / "archives"),
    }
    attacker = Raw(open_app.url, headers=new_visitor())
    own_person, own_garment = attacker.upload("p.png", PERSON), attacker.upload("g.png", GARMENTS[0])
    before = batch_keys(open_app)
    tried = 0
    for event, as_item in (("submit_batch", tagged), ("start", gallery_item), ("plan", gallery_item)):
        for position in (0, 1):
            # Every target in gradio's own shape; the two readable ones in every other shape too.
            offers = [(name, tagged(path)) for name, path in targets.items()]
            offers += [(name, shape) for name in ("victim", "data") for shape in
                       ({"path": targets[name]}, gallery_item(targets[name]), {"path": targets[name], "url": None, "orig_name": "p.png"})]
            for name, shape in offers:
                files = [[as_item(own_person)], [as_item(own_garment)]]
                files[position] = [as_item(own_person if position == 0 else own_garment), shape]
                rest = ["", 1, "same", "1K", ""] if event == "submit_batch" else ["", None]
                answer, _ = attacker.call(event, files + rest)
                where = f"{event}, input {position}, {name}, {shape}"
                assert REFUSAL in answer, f"{where} was not refused: {answer[-400:]}"
                contents = attacker.served(answer) + [answer.encode()]
                assert not any(marker in c or b"root:x:0:0" in c or b"PATH=" in c for c in contents), where
                tried += 1
    assert tried >= 90
    assert not fal_server.uploads and not fal_server.submits, "a refused request reached the provider"
    assert not secret_reached_fal(fal_server)
    assert batch_keys(open_app) == before
    # gradio_client sends a dict without gradio's tag as it is: refused the same way.
    from gradio_client import Client

    client = Client(open_app.url, verbose=False)
    with pytest.raises(Exception, match="not uploaded in this browser session"):
        client.predict([{"path": "/etc/passwd"}], [{"path": targets["data"]}], "", 1, "same", "1K", "", api_name="/submit_batch")
    # The control: the same request with the caller's own uploads only does run (so the probes above could have).
    answer, last = attacker.call("submit_batch", [[tagged(own_person)], [tagged(own_garment)], "", 1, "same", "1K", ""])
    assert last.get("success"), answer[-400:]
    assert last["output"]["data"][0]["looks"] == 1
    wait_finished(open_app, last["output"]["data"][0]["batch_id"])
    assert not secret_reached_fal(fal_server)


def test_text_photos_are_never_files_or_private_urls(open_app, fal_server):
    """/submit_batch_urls and POST /api/batches with paths, file: URLs and loopback/private URLs as
    persons or garments: refused, nothing read, nothing fetched (a listener on 127.0.0.1 counts
    connections; the FAL test server on 127.0.0.1 records every GET)."""
    marker = f"TRYON-BATCH-TEXT-{secrets.token_hex(8)}".encode()
    secret_path = open_app.data_dir / "text-secret.png"
    secret_path.write_bytes(secret_png(marker))
    canary = Canary()
    fal_port = fal_server.port
    probe = f"ssrf-{secrets.token_hex(6)}"
    c = canary.port
    texts = ["/etc/passwd", "file:///etc/passwd", "file://localhost/etc/passwd", str(secret_path),
             f"{open_app.data_dir}/uploads/../text-secret.png", "../../../../../../../../etc/passwd", "/proc/self/environ",
             f"http://127.0.0.1:{c}/p.png", f"https://127.0.0.1:{c}/p.png", f"https://localhost:{c}/p.png",
             f"https://[::ffff:127.0.0.1]:{c}/p.png", f"https://2130706433:{c}/p.png", f"https://0x7f000001:{c}/p.png",
             f"https://127.1:{c}/p.png", f"HTTPS://127.0.0.1:{c}/p.png", f"https://user:pw@127.0.0.1:{c}/p.png",
             f"gopher://127.0.0.1:{c}/_x", f"https://127.0.0.1:{fal_port}/files/{probe}.png",
             f"https://localhost:{fal_port}/files/{probe}-2.png", "https://169.254.169.254/latest/meta-data/",
             f"  https://127.0.0.1:{c}/p.png  "]
    good_person, good_garment = data_url(PERSON), data_url(GARMENTS[0])
    headers = new_visitor()
    client = Raw(open_app.url, headers=headers)
    before = batch_keys(open_app)
    try:
        for text in texts:
            for persons, garments in (([text], [good_garment]), ([good_person], [text])):
                answer, last = client.call("submit_batch_urls", [json.dumps(persons), json.dumps(garments), "", 1, "same", "1K", ""])
                assert last.get("success") is False, f"{text!r} was accepted by /submit_batch_urls: {answer[-300:]}"
                rest = post_batch(open_app, {"persons": persons, "outfits": garments}, headers=headers)
                assert rest.status_code == 400 and rest.json()["success"] is False, (text, rest.status_code, rest.text[:300])
                for shown in (answer, rest.text):
                    assert marker.decode() not in shown and "root:x:0:0" not in shown and "PATH=" not in shown, text
                # One line per URL in the agents' form too.
                answer, last = client.call("submit_batch_urls", [text, good_garment, "", 1, "same", "1K", ""])
                assert last.get("success") is False, text
        # A file payload may be an https URL (gradio downloads it itself, through safehttpx): never a private one.
        own_person, own_garment = client.upload("p.png", PERSON), client.upload("g.png", GARMENTS[0])
        for url in (f"https://127.0.0.1:{c}/p.png", f"https://localhost:{c}/p.png", f"https://127.0.0.1:{fal_port}/files/{probe}-3.png"):
            for event, item in (("submit_batch", tagged), ("start", gallery_item)):
                rest = ["", 1, "same", "1K", ""] if event == "submit_batch" else ["", None]
                for files in ([[item(url)], [item(own_garment)]], [[item(own_person)], [item(url)]]):
                    answer, last = client.call(event, files + rest)
                    started = last.get("success") and last["output"]["data"][0]  # Start answers the id it started
                    assert not started, (event, url, answer[-300:])
        time.sleep(0.3)  # anything fetched in the background would have connected by now
        assert canary.hits == 0, f"{canary.hits} connection(s) to a loopback listener (SSRF)"
        assert not [r for r in fal_server.received("GET") if probe in r.path], "the app fetched a loopback URL"
        assert not secret_reached_fal(fal_server)
        assert batch_keys(open_app) == before
    finally:
        canary.close()


# == 2. batch ids ==================================================================================


BAD_IDS = ["A" * 32, "x", "", " ", "../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "*", "tryon:job:*",
           "ñ" * 32, "１" * 32, "\u202e" * 20, "😀" * 20, "a\x00" * 16, "A" * 65, "A" * 5000, "-" * 32, "_" * 32]


def test_batch_ids_are_the_capability_and_nothing_lists_them(open_app, fal_server):
    log_from = len(open_app.log())
    headers = new_visitor()
    made = post_batch(open_app, {"persons": [data_url(PERSON)], "outfits": [data_url(GARMENTS[0])]}, headers=headers)
    assert made.status_code == 200, made.text
    batch_id = made.json()["batch_id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", batch_id)  # 24 random bytes, 192 bits
    job_id = made.json()["cells"][0]["job_id"]
    wait_finished(open_app, batch_id)
    http = httpx.Client(base_url=open_app.url, timeout=30)
    for path in ["/api/batches", "/api/batches/", "/api/batches?all=1", "/api/batches/*", "/api/batches/%2A", "/api/jobs",
                 "/api/jobs/", "/gradio_api/info", "/config", "/gradio_api/openapi.json", "/api/openapi.json", "/api/metrics",
                 "/metrics", "/?view=api"]:
        answer = http.get(path)
        assert batch_id not in answer.text and job_id not in answer.text, f"{path} shows a batch or job id"
    # Each look's job and the batch are not each other's ids.
    assert http.get(f"/api/batches/{job_id}").json()["code"] == "batch_not_found"
    assert http.get(f"/api/jobs/{batch_id}/status").json()["code"] == "job_not_found"
    raw = Raw(open_app.url, headers=headers)
    for bad in BAD_IDS + [job_id, batch_id + "A", batch_id[:-1], batch_id.lower() if batch_id.lower() != batch_id else batch_id.upper()]:
        quoted = httpx.URL(open_app.url).copy_with(raw_path=f"/api/batches/{_quote(bad)}".encode()).raw_path.decode()
        for method, suffix in (("GET", ""), ("GET", "/archive"), ("POST", "/cancel"), ("POST", "/retry")):
            answer = http.request(method, quoted + suffix, headers=headers)
            assert answer.status_code == 404, (bad[:40], method, suffix, answer.status_code, answer.text[:200])
            assert "root:x:0:0" not in answer.text and "Traceback" not in answer.text
            if "/" in bad:  # literal dot segments: the path is another route's (a plain 404, nothing read)
                continue
            body = answer.json()
            assert body["success"] is False and body["code"] in ("batch_not_found", "not_found"), (bad[:40], body)
            if "%2F" not in bad and bad:
                assert body["code"] == "batch_not_found", (bad[:40], suffix, body)
        for api in ("batch_status", "cancel_batch", "retry_batch", "batch_archive"):
            text, last = raw.call(api, [bad])
            assert last.get("success") is False and NOT_FOUND in text, (api, bad[:40], text[-300:])
    huge, last = raw.call("batch_status", ["A" * 200_000])
    assert NOT_FOUND in huge and len(huge) < 10_000
    # Retry's cells: nonsense numbers change nothing and break nothing.
    for cells in ([-1], [10**30], [0] * 1000):
        answer = http.post(f"/api/batches/{batch_id}/retry", json={"cells": cells}, headers=headers)
        assert answer.status_code in (200, 400), answer.text[:200]
    assert http.get(f"/api/batches/{batch_id}").json()["cells"][0]["tries"] == 1
    assert "Traceback" not in open_app.log()[log_from:]


def _quote(text: str) -> str:
    """Percent-encode for a URL path, keeping what the test spells as %xx and '/' as they are."""
    from urllib.parse import quote

    return quote(text, safe="/%")


def test_with_keys_changes_need_a_key_and_reads_need_only_the_id(keyed_app, fal_server):
    """TRYON_API_KEYS set: submit, cancel and retry need a key; status and the archive work by id (as documented)."""
    key = API_KEYS[0]
    body = {"persons": [data_url(PERSON)], "outfits": [data_url(GARMENTS[0]), data_url(GARMENTS[1])]}
    for bad in (None, "wrong-key"):
        refused = post_batch(keyed_app, {**body, **({"apiKey": bad} if bad else {})})
        assert refused.status_code == 401 and refused.json()["code"] == "bad_api_key"
    assert not fal_server.uploads and not batch_keys(keyed_app)
    made = post_batch(keyed_app, {**body, "apiKey": key})
    assert made.status_code == 200, made.text
    batch_id = made.json()["batch_id"]
    http = httpx.Client(base_url=keyed_app.url, timeout=60)
    assert http.get(f"/api/batches/{batch_id}").status_code == 200  # no key: the id is the capability
    for action in ("cancel", "retry"):
        assert http.post(f"/api/batches/{batch_id}/{action}").status_code == 401
        assert http.post(f"/api/batches/{batch_id}/{action}", json={"apiKey": "wrong"}).status_code == 401
        assert http.post(f"/api/batches/{batch_id}/{action}", json={"apiKey": key}).status_code == 200
    wait_finished(keyed_app, batch_id)
    archive = http.get(f"/api/batches/{batch_id}/archive")
    assert archive.status_code == 200 and zipfile.ZipFile(io.BytesIO(archive.content)).testzip() is None
    # The gradio API is behind the login: nothing without it, everything with it.
    for api in ("submit_batch_urls", "batch_status", "cancel_batch", "retry_batch", "batch_archive"):
        data = [data_url(PERSON), data_url(GARMENTS[0]), "", 1, "same", "1K", ""] if api == "submit_batch_urls" else [batch_id]
        started = http.post(f"/gradio_api/call/{api}", json={"data": data})
        assert started.status_code in (401, 403), (api, started.status_code, started.text[:200])
    joined = http.post("/gradio_api/queue/join", json={"data": [batch_id], "fn_index": 0, "session_hash": "x"})
    assert joined.status_code in (401, 403)
    logged_in = Raw(keyed_app.url, login=("someone", API_KEYS[1]))
    text, last = logged_in.call("cancel_batch", [batch_id])
    assert last.get("success"), text[-300:]


# == 3. quotas =====================================================================================


def test_a_batch_just_over_the_quota_is_refused_whole(open_app, fal_server):
    headers = new_visitor()
    person, garments = data_url(PERSON), [data_url(g) for g in GARMENTS]
    before = batch_keys(open_app)
    over = post_batch(open_app, {"persons": [person], "outfits": garments + [garments[0]]}, headers=headers)  # 5 looks
    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded", over.text
    raw = Raw(open_app.url, headers=headers)
    text, last = raw.call("submit_batch_urls", [json.dumps([person, person]), json.dumps(garments[:3]), "", 1, "same", "1K", ""])
    assert last.get("success") is False and "limit" in text  # 6 looks
    assert not fal_server.uploads and not fal_server.submits and batch_keys(open_app) == before
    assert ledger_calls(open_app, headers) == 0  # the refusals held nothing back
    fits = post_batch(open_app, {"persons": [person, person], "outfits": garments[:2]}, headers=headers)  # 4 looks
    assert fits.status_code == 200, fits.text
    one_more = post_batch(open_app, {"persons": [person], "outfits": [garments[3]]}, headers=headers)
    assert one_more.status_code == 429 and one_more.json()["code"] == "quota_exceeded"
    status = wait_finished(open_app, fits.json()["batch_id"])
    assert status["counts"]["done"] == 4 and len(fal_server.submits) == 4
    # Finished looks are not retried: a retry now queues and reserves nothing.
    retried = httpx.post(open_app.url + f"api/batches/{status['batch_id']}/retry", headers=headers, timeout=30)
    assert retried.status_code == 200 and all(cell["tries"] == 1 for cell in retried.json()["cells"])
    assert ledger_calls(open_app, headers) <= QUOTA
    time.sleep(0.5)
    assert len(fal_server.submits) == 4


def test_concurrent_submits_share_one_quota(open_app, fal_server):
    headers = new_visitor()
    person, garments = data_url(PERSON), [data_url(g) for g in GARMENTS]
    raw = Raw(open_app.url, headers=headers)

    def by_rest(n):
        answer = post_batch(open_app, {"persons": [person], "outfits": garments[:2]}, headers=headers)
        return answer.json().get("looks", 0) if answer.status_code == 200 else 0

    def by_gradio(n):
        _, last = raw.call("submit_batch_urls", [person, "\n".join(garments[:2]), "", 1, "same", "1K", ""])
        return last["output"]["data"][0]["looks"] if last.get("success") else 0

    with ThreadPoolExecutor(12) as pool:
        looks = list(pool.map(lambda n: (by_rest if n % 2 else by_gradio)(n), range(12)))
    assert sum(looks) <= QUOTA, f"{sum(looks)} looks accepted on a quota of {QUOTA} calls"
    assert ledger_calls(open_app, headers) <= QUOTA
    deadline = time.monotonic() + 40
    while len(fal_server.submits) < sum(looks) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    assert len(fal_server.submits) == sum(looks) <= QUOTA


def test_cancel_and_retry_loops_never_hold_more_than_the_quota(idle_app, fal_server):
    headers = new_visitor()
    person, garments = data_url(PERSON), [data_url(g) for g in GARMENTS]
    http = httpx.Client(base_url=idle_app.url, timeout=60, headers=headers)
    made = http.post("/api/batches", json={"persons": [person], "outfits": garments})  # 4 looks: the whole quota
    assert made.status_code == 200, made.text
    batch_id = made.json()["batch_id"]
    for _ in range(4):
        cancelled = http.post(f"/api/batches/{batch_id}/cancel").json()
        assert cancelled["counts"]["cancelled"] == 4 and ledger_calls(idle_app, headers) == 0
        again = http.post(f"/api/batches/{batch_id}/retry").json()
        assert again["counts"]["queued"] == 4 and ledger_calls(idle_app, headers) == QUOTA
        assert http.post(f"/api/batches/{batch_id}/retry").json()["counts"]["queued"] == 4  # nothing to retry: nothing held
        refused = http.post("/api/batches", json={"persons": [person], "outfits": [garments[0]]})
        assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert len(jobs_of(idle_app, headers, "queued")) == QUOTA
    # Now many retries at once, by REST and by gradio, right after a cancel.
    http.post(f"/api/batches/{batch_id}/cancel")
    raw = Raw(idle_app.url, headers=headers)

    def retry(n):
        if n % 2:
            return http.post(f"/api/batches/{batch_id}/retry").status_code
        return raw.call("retry_batch", [batch_id])[1].get("success")

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(retry, range(10)))
    queued = jobs_of(idle_app, headers, "queued")
    assert len(queued) <= QUOTA and ledger_calls(idle_app, headers) <= QUOTA, (len(queued), ledger_calls(idle_app, headers))
    assert not fal_server.submits  # no workers here: nothing ran


def test_a_retry_counts_against_whoever_asks(idle_app):
    owner, helper, broke = new_visitor(), new_visitor(), new_visitor()
    person, garments = data_url(PERSON), [data_url(g) for g in GARMENTS]
    made = post_batch(idle_app, {"persons": [person], "outfits": garments[:2]}, headers=owner)
    batch_id = made.json()["batch_id"]
    httpx.post(idle_app.url + f"api/batches/{batch_id}/cancel", headers=owner, timeout=30)
    assert ledger_calls(idle_app, owner) == 0
    again = httpx.post(idle_app.url + f"api/batches/{batch_id}/retry", headers=helper, timeout=30)
    assert again.status_code == 200 and again.json()["counts"]["queued"] == 2
    assert ledger_calls(idle_app, helper) == 2 and ledger_calls(idle_app, owner) == 0
    # A visitor whose quota is spent cannot retry anyone's batch.
    assert post_batch(idle_app, {"persons": [person], "outfits": garments}, headers=broke).status_code == 200
    httpx.post(idle_app.url + f"api/batches/{batch_id}/cancel", headers=owner, timeout=30)
    assert ledger_calls(idle_app, helper) == 0  # the helper's queued retries were cancelled: released
    refused = httpx.post(idle_app.url + f"api/batches/{batch_id}/retry", headers=broke, timeout=30)
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    raw = Raw(idle_app.url, headers=broke)
    text, last = raw.call("retry_batch", [batch_id])
    assert last.get("success") is False
    assert httpx.get(idle_app.url + f"api/batches/{batch_id}", timeout=30).json()["counts"]["cancelled"] == 2
    assert ledger_calls(idle_app, broke) == QUOTA
    # A visitor's own FAL key is refused for batches everywhere (a worker would need it stored).
    own = {**helper, "X-Fal-Key": OWN_FAL_KEY}
    answer = httpx.post(idle_app.url + f"api/batches/{batch_id}/retry", headers=own, timeout=30)
    assert answer.status_code == 400 and answer.json()["code"] == "own_key_sync_only"
    answer = post_batch(idle_app, {"persons": [person], "outfits": [garments[0]]}, headers=own)
    assert answer.status_code == 400 and answer.json()["code"] == "own_key_sync_only"
    for api, data in (("retry_batch", [batch_id]), ("submit_batch_urls", [person, garments[0], "", 1, "same", "1K", ""])):
        text, last = Raw(idle_app.url, headers=own).call(api, data)
        assert last.get("success") is False and OWN_KEY_REFUSAL in text, (api, text[-300:])
    assert ledger_calls(idle_app, helper) == 0


# == 4. secrets ====================================================================================


def redis_dump(client: redis_py.Redis) -> str:
    """Every key and value in Redis as text."""
    parts = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        parts.append(key)
        if kind == "string":
            parts.append(str(client.get(key)))
        elif kind == "hash":
            parts.append(json.dumps(client.hgetall(key)))
        elif kind == "list":
            parts.append(json.dumps(client.lrange(key, 0, -1)))
        elif kind == "set":
            parts.append(json.dumps(sorted(client.smembers(key))))
        elif kind == "zset":
            parts.append(json.dumps(client.zrange(key, 0, -1, withscores=True)))
        elif kind == "stream":
            parts.append(json.dumps(client.xrange(key)))
    return "\n".join(parts)


def archive_text(data: bytes) -> bytes:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return b"\n".join([name.encode() + b"\n" + archive.read(name) for name in archive.namelist()])


def test_no_key_reaches_a_batch_record_its_archive_or_any_answer(keyed_app, fal_server):
    fal_key = fal_server.key
    key = API_KEYS[1]
    answers: list[str] = []
    person, garments = data_url(PERSON), [data_url(g) for g in GARMENTS]
    # The visitor's own FAL key is refused for batches on every way in, before anything is stored.
    own = {"X-Fal-Key": OWN_FAL_KEY}
    refused = post_batch(keyed_app, {"persons": [person], "outfits": [garments[0]], "apiKey": key}, headers=own)
    assert refused.status_code == 400 and refused.json()["code"] == "own_key_sync_only"
    answers.append(refused.text)
    logged_in = Raw(keyed_app.url, headers=own, login=("visitor", key))
    text, last = logged_in.call("submit_batch_urls", [person, garments[0], "", 1, "same", "1K", ""])
    assert last.get("success") is False and OWN_KEY_REFUSAL in text
    answers.append(text)
    # A batch with a description, one look failing on the app's FAL key (its error text is in the manifest),
    # and an own key on its retry.
    fal_server.behaviour.submit_failures = [401]  # one look fails on "our" key: its error text goes in the manifest
    body = {"apiKey": key, "persons": [person, data_url(encode(draw_person(shirt=(90, 160, 90)).image))],
            "outfits": [{"garments": [garments[0]], "descriptions": ["a red tee"]},
                        {"garments": [garments[1], garments[3]], "categories": ["bottom", "outerwear"]}]}
    made = post_batch(keyed_app, body)
    assert made.status_code == 200, made.text
    batch_id = made.json()["batch_id"]
    answers.append(made.text)
    status = wait_finished(keyed_app, batch_id)
    assert status["counts"]["error"] == 1 and status["counts"]["done"] == 3, status["counts"]
    assert any("key" in (cell.get("error") or "") for cell in status["cells"])
    answers.append(json.dumps(status))
    retry = httpx.post(keyed_app.url + f"api/batches/{batch_id}/retry", json={"apiKey": key}, headers=own, timeout=30)
    assert retry.status_code == 400 and retry.json()["code"] == "own_key_sync_only"
    answers.append(retry.text)
    text, last = logged_in.call("retry_batch", [batch_id])
    assert last.get("success") is False and OWN_KEY_REFUSAL in text
    answers.append(text)
    rest_archive = httpx.get(keyed_app.url + f"api/batches/{batch_id}/archive", timeout=60)
    assert rest_archive.status_code == 200
    plain = Raw(keyed_app.url, login=("visitor", key))
    text, last = plain.call("batch_archive", [batch_id])
    assert last.get("success"), text[-300:]
    answers.append(text)
    served = plain.served(text)
    assert served and all(zipfile.ZipFile(io.BytesIO(s)).testzip() is None for s in served)
    for api in ("batch_status", "cancel_batch"):
        answers.append(plain.call(api, [batch_id])[0])
    # Where secrets could land: Redis (every key and value, and its append-only file), both archives, every
    # answer, every file under the data and temp dirs, and the log.
    places = {"redis": redis_dump(keyed_app.redis).encode(), "rest archive": archive_text(rest_archive.content),
              "gradio archive": b"".join(archive_text(s) for s in served), "answers": "\n".join(answers).encode(),
              "log": keyed_app.log().encode()}
    for folder in (keyed_app.redis_process.dir, keyed_app.data_dir, keyed_app.tmp_dir):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and not path.name.endswith(".sock"):
                try:
                    places[str(path)] = path.read_bytes()
                except OSError:
                    pass
    archives = [p for p in keyed_app.data_dir.rglob("*.zip")]
    for path in archives:
        places[f"{path} (unzipped)"] = archive_text(path.read_bytes())
    for name, secret in (("FAL key", fal_key), ("API key 1", API_KEYS[0]), ("API key 2", API_KEYS[1]),
                         ("own FAL key", OWN_FAL_KEY), ("own key's secret", OWN_FAL_KEY.split(":")[1])):
        found = [where for where, data in places.items() if secret.encode() in data]
        assert not found, f"the {name} is in {found}"
    record = keyed_app.redis.hgetall(f"tryon:batch:{batch_id}")
    assert record and "apiKey" not in json.dumps(record) and "hold" not in record


# == 5. the archive's files =======================================================================


FORMULAS = ["=HYPERLINK(\"http://127.0.0.1/x\",\"click\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1", "=1+1"]


def test_manifest_csv_runs_no_formula_and_member_names_are_plain(open_app, fal_server):
    headers = new_visitor()
    outfits = [{"garments": [data_url(GARMENTS[0])], "descriptions": [FORMULAS[0]]},
               {"garments": [data_url(GARMENTS[1]), data_url(GARMENTS[2])], "descriptions": FORMULAS[1:3]},
               {"garments": [data_url(GARMENTS[3])], "descriptions": [FORMULAS[3]]},
               {"garments": [data_url(g) for g in GARMENTS[:3]], "descriptions": FORMULAS[4:7]}]
    made = post_batch(open_app, {"persons": [data_url(PERSON)], "outfits": outfits}, headers=headers)
    assert made.status_code == 200, made.text
    batch_id = made.json()["batch_id"]
    wait_finished(open_app, batch_id)
    answer = httpx.get(open_app.url + f"api/batches/{batch_id}/archive", timeout=60)
    assert answer.status_code == 200
    assert re.fullmatch(r'attachment; filename="tryon-batch-[A-Za-z0-9_-]{8}\.zip"', answer.headers["content-disposition"])
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    for info in archive.infolist():
        assert re.fullmatch(r"person-\d+_outfit-\d+(_v\d+)?\.png|contact_sheet\.png|manifest\.(json|csv)", info.filename), info.filename
        assert not info.is_dir() and (info.external_attr >> 16) & 0o170000 in (0, 0o100000)  # no symlinks, no folders
    rows = list(csv.reader(io.StringIO(archive.read("manifest.csv").decode("utf-8"))))
    assert len(rows) == 1 + 4
    for row in rows:
        for value in row:
            if value.startswith(("=", "+", "-", "@", "\t", "\r")):
                assert re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", value), f"a CSV cell a spreadsheet would run: {value!r}"
    manifest = json.loads(archive.read("manifest.json"))
    assert len(manifest["looks"]) == 4


def test_asking_for_the_same_archive_again_does_not_fill_the_disk(open_app, fal_server):
    """/batch_archive writes the ZIP under the data dir for gradio to hand out. Anyone with the id may ask
    for it again and again: the same batch's archive must not take more disk with every request."""
    headers = new_visitor()
    made = post_batch(open_app, {"persons": [data_url(PERSON)], "outfits": [data_url(GARMENTS[0])]}, headers=headers)
    batch_id = made.json()["batch_id"]
    wait_finished(open_app, batch_id)
    raw = Raw(open_app.url, headers=headers)

    def archived() -> tuple[int, int]:
        files = [p for p in open_app.data_dir.rglob("*.zip") if p.is_file()]
        return len(files), sum(p.stat().st_size for p in files)

    raw.call("batch_archive", [batch_id])
    once = archived()
    for _ in range(5):
        text, last = raw.call("batch_archive", [batch_id])
        assert last.get("success"), text[-300:]
    again = archived()
    # The ZIPs under the data dir are not served: not to a stranger, not to the caller (it gets gradio's copy).
    stranger = Raw(open_app.url)
    for path in open_app.data_dir.rglob("*.zip"):
        if "archives" in path.parts:
            for client in (stranger, raw):
                assert client.http.get(f"/gradio_api/file={path}").status_code in (403, 404), path
    assert again[1] <= 2 * once[1], (f"6 requests for one batch's archive left {again[0]} ZIPs ({again[1]} bytes) "
                                     f"under the data dir; one left {once[0]} ({once[1]} bytes)")


# == 6. resource bounds ===========================================================================


def test_the_size_bounds_are_checked_before_any_upload(open_app, fal_server):
    headers = new_visitor()
    person, garment = data_url(PERSON), data_url(GARMENTS[0])
    cases = {
        "batch_too_many_persons": {"persons": [person] * 21, "outfits": [garment]},
        "batch_too_many_outfits": {"persons": [person], "outfits": [garment] * 51},
        "batch_outfit_garments": {"persons": [person], "outfits": [{"garments": [garment] * 5}]},
        "batch_too_large": {"persons": [person] * 20, "outfits": [garment] * 50},  # 1000 looks, the limit is 200
    }
    for code, body in cases.items():
        answer = post_batch(open_app, body, headers=headers)
        allowed = {code} if code == "batch_too_large" else {code, "bad_field"}  # a count the body's schema may bound
        assert answer.status_code == 400 and answer.json()["code"] in allowed, (code, answer.text[:300])
    empty = post_batch(open_app, {"persons": [person], "outfits": [{"garments": []}]}, headers=headers)
    assert empty.status_code == 400
    raw = Raw(open_app.url, headers=headers)
    text, last = raw.call("submit_batch_urls", [json.dumps([person] * 21), garment, "", 1, "same", "1K", ""])
    assert last.get("success") is False
    text, last = raw.call("submit_batch_urls", [person, json.dumps([garment] * 5), "1+2+3+4+5", 1, "same", "1K", ""])
    assert last.get("success") is False
    assert not fal_server.uploads and not fal_server.submits
    assert ledger_calls(open_app, headers) == 0


def queued_jobs(app) -> set[str]:
    return {key for key in app.redis.scan_iter("tryon:job:*") if app.redis.hget(key, "status") == "queued"}


def test_concurrent_retries_queue_each_look_once(preview_app):
    """Retries racing on one batch (REST handlers run in parallel): each failed or cancelled look gets one
    new job, and the batch keeps track of it, so Cancel still stops everything. (Free looks here, so no
    quota hides the race; with a quota, the extra jobs are paid from the retrier's.)"""
    upload = lambda data: httpx.post(preview_app.url + "api/images/upload", json={"image": data_url(data)}, timeout=30).json()["url"]
    person, garments = upload(PERSON), [upload(g) for g in GARMENTS[:2]]
    made = post_batch(preview_app, {"persons": [person] * 10, "outfits": garments})  # 20 looks
    assert made.status_code == 200, made.text
    batch_id = made.json()["batch_id"]
    others = queued_jobs(preview_app) - {f"tryon:job:{cell['job_id']}" for cell in made.json()["cells"]}
    httpx.post(preview_app.url + f"api/batches/{batch_id}/cancel", timeout=30)
    together = threading.Barrier(16)

    def retry(_):
        with httpx.Client(base_url=preview_app.url, timeout=60) as http:
            http.get("/api/models")  # connected before the barrier, so the retries really race
            together.wait()
            return http.post(f"/api/batches/{batch_id}/retry").status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(retry, range(16)))
    assert set(codes) == {200}
    fresh = queued_jobs(preview_app) - others
    status = httpx.get(preview_app.url + f"api/batches/{batch_id}", timeout=30).json()
    tracked = {f"tryon:job:{cell['job_id']}" for cell in status["cells"]}
    httpx.post(preview_app.url + f"api/batches/{batch_id}/cancel", timeout=30)  # must stop every look the retries queued
    left = queued_jobs(preview_app) - others
    for key in left:  # so they do not weigh on the other tests
        preview_app.redis.hset(key, "status", "cancelled")
    assert len(fresh) == 20 and fresh <= tracked and not left, (
        f"16 concurrent retries of 20 cancelled looks queued {len(fresh)} jobs; the batch tracks {len(tracked & fresh)}, "
        f"and {len(left)} stay queued after Cancel (they would run, and be paid for, unseen)")


def test_a_1000_look_batch_and_its_archive_stay_bounded(preview_app):
    person = httpx.post(preview_app.url + "api/images/upload", json={"image": data_url(PERSON)}, timeout=30).json()["url"]
    garment = httpx.post(preview_app.url + "api/images/upload", json={"image": data_url(GARMENTS[0])}, timeout=30).json()["url"]
    started = time.monotonic()
    made = post_batch(preview_app, {"persons": [person] * 20, "outfits": [garment] * 50}, timeout=120)
    assert made.status_code == 200, made.text[:300]
    assert made.json()["looks"] == 1000
    batch_id = made.json()["batch_id"]
    over = post_batch(preview_app, {"persons": [person] * 21, "outfits": [garment] * 50})
    assert over.status_code == 400
    status = httpx.get(preview_app.url + f"api/batches/{batch_id}", timeout=60)
    assert status.status_code == 200 and len(status.json()["cells"]) == 1000
    answer = httpx.get(preview_app.url + f"api/batches/{batch_id}/archive", timeout=120)
    assert answer.status_code == 200
    assert time.monotonic() - started < 60
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.testzip() is None
    sheet = Image.open(io.BytesIO(archive.read("contact_sheet.png")))
    assert max(sheet.size) <= 8000
    assert len(json.loads(archive.read("manifest.json"))["looks"]) == 1000
    assert len(answer.content) < 50 * 2**20


def _timed(work):
    started = time.monotonic()
    result = work()
    return result, time.monotonic() - started


def test_a_huge_outfit_list_is_refused_before_it_is_built(preview_app):
    """A 10 MB body of two million one-letter outfits (the limit is 50): refused in about the time it
    takes to parse, without building two million outfits first."""
    before = hwm_mb(preview_app)
    body = json.dumps({"persons": ["x"], "outfits": ["a"] * 2_000_000})
    answer, took = _timed(lambda: httpx.post(preview_app.url + "api/batches", content=body,
                                             headers={"Content-Type": "application/json"}, timeout=120))
    grown = hwm_mb(preview_app) - before
    assert answer.status_code == 400, answer.text[:200]
    assert took < 3.0 and grown < 200, f"refused after {took:.1f} s, the app's peak memory grew {grown:.0f} MB"


def test_a_huge_outfit_grouping_is_refused_quickly(preview_app):
    """The tab's plan (a private event, fired on every change of the outfits box) and /submit_batch_urls
    with a million outfit groups or garments (2 MB of text; the limit is 50 outfits): refused quickly,
    with a small answer, not after building a million outfits (or pricing each one)."""
    raw = Raw(preview_app.url)
    person, garment = raw.upload("p.png", PERSON), raw.upload("g.png", GARMENTS[0])
    groups = "1," * 1_000_000
    cases = {"plan, a million groups": ("plan", [[gallery_item(person)], [gallery_item(garment)], groups, None]),
             "submit_batch_urls, a million garments": ("submit_batch_urls", ["x", "a\n" * 1_000_000, "", 1, "same", "1K", ""]),
             "submit_batch_urls, a million groups": ("submit_batch_urls", ["x", "a", groups, 1, "same", "1K", ""])}
    slow = []
    for name, (event, data) in cases.items():
        (text, last), took = _timed(lambda: raw.call(event, data, timeout=120))
        if took > 3.0 or len(text) > 100_000:
            slow.append(f"{name}: {took:.1f} s, {len(text)} bytes answered")
        if event == "submit_batch_urls":
            assert last.get("success") is False
    assert not slow, "; ".join(slow)


@pytest.fixture
def stall_app(tmp_path_factory):
    """An app of its own: a stalled one is killed, not stopped politely (that would wait for the match)."""
    app = launch(tmp_path_factory, "stall", {"TRYON_WORKERS": "0"})
    yield app
    if app.process.poll() is None and not _answers(app):
        app.process.kill()
        app.process.wait(timeout=10)
    shut(app)


def test_an_outfit_grouping_cannot_stall_the_app(stall_app):
    """parse_outfits' pattern must not backtrack: a short grouping with runs of spaces between numbers
    that fails at its end. The regex engine holds the GIL, so a slow match stalls every request."""
    evil = "1" + "  1" * 27 + "x"  # 83 characters; each further "  1" doubles the time
    raw = Raw(stall_app.url)
    person, garment = raw.upload("p.png", PERSON), raw.upload("g.png", GARMENTS[0])
    outcome = {}

    def attack():
        try:
            outcome["answer"] = raw.call("submit_batch_urls", ["x", "a", evil, 1, "same", "1K", ""], timeout=600)
        except httpx.HTTPError as error:  # the app was killed under it
            outcome["error"] = error

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    time.sleep(0.5)
    try:
        started = time.monotonic()
        try:
            bystander = httpx.get(stall_app.url + "api/models", timeout=3.0).status_code
        except httpx.TimeoutException:
            bystander = None
        waited = time.monotonic() - started
        attacker.join(timeout=3.0)
        assert bystander == 200 and not attacker.is_alive(), (
            f"a {len(evil)}-character outfits text stalled the app: another request waited {waited:.1f} s "
            f"and the attack had not finished after {waited + 3.5:.1f} s")
        # The tab's private plan event takes the same text.
        (text, last), took = _timed(lambda: raw.call("plan", [[gallery_item(person)], [gallery_item(garment)], evil, None],
                                                     timeout=30))
        assert took < 3.0, f"plan took {took:.1f} s"
    finally:
        if attacker.is_alive():
            stall_app.process.kill()  # stuck in the regex: stopping it politely would wait for the match
            stall_app.process.wait(timeout=10)


def _answers(app) -> bool:
    try:
        return httpx.get(app.url + "api/models", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
