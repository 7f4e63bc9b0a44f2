"""tryon's entry point: `python app.py` locally, and what Hugging Face Spaces runs.

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which
gradio's launch() reads itself; nothing here hard-codes them.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from dataclasses import dataclass

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

    def close(self) -> None:
        if self.workers is not None:
            self.workers.stop()
        self.redis.close()  # the embedded Redis flushes its append-only file and stops


def create_demo(settings: Settings):
    """(demo, runtime): the Blocks app, and the Redis and workers behind its async jobs."""
    prepare_data_dir(settings)
    from tryon.jobs import JobQueue
    from tryon.providers import build_provider
    from tryon.redis_server import connect
    from tryon.service import TryOnService
    from tryon.ui import build_demo
    from tryon.worker import WorkerPool

    provider = build_provider(settings)
    redis_handle = connect(settings.redis_url, settings.data_dir)
    queue = JobQueue(redis_handle.client, settings.job_ttl_s, settings.job_visibility_s, settings.job_max_attempts)
    service = TryOnService(settings, provider, queue)
    workers = WorkerPool(service, settings.workers).start() if settings.workers else None
    runtime = Runtime(redis_handle, workers)
    return build_demo(service, redis_description=redis_handle.description), runtime


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP call is noise here
    try:
        settings = Settings.from_env()
        demo, runtime = create_demo(settings)
    except ConfigError as error:
        print(f"tryon: configuration error: {error}", file=sys.stderr)
        return 2
    atexit.register(runtime.close)
    from tryon.ui import launch_options

    log = logging.getLogger("tryon")
    log.info("provider: %s; jobs: %s; %d worker thread(s); data dir: %s",
             settings.provider, runtime.redis.description, settings.workers, settings.data_dir)
    demo.queue().launch(**launch_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
