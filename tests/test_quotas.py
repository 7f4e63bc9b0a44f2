"""Quotas per visitor and the day's budget (tryon/limits), on a real Redis and the FAL test server:
who a visitor is, a look refused before any call, what a look really cost settled afterwards, and
every way in (REST, the gradio API, MCP, async jobs) counted against the same quota."""

from __future__ import annotations

import base64
import ipaddress
import threading
import time
from dataclasses import replace

import httpx
import pytest
import redis as redis_py
from gradio_client import Client, handle_file

from conftest import NO_LIMITS, free_port, start_app, stop_app
from redis_process import RedisProcess
from tryon.config import Settings
from tryon.errors import TryOnError
from tryon.limits import Ledger, Visitor, client_address
from tryon.outfit import Outfit
from tryon.providers.fal import FalProvider
from tryon.service import TryOnService

NETS = tuple(ipaddress.ip_network(n) for n in ("127.0.0.1/32", "10.0.0.0/8"))
NOON = 1_780_000_000 - 1_780_000_000 % 86400 + 43200  # 12:00 UTC on some day


# -- who a visitor is ------------------------------------------------------------------------

def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    # A client talking to the app directly cannot name another address.
    assert client_address("203.0.113.9", "1.2.3.4", NETS) == "203.0.113.9"
    assert client_address("203.0.113.9", "1.2.3.4", ()) == "203.0.113.9"
    # Through our proxy: the address it appended (the rightmost), not what the client wrote before it.
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7", NETS) == "198.51.100.7"
    # Two trusted hops (an edge proxy in 10/8, then nginx on loopback).
    assert client_address("127.0.0.1", "198.51.100.7, 10.1.2.3", NETS) == "198.51.100.7"
    # Garbage stops the walk at the last address a trusted proxy vouched for; ports are dropped.
    assert client_address("127.0.0.1", "nonsense, 10.1.2.3", NETS) == "10.1.2.3"
    assert client_address("127.0.0.1", "198.51.100.7:4711", NETS) == "198.51.100.7"
    assert client_address("127.0.0.1", None, NETS) == "127.0.0.1"


def test_an_ipv6_visitor_is_their_64_and_a_mapped_ipv4_peer_is_its_ipv4():
    assert Visitor.from_address("2001:db8:1:2::1") == Visitor.from_address("2001:db8:1:2:ffff::9")  # one subscriber
    assert Visitor.from_address("2001:db8:1:2::1") != Visitor.from_address("2001:db8:1:3::1")
    assert client_address("::ffff:10.1.2.3", "198.51.100.7", NETS) == "198.51.100.7"  # the proxy, seen dual-stack


def test_a_name_logged_in_with_one_key_cannot_be_used_with_another():
    from tryon.web.access import KeyLogins, gradio_auth

    settings = Settings(api_keys=("key-one-12345", "key-two-12345"), auth_users=(("ann", "ann-password"),))
    logins = KeyLogins()
    check = gradio_auth(settings, logins)
    assert check("team-a", "key-one-12345") and check("team-a", "key-one-12345")
    assert not check("team-a", "key-two-12345")  # the second key may not spend the first's quota
    assert check("team-b", "key-two-12345")
    assert logins.digest_of("team-a") != logins.digest_of("team-b")
    assert check("ann", "ann-password") and not check("ann", "key-one-12345")  # a person's name takes their password only
    assert not check("team-c", "not-a-key-at-all")


def test_a_visitor_is_stored_as_a_digest_and_keys_are_never_kept():
    key = "sk-live-abcdef123456"
    visitor = Visitor.with_api_key(key)
    assert key not in visitor.id and key not in visitor.key and key not in repr(visitor)
    assert Visitor.from_address("198.51.100.7").key.startswith("anonymous:") and "198.51" not in Visitor.from_address("198.51.100.7").key
    own = Visitor.from_address("198.51.100.7").bringing("id:secret")
    assert own.pays_own_way and "secret" not in repr(own)


# -- the ledger on a real Redis ----------------------------------------------------------------

def settings_with(**changes) -> Settings:
    base = Settings(quotas={"anonymous": (3, 0.50), "signed_in": (10, 5.0), "api_key": (None, None)},
                    daily_budget_usd=1.0, visitor_daily_budget_usd=0.80, own_keys=True)
    return replace(base, **changes)


@pytest.fixture
def redis_client(redis_server):
    return redis_py.Redis(port=redis_server.port)


