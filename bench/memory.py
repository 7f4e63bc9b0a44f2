"""Memory under concurrent large inputs: the app's RSS before, at its peak during, and after.

    python -m bench.memory [--bodies 6] [--body-mb 130] [--submits 4] [--megapixels 49] [--env K=V ...]

Two attacks, each against a fresh `python app.py` (offline preview, embedded Redis) on 127.0.0.1:

- bodies: `--bodies` parallel REST uploads of a JSON body of `--body-mb` MB (one huge base64
  string, just under the REST body cap), each answered 413 `file_too_large` after parsing;
- pixels: `--submits` parallel `/api/jobs/submit` of five PNGs of `--megapixels` MP each (flat
  colour, so each file is small; distinct, so no intake cache hit), decoded by the intake.

RSS is sampled every 50 ms: "before" after the app is warm and idle, "peak" during the attack,
"after" 5 s after the last answer. Each status seen is counted. `--env K=V` adds to the app's
environment (e.g. MALLOC_ARENA_MAX=2, TRYON_BODY_BUDGET_MB=300). Bounded: a fixed number of
requests, then it stops the app.
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import psutil
from PIL import Image, ImageDraw

from bench.common import ROOT, machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class App:
    """`python app.py` on a free loopback port, with its RSS sampled in the background."""

    def __init__(self, extra_env: dict[str, str]):
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "TRYON_", "REDIS_", "GRADIO_"))}
        env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), TRYON_DATA_DIR=str(self.tmp / "data"),
                   TRYON_RATE_LIMIT="100000", GRADIO_ANALYTICS_ENABLED="False")
        env.update(extra_env)
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                        stdout=open(self.tmp / "app.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        self.ps = psutil.Process(self.process.pid)
        self.peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.ps.memory_info().rss)
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        self.process.wait(30)


def warm(app: App) -> None:
    """One ordinary request first, so imports and codecs are not counted as the attack's."""
    sys.path.insert(0, str(ROOT / "tests"))
    from synthetic import draw_garment, draw_person

    def b64(image) -> str:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    httpx.post(app.url + "/api/images/generate", timeout=60,
               json={"userImage": b64(draw_person().image), "garments": [b64(draw_garment("tshirt"))]})
    time.sleep(3)


def attack(app: App, requests: list[dict]) -> dict:
    warm(app)
    before = app.rss_mib()
    app.peak = 0
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def send(request: dict) -> None:
        try:
            with httpx.Client(timeout=300) as client:
                status = client.post(app.url + request["path"], content=request["content"],
                                     headers={"content-type": "application/json"}).status_code
        except httpx.HTTPError as error:
            status = type(error).__name__
        with lock:
            statuses[status] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    time.sleep(5)
    return {"before_mib": round(before, 1), "peak_mib": round(app.peak / 2**20, 1), "after_mib": round(app.rss_mib(), 1),
            "seconds": round(seconds, 1), "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)}}


def big_bodies(count: int, megabytes: float) -> list[dict]:
    body = b'{"image": "' + b"A" * int(megabytes * 2**20) + b'"}'
    return [{"path": "/api/images/upload", "content": body}] * count


def big_pngs(submits: int, megapixels: float) -> list[dict]:
    side = int((megapixels * 1e6) ** 0.5)
    requests = []
    for n in range(submits):
        images = []
        for k in range(5):
            picture = Image.new("RGB", (side, side), (40 * k % 255, 30 * n % 255, 120))
            ImageDraw.Draw(picture).rectangle([side // 4, side // 4, side // 2, side // 2 + n + k], fill=(200, 60, 60))
            buffer = io.BytesIO()
            picture.save(buffer, "PNG", compress_level=1)
            images.append(base64.b64encode(buffer.getvalue()).decode())
        requests.append({"path": "/api/jobs/submit",
                         "content": json.dumps({"userImage": images[0], "garments": images[1:]}).encode()})
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bodies", type=int, default=6)
    parser.add_argument("--body-mb", type=float, default=130)
    parser.add_argument("--submits", type=int, default=4)
    parser.add_argument("--megapixels", type=float, default=49)
    parser.add_argument("--env", action="append", default=[], help="K=V added to the app's environment")
    parser.add_argument("--only", choices=["bodies", "pixels"], help="run one attack only")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    cases = {
        f"{args.bodies} bodies of {args.body_mb:g} MB": ("bodies", lambda: big_bodies(args.bodies, args.body_mb)),
        f"{args.submits} submits of 5 x {args.megapixels:g} MP PNG": ("pixels", lambda: big_pngs(args.submits, args.megapixels)),
    }
    print(f"memory under large inputs ({machine()}); app env: {extra_env or 'defaults'}")
    print(f"{'attack':36} {'before':>8} {'peak':>8} {'after':>8} {'secs':>6}   statuses  [RSS MiB]")
    results = {}
    for name, (kind, make) in cases.items():
        if args.only not in (None, kind):
            continue
        requests = make()
        app = App(extra_env)
        try:
            result = attack(app, requests)
        finally:
            app.stop()
        results[name] = result
        print(f"{name:36} {result['before_mib']:8.1f} {result['peak_mib']:8.1f} {result['after_mib']:8.1f} "
              f"{result['seconds']:6.1f}   {result['statuses']}", flush=True)
    print(json.dumps({"benchmark": "memory", "machine": machine(), "env": extra_env, "results": results}))


if __name__ == "__main__":
    main()
