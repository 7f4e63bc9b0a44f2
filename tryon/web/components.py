"""gradio components with tryon's own input handling (rendered by gradio's stock frontend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr


class PhotoInput(gr.Image):
    """A gr.Image that hands the raw upload to tryon's intake instead of decoding it itself.

    gr.Image opens every upload with Pillow before the handler runs, so a
    corrupt or non-image file fails there with gradio's generic error. Our
    intake gives the specific reason ("truncated", "not an image", ...).
    """

    is_template = True  # render with the stock Image frontend component

    def __init__(self, **kwargs: Any):
        super().__init__(type="filepath", image_mode=None, format="png", **kwargs)

    def get_config(self, cls=None):
        # The frontend's props are read off the __init__ signature: use gr.Image's, not ours.
        return super().get_config(cls or gr.Image)

    def preprocess(self, payload):  # type: ignore[override]
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return payload.url
        # A Path, not a str: the service reads files only from a Path, which only a gradio
        # input (checked by the FileGate) can be; text from REST or MCP is never opened as a path.
        return Path(payload.path)


class ResultCount(gr.Slider):
    """The number-of-results slider; its value reaches Outfit.parse unchecked.

    gr.Slider's own bounds check answers API callers in English only and logs a
    traceback for what is only a bad input; Outfit.parse names the limit in the
    user's language.
    """

    is_template = True  # render with the stock Slider frontend component

    def get_config(self, cls=None):
        return super().get_config(cls or gr.Slider)

    def preprocess(self, payload):  # type: ignore[override]
        return payload
