"""What failover costs: sync try-ons on TRYON_PROVIDER=fal,replicate when FAL is healthy, failing
or hanging, with and without the circuit breaker. FAL- and Replicate-protocol test servers on
127.0.0.1, each with the same simulated model latency.

    python -m bench.failover [--latency 0.3] [--requests 12]

Reports total backend time per request (one garment) for:
- FAL healthy (Replicate never called), and Replicate alone (its own latency: it is polled every
  0.25 s, FAL every 0.1 s, so compare the failover rows with this one);
- FAL answering 500 to every submit, breaker never opening (each request pays FAL's refusal first);
- the same with the breaker (3 failures): after the third request FAL is skipped without a call;
- FAL hanging, 6 s budget: FAL gets half, is cancelled, Replicate answers in the rest; and the
  same with the breaker, which skips FAL after 3 hung calls.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from bench.common import report, summary

_tmp = Path(tempfile.mkdtemp(prefix="bench-failover-"))
from fal_server import FalTestServer, make_certificate  # noqa: E402

_CERT, _KEY = make_certificate(_tmp)
_fal = FalTestServer(cert=_CERT, key_file=_KEY)
os.environ.update(_fal.env())  # fal-client reads its hosts at import: before tryon imports it

from synthetic import draw_garment, draw_person  # noqa: E402
from vendor_servers import ReplicateTestServer  # noqa: E402

from tryon.config import Settings  # noqa: E402
from tryon.providers import build_provider  # noqa: E402
from tryon.service import TryOnService  # noqa: E402


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def service(replicate: ReplicateTestServer, **extra: str) -> TryOnService:
    env = {**_fal.env(), **replicate.env(), "TRYON_PROVIDER": "fal,replicate", "TRYON_DATA_DIR": str(_tmp / "data"), **extra}
    settings = Settings.from_env(env)
    return TryOnService(settings, build_provider(settings))


def run(name: str, svc: TryOnService, requests: int, person: bytes, garment: bytes, rows: dict, served: dict) -> None:
    times, providers = [], []
    for _ in range(requests):
        timings = svc.try_on_sync(person, [garment]).timings
        times.append(timings["total_backend_ms"])
        providers.append(timings["provider"])
    rows[name] = summary(times)
    served[name] = {p: providers.count(p) for p in sorted(set(providers))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.3, help="simulated model seconds per call, both vendors")
    parser.add_argument("--requests", type=int, default=12)
    args = parser.parse_args()
    _fal.start()
    replicate = ReplicateTestServer().start()
    person, garment = png(draw_person().image), png(draw_garment("tshirt"))
    rows: dict = {}
    served: dict = {}
    try:
        for server in (_fal, replicate):
            server.reset()
            server.behaviour.latency_s = args.latency
        run("FAL healthy", service(replicate), args.requests, person, garment, rows, served)
        run("Replicate alone (baseline for the rows below)", service(replicate, TRYON_PROVIDER="replicate"),
            args.requests, person, garment, rows, served)
        _fal.behaviour.submit_failures = [500] * 10_000
        run("FAL 500s, no breaker (threshold 100)", service(replicate, TRYON_BREAKER_FAILURES="100"),
            args.requests, person, garment, rows, served)
        run("FAL 500s, breaker after 3", service(replicate, TRYON_BREAKER_FAILURES="3", TRYON_BREAKER_COOLDOWN="600"),
            args.requests, person, garment, rows, served)
        _fal.behaviour.submit_failures = []
        _fal.behaviour.hang = True
        run("FAL hangs, 6 s budget, no breaker", service(replicate, TRYON_BREAKER_FAILURES="100", TRYON_REQUEST_TIMEOUT="6"),
            max(2, args.requests // 4), person, garment, rows, served)
        # The breaker's real payoff: after 3 hung calls FAL is skipped, so the rest cost Replicate's time only.
        run("FAL hangs, 6 s budget, breaker after 3", service(replicate, TRYON_BREAKER_FAILURES="3",
                                                              TRYON_BREAKER_COOLDOWN="600", TRYON_REQUEST_TIMEOUT="6"),
            args.requests, person, garment, rows, served)
    finally:
        _fal.stop()
        replicate.stop()
    report(f"failover fal,replicate, model latency {args.latency}s each, 1 garment (total backend ms)", rows)
    for name, counts in served.items():
        print(f"  served by, {name}: {counts}")


if __name__ == "__main__":
    main()
