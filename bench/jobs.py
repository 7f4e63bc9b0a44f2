"""Async jobs: submit latency, and many jobs at once, against the FAL test server and a real Redis.

    python -m bench.jobs [--submits 1000] [--jobs 200] [--latency 1.0] [--workers 32]

- submit latency (images already uploaded, as after a drop in the page): the
  time for submit_job() to validate, find the uploads, and queue the job;
- N jobs submitted at once with a fixed model latency: time until all are
  finished, how many ended done / error, and how many were lost (must be 0).
Redis is the app's embedded default (redis-server on a unix socket, append-only).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import machine, report, summary

_tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
from fal_server import FalTestServer, make_certificate  # noqa: E402

_CERT, _KEY = make_certificate(_tmp)
_server = FalTestServer(cert=_CERT, key_file=_KEY)
os.environ.update(_server.env())  # before fal-client is imported

from synthetic import draw_garment, draw_person  # noqa: E402

from tryon.config import Settings  # noqa: E402
from tryon.jobs import JobQueue  # noqa: E402
from tryon.providers import build_provider  # noqa: E402
from tryon.redis_server import connect  # noqa: E402
from tryon.service import TryOnService  # noqa: E402
from tryon.jobs.worker import WorkerPool  # noqa: E402


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    _server.start()
    settings = Settings.from_env({**_server.env(), "TRYON_DATA_DIR": str(_tmp / "data"), "TRYON_JOB_TTL": "1h"})
    handle = connect(None, settings.data_dir)  # the embedded Redis, as the app runs it by default
    queue = JobQueue(handle.client, settings.job_ttl_s, settings.job_visibility_s, settings.job_max_attempts)
    service = TryOnService(settings, build_provider(settings), queue)
    person = png(draw_person().image)
    garments = [png(draw_garment(k, colour=c)) for k, c in
                [("tshirt", (196, 36, 48)), ("jacket", (62, 96, 150)), ("hoodie", (232, 184, 40)), ("sweater", (28, 44, 100))]]
    for garment in garments:  # pre-upload, as dropping the photos in the page does
        service.upload(garment)
    service.upload(person)

    latencies = []
    for n in range(args.submits):
        started = time.perf_counter()
        service.submit_job(person, [garments[n % 4]])
        latencies.append((time.perf_counter() - started) * 1000)
    handle.client.delete("tryon:jobs")  # these jobs were only for timing submit
    for key in handle.client.scan_iter("tryon:job:*"):
        handle.client.delete(key)
    queue.ensure_group()
    report(f"async submit, {args.submits} submits, images pre-uploaded, {handle.description}", {"submit_job": summary(latencies)})

    _server.behaviour.latency_s = args.latency
    pool = WorkerPool(service, args.workers).start()
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as submitters:
        ids = list(submitters.map(lambda n: service.submit_job(person, [garments[n % 4]]).job_id, range(args.jobs)))
    submitted_s = time.perf_counter() - started
    deadline = time.monotonic() + 600
    while True:
        statuses = [queue.get(job_id) for job_id in ids]
        finished = [job for job in statuses if job is not None and job.status in ("done", "error")]
        if len(finished) == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    all_done_s = time.perf_counter() - started
    pool.stop()
    lost = sum(1 for job in statuses if job is None or job.status not in ("done", "error"))
    done = sum(1 for job in statuses if job is not None and job.status == "done")
    generations = len(_server.jobs)
    ideal = args.jobs * args.latency / args.workers
    print(f"\n{args.jobs} jobs at once, model latency {args.latency:.1f} s, {args.workers} worker threads ({machine()})")
    print(f"  submitted all in {submitted_s:.2f} s; all finished after {all_done_s:.2f} s (ideal {ideal:.2f} s)")
    print(f"  done {done}, error {len(ids) - done - lost}, lost {lost}, model generations {generations}")
    print(json.dumps({"benchmark": "async burst", "jobs": args.jobs, "latency_s": args.latency, "workers": args.workers,
           "all_finished_s": round(all_done_s, 2), "ideal_s": round(ideal, 2), "done": done, "lost": lost,
           "generations": generations}))
    # Four garments: the sync chain (4 calls) against one async job (1 call), in model latencies.
    pool = WorkerPool(service, 2).start()
    sync_x, async_x = [], []
    for _ in range(3):
        started = time.perf_counter()
        service.try_on_sync(person, garments)
        sync_x.append((time.perf_counter() - started) / args.latency)
        started = time.perf_counter()
        job_id = service.submit_job(person, garments).job_id
        while queue.get(job_id).status not in ("done", "error"):
            time.sleep(0.02)
        async_x.append((time.perf_counter() - started) / args.latency)
    pool.stop()
    print(f"\n4 garments, wall time in model latencies ({args.latency:.1f} s): sync chain {np.median(sync_x):.2f}x, "
          f"async job {np.median(async_x):.2f}x")
    print(json.dumps({"benchmark": "4 garments sync vs async", "latency_s": args.latency,
                      "sync_x": round(float(np.median(sync_x)), 2), "async_x": round(float(np.median(async_x)), 2)}))
    handle.close()
    _server.stop()


if __name__ == "__main__":
    main()
