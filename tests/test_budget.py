"""The pieces of the hardening, on their own: budgets, the failure bucket, the new settings, paths."""

from __future__ import annotations

import threading
import time

import pytest

from tryon.web.access import RateLimiter, bearer_token
from tryon.web.auth_throttle import failure_status
from tryon.budget import Budget, give_back_memory
from tryon.config import Settings
from tryon.errors import ConfigError, TryOnError
from tryon.web.mcp_guard import is_mcp


def test_a_budget_admits_up_to_its_capacity_and_frees_on_release():
    budget = Budget(100)
    assert budget.try_reserve(60) and budget.try_reserve(40)
    assert not budget.try_reserve(1)
    budget.release(40)
    assert budget.try_reserve(30) and budget.in_use == 90


def test_more_than_the_whole_budget_goes_through_alone():
    budget = Budget(100)
    assert budget.try_reserve(150)  # nothing else held: it may not wait forever
    assert not budget.try_reserve(1)
    budget.release(150)
    assert budget.in_use == 0


def test_reserve_waits_a_bounded_time_then_gives_up():
    budget = Budget(10)
    budget.try_reserve(10)
    started = time.monotonic()
    assert not budget.reserve(5, timeout_s=0.2)
    assert 0.18 <= time.monotonic() - started < 1.0
    threading.Timer(0.1, budget.release, args=(10,)).start()
    assert budget.reserve(5, timeout_s=2.0)  # woken by the release, long before the time-out


def test_hold_answers_busy_with_a_retry_time_when_the_wait_runs_out():
    budget = Budget(10)
    with budget.hold(10, timeout_s=0):
        with pytest.raises(TryOnError) as refused:
            with budget.hold(1, timeout_s=0.05):
                pass
    assert refused.value.code == "busy" and refused.value.http_status == 429 and refused.value.params["seconds"] >= 1
    assert budget.in_use == 0


def test_malloc_trim_is_available_here():
    assert give_back_memory()  # glibc: the measurements in docs/RELIABILITY.md depend on it


def test_the_failure_bucket_peeks_takes_and_refunds(redis_server):
    import redis as redis_py

    now = [0.0]
    limiter = RateLimiter(10, redis_py.Redis(port=redis_server.port), "auth", clock=lambda: now[0])
    for _ in range(10):
        assert limiter.wait("ip") == 0
        assert limiter.allow("ip")[0]
    assert limiter.wait("ip") == pytest.approx(6.0)  # 10 a minute: one token every 6 s
    limiter.refund("ip")
    assert limiter.wait("ip") == 0
    limiter.allow("ip")
    now[0] += 6.0
    assert limiter.wait("ip") == 0 and limiter.wait("other") == 0


@pytest.mark.parametrize("header, token", [
    ("Bearer key-1234", "key-1234"), ("bearer   key-1234 ", "key-1234"), ("Basic a2V5", None), ("Bearer", None), (None, None),
])
def test_bearer_tokens(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize("path, guarded", [
    ("/gradio_api/mcp", True), ("/gradio_api/mcp/", True), ("/gradio_api/mcp/sse", True), ("/gradio_api/mcp/schema", True),
    ("/gradio_api/mcp/messages/", True), ("//gradio_api//mcp/", True), ("/gradio_api/mcpx", False), ("/gradio_api/info", False),
])
def test_every_spelling_of_the_mcp_routes_is_guarded(path, guarded):
    assert is_mcp(path) is guarded


@pytest.mark.parametrize("method, path, expected", [
    ("POST", "/login", (400, True)), ("POST", "/login/", (400, True)), ("GET", "/login", (None, True)),
    ("GET", "/metrics", (401, True)), ("POST", "/gradio_api/mcp/", (401, True)),
    ("POST", "/api/images/generate", (401, False)), ("GET", "/config", (None, False)),
])
def test_which_answers_count_as_failed_credentials(method, path, expected):
    assert failure_status(method, path) == expected


def test_budget_settings_default_to_twice_the_largest_item():
    settings = Settings.from_env({})
    assert settings.body_budget_bytes == 2 * settings.max_body_bytes
    assert settings.pixel_budget_pixels == 2 * settings.max_pixels == 100_000_000
    assert settings.pixel_wait_s == 10 and settings.auth_failures_per_min == 10
    custom = Settings.from_env({"TRYON_MAX_UPLOAD_MB": "1", "TRYON_BODY_BUDGET_MB": "64", "TRYON_PIXEL_BUDGET_MP": "80",
                                "TRYON_PIXEL_WAIT": "0", "TRYON_AUTH_FAIL_LIMIT": "5/min"})
    assert custom.body_budget_bytes == 64 * 2**20 and custom.pixel_budget_pixels == 80_000_000
    assert custom.pixel_wait_s == 0 and custom.auth_failures_per_min == 5


@pytest.mark.parametrize("env, message", [
    ({"TRYON_BODY_BUDGET_MB": "100"}, "TRYON_BODY_BUDGET_MB must be a number of megabytes of at least the largest request body (134 MB"),
    ({"TRYON_BODY_BUDGET_MB": "lots"}, "TRYON_BODY_BUDGET_MB"),
    ({"TRYON_PIXEL_BUDGET_MP": "49"}, "TRYON_PIXEL_BUDGET_MP must be a number of megapixels of at least TRYON_MAX_MEGAPIXELS (50)"),
    ({"TRYON_PIXEL_WAIT": "-1"}, "TRYON_PIXEL_WAIT"),
    ({"TRYON_PIXEL_WAIT": "1h"}, "TRYON_PIXEL_WAIT"),
    ({"TRYON_AUTH_FAIL_LIMIT": "0"}, "TRYON_AUTH_FAIL_LIMIT"),
])
def test_invalid_budget_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)
