"""The history of looks on a real Redis: per session, bounded, expiring, pictures kept in Redis (shared by
every replica) and cached as files on each machine, cached files cleaned."""

from __future__ import annotations

import json
import os
import time

import pytest
import redis as redis_py
from PIL import Image

from tryon.history import KEY, PICTURES_KEY, LookHistory
from tryon.redis_server import client_for


@pytest.fixture
def history(redis_server, tmp_path):
    client = client_for(host="127.0.0.1", port=redis_server.port)  # the app's client (decode_responses)
    return LookHistory(client, tmp_path / "looks", ttl_s=3600, limit=3)


def replica(redis_server, tmp_path, name: str, **options) -> LookHistory:
    """Another app process on the same Redis, with its own cache directory (another machine)."""
    return LookHistory(redis_py.Redis(port=redis_server.port), tmp_path / name / "looks", ttl_s=3600, **options)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "person.png"
    Image.new("RGB", (64, 96), (200, 100, 50)).save(path)
    return str(path)


def add(history, session, photo, n=1, description="", shade=0):
    return history.add(session, {"person": photo, "garment_1": photo, "garment_2": None},
                       {"categories": ["top", "auto", "auto", "auto"], "num_images": n, "descriptions": [description]},
                       [Image.new("RGB", (64, 96), (n * 40, shade, v)) for v in range(n)], {"garments": 1, "n": n})


def test_a_look_keeps_copies_of_its_pictures_and_comes_back_newest_first(history, photo):
    first = add(history, "session-a" * 3, photo, 1)
    second = add(history, "session-a" * 3, photo, 2)
    looks = history.looks("session-a" * 3)
    assert [look["id"] for look in looks] == [second["id"], first["id"]]
    assert set(second["inputs"]) == {"person", "garment_1"} and len(second["results"]) == 2
    for path in [*second["inputs"].values(), *second["results"]]:
        assert os.path.exists(path) and path.startswith(str(history.root))
    assert second["settings"]["categories"][0] == "top" and second["timings"]["n"] == 2
    assert history.find("session-a" * 3, first["id"])["id"] == first["id"]


def test_sessions_do_not_see_each_other_s_looks_and_the_cookie_is_not_stored(history, photo, redis_server):
    add(history, "alice-token-0123456789", photo)
    assert history.looks("bob-token-0123456789") == [] and history.looks(None) == []
    keys = [k.decode() for k in redis_py.Redis(port=redis_server.port).keys("tryon:looks:*")]
    assert len(keys) == 1 and "alice" not in keys[0]


def test_the_history_is_bounded_and_dropped_looks_lose_their_files(history, photo, redis_server):
    looks = [add(history, "s" * 24, photo, description=f"look {n}", shade=n) for n in range(5)]
    kept = history.looks("s" * 24)
    assert [look["id"] for look in kept] == [look["id"] for look in reversed(looks[2:])]
    assert not os.path.exists(looks[0]["results"][0]) and not os.path.exists(looks[1]["results"][0])
    assert os.path.exists(looks[2]["inputs"]["person"])  # the photo the kept looks share stays
    client = redis_py.Redis(port=redis_server.port)
    key = history.key_of("s" * 24)
    assert [client.exists(PICTURES_KEY.format(key, look["id"])) for look in looks] == [0, 0, 1, 1, 1]


def test_the_same_look_again_replaces_the_older_one_even_re_encoded(history, photo, tmp_path):
    first = add(history, "d" * 24, photo)
    # The look brought back and tried again: its photos are the kept JPEGs, re-encoded once more.
    again = tmp_path / "again.jpg"
    Image.open(first["inputs"]["person"]).save(again, "JPEG", quality=70)
    second = history.add("d" * 24, {"person": str(again), "garment_1": str(again)},
                         {"categories": ["top", "auto", "auto", "auto"], "num_images": 1.0, "descriptions": [None]},
                         [Image.new("RGB", (64, 96), (9, 9, 9))], {"garments": 1})
    assert [look["id"] for look in history.looks("d" * 24)] == [second["id"]]
    assert not os.path.exists(first["results"][0])  # the older copy's pictures went with it
    other = add(history, "d" * 24, photo, description="with a belt")  # other settings: another look
    assert len(history.looks("d" * 24)) == 2 and other["id"] != second["id"]
    darker = tmp_path / "darker.png"
    Image.new("RGB", (64, 96), (150, 60, 20)).save(darker)
    add(history, "d" * 24, str(darker), description="with a belt")  # another photo: another look
    assert len(history.looks("d" * 24)) == 3