def test_a_quota_in_calls_refuses_with_when_it_resets_and_counts_nothing(redis_client):
    clock = [NOON + 600.0]  # ten minutes into the hour
    ledger = Ledger(redis_client, settings_with(), clock=lambda: clock[0])
    visitor = Visitor.from_address("198.51.100.7")
    for _ in range(3):
        ledger.reserve(visitor, 1, 0.0)
    with pytest.raises(TryOnError) as refused:
        ledger.reserve(visitor, 1, 0.0)
    error = refused.value
    assert error.code == "quota_exceeded" and error.http_status == 429 and error.params["seconds"] == 3000
    assert error.message("en") == ("You have reached the limit of 3 model calls per hour for visitors who are not signed in. "
                                   "It resets in 50 min. To go on now, add your own FAL key under Advanced.")
    assert "Se renueva en 50 min" in error.message("es")
    # Another visitor has a quota of their own; the next window starts afresh.
    ledger.reserve(Visitor.from_address("198.51.100.8"), 1, 0.0)
    clock[0] += 3000
    ledger.reserve(visitor, 1, 0.0)


def test_the_metrics_tab_shows_today_s_spend_against_the_cap():
    from tryon.web.metrics_view import metrics_page

    summary = {"total": 0}
    today = {"spent_usd": 4.5, "cap_usd": 25.0, "calls": 30, "looks": 12, "resets_in_s": 3 * 3600 + 600}
    page = metrics_page(summary, [], "en", today)
    assert "**Today's estimated spend:** $4.50 of the $25.00 daily budget (18 %), in 30 model calls. New budget in 3 h 10 min" in page
    assert "4,50 US$ de un presupuesto diario de 25,00 US$ (18 %)" in metrics_page(summary, [], "es", today)


def test_a_quota_in_dollars_and_the_budgets_refuse_before_they_are_passed(redis_client):
    ledger = Ledger(redis_client, settings_with(), clock=lambda: NOON)
    ada, bob, eve = (Visitor.signed_in(name) for name in ("ada", "bob", "eve"))
    ledger.reserve(Visitor.from_address("198.51.100.7"), 1, 0.30)
    with pytest.raises(TryOnError, match=r"\$0.50 of model calls per hour") as refused:
        ledger.reserve(Visitor.from_address("198.51.100.7"), 1, 0.30)  # 0.60 > 0.50 an hour
    assert refused.value.code == "quota_exceeded"
    ledger.reserve(ada, 1, 0.70)
    with pytest.raises(TryOnError) as refused:
        ledger.reserve(ada, 1, 0.15)  # her day: 0.85 > 0.80
    assert refused.value.code == "budget_exhausted" and refused.value.params["seconds"] == 43200
    assert refused.value.message("en").startswith("Your daily budget of $0.80 is spent for today. It resets in 12 h")
    with pytest.raises(TryOnError) as refused:
        ledger.reserve(bob, 1, 0.15)  # the app's day: 0.30 + 0.70 + 0.15 > 1.00
    assert refused.value.message("en").startswith("This app's daily budget of $1.00 is spent for today")
    assert ledger.today()["spent_usd"] == 1.0 and ledger.today()["cap_usd"] == 1.0
    ledger.reserve(eve, 1, 0.0)  # a free call still fits


def test_settling_replaces_the_estimate_once_and_every_key_expires(redis_client):
    ledger = Ledger(redis_client, settings_with(), clock=lambda: NOON)
    visitor = Visitor.from_address("198.51.100.7")
    hold = ledger.reserve(visitor, 2, 0.30)
    assert ledger.today()["spent_usd"] == 0.30
    assert ledger.settle(hold, 1, 0.15) and not ledger.settle(hold, 1, 0.15)  # a second settle changes nothing
    assert ledger.today()["spent_usd"] == 0.15 and ledger.today()["calls"] == 1
    keys = redis_client.keys("tryon:limits:*")
    assert keys and all(0 < redis_client.ttl(k) <= 86400 + 3600 for k in keys)
    assert not any(b"198.51.100.7" in k for k in keys)


def test_two_replicas_share_one_quota_and_no_race_passes_it(redis_client, redis_server):
    # Two ledgers (two app processes) on one Redis, 40 reservations at once: exactly the quota passes.
    replicas = [Ledger(redis_py.Redis(port=redis_server.port), settings_with(quotas={"anonymous": (5, None)}), clock=lambda: NOON)
                for _ in range(2)]
    visitor = Visitor.from_address("198.51.100.7")
    passed, start = [], threading.Barrier(40)

    def attempt(n: int) -> None:
        start.wait()
        try:
            replicas[n % 2].reserve(visitor, 1, 0.0)
            passed.append(n)
        except TryOnError:
            pass

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passed) == 5


