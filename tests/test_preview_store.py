"""The offline preview's picture store: on disk under the data dir, a bounded LRU in front, expiring with the job TTL."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from tryon.config import Settings
from tryon.errors import ProviderError
from tryon.images import Limits, load_image
from tryon.providers import build_provider
from tryon.providers.store import ImageStore

from conftest import encode
from synthetic import draw_garment


def pictures(count: int, size: int = 2000) -> list[bytes]:
    return [os.urandom(size) for _ in range(count)]


def refused(store: ImageStore, ref: str) -> bool:
    with pytest.raises(ProviderError) as caught:
        store.get(ref)
    return caught.value.code == "unknown_reference"


def file_of(directory, ref: str):
    return directory / (ref.removeprefix("local:") + ".jpg")


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_new_store_on_the_same_directory_serves_every_picture(tmp_path):
    data = pictures(5)
    refs = [ImageStore(tmp_path, ttl_s=3600).put(item) for item in data]
    assert all(ref == "local:" + hashlib.sha256(item).hexdigest() for ref, item in zip(refs, data))
    restarted = ImageStore(tmp_path, ttl_s=3600)
    assert [restarted.get(ref) for ref in refs] == data
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(file_of(tmp_path, r).name for r in refs)


def test_memory_is_bounded_by_count_and_by_bytes(tmp_path):
    by_count = ImageStore(capacity=3)  # no directory: memory is the store, so the oldest are gone
    refs = [by_count.put(item) for item in pictures(5)]
    assert refused(by_count, refs[0]) and refused(by_count, refs[1]) and by_count.get(refs[4])
    by_bytes = ImageStore(capacity=100, max_bytes=5000)
    refs = [by_bytes.put(item) for item in pictures(4, size=2000)]
    assert by_bytes._bytes <= 5000 and len(by_bytes._items) == 2
    assert refused(by_bytes, refs[0]) and by_bytes.get(refs[3])
    on_disk = ImageStore(tmp_path, ttl_s=3600, capacity=2)  # with a directory, memory is only a cache
    data = pictures(6)
    refs = [on_disk.put(item) for item in data]
    assert len(on_disk._items) == 2
    assert [on_disk.get(ref) for ref in refs] == data


def test_expired_pictures_and_crashed_temp_files_are_swept(tmp_path):
    store = ImageStore(tmp_path, ttl_s=600)
    old, fresh = [store.put(item) for item in pictures(2)]
    age(file_of(tmp_path, old), 601)
    stale_temp, new_temp = tmp_path / ".abc.1.2.tmp", tmp_path / ".def.1.2.tmp"
    stale_temp.write_bytes(b"half a picture, its writer killed")
    new_temp.write_bytes(b"being written right now")
    age(stale_temp, 120)
    assert store.sweep() == 2
    assert {p.name for p in tmp_path.iterdir()} == {file_of(tmp_path, fresh).name, new_temp.name}


def test_a_picture_past_the_ttl_is_refused_before_any_sweep(tmp_path):
    ref = ImageStore(tmp_path, ttl_s=600).put(b"picture")
    age(file_of(tmp_path, ref), 601)
    assert refused(ImageStore(tmp_path, ttl_s=600), ref)
    assert not file_of(tmp_path, ref).exists()


def test_a_put_sweeps_at_most_once_a_minute(tmp_path):
    store = ImageStore(tmp_path, ttl_s=600)
    first = tmp_path / ("a" * 64 + ".jpg")
    first.write_bytes(b"old")
    age(first, 700)
    store.put(b"one")  # the first put sweeps
    assert not first.exists()
    second = tmp_path / ("b" * 64 + ".jpg")
    second.write_bytes(b"old")
    age(second, 700)
    store.put(b"two")  # within the minute: no second directory scan
    assert second.exists()
    assert store.sweep() == 1 and not second.exists()


def test_a_put_of_a_stored_picture_restarts_its_ttl(tmp_path):
    store = ImageStore(tmp_path, ttl_s=600)
    ref = store.put(b"same picture")
    path = file_of(tmp_path, ref)
    age(path, 500)
    store.put(b"same picture")
    assert time.time() - path.stat().st_mtime < 5


def test_a_tampered_file_is_refused_and_removed(tmp_path):
    ref = ImageStore(tmp_path, ttl_s=3600).put(b"the real picture")
    path = file_of(tmp_path, ref)
    path.write_bytes(b"something else")
    assert refused(ImageStore(tmp_path, ttl_s=3600), ref)
    assert not path.exists()
    store = ImageStore(tmp_path, ttl_s=3600)
    path.write_bytes(b"something else")
    store.put(b"the real picture")  # a put of the true content repairs the file
    assert ImageStore(tmp_path, ttl_s=3600).get(ref) == b"the real picture"


@pytest.mark.parametrize("ref", ["local:nope", "local:../../etc/passwd", "local:" + "A" * 64, "fal:" + "a" * 64, ""])
def test_references_that_are_not_a_digest_are_refused(tmp_path, ref):
    (tmp_path / "passwd").write_bytes(b"secret")
    assert refused(ImageStore(tmp_path / "preview", ttl_s=3600), ref)


def test_the_app_s_provider_keeps_pictures_under_the_data_dir_for_the_job_ttl(tmp_path):
    settings = Settings.from_env({"TRYON_DATA_DIR": str(tmp_path), "TRYON_JOB_TTL": "2h"})
    provider = build_provider(settings)
    assert provider.store.directory == tmp_path / "preview" and provider.store.ttl_s == 7200
    assert (tmp_path / "preview").stat().st_mode & 0o077 == 0  # photos of people: not for other users
    garment = load_image(encode(draw_garment("tshirt")), Limits(20 * 2**20, 50_000_000, 1024))
    ref = provider.upload(garment)
    assert file_of(tmp_path / "preview", ref).read_bytes() == garment.jpeg
    assert build_provider(settings).fetch(ref) == garment.jpeg  # a restarted app finds it
    assert not [p for p in (tmp_path / "preview").iterdir() if p.name.endswith(".tmp")]
