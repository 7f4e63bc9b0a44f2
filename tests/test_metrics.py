"""Metrics that mean what they say: outcome classes, success rate, calls and spend per provider,
the two photo caches, Prometheus text; on a real Redis."""

from __future__ import annotations

import time

import pytest

from tryon.config import Settings
from tryon.errors import MESSAGES, InvalidRequest
from tryon.metrics import FAILURES, REFUSALS, STREAM, USER_ERRORS, Metrics, _day, event_from, outcome_class
from tryon.prices import price_per_image
from tryon.providers import build_provider
from tryon.providers.local import LocalPreviewProvider
from tryon.redis_server import client_for
from tryon.service import TryOnService


@pytest.fixture
def metrics(redis_server) -> Metrics:
    return Metrics(client_for(host="127.0.0.1", port=redis_server.port))


def timings(provider: str = "fal", calls: int = 1, served_by: list[str] | None = None, variants: int = 1,
            resolution: str = "1K", total_ms: float = 8000.0, provider_ms: float = 7000.0,
            intake: str = "decoded", upload: str = "uploaded") -> dict:
    """A timing record as the service closes it, with only the fields the metrics read."""
    record = {
        "requestId": "r", "provider": provider, "total_backend_ms": total_ms, "fal_duration_ms": provider_ms,
        "uploads": [{"field": "person", "intake": intake, "upload": upload},
                    {"field": "garment_1", "intake": "decoded", "upload": "uploaded"}],
        "variants": variants, "options": {"resolution": resolution}, "offline_preview": provider == "local",
        **{f"fal_call_{n}": provider_ms / calls for n in range(1, calls + 1)},
    }
    if served_by:
        record["served_by"] = served_by
    return record


def record(metrics: Metrics, mode: str, outcome: str, record_: dict | None = None, settings: Settings | None = None,
           provider: str = "fal") -> None:
    metrics.record(event_from(mode, (record_ or {}).get("provider", provider), outcome, record_, 1, settings))


def test_every_error_code_is_decided_once():
    for code in MESSAGES:
        assert [code in USER_ERRORS, code in REFUSALS, code in FAILURES].count(True) == 1, code
    assert outcome_class("no_garment") == "user_error" and outcome_class("corrupt_image") == "user_error"
    assert outcome_class("content_policy") == "refused"
    assert outcome_class("provider_timeout") == "failure" and outcome_class("internal_error") == "failure"
    assert outcome_class("a_code_from_next_year") == "failure"  # unknown: never hidden
    assert outcome_class("ok") == "ok"


def test_user_mistakes_and_refusals_are_not_failures(metrics):
    for _ in range(3):
        record(metrics, "sync", "ok", timings())
    record(metrics, "sync", "no_garment")
    record(metrics, "sync", "corrupt_image")
    record(metrics, "async", "content_policy")
    record(metrics, "sync", "provider_unreachable")
    summary = metrics.summary()
    assert summary["requests"] == 7 and summary["succeeded"] == 3
    assert summary["failed"] == 1 and summary["user_errors"] == 2 and summary["refused"] == 1
    assert summary["outcomes"] == {"ok": 3, "user_error": 2, "refused": 1, "failure": 1}
    assert summary["success_rate"] == 0.75  # 3 / (3 + 1), not 3 / 7
    assert summary["errors"] == {"corrupt_image": 1, "no_garment": 1, "content_policy": 1, "provider_unreachable": 1}
    sync = summary["by_mode"]["sync"]
    assert (sync["requests"], sync["succeeded"], sync["failed"], sync["user_errors"], sync["success_rate"]) == (6, 3, 1, 2, 0.75)
    assert summary["by_mode"]["async"]["success_rate"] is None  # a refusal alone: nothing succeeded or failed


def test_only_mistakes_leave_the_rate_undecided(metrics):
    record(metrics, "sync", "no_person")
    summary = metrics.summary()
    assert summary["success_rate"] is None and summary["failed"] == 0 and summary["user_errors"] == 1


def test_the_price_table():
    assert price_per_image("fal", "1K") == price_per_image("fal", "2K") == 0.15
    assert price_per_image("fal", "4K") == 0.30
    assert price_per_image("replicate", "4K") == 0.039
    assert price_per_image("local") == 0.0
    assert price_per_image("runpod") is None  # billed by GPU second: unknown unless set
    assert price_per_image("runpod", settings=Settings.from_env({"TRYON_RUNPOD_PRICE_USD": "0.02"})) == 0.02
    assert price_per_image("fal", settings=Settings.from_env({"TRYON_FAL_MODEL": "fal-ai/some-other-model"})) is None
    versioned = Settings.from_env({"TRYON_REPLICATE_MODEL": "google/nano-banana:abc123"})
    assert price_per_image("replicate", settings=versioned) == 0.039


