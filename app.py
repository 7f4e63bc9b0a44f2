"""tryon's entry point: `python app.py` locally, and what Hugging Face Spaces runs.

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which
gradio's launch() reads itself; nothing here hard-codes them.
"""

from __future__ import annotations

import logging
import os
import sys

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


def create_demo(settings: Settings):
    prepare_data_dir(settings)
    from tryon.providers import build_provider
    from tryon.service import TryOnService
    from tryon.ui import build_demo

    return build_demo(TryOnService(settings, build_provider(settings)))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP call is noise here
    try:
        settings = Settings.from_env()
        demo = create_demo(settings)
    except ConfigError as error:
        print(f"tryon: configuration error: {error}", file=sys.stderr)
        return 2
    from tryon.ui import launch_options

    logging.getLogger("tryon").info("provider: %s; data dir: %s", settings.provider, settings.data_dir)
    demo.queue().launch(**launch_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