def test_a_look_is_deleted_with_its_pictures_and_only_by_its_session(history, photo, redis_server):
    look = add(history, "e" * 24, photo)
    assert history.remove("f" * 24, look["id"]) is False and len(history.looks("e" * 24)) == 1
    assert history.remove("e" * 24, "../../etc") is False
    assert history.remove("e" * 24, look["id"]) is True
    assert history.looks("e" * 24) == [] and not os.path.exists(look["results"][0]) and not os.path.exists(look["thumbnail"])
    assert not os.path.exists(look["inputs"]["person"])
    assert redis_py.Redis(port=redis_server.port).keys("tryon:look-pictures:*") == []


def test_the_thumbnail_shows_the_result_with_its_garments_beside_it(history, photo):
    look = add(history, "g" * 24, photo)
    thumb = Image.open(look["thumbnail"]).convert("RGB")
    result = Image.open(look["results"][0])
    assert thumb.height == result.height and thumb.width > result.width  # the result, and a strip beside it
    strip = thumb.crop((result.width, 0, thumb.width, thumb.height))
    colours = strip.getcolors(maxcolors=100_000)
    assert any(abs(r - 200) < 16 and abs(g - 100) < 16 and abs(b - 50) < 16 for _, (r, g, b) in colours)  # the garment's colour


def test_the_record_and_its_pictures_expire_with_the_job_ttl(history, photo, redis_server):
    look = add(history, "t" * 24, photo)
    client = redis_py.Redis(port=redis_server.port)
    key = KEY.format(history.key_of("t" * 24))
    assert json.loads(client.lindex(key, 0))["id"] == look["id"]
    written = client.keys("*")
    assert sorted(k.decode() for k in written) == sorted([key, PICTURES_KEY.format(history.key_of("t" * 24), look["id"])])
    assert all(3500 < client.ttl(k) <= 3600 for k in written)  # every key expires


def test_a_look_made_through_one_replica_is_shown_by_another(history, photo, redis_server, tmp_path):
    """Two app processes behind a load balancer, one Redis, each its own disk."""
    made = add(history, "r" * 24, photo, n=2)
    other = replica(redis_server, tmp_path, "replica-b")
    (look,) = other.looks("r" * 24)
    assert look["id"] == made["id"] and look["settings"] == made["settings"] and look["timings"] == made["timings"]
    for field in ("person", "garment_1"):
        assert look["inputs"][field].startswith(str(other.root))
        assert open(look["inputs"][field], "rb").read() == open(made["inputs"][field], "rb").read()
    assert [open(p, "rb").read() for p in look["results"]] == [open(p, "rb").read() for p in made["results"]]
    assert Image.open(look["thumbnail"]).size == Image.open(made["thumbnail"]).size
    # The same look tried again through the other replica replaces it for both; a delete there too.
    again = other.add("r" * 24, {"person": look["inputs"]["person"], "garment_1": look["inputs"]["garment_1"]},
                      {**look["settings"]}, [look["results"][0], look["results"][1]], {"garments": 1})
    assert [x["id"] for x in history.looks("r" * 24)] == [again["id"]]
    assert other.remove("r" * 24, again["id"]) is True
    assert other.looks("r" * 24) == [] and not list((other.root / other.key_of("r" * 24)).iterdir())
    # The first replica's copies go at its next read of that history (past a minute's grace for a look being added).
    cached = list((history.root / history.key_of("r" * 24)).iterdir())
    assert cached
    for path in cached:
        os.utime(path, (time.time() - 120, time.time() - 120))
    assert history.looks("r" * 24) == [] and not list((history.root / history.key_of("r" * 24)).iterdir())


