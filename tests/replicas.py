"""Several tryon replicas and workers on one Redis behind nginx, all on 127.0.0.1, for tests.

    Cluster(tmp_dir, env).start()  ->  redis-server, N × `python app.py`, M × `python -m tryon.worker`, nginx

Each replica has its own TRYON_DATA_DIR (two machines do not share a disk) and runs no job itself
(TRYON_WORKERS=0): jobs run only in the worker processes. nginx runs the site block of
docs/DEPLOY.md, read from the document itself (`site_template()`), with its `{{…}}` placeholders
filled in; this module only wraps it in the process-level lines a test needs (a pid file, logs and
temporary files in the tmp dir). Every process is started in a process group of its own and
killed with its group at the end, whatever happened.

`preview_cluster` and `fal_cluster` are module-scoped fixtures (import them into a test module):
the offline preview, and the FAL test server (`tests/fal_server.py`) with low quotas and budgets.
On a failure, every log and the nginx config are copied to test-artifacts/replicas-<name>/.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tryon.processes import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DOC = ROOT / "docs" / "DEPLOY.md"
ARTIFACTS = ROOT / "test-artifacts"
COOKIE = "tryon_session"  # tryon/web/session_files.py: the app's session cookie, nginx's sticky key
# Debian's binaries by absolute path: a pyenv shim called redis-server may come first on PATH.
NGINX_CANDIDATES = ("/usr/sbin/nginx",)
REDIS_CANDIDATES = ("/usr/bin/redis-server",)
START_TIMEOUT_S = 90.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(candidates: tuple[str, ...], name: str) -> str | None:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll `condition` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- nginx's configuration ---------------------------------------------------------------------

def site_template(doc: Path = DEPLOY_DOC) -> str:
    """The one ```nginx block of docs/DEPLOY.md: what the document tells operators to run."""
    blocks = re.findall(r"^```nginx\n(.*?)^```", doc.read_text(), flags=re.S | re.M)
    assert len(blocks) == 1, f"{doc.name} must hold exactly one ```nginx block (found {len(blocks)})"
    return blocks[0]


def render_site(template: str, replicas: list[str], listen: str, access_log: str) -> str:
    """The site block with its placeholders filled in: the `{{replica}}` line once per replica."""
    lines = []
    for line in template.splitlines():
        if "{{replica}}" in line:
            lines.extend(line.replace("{{replica}}", address) for address in replicas)
        else:
            lines.append(line)
    text = "\n".join(lines).replace("{{listen}}", listen).replace("{{access_log}}", access_log)
    left = re.findall(r"\{\{\w+\}\}", text)
    assert not left, f"placeholders the harness does not know: {left}"
    return text


def main_config(site: str, tmp: Path) -> str:
    """A whole nginx.conf around the site block: everything of nginx's own under `tmp`.
    As root, nginx's workers would run as `nobody`, who cannot enter a test's 0700 tmp dir to
    write the request-body temp files (an upload above 16 KB), so they run as root here."""
    temp = tmp / "nginx-temp"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"# Written by tests/replicas.py: docs/DEPLOY.md's site block inside a test's own nginx.conf.\n"
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log warn;\n"
        f"events {{\n    worker_connections 512;\n}}\n"
        f"http {{\n    default_type application/octet-stream;\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n    uwsgi_temp_path {temp}/uwsgi;\n    scgi_temp_path {temp}/scgi;\n\n"
        + "".join(f"    {line}\n" if line else "\n" for line in site.splitlines())
        + "}\n"
    )


# -- processes ---------------------------------------------------------------------------------

