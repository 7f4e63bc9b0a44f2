"""The embedded Redis is never orphaned: it dies with its owner, and a leftover one is adopted and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_py

from conftest import ROOT
from redis_process import servers_on, wait_until
from tryon.redis_server import EmbeddedRedis, connect, control_client, redis_binary


def bare_server(data_dir: Path) -> subprocess.Popen:
    """A redis-server on the embedded socket that no tryon process owns: what a crash used to leave."""
    directory = data_dir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    socket = directory / "redis.sock"
    server = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", str(socket), "--dir", str(directory),
                               "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL)
    assert wait_until(lambda: socket.exists() and _pings(socket), 10)
    return server


def _pings(socket: Path) -> bool:
    try:
        return control_client(unix_socket_path=str(socket)).ping()
    except redis_py.RedisError:
        return False


def test_an_orphaned_server_is_adopted_and_stopped_on_close(tmp_path):
    orphan = bare_server(tmp_path)
    socket = EmbeddedRedis(tmp_path).socket
    try:
        redis_py.Redis(unix_socket_path=str(socket)).set("written-before", "kept")
        handle = connect(None, tmp_path)
        assert handle.server.pid == orphan.pid and handle.server.process is None  # adopted, not started twice
        assert handle.client.get("written-before") == "kept"
        handle.close()
        assert orphan.wait(timeout=5) == 0  # SHUTDOWN: a clean exit
        assert servers_on(socket) == []
    finally:
        if orphan.poll() is None:
            orphan.kill()
    again = connect(None, tmp_path)  # the lock was released: the next start owns a fresh server
    try:
        assert again.server.process is not None and again.client.get("written-before") == "kept"
    finally:
        again.close()
    assert servers_on(socket) == []


def test_a_server_whose_owner_is_alive_is_shared_and_never_stopped(tmp_path):
    server = bare_server(tmp_path)
    lock = EmbeddedRedis(tmp_path).lockfile
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        handle = connect(None, tmp_path)
        assert handle.server.pid is None  # shared
        handle.close()
        assert server.poll() is None and _pings(EmbeddedRedis(tmp_path).socket)
    finally:
        holder.kill()
        holder.wait()
        server.kill()
        server.wait()


@pytest.mark.slow
def test_kill_9_of_the_owner_shuts_its_server_down_gracefully(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom tryon.redis_server import connect\n"
        f"handle = connect(None, Path({str(tmp_path)!r}))\n"
        "handle.client.set('last-write', 'kept')\nprint(handle.server.pid, flush=True)\ntime.sleep(60)\n")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    pid = int(child.stdout.readline())
    embedded = EmbeddedRedis(tmp_path)
    assert servers_on(embedded.socket) == [pid] and embedded.pidfile.read_text().strip() == str(pid)
    started = time.monotonic()
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert wait_until(lambda: not servers_on(embedded.socket), 5)
    print(f"redis-server gone {time.monotonic() - started:.3f} s after kill -9 of its owner")
    # A graceful shutdown (SIGTERM from PR_SET_PDEATHSIG) removes its pidfile and socket; SIGKILL would not.
    assert not embedded.pidfile.exists() and not embedded.socket.exists()
    handle = connect(None, tmp_path)
    try:
        assert handle.server.process is not None and handle.client.get("last-write") == "kept"
    finally:
        handle.close()


@pytest.mark.slow
def test_the_worker_process_owns_the_embedded_redis_and_shares_the_preview_pictures(tmp_path, person_png, garment_pngs):
    from tryon.config import Settings
    from tryon.jobs import JobQueue
    from tryon.providers import build_provider
    from tryon.service import TryOnService

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "TRYON_"))}
    env.update(TRYON_DATA_DIR=str(tmp_path), TRYON_WORKERS="1")
    worker = subprocess.Popen([sys.executable, "-m", "tryon.worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    embedded = EmbeddedRedis(tmp_path)
    try:
        assert wait_until(lambda: _pings(embedded.socket), 30)
        handle = connect(None, tmp_path)
        assert handle.server.pid is None  # the worker owns it
        settings = Settings.from_env({"TRYON_DATA_DIR": str(tmp_path)})
        service = TryOnService(settings, build_provider(settings, handle.client), JobQueue(handle.client))
        job = service.submit_job(person_png, garment_pngs[:1])  # its photos reach the worker through Redis
        assert wait_until(lambda: service.job_status(job.job_id)["status"] in ("done", "error"), 30)
        answer = service.job_status(job.job_id)
        assert answer["status"] == "done" and answer["image_url"].startswith("data:image/jpeg;base64,")
        handle.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert wait_until(lambda: not servers_on(embedded.socket), 5)
