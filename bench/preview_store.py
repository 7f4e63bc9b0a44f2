"""The offline preview's picture store in Redis: put (new, and again: only its TTL restarted), get by
another replica (GET + sha256 check), and get from the memory LRU in front; on the embedded Redis
(unix socket, append-only, as `python app.py` starts it) and on a REDIS_URL over loopback TCP.

    python -m bench.preview_store [--pictures 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from bench.common import report, summary

from tryon.providers.store import ImageStore
from tryon.redis_server import client_for, connect


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(client, other_client, blobs: list[bytes], label: str) -> dict:
    client.flushdb()
    store = ImageStore(client, ttl_s=86400)
    puts = [timed(lambda b=b: store.put(b)) for b in blobs]
    again = [timed(lambda b=b: store.put(b)) for b in blobs]
    refs = [store.put(b) for b in blobs]
    replica = ImageStore(other_client, ttl_s=86400)  # another process: nothing in its memory yet
    from_redis = [timed(lambda r=r: replica.get(r)) for r in refs]
    from_memory = [timed(lambda r=r: replica.get(r)) for r in refs[-100:]]
    client.flushdb()
    return {
        f"{label}: put, 200 KB picture (new key)": summary(puts),
        f"{label}: put again (TTL restarted only)": summary(again),
        f"{label}: get by another replica (+ sha256)": summary(from_redis),
        f"{label}: get from the memory LRU": summary(from_memory),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pictures", type=int, default=200, help="200 KB pictures put and read back")
    args = parser.parse_args()
    blobs = [os.urandom(200_000) for _ in range(args.pictures)]
    directory = Path(tempfile.mkdtemp(prefix="tryon-store-"))
    rows: dict = {}
    embedded = connect(None, directory / "embedded")
    try:
        socket_path = embedded.server.socket
        rows.update(measure(embedded.client, client_for(unix_socket_path=str(socket_path)), blobs, "embedded"))
    finally:
        embedded.close()
    from redis_process import RedisProcess  # tests/, on the path through bench.common

    server = RedisProcess(free_port(), directory / "tcp").start()
    try:
        connection = {"host": "127.0.0.1", "port": server.port}
        rows.update(measure(client_for(**connection), client_for(**connection), blobs, "TCP"))
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    report("offline preview store", rows)


if __name__ == "__main__":
    main()
