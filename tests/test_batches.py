"""Catalogue batches on a real Redis with the FAL test server: submit, grid, cancel, retry, archive."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from PIL import Image

from test_jobs import make_service
from tryon.config import Settings
from tryon.errors import InvalidRequest
from tryon.jobs.batch import OutfitRequest
from tryon.jobs.worker import WorkerPool
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


@pytest.fixture
def batch_app(fal_server, redis_server, tmp_path):
    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path), "TRYON_JOB_VISIBILITY": "2"})
    service = make_service(settings, redis_server)
    pools = []

    def start_workers(size=4):
        pool = WorkerPool(service, size).start()
        pools.append(pool)
        return pool

    yield service, start_workers
    for pool in pools:
        pool.stop()


def wait_batch(service, batch_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.batches.status(batch_id)
        if status["finished"]:
            return status
        time.sleep(0.1)
    raise AssertionError(f"batch still running: {status['counts']}")


def test_a_3x4_batch_runs_every_look_once_and_archives_it(batch_app, fal_server, persons, garments):
    service, start_workers = batch_app
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