# -- the service: refused before any call, settled after, an own key not counted --------------

@pytest.fixture
def limited_service(fal_server, fal_settings, redis_client):
    def build(**changes) -> TryOnService:
        settings = replace(fal_settings, **{"quotas": {"anonymous": (2, None), "signed_in": (None, None), "api_key": (None, None)},
                                            "daily_budget_usd": None, "visitor_daily_budget_usd": None, **changes})
        return TryOnService(settings, FalProvider(settings), ledger=Ledger(redis_client, settings))

    return build


@pytest.fixture
def photos(asset_paths):
    """The example pictures as paths (a str is never read as a file: it is base64 or a URL)."""
    from pathlib import Path

    return {name: Path(path) for name, path in asset_paths.items()}


def test_over_the_quota_no_photo_is_uploaded_and_no_model_called(limited_service, fal_server, photos):
    service = limited_service()
    visitor = Visitor.from_address("198.51.100.7")
    service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], visitor=visitor)
    service.try_on_sync(photos["person_astronaut"], [photos["garment_jeans_blue"]], visitor=visitor)
    uploads, submits = len(fal_server.uploads), len(fal_server.submits)
    with pytest.raises(TryOnError) as refused:
        service.try_on_sync(photos["person_astronaut"], [photos["garment_jacket_denim"]], visitor=visitor)
    assert refused.value.code == "quota_exceeded"
    assert (len(fal_server.uploads), len(fal_server.submits)) == (uploads, submits)  # nothing sent, nothing charged


def test_a_look_the_model_refused_costs_no_quota(limited_service, fal_server, photos):
    service = limited_service(quotas={"anonymous": (1, None)})
    visitor = Visitor.from_address("198.51.100.7")
    fal_server.behaviour.content_policy = True
    with pytest.raises(TryOnError, match="refused|rechaz|policy"):
        service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], visitor=visitor)
    fal_server.behaviour.content_policy = False
    service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], visitor=visitor)  # still allowed


def test_a_look_cut_by_the_deadline_counts_every_call_it_made(limited_service, fal_server, photos, redis_client):
    # Two garments, a chain of two calls; the second is still running when the 3 s deadline passes.
    service = limited_service(quotas={"anonymous": (10, None)}, request_timeout_s=4.0)
    fal_server.behaviour.latency_s = 2.5
    with pytest.raises(TryOnError) as cut:
        service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"], photos["garment_jeans_blue"]],
                            visitor=Visitor.from_address("198.51.100.7"))
    # Cut by the deadline (or, on a loaded machine, by a connection to the test server that timed out).
    assert cut.value.code in ("provider_timeout", "provider_unreachable")
    (window,) = redis_client.keys("tryon:limits:window:*")
    # Never fewer counted than FAL was asked to run: the call it lost track of may be billed too
    # (one more only when the connection failed before that call was submitted).
    counted, submitted = int(redis_client.hget(window, "calls")), len(fal_server.submits)
    assert submitted >= 1 and submitted <= counted <= submitted + 1, (counted, submitted)


def test_the_reservation_covers_the_dearest_model_that_may_answer(limited_service, fal_server, photos):
    # nano-banana-2 ($0.08) with nano-banana-pro ($0.15) behind it: a refusal would hand the look to pro.
    service = limited_service(fal_model="fal-ai/nano-banana-2/edit", fal_fallback_models=("fal-ai/nano-banana-pro/edit",),
                              quotas={"anonymous": (None, 0.10)})
    with pytest.raises(TryOnError) as refused:
        service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], visitor=Visitor.from_address("198.51.100.7"))
    assert refused.value.code == "quota_exceeded" and fal_server.submits == []
    # A model with no list price is reserved at the dearest known one, so a dollar limit still holds.
    unpriced = limited_service(fal_model="fal-ai/some-unlisted/edit", quotas={"anonymous": (None, 0.20)})
    with pytest.raises(TryOnError, match="quota|límite|limit"):
        unpriced.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], visitor=Visitor.from_address("198.51.100.9"))


