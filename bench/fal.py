"""The FAL path against the FAL-protocol test server (HTTPS on 127.0.0.1), with a fixed model latency.

    python -m bench.fal [--latency 0.5] [--requests 10]

Reports:
- backend overhead per sync request (total - provider time), 1 and 4 garments;
- provider-call overhead: each call's time beyond the simulated model latency
  (submit, status polling, result fetch over HTTPS);
- preprocess + upload of a 12-megapixel JPEG, and the bytes actually sent;
- uploads saved by the cache when the same person photo is reused.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import report, summary

# fal-client reads its hosts when imported: the server's address is fixed first.
_tmp = Path(tempfile.mkdtemp(prefix="bench-fal-"))
from fal_server import FalTestServer, make_certificate  # noqa: E402

_CERT, _KEY = make_certificate(_tmp)
_server = FalTestServer(cert=_CERT, key_file=_KEY)
os.environ.update(_server.env())

from synthetic import draw_garment, draw_person  # noqa: E402

from bench.naive import naive_try_on  # noqa: E402  (imports fal-client: after the environment is set)

from tryon.config import Settings  # noqa: E402
from tryon.providers import build_provider  # noqa: E402
from tryon.service import TryOnService  # noqa: E402


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def camera_jpeg(seed: int, size=(4000, 3000)) -> bytes:
    """A 12 MP JPEG with photo-like detail (smooth gradients plus sensor noise)."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    base = np.stack([150 + 80 * x * y, 120 + 60 * (1 - x) + 0 * y, 90 + 100 * y + 0 * x], axis=2)
    noisy = base + rng.normal(0, 12, (h, w, 3)).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5, help="simulated model seconds per call")
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    _server.start()
    _server.behaviour.latency_s = args.latency
    settings = Settings.from_env({**_server.env(), "TRYON_DATA_DIR": str(_tmp / "data")})
    service = TryOnService(settings, build_provider(settings))
    person = png(draw_person().image)
    garments = [png(draw_garment(k, colour=c)) for k, c in
                [("tshirt", (196, 36, 48)), ("jacket", (62, 96, 150)), ("hoodie", (232, 184, 40)), ("sweater", (28, 44, 100))]]
    service.try_on_sync(person, garments[:1])  # warm-up: TLS sessions, CDN token, caches

    rows = {}
    for count in (1, 4):
        totals, overheads, call_overheads = [], [], []
        for _ in range(args.requests):
            t = service.try_on_sync(person, garments[:count]).timings
            totals.append(t["total_backend_ms"])
            overheads.append(t["backend_overhead_ms"])
            call_overheads += [t[f"fal_call_{i}"] - args.latency * 1000 for i in range(1, count + 1)]
        rows[f"sync {count} garment(s): total"] = summary(totals)
        rows[f"sync {count} garment(s): backend overhead"] = summary(overheads)
        rows[f"sync {count} garment(s): per-call overhead"] = summary(call_overheads)

    totals, overheads = [], []
    for n in range(args.requests):  # new photos every time: nothing cached
        fresh_person = png(draw_person(shirt=(100 + n, 140, 90)).image)
        fresh_garment = png(draw_garment("tshirt", colour=(150, 30 + n, 40)))
        t = service.try_on_sync(fresh_person, [fresh_garment]).timings
        totals.append(t["total_backend_ms"])
        overheads.append(t["backend_overhead_ms"])
    rows["sync 1 garment, fresh photos: total"] = summary(totals)
    rows["sync 1 garment, fresh photos: backend overhead"] = summary(overheads)

    intake, upload, sent, raw = [], [], [], []
    for seed in range(args.requests):
        photo = camera_jpeg(seed)
        result = service.upload(photo, "person")
        intake.append(result.preprocess_ms)
        upload.append(result.upload_ms)
        sent.append(len(result.image.jpeg))
        raw.append(len(photo))
    rows["12 MP JPEG: preprocess (decode+orient+resize+encode)"] = summary(intake)
    rows["12 MP JPEG: upload to storage"] = summary(upload)
    # The naive client and ours, on the same 12 MP person photo and garment, in the same run.
    naive_ms, naive_bytes, ours_ms, ours_bytes = [], [], [], []
    client = service.provider.client
    garment_photo = camera_jpeg(999, size=(2000, 2000))
    for seed in range(args.requests):
        photo = camera_jpeg(1000 + seed)
        ms, sent_bytes = naive_try_on(client, settings.fal_model, photo, [garment_photo])
        naive_ms.append(ms)
        naive_bytes.append(sent_bytes)
        before = sum(r.body for r in _server.uploads if isinstance(r.body, int))
        before_submit = sum(len(json.dumps(r.body)) for r in _server.submits)
        t = service.try_on_sync(camera_jpeg(2000 + seed), [garment_photo]).timings
        ours_ms.append(t["total_backend_ms"])
        ours_bytes.append(sum(r.body for r in _server.uploads if isinstance(r.body, int)) - before
                          + sum(len(json.dumps(r.body)) for r in _server.submits) - before_submit)
    rows["naive client (base64, no resize): 1 garment, 12 MP photo"] = summary(naive_ms)
    rows["tryon: 1 garment, 12 MP photo (new photo each time)"] = summary(ours_ms)
    report(f"FAL path, test server, model latency {args.latency:.2f} s", rows)
    print(f"bytes sent per request, 12 MP photo + 4 MP garment: naive {np.mean(naive_bytes) / 2**20:.2f} MB, "
          f"tryon {np.mean(ours_bytes) / 1024:.0f} KB (uploads + model request; the garment is uploaded once)")
    print(f"12 MP JPEG: {np.mean(raw) / 2**20:.2f} MB in, {np.mean(sent) / 1024:.0f} KB sent to the provider")

    _server.reset()
    fresh = TryOnService(settings, build_provider(settings))
    for n in range(args.requests):
        fresh.try_on_sync(person, [garments[n % 4]])
    made = len(_server.uploads)
    without_cache = 2 * args.requests
    print(f"upload cache: {args.requests} requests with one person photo and 4 distinct garments -> "
          f"{made} uploads instead of {without_cache} ({without_cache - made} saved)")
    _server.stop()


if __name__ == "__main__":
    main()
