"""App start to ready, and idle memory: `python app.py` as a user runs it, on embedded defaults.

    python -m bench.startup [--runs 3]

Ready = the page answers HTTP 200. RSS is read after 5 s idle, for the app and for the
embedded redis-server it started. For scale: `import gradio` alone is timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil

from bench.common import ROOT, machine


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_start() -> tuple[float, float, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "TRYON_", "REDIS_"))}
    env.update(GRADIO_SERVER_PORT=str(port), TRYON_DATA_DIR=tempfile.mkdtemp(prefix="bench-start-"))
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    ready = time.perf_counter() - started
    time.sleep(5)
    app = psutil.Process(process.pid)
    app_rss = app.memory_info().rss / 2**20
    redis_rss = sum(c.memory_info().rss for c in app.children(recursive=True) if "redis" in c.name()) / 2**20
    process.terminate()
    process.wait(timeout=20)
    return ready, app_rss, redis_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True)
    import_gradio = time.perf_counter() - started
    results = [one_start() for _ in range(args.runs)]
    ready = statistics.median(r[0] for r in results)
    app_rss = statistics.median(r[1] for r in results)
    redis_rss = statistics.median(r[2] for r in results)
    print(f"\napp start to ready ({machine()}), median of {args.runs}")
    print(f"  python -c 'import gradio'   {import_gradio:6.2f} s")
    print(f"  python app.py -> HTTP 200   {ready:6.2f} s")
    print(f"  idle RSS: app {app_rss:.0f} MiB, embedded redis-server {redis_rss:.0f} MiB")
    print(json.dumps({"benchmark": "startup", "import_gradio_s": round(import_gradio, 2), "ready_s": round(ready, 2),
                      "app_rss_mib": round(app_rss), "redis_rss_mib": round(redis_rss)}))


if __name__ == "__main__":
    main()
