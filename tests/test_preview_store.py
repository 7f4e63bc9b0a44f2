"""The offline preview's picture store: in Redis (shared by every replica and worker), expiring with the
job TTL, a bounded LRU in front; memory only without Redis."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import redis as redis_py

from tryon.config import Settings
from tryon.errors import ProviderError
from tryon.images import Limits, load_image
from tryon.providers import build_provider
from tryon.providers.store import KEY, ImageStore
from tryon.redis_server import client_for

from conftest import encode
from synthetic import draw_garment


def pictures(count: int, size: int = 2000) -> list[bytes]:
    return [os.urandom(size) for _ in range(count)]


def refused(store: ImageStore, ref: str) -> bool:
    with pytest.raises(ProviderError) as caught:
        store.get(ref)
    return caught.value.code == "unknown_reference"


def key_of(ref: str) -> str:
    return KEY.format(ref.removeprefix("local:"))


@pytest.fixture
def client(redis_server):
    return client_for(host="127.0.0.1", port=redis_server.port)  # the app's client (decode_responses)


@pytest.fixture
def raw(redis_server):
    return redis_py.Redis(port=redis_server.port)


def test_a_picture_stored_by_one_replica_is_read_by_another(client, raw):
    data = pictures(5)
    refs = [ImageStore(client, ttl_s=3600).put(item) for item in data]
    assert all(ref == "local:" + hashlib.sha256(item).hexdigest() for ref, item in zip(refs, data))
    other = ImageStore(raw, ttl_s=3600)  # another process: its own client (without decode_responses) and memory
    assert [other.get(ref) for ref in refs] == data
    assert sorted(k.decode() for k in raw.keys("*")) == sorted(key_of(r) for r in refs)
    assert all(3590 < raw.ttl(key_of(r)) <= 3600 for r in refs)  # every key expires with the job TTL


def test_memory_is_bounded_by_count_and_by_bytes(client):
    by_count = ImageStore(capacity=3)  # no Redis: memory is the store, so the oldest are gone
    refs = [by_count.put(item) for item in pictures(5)]
    assert refused(by_count, refs[0]) and refused(by_count, refs[1]) and by_count.get(refs[4])
    by_bytes = ImageStore(capacity=100, max_bytes=5000)
    refs = [by_bytes.put(item) for item in pictures(4, size=2000)]
    assert by_bytes._bytes <= 5000 and len(by_bytes._items) == 2
    assert refused(by_bytes, refs[0]) and by_bytes.get(refs[3])
    shared = ImageStore(client, ttl_s=3600, capacity=2)  # with Redis, memory is only a cache
    data = pictures(6)
    refs = [shared.put(item) for item in data]
    assert len(shared._items) == 2
    assert [shared.get(ref) for ref in refs] == data


def test_pictures_in_redis_need_a_ttl(client):
    with pytest.raises(ValueError):
        ImageStore(client)


def test_a_put_of_a_stored_picture_restarts_its_ttl(client, raw):
    store = ImageStore(client, ttl_s=600)
    ref = store.put(b"same picture")
    raw.expire(key_of(ref), 100)
    ImageStore(client, ttl_s=600).put(b"same picture")  # another replica stores it again
    assert raw.ttl(key_of(ref)) > 590 and raw.get(key_of(ref)) == b"same picture"


def test_an_expired_picture_is_gone_for_every_replica_and_memory_does_not_outlive_redis(client, raw):
    ref = ImageStore(client, ttl_s=600).put(b"picture")
    raw.delete(key_of(ref))  # its TTL ran out
    assert refused(ImageStore(client, ttl_s=600), ref)
    ref = ImageStore(client, ttl_s=600).put(b"another picture")
    raw.pexpire(key_of(ref), 800)  # near the end of its TTL when another replica reads it
    reader = ImageStore(client, ttl_s=600)
    assert reader.get(ref) == b"another picture"
    time.sleep(1.0)
    assert refused(reader, ref)  # its memory copy went with the Redis key


def test_a_tampered_value_is_refused_and_removed(client, raw):
    ref = ImageStore(client, ttl_s=3600).put(b"the real picture")
    raw.set(key_of(ref), b"something else", ex=3600)
    assert refused(ImageStore(client, ttl_s=3600), ref)
    assert not raw.exists(key_of(ref))
    ImageStore(client, ttl_s=3600).put(b"the real picture")  # a put of the true content repairs it
    assert ImageStore(client, ttl_s=3600).get(ref) == b"the real picture"


@pytest.mark.parametrize("ref", ["local:nope", "local:../../etc/passwd", "local:" + "A" * 64, "fal:" + "a" * 64, "",
                                 "local:" + "a" * 64 + "*"])
def test_references_that_are_not_a_digest_are_refused(client, raw, ref):
    raw.set("tryon:preview:nope", b"x", ex=60)
    assert refused(ImageStore(client, ttl_s=3600), ref)


def test_the_app_s_provider_keeps_pictures_in_redis_for_the_job_ttl(tmp_path, client, raw):
    settings = Settings.from_env({"TRYON_DATA_DIR": str(tmp_path), "TRYON_JOB_TTL": "2h"})
    provider = build_provider(settings, client)
    assert provider.store.redis is client and provider.store.ttl_s == 7200
    garment = load_image(encode(draw_garment("tshirt")), Limits(20 * 2**20, 50_000_000, 1024))
    ref = provider.upload(garment)
    assert raw.get(key_of(ref)) == garment.jpeg and 7190 < raw.ttl(key_of(ref)) <= 7200
    assert build_provider(settings, client).fetch(ref) == garment.jpeg  # another replica, or a restarted app, finds it
    assert not (tmp_path / "preview").exists()  # nothing on disk
    assert build_provider(settings).store.redis is None  # without Redis (tests, benchmarks): memory only
