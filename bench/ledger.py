"""What the quotas and the daily budget add to a look (tryon/limits/ledger.py): one reserve (a Lua
script checking four limits) before the first model call and one settle after, on the embedded
Redis (unix socket, as `python app.py` starts it); then many reserves at once from several threads
and two clients (two replicas), to see the script's throughput and that exactly the quota passes.

    python -m bench.ledger [--looks 2000] [--threads 16]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from bench.common import report, summary

from tryon.config import Settings
from tryon.errors import TryOnError
from tryon.limits import Ledger, Visitor
from tryon.redis_server import client_for, connect


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--looks", type=int, default=2000, help="reserve + settle pairs, one visitor each")
    parser.add_argument("--threads", type=int, default=16, help="threads reserving at once against one quota")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="tryon-ledger-"))
    embedded = connect(None, directory)
    try:
        settings = replace(Settings(), quotas={"anonymous": (10**9, None), "signed_in": (None, None), "api_key": (None, None)},
                           daily_budget_usd=None, visitor_daily_budget_usd=None)
        ledger = Ledger(embedded.client, settings)
        visitors = [Visitor.from_address(f"198.51.{n // 256 % 256}.{n % 256}") for n in range(args.looks)]
        holds, reserves, settles = [], [], []
        for visitor in visitors:
            reserves.append(timed(lambda v=visitor: holds.append(ledger.reserve(v, 1, 0.15))))
        for hold in holds:
            settles.append(timed(lambda h=hold: ledger.settle(h, 1, 0.15)))
        # Many at once, as two replicas: one visitor with a quota of 100 calls, 16 threads asking 25 times each.
        embedded.client.flushdb()
        limited = replace(settings, quotas={"anonymous": (100, None), "signed_in": (None, None), "api_key": (None, None)})
        replicas = [Ledger(embedded.client, limited),
                    Ledger(client_for(unix_socket_path=str(embedded.server.socket)), limited)]
        crowd, passed, lock = Visitor.from_address("203.0.113.1"), [0], threading.Lock()
        concurrent: list[float] = []

        def ask(n: int) -> None:
            for _ in range(25):
                started = time.perf_counter()
                try:
                    replicas[n % 2].reserve(crowd, 1, 0.15)
                    with lock:
                        passed[0] += 1
                except TryOnError:
                    pass
                with lock:
                    concurrent.append((time.perf_counter() - started) * 1000)

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(args.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        rows = {
            "reserve (4 limits, one Lua script)": summary(reserves),
            "settle (once, by difference)": summary(settles),
            f"reserve, {args.threads} threads on 2 clients": summary(concurrent),
        }
        report("quota ledger", rows)
        print(f"{len(concurrent)} reserves at once in {elapsed:.2f} s ({len(concurrent) / elapsed:.0f}/s); "
              f"passed {passed[0]} of a quota of 100")
    finally:
        embedded.close()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
