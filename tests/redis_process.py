"""A throwaway redis-server on 127.0.0.1 for tests: start, kill -9, restart on the same port and data.
Also: which processes serve a given unix socket (to catch an orphaned embedded Redis)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import redis

from tryon.processes import wait_gone
from tryon.redis_server import redis_binary


class RedisProcess:
    def __init__(self, port: int, directory: Path):
        self.port = port
        self.dir = directory
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self, timeout: float = 10.0) -> "RedisProcess":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--dir", str(self.dir), "--maxmemory-policy", "noeviction", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start")
                time.sleep(0.02)

    def kill(self) -> None:
        """kill -9: no chance to flush anything beyond what fsync already wrote."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()


def servers_on(socket: Path) -> list[int]:
    """Pids of live processes whose command line names this socket (zombies have an empty one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(socket).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


wait_until = wait_gone  # poll a condition every 20 ms until it holds or the timeout passes