def test_the_budget_refuses_the_look_that_would_pass_it_and_settles_at_list_price(limited_service, fal_server, photos):
    service = limited_service(quotas={"anonymous": (None, None)}, daily_budget_usd=0.20)  # nano-banana-pro: $0.15 a call
    visitor = Visitor.from_address("198.51.100.7")
    result = service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], visitor=visitor)
    assert result.timings["cost_usd"] == 0.15 and service.spend_today()["spent_usd"] == 0.15
    submits = len(fal_server.submits)
    with pytest.raises(TryOnError) as refused:
        service.try_on_sync(photos["person_astronaut"], [photos["garment_jeans_blue"]], visitor=Visitor.signed_in("ada"))
    assert refused.value.code == "budget_exhausted" and len(fal_server.submits) == submits
    # A cheaper model still fits what is left ($0.05): FASHN at $0.075 does not, Seedream at $0.04 does.
    cheap = Outfit(model="fal-ai/bytedance/seedream/v4.5/edit", resolution="2K")
    service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], outfit=cheap, visitor=visitor)
    assert service.spend_today()["spent_usd"] == pytest.approx(0.19)


def test_an_own_key_pays_for_its_look_and_is_not_counted(limited_service, fal_server, photos, redis_client):
    service = limited_service(daily_budget_usd=0.0)  # the app's budget is spent
    own = "visitor-key-id:visitor-key-secret-0001"
    fal_server.other_keys.add(own)
    visitor = Visitor.from_address("198.51.100.7").bringing(own)
    result = service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]], visitor=visitor)
    assert result.timings["own_key"] is True and "billed to your FAL account" in result.timings["cost_basis"]
    assert fal_server.submits[-1].headers["authorization"] == f"Key {own}"
    assert service.spend_today()["spent_usd"] == 0.0
    assert not any(own.encode() in (redis_client.dump(k) or b"") for k in redis_client.keys("*"))
    with pytest.raises(TryOnError) as refused:  # the app's own key is still held to the budget
        service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]],
                            visitor=Visitor.from_address("198.51.100.7"))
    assert refused.value.code == "budget_exhausted"
    with pytest.raises(TryOnError) as refused:
        service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]],
                            visitor=Visitor.from_address("198.51.100.7").bringing("no colon here"))
    assert refused.value.code == "bad_own_key"
    wrong = "visitor-key-id:not-a-key-fal-knows"  # FAL answers 401: the visitor's key to fix, not the app's
    with pytest.raises(TryOnError) as refused:
        service.try_on_sync(photos["person_astronaut"], [photos["garment_tshirt_red"]],
                            visitor=Visitor.from_address("198.51.100.7").bringing(wrong))
    assert refused.value.code == "own_key_refused" and "your own key (HTTP 401)" in refused.value.message("en")
    assert "not-a-key" not in refused.value.message("en") and "FAL_KEY" not in refused.value.message("en")


# -- every way in, one quota, through the running app --------------------------------------------

def encoded(path: str) -> str:
    return base64.b64encode(open(path, "rb").read()).decode()


@pytest.fixture(scope="module")
def quota_app(tmp_path_factory, fal_server_session):
    redis_for_app = RedisProcess(free_port(), tmp_path_factory.mktemp("quota-redis")).start()
    env = fal_server_session.env(REDIS_URL=redis_for_app.url, TRYON_REQUEST_TIMEOUT="20", TRYON_RATE_LIMIT="100000",
                                 TRYON_QUOTA_ANONYMOUS_CALLS="4", TRYON_QUOTA_ANONYMOUS_USD="none", TRYON_WORKERS="2")
    app = start_app(tmp_path_factory.mktemp("quota-app"), {**NO_LIMITS, **env})
    app.redis = redis_py.Redis.from_url(redis_for_app.url)
    app.redis_dir = redis_for_app.dir
    yield app
    stop_app(app)
    redis_for_app.stop()


@pytest.fixture
def fresh_quota(quota_app, fal_server):
    for key in quota_app.redis.keys("tryon:limits:*"):
        quota_app.redis.delete(key)
    return quota_app