class Process:
    """One server, in a process group of its own (its children die with it), output to a log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            # A group of its own (killed whole at the end); SIGTERM from the kernel if pytest itself dies.
            self.popen = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=die_with_parent())

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)  # our own group: the leader's pid is its id
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown code runs."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace: float = 8.0) -> None:
        if self.popen is None:
            return
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # anything left in the group (or a leader that ignored SIGTERM)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Replica:
    def __init__(self, number: int, port: int, process: Process, data_dir: Path):
        self.number = number
        self.port = port
        self.process = process
        self.data_dir = data_dir
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}/"


class Cluster:
    """redis-server + `replicas` apps + `workers` worker processes + nginx in front, in `tmp`."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str] | None = None, replicas: int = 2, workers: int = 1):
        self.name = name
        self.tmp = tmp
        self.extra_env = dict(env or {})
        self.replica_count = replicas
        self.worker_count = workers
        self.processes: list[Process] = []
        self.replicas: list[Replica] = []
        self.workers: list[Process] = []
        self.redis: Process | None = None
        self.nginx: Process | None = None
        self.pins: dict[int, str] = {}
        self.access_log = tmp / "nginx-access.log"
        self.error_log = tmp / "nginx-error.log"
        self.nginx_conf = tmp / "nginx.conf"

    # -- start ------------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("FAL_", "TRYON_", "GRADIO_", "REDIS_", "REPLICATE_", "RUNPOD_", "OAUTH_", "SPACE_"))}
        keep.update(PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", REDIS_URL=self.redis_url,
                    TRYON_RATE_LIMIT="100000", TRYON_SHUTDOWN_GRACE="3", TRYON_TRUSTED_PROXIES="127.0.0.1")
        keep.update(self.extra_env)
        return keep

    def start(self) -> "Cluster":
        self.tmp.mkdir(parents=True, exist_ok=True)
        nginx, redis_server = find_binary(NGINX_CANDIDATES, "nginx"), find_binary(REDIS_CANDIDATES, "redis-server")
        if not nginx or not redis_server:
            message = f"needs nginx and redis-server (found {nginx}, {redis_server}): apt-get install nginx redis-server"
            if os.environ.get("TRYON_REQUIRE_BROWSER") == "1":  # CI: .ci/run installs both
                pytest.fail(message)
            pytest.skip(message)
        redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.redis = self._spawn("redis", [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no", "--dir", str(self.tmp),
                                           "--maxmemory-policy", "noeviction", "--protected-mode", "yes"])
        import redis as redis_py

        client = redis_py.Redis(port=redis_port, socket_connect_timeout=0.5)

        def pong():
            self._check_alive(self.redis)
            try:
                return client.ping()
            except redis_py.RedisError:
                return False

        wait_for(pong, 10, "redis-server to answer PING")
        client.close()

        for number in range(self.replica_count):
            self.replicas.append(self._start_replica(number, free_port()))
        for number in range(self.worker_count):
            data = self.tmp / f"worker-{number}" / "data"
            env = {**self.base_env(), "TRYON_DATA_DIR": str(data), "TRYON_WORKERS": "4"}
            self.workers.append(self._spawn(f"worker-{number}", [sys.executable, "-m", "tryon.worker"], env))

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        site = render_site(site_template(), [r.address for r in self.replicas], f"127.0.0.1:{self.port}", str(self.access_log))
        self.nginx_conf.write_text(main_config(site, self.tmp))
        self.nginx = self._spawn("nginx", [nginx, "-p", str(self.tmp), "-c", str(self.nginx_conf), "-g", "daemon off;"])

        for replica in self.replicas:
            self._wait_replica(replica)
        for worker in self.workers:
            wait_for(lambda: self._check_alive(worker) and "jobs in flight, on" in worker.log(), START_TIMEOUT_S,
                     f"{worker.name} to start")
        wait_for(lambda: self._check_alive(self.nginx) and answers(self.url), 20, "nginx to answer")
        for number in range(self.replica_count):
            self.pins[number] = self._find_pin(number)
        return self

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, argv, env if env is not None else self.base_env(), self.tmp / f"{name}.log")
        self.processes.append(process)
        return process

    def _start_replica(self, number: int, port: int) -> Replica:
        home = self.tmp / f"replica-{number}"
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**self.base_env(), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "TRYON_WORKERS": "0",
               "TRYON_DATA_DIR": str(home / "data"), "TMPDIR": str(home / "tmp")}
        return Replica(number, port, self._spawn(f"replica-{number}", [sys.executable, str(ROOT / "app.py")], env), home / "data")

    def _wait_replica(self, replica: Replica) -> None:
        wait_for(lambda: self._check_alive(replica.process) and answers(replica.url), START_TIMEOUT_S,
                 f"{replica.process.name} to answer on {replica.url}", interval=0.2)

    @staticmethod
    def _check_alive(process: Process) -> bool:
        if not process.alive():
            raise AssertionError(f"{process.name} exited with {process.popen.returncode}:\n{process.log()[-4000:]}")
        return True

    # -- which replica answered --------------------------------------------------------------------

    def access_lines(self, start: int = 0) -> list[str]:
        """nginx's access log lines from byte `start` on (`log_offset()` marks a moment)."""
        try:
            with open(self.access_log, "rb") as log:
                log.seek(start)
                return log.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_offset(self) -> int:
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    @staticmethod
    def upstreams_of(line: str) -> list[str]:
        """The upstream addresses nginx tried for this request, in order (`a, b` after a failover)."""
        match = re.search(r" upstream=(.*?) ustatus=", line)
        return [part.strip() for part in match.group(1).split(",")] if match else []

    def replica_at(self, address: str) -> int | None:
        return next((r.number for r in self.replicas if r.address == address), None)

    def served_by(self, marker: str, timeout: float = 5.0) -> list[str]:
        """The upstreams tried for the one request whose line holds `marker` (nginx writes the line
        just after the answer, so wait for it)."""
        def line():
            found = [l for l in self.access_lines() if marker in l]
            return found[-1] if found else None

        return self.upstreams_of(wait_for(line, timeout, f"nginx's access log line for {marker}"))

    def probe(self, cookie: str | None, timeout: float = 5.0) -> int | None:
        """Which replica nginx sends a request with this session cookie to (None: no replica answered)."""
        marker = secrets.token_hex(8)
        request = urllib.request.Request(f"{self.url}api/models?probe={marker}",
                                         headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except OSError:
            pass
        tried = self.served_by(marker)
        return self.replica_at(tried[-1]) if tried else None

    def _find_pin(self, number: int) -> str:
        """A session cookie that nginx's consistent hash sends to replica `number`."""
        for _ in range(64):
            candidate = secrets.token_urlsafe(24)  # the shape the app accepts as its own session
            if self.probe(candidate) == number:
                return candidate
        raise AssertionError(f"no session cookie in 64 tries reached replica {number}")

    def pinned(self, number: int, **headers: str) -> dict[str, str]:
        """Request headers that make nginx send a request to replica `number`: the session cookie of
        a browser whose session lives there (plus any `headers`, e.g. X_Forwarded_For="…")."""
        return {"Cookie": f"{COOKIE}={self.pins[number]}", **{k.replace("_", "-"): v for k, v in headers.items()}}

    # -- faults and repair -------------------------------------------------------------------------

    def kill_replica(self, number: int) -> None:
        self.replicas[number].process.kill()

    def heal(self, timeout: float = 40.0) -> None:
        """Restart every replica that is not running (same port, same data dir: the machine came
        back) and wait until nginx sends each one's pinned sessions to it again (after fail_timeout)."""
        for replica in self.replicas:
            if not replica.process.alive():
                replica.process.start()
                self._wait_replica(replica)
        for number in self.pins:
            wait_for(lambda: self.probe(self.pins[number]) == number, timeout,
                     f"nginx to send replica {number}'s sessions back to it", interval=0.5)

    # -- stop ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """nginx first (its connections to the replicas close), then apps and workers together, Redis last."""
        if self.nginx is not None:
            self.nginx.stop(grace=5)
        middle = [p for p in self.processes if p not in (self.nginx, self.redis)]
        with ThreadPoolExecutor(max_workers=max(1, len(middle))) as pool:
            list(pool.map(lambda p: p.stop(grace=10), middle))
        if self.redis is not None:
            self.redis.stop(grace=5)

    def keep_logs(self) -> Path:
        """Every log of this cluster and its nginx.conf, under test-artifacts/replicas-<name>/."""
        target = ARTIFACTS / f"replicas-{self.name}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        for path in [*self.tmp.glob("*.log"), self.nginx_conf]:
            if path.exists():
                shutil.copy2(path, target / path.name)
        return target


def running_cluster(request, tmp_path_factory, name: str, env: dict[str, str]):
    """A generator for a fixture: the cluster started, yielded, stopped; logs kept if a test failed."""
    failed_before = request.session.testsfailed
    cluster = Cluster(name, tmp_path_factory.mktemp(f"replicas-{name}"), env)
    try:
        try:
            cluster.start()
        except BaseException:
            cluster.keep_logs()
            raise
        yield cluster
    finally:
        cluster.stop()
        if request.session.testsfailed > failed_before:
            cluster.keep_logs()


# Prices the FAL cluster's quota and budget tests rely on (TRYON_MODEL_PRICES overrides the list prices).
CHEAP_MODEL, DEAR_MODEL = "fal-ai/nano-banana-pro/edit", "fal-ai/nano-banana-2/edit"
CHEAP_USD, DEAR_USD = 0.01, 1.00
QUOTA_CALLS, VISITOR_BUDGET_USD = 2, 1.50


@pytest.fixture(scope="module")
def preview_cluster(request, tmp_path_factory):
    """Two replicas and a worker on the offline preview (no key: the default provider)."""
    yield from running_cluster(request, tmp_path_factory, "preview", {})


@pytest.fixture(scope="module")
def fal_cluster(request, tmp_path_factory, fal_server_session):
    """Two replicas and a worker on the FAL test server, with an anonymous visitor's quota of
    QUOTA_CALLS paid calls and a daily budget per visitor of VISITOR_BUDGET_USD: CHEAP_MODEL's calls
    fit it twice over, DEAR_MODEL's once. The app's own daily budget is high (tests run in any order)."""
    import json

    env = fal_server_session.env(
        TRYON_REQUEST_TIMEOUT="20",
        TRYON_MODEL_PRICES=json.dumps({CHEAP_MODEL: CHEAP_USD, DEAR_MODEL: DEAR_USD}),
        TRYON_QUOTA_ANONYMOUS_CALLS=str(QUOTA_CALLS), TRYON_QUOTA_ANONYMOUS_USD="none",
        TRYON_QUOTA_WINDOW="7d",  # a fixed window: one that ends mid-test would reset the count
        TRYON_DAILY_BUDGET_PER_VISITOR_USD=str(VISITOR_BUDGET_USD), TRYON_DAILY_BUDGET_USD="1000",
    )
    yield from running_cluster(request, tmp_path_factory, "fal", env)
