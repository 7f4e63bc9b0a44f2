"""The offline preview's picture store on disk: put, get after a restart (read + sha256 check), get from
memory, and the once-a-minute sweep of a directory holding a day's pictures.

    python -m bench.preview_store [--pictures 200] [--files 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import report, summary

from tryon.providers.store import ImageStore


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pictures", type=int, default=200, help="200 KB pictures put and read back")
    parser.add_argument("--files", type=int, default=10_000, help="files in the directory the sweep scans")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="tryon-store-"))
    try:
        store = ImageStore(directory, ttl_s=86400)
        blobs = [os.urandom(200_000) for _ in range(args.pictures)]
        puts = [timed(lambda b=b: store.put(b)) for b in blobs]
        refs = [store.put(b) for b in blobs]
        restarted = ImageStore(directory, ttl_s=86400)
        from_disk = [timed(lambda r=r: restarted.get(r)) for r in refs]
        from_memory = [timed(lambda r=r: restarted.get(r)) for r in refs[-100:]]
        for n in range(args.files):
            (directory / f"{n:064x}.jpg").write_bytes(b"x")
        sweeps = [timed(restarted.sweep) for _ in range(5)]
        report("offline preview store", {
            "put, 200 KB picture (new file)": summary(puts),
            "get after a restart (read + sha256)": summary(from_disk),
            "get from the memory LRU": summary(from_memory),
            f"sweep of {args.files + args.pictures} files, none expired": summary(sweeps),
        })
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
