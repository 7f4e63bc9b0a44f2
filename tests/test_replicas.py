"""Two app replicas and a worker on one Redis behind nginx behave as one app (docs/DEPLOY.md).

The clusters come from tests/replicas.py: the offline preview for the page and the jobs, the FAL
test server for what only paid calls show (quotas, the budget) and for the replica killed mid-job.
Visitors are told apart by X-Forwarded-For: a test client on 127.0.0.1 is, to the app, a trusted
proxy (TRYON_TRUSTED_PROXIES=127.0.0.1), and nginx appends its own peer to what the client sent.
"""

from __future__ import annotations

import base64
import io
import os
import secrets
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image

from replicas import (  # noqa: F401 (fixtures)
    ARTIFACTS, CHEAP_MODEL, COOKIE, DEAR_MODEL, QUOTA_CALLS, find_binary, NGINX_CANDIDATES, fal_cluster, main_config,
    preview_cluster, render_site, site_template, wait_for,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
PERSON, GARMENT = ASSETS / "person_illustration.png", ASSETS / "garment_tshirt_red.png"


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


LOOK = {"userImage": b64(PERSON), "garments": [b64(GARMENT)]}


def marked(url: str) -> tuple[str, str]:
    """The URL with a query marker of its own, so the request's line in nginx's access log can be found."""
    marker = "m" + secrets.token_hex(6)
    return f"{url}{'&' if '?' in url else '?'}{marker}", marker


def wait_done(get_status, timeout: float = 30.0) -> dict:
    """Poll until the job's status is done or error; the last answer."""
    last: dict = {}

    def finished():
        nonlocal last
        last = get_status()
        return last.get("status") in ("done", "error")

    wait_for(finished, timeout, "the job to finish", interval=0.2)
    return last


def jpeg_of(data_url: str) -> Image.Image:
    assert data_url and data_url.startswith("data:image/jpeg;base64,"), str(data_url)[:80]
    picture = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    picture.load()
    return picture


# -- the configuration itself -------------------------------------------------------------------

def test_the_docs_site_block_is_a_valid_nginx_config(tmp_path):
    nginx = find_binary(NGINX_CANDIDATES, "nginx")
    if not nginx:
        pytest.skip("no nginx (apt-get install nginx)")
    site = render_site(site_template(), ["127.0.0.1:1", "127.0.0.1:2"], "127.0.0.1:3", str(tmp_path / "access.log"))
    assert site.count("server 127.0.0.1:") == 2 and "hash $tryon_sticky consistent;" in site
    (tmp_path / "nginx.conf").write_text(main_config(site, tmp_path))
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             capture_output=True, text=True, timeout=20)
    assert checked.returncode == 0, checked.stderr


# -- the page, through nginx --------------------------------------------------------------------