@pytest.mark.slow
def test_rest_the_gradio_api_mcp_and_jobs_draw_on_one_quota(fresh_quota, fal_server, asset_paths):
    from test_mcp import data_url, with_session

    app = fresh_quota
    person, shirt = asset_paths["person_astronaut"], asset_paths["garment_tshirt_red"]
    body = {"userImage": encoded(person), "garments": [encoded(shirt)]}
    # One look (one model call) by each way in: REST, gradio_client, MCP, an async job.
    assert httpx.post(f"{app.url}api/images/generate", json=body, timeout=60).status_code == 200
    client = Client(app.url, verbose=False)
    client.predict(handle_file(person), handle_file(shirt), api_name="/try_on")
    result = with_session(app.url, lambda s: s.call_tool("try_on", {"person": data_url(person), "garment_1": data_url(shirt)}))
    assert not result.isError, result.content
    job_id = client.predict(handle_file(person), handle_file(shirt), api_name="/submit_job")
    # The job reserved its call at submit; its worker makes it (and settles) when it runs.
    status = httpx.get(f"{app.url}api/jobs/{job_id}/status", timeout=30).json()
    deadline = time.monotonic() + 30
    while status["status"] not in ("done", "error") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = httpx.get(f"{app.url}api/jobs/{job_id}/status", timeout=30).json()
    assert status["status"] == "done"
    submits = len(fal_server.submits)
    assert submits == 4
    # The quota (4 calls an hour) is spent, whichever way the fifth look comes.
    refused = httpx.post(f"{app.url}api/images/generate", json=body, timeout=60)
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3601
    assert "4 model calls per hour" in refused.json()["error"]
    spanish = httpx.post(f"{app.url}api/jobs/submit", json=body, timeout=60, headers={"Accept-Language": "es"})
    assert spanish.status_code == 429 and spanish.json()["error"].startswith("Has llegado al límite de 4 llamadas al modelo")
    with pytest.raises(Exception, match="4 model calls per hour"):
        client.predict(handle_file(person), handle_file(shirt), api_name="/try_on")
    with pytest.raises(Exception, match="4 model calls per hour"):
        client.predict(handle_file(person), handle_file(shirt), api_name="/submit_job")
    result = with_session(app.url, lambda s: s.call_tool("try_on", {"person": data_url(person), "garment_1": data_url(shirt)}))
    assert result.isError and "4 model calls per hour" in str(result.content)
    assert len(fal_server.submits) == submits  # not one more call reached FAL
    # The job's hold was settled once: four calls counted, not five.
    (window,) = [k for k in app.redis.keys("tryon:limits:window:*")]
    assert int(app.redis.hget(window, "calls")) == 4
    # Today's spend, the same for every replica, on /metrics: four calls of nano-banana-pro at $0.15.
    prometheus = httpx.get(f"{app.url}metrics", timeout=30).text
    assert "tryon_spend_today_usd 0.6\n" in prometheus and "tryon_model_calls_today 4\n" in prometheus


@pytest.mark.slow
def test_an_address_written_by_the_client_does_not_buy_a_fresh_quota(fresh_quota, asset_paths):
    body = {"userImage": encoded(asset_paths["person_astronaut"]), "garments": [encoded(asset_paths["garment_tshirt_red"])]}
    statuses = [httpx.post(f"{fresh_quota.url}api/images/generate", json=body, timeout=60,
                           headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(6)]
    assert statuses == [200] * 4 + [429] * 2  # no proxy is trusted by default: the header is ignored


@pytest.mark.slow
def test_an_own_key_leaves_no_trace_in_redis_the_data_dir_or_the_log(fresh_quota, fal_server, asset_paths):
    app = fresh_quota
    own = "byok-0f3a9c:5ecret-visitor-own-fal-key-7781"
    fal_server.other_keys.add(own)
    person, shirt = asset_paths["person_astronaut"], asset_paths["garment_tshirt_red"]
    body = {"userImage": encoded(person), "garments": [encoded(shirt)]}
    answers = [httpx.post(f"{app.url}api/images/generate", json=body, timeout=60, headers={"X-Fal-Key": own}) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6  # past the quota of 4: their own key, their own bill
    client = Client(app.url, verbose=False, headers={"X-Fal-Key": own})
    _, record = client.predict(handle_file(person), handle_file(shirt), api_name="/try_on")
    assert record["own_key"] is True
    refused = httpx.post(f"{app.url}api/jobs/submit", json=body, timeout=60, headers={"X-Fal-Key": own})
    assert refused.status_code == 400 and refused.json()["code"] == "own_key_sync_only"
    used = [r for r in fal_server.submits if r.headers.get("authorization") == f"Key {own}"]
    assert len(used) == 7
    assert not app.redis.keys("tryon:limits:window:*")  # nothing was counted
    # Searched for everywhere the app writes: every answer, every Redis value, every file, the log.
    secret = own.split(":")[1].encode()
    assert not any(secret in a.content for a in [*answers, refused])
    for key in app.redis.keys("*"):
        assert secret not in (app.redis.dump(key) or b""), key
    files = [*app.data_dir.rglob("*"), *app.tmp_dir.rglob("*"), *app.redis_dir.rglob("*")]  # the append-only file too
    for path in [p for p in files if p.is_file()]:
        assert secret not in path.read_bytes(), path
    assert secret.decode() not in app.log()
