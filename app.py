"""tryon's entry point: `python app.py` locally, and what Hugging Face Spaces runs.

One server: the REST API of the system we replace under /api, Prometheus text
at /metrics, and the Gradio page (with its named API) at /. Host and port
come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as for any gradio app.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request  # module level: FastAPI resolves the string annotation from these globals

from tryon.config import Settings
from tryon.errors import ConfigError


def prepare_data_dir(settings: Settings) -> None:
    """Create TRYON_DATA_DIR and keep gradio's upload cache inside it (unless GRADIO_TEMP_DIR says otherwise)."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"TRYON_DATA_DIR={settings.data_dir} cannot be created: {error.strerror}") from None
    # gradio reads GRADIO_TEMP_DIR when it is imported, so this runs before `import gradio`.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.data_dir / "uploads"))


@dataclass
class Runtime:
    """What the app started besides the web server, and stops on exit."""

    redis: object
    workers: object | None
    grace_s: float = 20.0

    def close(self) -> None:
        if self.workers is not None:
            self.workers.stop(self.grace_s)  # jobs in flight finish, or go back to the queue
        self.redis.close()  # the embedded Redis flushes its append-only file and stops


def looks_dir(settings: Settings) -> Path:
    """Where the history keeps each look's pictures (served only to their session)."""
    return settings.data_dir / "looks"


def server_address() -> tuple[str, int]:
    """Where uvicorn listens: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as for any gradio app."""
    return os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), int(os.environ.get("GRADIO_SERVER_PORT", "7860"))


def loopback_url() -> str:
    """This server as the app itself reaches it (0.0.0.0 and :: listen everywhere, loopback included)."""
    host, port = server_address()
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{host}:{port}/"


def private_dirs(settings: Settings) -> list[str]:
    """The app's folders under TRYON_DATA_DIR that gradio's file route must never serve by path."""
    return [str(looks_dir(settings)), str(settings.data_dir / "redis"), str(settings.data_dir / "preview")]


def create_service(settings: Settings):
    """(service, runtime): the shared service with its Redis, job queue, metrics and workers."""
    prepare_data_dir(settings)
    from tryon.fetch import SafeFetcher
    from tryon.history import LookHistory
    from tryon.jobs import JobQueue
    from tryon.limits import Ledger
    from tryon.metrics import Metrics
    from tryon.providers import build_provider
    from tryon.redis_server import connect
    from tryon.service import TryOnService
    from tryon.jobs.worker import WorkerPool

    redis_handle = connect(settings.redis_url, settings.data_dir)
    try:  # the preview's pictures and the breakers live in Redis, shared by every replica
        provider = build_provider(settings, redis_handle.client)
    except BaseException:
        redis_handle.close()
        raise
    queue = JobQueue(redis_handle.client, settings.job_ttl_s, settings.job_visibility_s, settings.job_max_attempts)
    fetcher = SafeFetcher(max_bytes=settings.max_upload_bytes)
    service = TryOnService(settings, provider, queue, fetcher=fetcher, metrics=Metrics(redis_handle.client),
                           history=LookHistory(redis_handle.client, looks_dir(settings), settings.job_ttl_s),
                           ledger=Ledger(redis_handle.client, settings))
    workers = WorkerPool(service, settings.workers).start() if settings.workers else None
    return service, Runtime(redis_handle, workers, settings.shutdown_grace_s)