@pytest.mark.browser
def test_a_browser_runs_a_look_through_nginx_and_its_session_stays_on_one_replica(preview_cluster):
    from e2e.conftest import CHROMIUM, FLAGS  # exactly how the browser tests launch Debian's Chromium

    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("TRYON_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TRYON_REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    cluster = preview_cluster
    start = cluster.log_offset()
    seen: dict = {}

    def visit() -> None:
        # On a thread of its own: the browser tests' session-wide Playwright may be running on this
        # one, and Playwright's sync API refuses to start twice on one thread.
        from playwright.sync_api import sync_playwright

        from e2e.pagekit import image_size, pick_garment, pick_person, run_look

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 1400})
                page = context.new_page()
                try:
                    page.goto(cluster.url)
                    page.wait_for_selector("#try-on")
                    pick_person(page, 0)
                    pick_garment(page, 0, 1)
                    seen["status"] = run_look(page, timeout=60_000)
                    page.locator("#result img").wait_for(timeout=10_000)
                    seen["size"] = image_size(page, "#result img")
                    seen["src"] = page.locator("#result img").get_attribute("src")
                    seen["pill"] = page.locator("#preview-pill").inner_text()
                    seen["cookies"] = {c["name"]: c["value"] for c in context.cookies()}
                finally:
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / "test_replicas-browser-through-nginx.png"), full_page=True)
            finally:
                browser.close()

    failure: list[BaseException] = []
    thread = threading.Thread(target=lambda: _record_failure(visit, failure), name="replicas-browser", daemon=True)
    thread.start()
    thread.join(150)
    assert not thread.is_alive(), "the browser did not finish within 150 s"
    if failure:
        raise failure[0]

    assert "Offline preview" in seen["status"] and seen["pill"].startswith("Offline preview")
    assert seen["size"][0] > 0
    # gradio built the picture's URL from X-Forwarded-Host: nginx's address, port included.
    assert seen["src"].startswith(cluster.url) or seen["src"].startswith("/"), seen["src"]
    assert COOKIE in seen["cookies"]
    # Every gradio request of the session (uploads, queue joins, their event streams, the result's
    # file) went to one replica: the one the session cookie hashes to.
    lines = [line for line in cluster.access_lines(start) if "/gradio_api/" in line]
    assert any("/gradio_api/queue/join" in line for line in lines) and any("/gradio_api/queue/data" in line for line in lines)
    upstreams = {cluster.upstreams_of(line)[-1] for line in lines}
    assert len(upstreams) == 1, upstreams
    assert cluster.probe(seen["cookies"][COOKIE]) == cluster.replica_at(upstreams.pop())
    assert all(" 200 " in line for line in lines if "/gradio_api/queue/" in line)


def _record_failure(run, failure: list) -> None:
    try:
        run()
    except BaseException as error:  # handed to the test's thread
        failure.append(error)


# -- jobs across replicas -----------------------------------------------------------------------

def test_a_job_submitted_through_one_replica_is_polled_and_read_through_the_other(preview_cluster):
    a, b = preview_cluster.replicas
    with httpx.Client(timeout=30) as http:
        submitted = http.post(f"{a.url}api/jobs/submit", json=LOOK)
        assert submitted.status_code == 200, submitted.text
        job_id = submitted.json()["job_id"]
        status = wait_done(lambda: http.get(f"{b.url}api/jobs/{job_id}/status").json())
    assert status["status"] == "done", status
    assert status["offline_preview"] is True
    # The picture the worker made, read through the replica that neither took the job nor ran it.
    picture = jpeg_of(status["image_url"])
    assert picture.format == "JPEG" and min(picture.size) > 100

    # The same through gradio's named API: /submit_job on one replica, /job_status on the other.
    from gradio_client import Client, handle_file

    on_a, on_b = Client(a.url, verbose=False), Client(b.url, verbose=False)
    job_id = on_a.predict(handle_file(str(PERSON)), handle_file(str(GARMENT)), None, None, None, api_name="/submit_job")
    status = wait_done(lambda: on_b.predict(job_id, api_name="/job_status"))
    assert status["status"] == "done", status
    assert jpeg_of(status["image_url"]).size == picture.size


