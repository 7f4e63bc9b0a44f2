"""Soak: mixed sync/async traffic against the app for a while, watching its resources stay flat.

    python -m bench.soak [--minutes 30] [--clients 3] [--latency 0.2]

Starts the FAL test server and the app (`python app.py`, TRYON_PROVIDER=fal pointed at the
server, embedded Redis) on 127.0.0.1 only; sends sync try-ons and async jobs from a few client
threads (REST and gradio_client) for the given time; samples the app's RSS, open files and
threads every 30 s. Prints the samples, the first-to-last change, and one JSON line. Bounded in
time and traffic: it stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
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

from bench.common import ROOT, machine

_tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
from fal_server import FalTestServer, make_certificate  # noqa: E402
from synthetic import draw_garment, draw_person  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    cert, key = make_certificate(_tmp)
    server = FalTestServer(cert=cert, key_file=key).start()
    server.behaviour.latency_s = args.latency
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "TRYON_", "REDIS_"))}
    env.update(server.env(TRYON_DATA_DIR=str(_tmp / "data"), TRYON_RATE_LIMIT="100000"),
               GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1")
    log = open(_tmp / "app.log", "wb")
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    people = [b64(draw_person(shirt=(40 + 20 * i, 120, 90)).image) for i in range(5)]
    garments = [b64(draw_garment(kind, colour=(30 * i % 255, 80, 160))) for i, kind in
                enumerate(["tshirt", "jacket", "hoodie", "sweater"] * 3)]
    stop = threading.Event()
    counts = {"sync_ok": 0, "async_ok": 0, "errors": 0}
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                body = {"userImage": rng.choice(people), "garments": rng.sample(garments, rng.randint(1, 3))}
                try:
                    if rng.random() < 0.5:
                        ok = http.post("/api/images/generate", json=body).status_code == 200
                        key_name = "sync_ok"
                    else:
                        job = http.post("/api/jobs/submit", json=body).json()["job_id"]
                        while (status := http.get(f"/api/jobs/{job}/status").json()["status"]) not in ("done", "error"):
                            time.sleep(0.2)
                        ok, key_name = status == "done", "async_ok"
                except (httpx.HTTPError, KeyError, ValueError):
                    ok, key_name = False, "errors"
                with lock:
                    counts[key_name if ok else "errors"] += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    process = psutil.Process(app.pid)
    samples = []
    started = time.monotonic()
    end = started + args.minutes * 60
    print(f"soak: {args.minutes:g} min, {args.clients} clients, model latency {args.latency:g} s ({machine()})")
    print(f"{'min':>6} {'rss MiB':>8} {'files':>6} {'threads':>8} {'sync ok':>8} {'async ok':>9} {'errors':>7}", flush=True)
    while True:
        with lock:
            sample = {"minute": round((time.monotonic() - started) / 60, 1), "rss_mib": round(process.memory_info().rss / 2**20, 1),
                      "open_files": process.num_fds(), "threads": process.num_threads(), **counts}
        samples.append(sample)
        print(f"{sample['minute']:6.1f} {sample['rss_mib']:8.1f} {sample['open_files']:6d} {sample['threads']:8d} "
              f"{sample['sync_ok']:8d} {sample['async_ok']:9d} {sample['errors']:7d}", flush=True)
        if time.monotonic() >= end:
            break
        time.sleep(min(30, max(0.1, end - time.monotonic())))
    stop.set()
    for thread in threads:
        thread.join(70)
    app.terminate()
    app.wait(30)
    server.stop()
    # Compare the second sample (warm) with the last: start-up growth is not a leak.
    warm, last = samples[min(1, len(samples) - 1)], samples[-1]
    print(f"change from minute {warm['minute']} to {last['minute']}: RSS {last['rss_mib'] - warm['rss_mib']:+.1f} MiB, "
          f"open files {last['open_files'] - warm['open_files']:+d}, threads {last['threads'] - warm['threads']:+d}")
    print(json.dumps({"benchmark": "soak", "minutes": args.minutes, "clients": args.clients, "samples": samples}))


if __name__ == "__main__":
    main()
