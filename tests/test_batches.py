"""Catalogue batches on a real Redis with the FAL test server: submit, grid, cancel, retry, archive."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import pytest
from PIL import Image

from test_jobs import fal_jobs, make_service  # noqa: F401 (fal_jobs: the service and its workers, a fixture)
from tryon.config import Settings
from tryon.errors import InvalidRequest, TryOnError
from tryon.jobs.batch import OutfitRequest
from synthetic import draw_garment, draw_person


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def persons():
    shirts = [(236, 236, 230), (90, 160, 90), (200, 120, 60)]
    return [png(draw_person(shirt=colour).image) for colour in shirts]


@pytest.fixture(scope="module")
def garments():
    colours = [(200, 40, 50), (40, 60, 200), (30, 150, 80), (230, 200, 40)]
    return [png(draw_garment("tshirt", colour=colour)) for colour in colours]


def wait_batch(service, batch_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.batches.status(batch_id)
        if status["finished"]:
            return status
        time.sleep(0.1)
    raise AssertionError(f"batch still running: {status['counts']}")


def test_a_3x4_batch_runs_every_look_once_and_archives_it(fal_jobs, fal_server, persons, garments):
    service, start_workers = fal_jobs
    outfits = [OutfitRequest([g]) for g in garments]
    submitted = service.batches.submit(persons, outfits)
    assert submitted["looks"] == 12 and submitted["counts"]["queued"] == 12
    assert [(c["person"], c["outfit"]) for c in submitted["cells"]] == [(p, m) for p in (1, 2, 3) for m in (1, 2, 3, 4)]
    start_workers(4)
    status = wait_batch(service, submitted["batch_id"])
    assert status["counts"]["done"] == 12
    assert len(fal_server.submits) == 12
    data = b"".join(service.batches.archive(submitted["batch_id"]))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(n for n in names if n.startswith("person-")) == sorted(
        f"person-{p}_outfit-{m}.png" for p in (1, 2, 3) for m in (1, 2, 3, 4))


def archive_of(data: bytes) -> tuple[zipfile.ZipFile, dict]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return archive, json.loads(archive.read("manifest.json"))


def test_the_archive_has_every_picture_a_contact_sheet_and_a_recipe_per_look(fal_jobs, fal_server, persons, garments):
    service, start_workers = fal_jobs
    fal_server.behaviour.latency_s = 0.05
    batch = service.batches.submit(persons[:2], [OutfitRequest([garments[0]], ["top"], ["red tee"]),
                                                 OutfitRequest(garments[1:3], ["bottom", "top"])])
    start_workers(4)
    status = wait_batch(service, batch["batch_id"])
    assert status["counts"]["done"] == 4
    archive, manifest = archive_of(b"".join(service.batches.archive(batch["batch_id"])))
    for p in (1, 2):
        for m in (1, 2):
            picture = Image.open(io.BytesIO(archive.read(f"person-{p}_outfit-{m}.png")))
            assert picture.format == "PNG" and not picture.getexif()
    sheet = Image.open(io.BytesIO(archive.read("contact_sheet.png")))
    assert sheet.width > sheet.height / 2  # 2 x 2 cells with their labels
    looks = {(look["person"], look["outfit"]): look for look in manifest["looks"]}
    assert len(looks) == 4 and manifest["batch"]["batch_id"] == batch["batch_id"]
    two = looks[(2, 2)]
    assert two["status"] == "done" and two["files"] == ["person-2_outfit-2.png"]
    assert [g["category"] for g in two["garments"]] == ["bottom", "top"]
    assert len(two["person_sha256"]) == 64 and two["person_sha256"] != looks[(1, 2)]["person_sha256"]
    assert two["model"] and two["prompt"] and "total_backend_ms" in two
    assert looks[(1, 1)]["garments"][0]["description"] == "red tee"
    rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert len(rows) == 4 and {(r["person"], r["outfit"], r["status"]) for r in rows} == {
        (str(p), str(m), "done") for p in (1, 2) for m in (1, 2)}


def test_cancel_stops_the_queued_looks_and_retry_runs_them_again(fal_jobs, fal_server, persons, garments):
    service, start_workers = fal_jobs
    batch = service.batches.submit(persons, [OutfitRequest([g]) for g in garments])  # 12 looks, no worker yet
    cancelled = service.batches.cancel(batch["batch_id"])
    assert cancelled["counts"]["cancelled"] == 12 and cancelled["finished"] and cancelled["cancelled"]
    pool = start_workers(2)
    time.sleep(1.0)
    assert len(fal_server.submits) == 0  # the workers drop cancelled looks: nothing was called
    again = service.batches.retry(batch["batch_id"])
    assert again["counts"]["queued"] + again["counts"]["processing"] + again["counts"]["done"] == 12
    assert all(cell["tries"] == 2 for cell in again["cells"])
    status = wait_batch(service, batch["batch_id"])
    assert status["counts"]["done"] == 12 and len(fal_server.submits) == 12
    pool.stop()


def test_retry_reruns_only_the_failed_looks(fal_jobs, fal_server, persons, garments):
    service, start_workers = fal_jobs
    fal_server.behaviour.latency_s = 0.05
    fal_server.behaviour.submit_failures = [422] * 2  # the first two submits are refused as bad input
    batch = service.batches.submit(persons[:1], [OutfitRequest([g]) for g in garments])
    start_workers(1)
    status = wait_batch(service, batch["batch_id"])
    assert status["counts"] == {**status["counts"], "done": 2, "error": 2}
    failed = [c for c in status["cells"] if c["status"] == "error"]
    assert all(c["error"] for c in failed)
    again = wait_batch(service, service.batches.retry(batch["batch_id"])["batch_id"])
    assert again["counts"]["done"] == 4
    assert sorted(c["tries"] for c in again["cells"]) == [1, 1, 2, 2]
    assert len(fal_server.submits) == 6


@pytest.mark.parametrize("persons_n, outfits_n, code", [(0, 2, "batch_no_person"), (2, 0, "batch_no_outfit"),
                                                         (21, 1, "batch_too_many_persons"), (1, 51, "batch_too_many_outfits")])
def test_bad_batch_shapes_are_refused_before_any_upload(fal_jobs, fal_server, persons, garments, persons_n, outfits_n, code):
    service, _ = fal_jobs
    with pytest.raises(InvalidRequest) as refused:
        service.batches.submit([persons[0]] * persons_n, [OutfitRequest([garments[0]])] * outfits_n)
    assert refused.value.code == code
    assert not fal_server.requests


def test_a_batch_over_the_cap_is_refused_before_any_upload(fal_server, redis_server, tmp_path, persons, garments):
    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path), "TRYON_BATCH_MAX_LOOKS": "6"})
    service = make_service(settings, redis_server)
    with pytest.raises(InvalidRequest) as refused:
        service.batches.submit(persons, [OutfitRequest([g]) for g in garments[:3]])  # 9 looks
    assert refused.value.code == "batch_too_large"
    assert "9 looks" in refused.value.message("en") and "6" in refused.value.message("en")
    assert "9 looks" in refused.value.message("es")
    assert not fal_server.requests


def test_an_outfit_with_a_bad_photo_names_the_outfit_and_garment(fal_jobs, fal_server, persons, garments):
    service, _ = fal_jobs
    with pytest.raises(TryOnError) as refused:
        service.batches.submit(persons[:1], [OutfitRequest([garments[0]]), OutfitRequest([garments[1], b"not an image"])])
    assert refused.value.message("en").startswith("Outfit 2, Garment 2:")
    with pytest.raises(TryOnError) as refused:
        service.batches.submit([persons[0], b"nope"], [OutfitRequest([garments[0]])])
    assert refused.value.message("es").startswith("Persona 2:")
    assert not fal_server.submits


def test_an_unknown_batch_is_not_found(fal_jobs):
    service, _ = fal_jobs
    for batch_id in ("x" * 32, "../etc/passwd", ""):
        with pytest.raises(InvalidRequest) as refused:
            service.batches.status(batch_id)
        assert refused.value.code == "batch_not_found" and refused.value.http_status == 404
