"""The rate limiter's buckets in Redis: every replica of the app spends and reads the same ones."""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_py

from conftest import free_port
from tryon.redis_server import client_for
from tryon.web.access import RateLimiter


@pytest.fixture
def client(redis_server):
    return client_for(host="127.0.0.1", port=redis_server.port)  # the app's client (decode_responses)


def test_a_limit_spent_through_one_replica_is_spent_for_the_other(client, redis_server):
    now = [100.0]
    a = RateLimiter(10, client, "rest", clock=lambda: now[0])
    b = RateLimiter(10, redis_py.Redis(port=redis_server.port), "rest", clock=lambda: now[0])  # another process
    for n in range(10):
        assert (a if n % 2 else b).allow("key:k1")[0]
    allowed, wait = b.allow("key:k1")
    assert not allowed and wait == pytest.approx(6.0) and a.wait("key:k1") == pytest.approx(6.0)
    b.refund("key:k1")  # given back through one, usable through the other
    assert a.allow("key:k1") == (True, 0.0) and not b.allow("key:k1")[0]
    assert a.allow("key:k2")[0]  # another client has its own bucket
    assert RateLimiter(10, client, "auth", clock=lambda: now[0]).allow("key:k1")[0]  # another limiter too
    now[0] += 6.0
    assert b.allow("key:k1")[0] and not a.allow("key:k1")[0]


def test_keys_name_no_client_id_and_every_one_expires_once_full_again(client, redis_server):
    limiter = RateLimiter(30, client, "rest")
    limiter.allow("key:secret-api-key-0123456789")
    limiter.allow("ip:203.0.113.9")
    limiter.refund("ip:203.0.113.9")
    raw = redis_py.Redis(port=redis_server.port)
    keys = [k.decode() for k in raw.keys("*")]
    assert len(keys) == 2 and all(k.startswith("tryon:rate:rest:") for k in keys)
    assert not any("secret" in k or "203.0.113" in k for k in keys)
    assert all(0 < raw.pttl(k) <= 60_000 + 1000 for k in keys)  # 30 a minute: full again within 2 s, or 60 s at most


def test_the_bucket_refills_on_redis_s_clock(client):
    limiter = RateLimiter(600, client, "rest")  # 10 a second
    while limiter.allow("ip:x")[0]:
        pass
    wait = limiter.wait("ip:x")
    assert 0 < wait <= 0.1
    time.sleep(wait + 0.05)
    assert limiter.allow("ip:x")[0]


def test_parallel_requests_through_many_replicas_get_no_more_than_the_bucket(client, redis_server):
    limiters = [RateLimiter(10, redis_py.Redis(port=redis_server.port), "auth") for _ in range(4)]
    results = []
    barrier = threading.Barrier(40)

    def guess(n):
        barrier.wait()
        results.append(limiters[n % 4].allow("198.51.100.7")[0])

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 10


def test_an_unreachable_redis_lets_requests_through():
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis_py.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    limiter = RateLimiter(1, dead, "rest")
    assert limiter.allow("ip:x") == (True, 0.0) and limiter.allow("ip:x") == (True, 0.0)
    assert limiter.wait("ip:x") == 0.0
    limiter.refund("ip:x")