def create_app(settings: Settings):
    """(fastapi app, runtime): REST routes and /metrics first, then the Gradio page mounted at /."""
    from tryon.budget import tune_memory

    tune_memory()  # before any thread starts: big images' memory goes back to the system when freed
    service, runtime = create_service(settings)
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import PlainTextResponse
    from starlette.exceptions import HTTPException

    from tryon import __version__
    from tryon.web.access import GradioLogins, RateLimiter, gradio_auth, key_is_valid
    from tryon.web.api_docs import install_docs
    from gradio import utils as gr_utils

    from tryon.web.auth_throttle import AuthThrottle
    from tryon.web.body_guard import BodyGuard
    from tryon.web.mcp_guard import McpGuard
    from tryon.web.rest import build_router, http_error, unexpected_error, validation_error
    from tryon.web.session_files import SessionFiles
    from tryon.web.sign_in import SignInRefusal
    from tryon.web.visitors import ClientAddress
    from tryon.web.page import build_demo, launch_options

    api = FastAPI(
        title="tryon", version=__version__,
        description="Virtual try-on. The /api routes keep the request and response shapes of the system tryon "
                    "replaces; the page and its gradio API are at /.",
        docs_url=None, openapi_url="/api/openapi.json", redoc_url=None,
    )
    install_docs(api)  # /api/docs with swagger-ui from an installed package, not a CDN (before the /api catch-all)
    api.add_exception_handler(RequestValidationError, validation_error)
    api.add_exception_handler(HTTPException, http_error)
    api.add_exception_handler(Exception, unexpected_error)
    # Every body capped, and all bodies in flight together bounded (413 / 429 in the seed's shape).
    api.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes, budget_bytes=settings.body_budget_bytes)
    demo = build_demo(service, redis_description=runtime.redis.description)
    # Uploads and results in gradio's cache are served only to the session they were handed to;
    # the app's own folders (history, embedded Redis) are under the same gate and never handed out.
    api.add_middleware(SessionFiles, owners=demo.file_gate.owners,
                       cache_roots=[gr_utils.get_upload_folder(), str(gr_utils.get_cache_folder()), *private_dirs(settings)])
    api.include_router(build_router(service, settings, runtime.redis.client))

    @api.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    def prometheus(request: Request):
        # With keys set, scrapers send one as a bearer token (Prometheus: authorization.credentials).
        if settings.api_keys:
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not key_is_valid(token, settings.api_keys):
                return PlainTextResponse("missing or invalid API key\n", status_code=401)
        return service.metrics.prometheus() + (service.ledger.prometheus() if service.ledger else "")

    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    gr.mount_gradio_app(
        api, demo, path="/", auth=gradio_auth(settings), max_file_size=settings.max_upload_bytes,
        mcp_server=settings.mcp,
        # Our user errors are gr.Error and always shown; anything else must not send its text
        # ("'str' object has no attribute 'get'") to whoever called a private event with junk.
        show_error=False,
        # allowed_paths: the history's pictures may be returned by handlers (gradio copies them into
        # its cache); blocked_paths: the embedded Redis (socket, append-only file) never leaves.
        allowed_paths=[str(looks_dir(settings))], blocked_paths=[str(settings.data_dir / "redis")],
        auth_message="Log in with your user name and password, or any user name and an API key.",
        **launch_options(),
    )
    demo.file_gate.publish(demo.config)  # the examples' pictures: the same for every visitor
    if demo.mcp_server_obj is not None:
        # launch() gives gradio's MCP bridge the app's own address; under mount it has none and builds
        # its loopback client from the first caller's Host / X-Forwarded-Host, for every later caller.
        demo.mcp_server_obj._local_url = loopback_url()
    if settings.api_keys or settings.auth_users:
        # Outermost: MCP needs the login too, and every failed login or key costs the address a token.
        logins = GradioLogins.mounted_in(api)
        api.add_middleware(McpGuard, keys=settings.api_keys, logins=logins)
        api.add_middleware(AuthThrottle, limiter=RateLimiter(settings.auth_failures_per_min, runtime.redis.client, "auth"),
                           logins=logins)
    if settings.hf_oauth:  # a visitor who declines signing in is sent back to the page, not to a 500
        api.add_middleware(SignInRefusal)
    # Outermost of all: every layer inside sees the client's address, settled once (tryon/web/visitors.py).
    api.add_middleware(ClientAddress, proxies=settings.trusted_proxies)
    return api, runtime


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP call is noise here
    try:
        settings = Settings.from_env()
        app, runtime = create_app(settings)
    except ConfigError as error:
        print(f"tryon: configuration error: {error}", file=sys.stderr)
        return 2
    import uvicorn

    from tryon.web.access import openness

    host, port = server_address()
    log = logging.getLogger("tryon")
    log.info("provider: %s; jobs: %s; %d worker thread(s); data dir: %s",
             settings.provider, runtime.redis.description, settings.workers, settings.data_dir)
    log.info("access: %s", openness(settings))
    print(f"* Running on http://{host}:{port}/  (REST API docs: /api/docs)", flush=True)
    # On SIGTERM/SIGINT uvicorn stops accepting connections and gives open requests the grace
    # period; then the workers get theirs, and the embedded Redis is flushed and stopped. uvicorn
    # re-raises the signal to the handler that was there before it: make that one ours, so the
    # re-raise lands here instead of killing the process before the cleanup below.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        # proxy_headers=False: X-Forwarded-For is read by our ClientAddress, from TRYON_TRUSTED_PROXIES only
        # (uvicorn's own default believes any loopback peer).
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=settings.shutdown_grace_s,
                    proxy_headers=False)
    finally:
        log.info("shutting down: work in flight gets up to %.0f s", settings.shutdown_grace_s)
        runtime.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