def test_the_cache_is_safe_to_delete_and_refilled_from_redis(history, photo):
    look = add(history, "c" * 24, photo)
    content = open(look["results"][0], "rb").read()
    import shutil

    shutil.rmtree(history.root)
    history.root.mkdir()
    (again,) = history.looks("c" * 24)
    assert again["results"] == look["results"] and open(again["results"][0], "rb").read() == content
    # A tampered cached copy is noticed only by its reader; one missing, refetched, is checked against its name.
    os.remove(again["results"][0])
    history.redis.hset(PICTURES_KEY.format(history.key_of("c" * 24), look["id"]), os.path.basename(look["results"][0]), b"junk")
    assert history.looks("c" * 24) == []


def test_looks_whose_pictures_are_gone_are_not_offered(history, photo):
    look = add(history, "u" * 24, photo)
    history.redis.delete(PICTURES_KEY.format(history.key_of("u" * 24), look["id"]))  # expired in Redis
    os.remove(look["results"][0])
    assert history.looks("u" * 24) == []


def test_cached_pictures_of_expired_looks_are_removed(history, photo):
    old = add(history, "v" * 24, photo)
    folder = os.path.dirname(old["results"][0])
    past = time.time() - 7200
    for name in os.listdir(folder):
        os.utime(os.path.join(folder, name), (past, past))
    os.utime(folder, (past, past))
    history._next_sweep = 0  # a sweep runs at most once a minute, on an add
    add(history, "w" * 24, photo)  # any later look sweeps expired copies
    assert not os.path.exists(folder)  # and the session's folder, now empty


def test_an_older_version_s_records_and_folders_still_work_then_go(history, photo, redis_server):
    """Records written before the pictures moved to Redis held paths under the data dir."""
    key = history.key_of("o" * 24)
    folder = history.root / key / ("a" * 16)
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "result_1.png")
    legacy = {"id": "a" * 16, "created_at": int(time.time() * 1000), "inputs": {}, "settings": {}, "timings": {},
              "results": [str(folder / "result_1.png")], "thumbnail": None}
    history.redis.lpush(KEY.format(key), json.dumps(legacy))
    assert [look["id"] for look in history.looks("o" * 24)] == ["a" * 16]
    assert history.remove("o" * 24, "a" * 16) and not folder.exists()


def test_the_history_keeps_the_normalized_photo_not_the_raw_upload(history, tmp_path):
    """A phone photo with GPS tags, kept through the page's remember event: no metadata survives."""
    from types import SimpleNamespace
    from pathlib import Path

    from tryon.config import Settings
    from tryon.providers.local import LocalPreviewProvider
    from tryon.service import TryOnService
    from tryon.web.events import Handlers

    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (40.0, 26.0, 46.0), 3: "W", 4: (79.0, 58.0, 56.0)}  # GPS IFD
    exif[0x010F] = "PhoneMaker"
    person = tmp_path / "phone.jpg"
    Image.new("RGB", (600, 800), (180, 150, 120)).save(person, "JPEG", exif=exif.tobytes())
    garment = tmp_path / "garment.png"
    Image.new("RGB", (400, 400), (20, 40, 200)).save(garment)
    result = tmp_path / "result.png"
    Image.new("RGB", (600, 800), (1, 2, 3)).save(result)
    service = TryOnService(Settings.from_env({"TRYON_DATA_DIR": str(tmp_path / "data")}), LocalPreviewProvider(), history=history)
    request = SimpleNamespace(headers={"cookie": "tryon_session=" + "k" * 32})
    settings = {"categories": ["top", "auto", "auto", "auto"], "descriptions": [None] * 4, "order": [], "num_images": 1,
                "aspect_ratio": "same", "resolution": "1K"}
    Handlers(service)._remember(request, Path(person), [Path(garment), None, None, None], settings, [str(result)], {"garments": 1})
    look = history.looks("k" * 32)[0]
    kept = Image.open(look["inputs"]["person"])
    assert kept.format == "JPEG" and not kept.getexif() and "exif" not in kept.info
    assert b"PhoneMaker" not in Path(look["inputs"]["person"]).read_bytes()
    assert Path(look["inputs"]["person"]).read_bytes() == service.intake(Path(person)).jpeg  # the copy sent to providers