def test_calls_and_spend_per_provider(metrics):
    # Sync, two garments on FAL at 1K, two results: call 1 makes 1 image, call 2 makes 2: 3 × $0.15.
    record(metrics, "sync", "ok", timings(calls=2, variants=2))
    # Async on FAL at 4K: 1 × $0.30.
    record(metrics, "async", "ok", timings(resolution="4K"))
    # A chain that failed over mid-look: call 1 at FAL ($0.15), call 2 at Replicate, 2 images (2 × $0.039).
    record(metrics, "sync", "ok", timings(provider="fal,replicate", calls=2, served_by=["fal", "replicate"], variants=2))
    # The offline preview: a call, not paid.
    record(metrics, "sync", "ok", timings(provider="local"))
    # RunPod: no price known...
    record(metrics, "sync", "ok", timings(provider="runpod"))
    # ... failures make no calls we know of.
    record(metrics, "sync", "provider_timeout")
    summary = metrics.summary()
    fal, replicate = summary["by_provider"]["fal"], summary["by_provider"]["replicate"]
    local, runpod = summary["by_provider"]["local"], summary["by_provider"]["runpod"]
    assert (fal["looks"], fal["calls"], fal["paid_calls"], fal["images"]) == (3, 4, 4, 5)
    assert fal["spend_usd"] == pytest.approx(0.45 + 0.30 + 0.15)
    assert (replicate["looks"], replicate["paid_calls"], replicate["images"]) == (1, 1, 2)
    assert replicate["spend_usd"] == pytest.approx(0.078)
    assert (local["calls"], local["paid_calls"], local["spend_usd"], local["offline"]) == (1, 0, 0.0, True)
    assert runpod["paid_calls"] == 1 and runpod["spend_usd"] is None
    assert summary["paid_calls"] == 6
    assert summary["spend_usd"] == pytest.approx(0.978) and summary["spend_complete"] is False
    # Times per provider are of the looks it served alone (the split look has no single provider).
    assert fal["provider_ms"]["p50"] == 7000.0 and replicate["provider_ms"]["p50"] is None


def test_a_set_runpod_price_is_used(metrics):
    settings = Settings.from_env({"TRYON_RUNPOD_PRICE_USD": "0.02"})
    record(metrics, "sync", "ok", timings(provider="runpod", calls=2, variants=3), settings)
    summary = metrics.summary()
    assert summary["by_provider"]["runpod"]["spend_usd"] == pytest.approx(0.02 * 4)
    assert summary["spend_complete"] is True


def test_the_photo_cache_and_the_upload_cache_are_told_apart(metrics, redis_server, settings, person_png, garment_pngs):
    """The timing table says "cache hit" for a photo prepared before (intake); the old single rate
    counted provider uploads only, which the offline preview never reuses: 0 % beside "cache hit"."""
    service = TryOnService(settings, LocalPreviewProvider(), metrics=metrics)
    first = service.try_on_sync(person_png, [garment_pngs[0]])
    again = service.try_on_sync(person_png, [garment_pngs[0]])
    assert [u["intake"] for u in first.timings["uploads"]] == ["decoded", "decoded"]
    assert [u["intake"] for u in again.timings["uploads"]] == ["cached", "cached"]
    with pytest.raises(InvalidRequest):  # no garment: the user's mistake
        service.try_on_sync(person_png, [])
    summary = metrics.summary()
    assert summary["photos"] == 4 and summary["photos_prepared_before"] == 2
    assert summary["intake_cache_hit_rate"] == 0.5
    assert summary["uploads_to_provider"] == 0 and summary["upload_cache_hit_rate"] is None  # nothing to reuse offline
    assert summary["user_errors"] == 1 and summary["failed"] == 0 and summary["success_rate"] == 1.0
    assert summary["by_provider"]["local"]["looks"] == 2 and summary["paid_calls"] == 0


def test_the_upload_cache_counts_reused_provider_uploads(metrics):
    record(metrics, "sync", "ok", timings(upload="cached"))
    record(metrics, "sync", "ok", timings(upload="shared", intake="cached"))
    summary = metrics.summary()
    assert summary["uploads_to_provider"] == 4 and summary["uploads_reused"] == 2 and summary["upload_cache_hit_rate"] == 0.5
    assert summary["intake_cache_hit_rate"] == 0.25


def test_events_from_before_the_change_still_count(metrics):
    """Events written by the previous version (no class fields, no calls) are still read."""
    ts = event_from("sync", "fal", "ok", None, 1)["ts"]
    old = {"ts": str(ts), "request_id": "r", "mode": "sync", "provider": "fal", "garments": "1", "outcome": "ok",
           "total_ms": "900.0", "provider_ms": "800.0", "uploads": "2", "uploads_cached": "1"}
    metrics.redis.xadd(STREAM.format(_day(ts)), old)
    summary = metrics.summary()
    assert summary["succeeded"] == 1 and summary["upload_cache_hit_rate"] == 0.5 and summary["by_provider"] == {}