def test_with_a_replica_killed_every_job_completes_and_polling_through_nginx_answers(fal_cluster, fal_server):
    cluster = fal_cluster
    a, b = cluster.replicas
    fal_server.behaviour.latency_s = 2.0  # the model takes a while: the jobs are running when A dies
    jobs: list[str] = []
    try:
        with httpx.Client(timeout=30) as http:
            for n in range(6):  # three through each replica; each its own visitor (one paid call each)
                pin = n % 2
                url, marker = marked(f"{cluster.url}api/jobs/submit")
                answer = http.post(url, json=LOOK, headers=cluster.pinned(pin, X_Forwarded_For=f"198.51.100.{n + 1}"))
                assert answer.status_code == 200, answer.text
                assert cluster.served_by(marker) == [cluster.replicas[pin].address]
                jobs.append(answer.json()["job_id"])
            before = [http.get(f"{b.url}api/jobs/{job}/status").json()["status"] for job in jobs]
            assert set(before) - {"done", "error"}, f"every job had finished before the kill: {before}"

            killed_at = cluster.log_offset()
            cluster.kill_replica(0)
            assert not a.process.alive()

            # A's sessions keep polling through nginx: every answer is the job's status, never an error.
            def poll_all():
                statuses = []
                for job in jobs:
                    url, _ = marked(f"{cluster.url}api/jobs/{job}/status")
                    answer = http.get(url, headers=cluster.pinned(0))
                    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
                    statuses.append(answer.json())
                return statuses

            statuses: list[dict] = []

            def all_finished() -> bool:
                statuses[:] = poll_all()
                return all(s["status"] in ("done", "error") for s in statuses)

            wait_for(all_finished, 40, "every job to finish after the kill", interval=0.3)
            # A new job from one of A's sessions lands on B and completes as well.
            url, marker = marked(f"{cluster.url}api/jobs/submit")
            answer = http.post(url, json=LOOK, headers=cluster.pinned(0, X_Forwarded_For="198.51.100.99"))
            assert answer.status_code == 200, answer.text
            assert cluster.served_by(marker)[-1] == b.address
            late = wait_done(lambda: http.get(f"{cluster.url}api/jobs/{answer.json()['job_id']}/status").json())

        assert [s["status"] for s in statuses] == ["done"] * 6, [(s["status"], s.get("error")) for s in statuses]
        assert late["status"] == "done", late
        assert all(s["image_url"].startswith(fal_server.url) for s in [*statuses, late])
        assert len({s["image_url"] for s in statuses}) == 6
        # nginx's passive failover: after the kill, every request of A's sessions was answered by B,
        # the first ones after trying A (refused), then A was skipped while marked down.
        after = [cluster.upstreams_of(line) for line in cluster.access_lines(killed_at)]
        assert after and all(tried[-1] == b.address for tried in after), after
        assert any(tried == [a.address, b.address] for tried in after), after
        assert "connect() failed (111" in cluster.error_log.read_text()
    finally:
        fal_server.behaviour.latency_s = 0.05
        cluster.heal()


# -- quotas and budgets across replicas ---------------------------------------------------------

def generate(cluster, http, pin: int, visitor: str, **extra) -> httpx.Response:
    url, marker = marked(f"{cluster.url}api/images/generate")
    answer = http.post(url, json={**LOOK, **extra}, headers=cluster.pinned(pin, X_Forwarded_For=visitor))
    assert cluster.served_by(marker) == [cluster.replicas[pin].address], "nginx sent the look to the other replica"
    return answer


def test_an_anonymous_visitors_quota_holds_across_replicas(fal_cluster, fal_server):
    visitor = "203.0.113.10"
    with httpx.Client(timeout=60) as http:
        for _ in range(QUOTA_CALLS):
            answer = generate(fal_cluster, http, 0, visitor)
            assert answer.status_code == 200, answer.text
        refused = generate(fal_cluster, http, 1, visitor)
        other = generate(fal_cluster, http, 1, "203.0.113.11")  # someone else is not refused
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "quota_exceeded", refused.json()
    assert int(refused.headers["Retry-After"]) > 0
    assert other.status_code == 200, other.text
    assert len(fal_server.submits_for(CHEAP_MODEL)) == QUOTA_CALLS + 1  # the refused look called no model


def test_a_visitors_daily_budget_holds_across_replicas(fal_cluster, fal_server):
    visitor = "203.0.113.20"
    with httpx.Client(timeout=60) as http:
        first = generate(fal_cluster, http, 0, visitor, model=DEAR_MODEL)
        assert first.status_code == 200, first.text
        refused = generate(fal_cluster, http, 1, visitor, model=DEAR_MODEL)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "budget_exhausted", refused.json()
    assert int(refused.headers["Retry-After"]) > 0
    assert len(fal_server.submits_for(DEAR_MODEL)) == 1
