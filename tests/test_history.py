"""The history of looks on a real Redis: per session, bounded, expiring, files kept and cleaned."""

from __future__ import annotations

import json
import os
import time

import pytest
import redis as redis_py
from PIL import Image

from tryon.history import KEY, LookHistory


@pytest.fixture
def history(redis_server, tmp_path):
    client = redis_py.Redis(port=redis_server.port)
    return LookHistory(client, tmp_path / "looks", ttl_s=3600, limit=3)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "person.png"
    Image.new("RGB", (64, 96), (200, 100, 50)).save(path)
    return str(path)


def add(history, session, photo, n=1, description=""):
    return history.add(session, {"person": photo, "garment_1": photo, "garment_2": None},
                       {"categories": ["top", "auto", "auto", "auto"], "num_images": n, "descriptions": [description]},
                       [Image.new("RGB", (64, 96), (n * 40, 0, 0)) for _ in range(n)], {"garments": 1, "n": n})


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


def test_the_history_is_bounded_and_dropped_looks_lose_their_files(history, photo):
    looks = [add(history, "s" * 24, photo, description=f"look {n}") for n in range(5)]
    kept = history.looks("s" * 24)
    assert [look["id"] for look in kept] == [look["id"] for look in reversed(looks[2:])]
    assert not os.path.exists(looks[0]["results"][0]) and not os.path.exists(looks[1]["results"][0])


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


def test_a_look_is_deleted_with_its_pictures_and_only_by_its_session(history, photo):
    look = add(history, "e" * 24, photo)
    assert history.remove("f" * 24, look["id"]) is False and len(history.looks("e" * 24)) == 1
    assert history.remove("e" * 24, "../../etc") is False
    assert history.remove("e" * 24, look["id"]) is True
    assert history.looks("e" * 24) == [] and not os.path.exists(look["results"][0]) and not os.path.exists(look["thumbnail"])


def test_the_thumbnail_shows_the_result_with_its_garments_beside_it(history, photo):
    look = add(history, "g" * 24, photo)
    thumb = Image.open(look["thumbnail"]).convert("RGB")
    result = Image.open(look["results"][0])
    assert thumb.height == result.height and thumb.width > result.width  # the result, and a strip beside it
    strip = thumb.crop((result.width, 0, thumb.width, thumb.height))
    colours = strip.getcolors(maxcolors=100_000)
    assert any(abs(r - 200) < 16 and abs(g - 100) < 16 and abs(b - 50) < 16 for _, (r, g, b) in colours)  # the garment's colour


def test_the_record_expires_with_the_job_ttl(history, photo, redis_server):
    add(history, "t" * 24, photo)
    client = redis_py.Redis(port=redis_server.port)
    key = KEY.format(history.key_of("t" * 24))
    assert 3500 < client.ttl(key) <= 3600
    assert json.loads(client.lindex(key, 0))["id"]


def test_looks_whose_files_are_gone_are_not_offered(history, photo):
    look = add(history, "u" * 24, photo)
    os.remove(look["results"][0])
    assert history.looks("u" * 24) == []


def test_folders_older_than_the_ttl_are_removed(history, photo):
    old = add(history, "v" * 24, photo)
    folder = os.path.dirname(old["results"][0])
    past = time.time() - 7200
    os.utime(folder, (past, past))
    add(history, "w" * 24, photo)  # any later look sweeps expired folders
    assert not os.path.exists(folder)
    assert not os.path.exists(os.path.dirname(folder))  # and the session's folder, now empty


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