def test_prometheus_keeps_its_series_and_adds_the_classes(metrics):
    record(metrics, "sync", "ok", timings(calls=2))
    record(metrics, "sync", "no_garment")
    record(metrics, "sync", "content_policy")
    record(metrics, "sync", "provider_unavailable")
    record(metrics, "sync", "ok", timings(provider="runpod"))
    text = metrics.prometheus()
    assert 'tryon_requests_total{mode="sync",outcome="ok"} 2' in text  # unchanged series
    assert 'tryon_requests_total{mode="sync",outcome="no_garment"} 1' in text
    assert 'tryon_request_duration_ms{mode="sync",quantile="0.50"}' in text
    for result, count in (("ok", 2), ("user_error", 1), ("refused", 1), ("failure", 1)):
        assert f'tryon_outcomes_total{{mode="sync",result="{result}"}} {count}' in text
    assert 'tryon_success_ratio{mode="sync"} 0.6667' in text
    assert 'tryon_model_calls_total{provider="fal"} 2' in text
    assert 'tryon_estimated_spend_usd_total{provider="fal"} 0.3' in text
    assert 'tryon_unpriced_model_calls_total{provider="runpod"} 1' in text
    assert "tryon_upload_cache_hit_ratio 0.0" in text and "tryon_intake_cache_hit_ratio 0.0" in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_fal_looks_sync_and_async_are_priced_from_their_timing_records(fal_server, redis_server, tmp_path, person_png,
                                                                      garment_pngs):
    """The real service, worker and fal-client against the FAL test server: what the metrics count
    is what the timing records say was called."""
    from tryon.jobs import JobQueue
    from tryon.outfit import Outfit
    from tryon.providers import build_provider
    from tryon.jobs.worker import WorkerPool

    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path)})
    client = client_for(host="127.0.0.1", port=redis_server.port)
    metrics = Metrics(client)
    queue = JobQueue(client, settings.job_ttl_s, settings.job_visibility_s, settings.job_max_attempts)
    service = TryOnService(settings, build_provider(settings), queue, metrics=metrics)
    service.try_on_sync(person_png, garment_pngs[:2], outfit=Outfit(num_images=2))  # 2 calls, 3 images at 1K
    job = service.submit_job(person_png, garment_pngs[:1], outfit=Outfit(resolution="4K"))  # 1 call, 1 image at 4K
    pool = WorkerPool(service, 1).start()
    try:
        deadline = time.monotonic() + 30
        while service.job_status(job.job_id)["status"] not in ("done", "error") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pool.stop()
    assert service.job_status(job.job_id)["status"] == "done"
    summary = metrics.summary()
    fal = summary["by_provider"]["fal"]
    assert (fal["looks"], fal["paid_calls"], fal["images"]) == (2, 3, 4)
    assert fal["spend_usd"] == pytest.approx(3 * 0.15 + 0.30)
    assert summary["success_rate"] == 1.0 and summary["by_mode"]["async"]["succeeded"] == 1
    # The job's two photos had been uploaded by the sync look: 2 of 5 uploads reused.
    assert summary["uploads_to_provider"] == 5 and summary["upload_cache_hit_rate"] == pytest.approx(2 / 5)


def test_spend_is_shown_per_model_mode_and_day(redis_server, fal_server, tmp_path, person_png, garment_pngs):
    from tryon.outfit import Outfit
    from tryon.redis_server import client_for
    from tryon.web.metrics_view import metrics_page

    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path)})
    metrics = Metrics(client_for(host="127.0.0.1", port=redis_server.port))
    service = TryOnService(settings, build_provider(settings), metrics=metrics)
    service.try_on_sync(person_png, garment_pngs[:2], outfit=Outfit.parse(model="fal-ai/fashn/tryon/v1.6"))
    service.try_on_sync(person_png, garment_pngs[:1])  # the default, nano-banana-pro: $0.15
    summary = metrics.summary()
    assert summary["spend_by_model"] == {"fal-ai/fashn/tryon/v1.6": {"looks": 1, "calls": 2, "usd": 0.15},
                                         "fal-ai/nano-banana-pro/edit": {"looks": 1, "calls": 1, "usd": 0.15}}
    assert summary["spend_by_mode"] == {"sync": {"looks": 2, "calls": 3, "usd": 0.3}}
    (day,) = summary["spend_by_day"].values()
    assert day["usd"] == 0.3
    page = metrics_page(summary, [], "es")
    assert "| FASHN Try-On v1.6 | 1 | 2 | 0,15 US$ |" in page and "Gasto" in page
    text = metrics.prometheus()
    assert 'tryon_estimated_spend_by_model_usd_total{model="fal-ai/fashn/tryon/v1.6"} 0.15' in text
    assert 'tryon_model_calls_by_model_total{model="fal-ai/nano-banana-pro/edit"} 1' in text
