"""The offline preview: a CPU-only approximation of a try-on, with no model to download."""

from .body import BodyLayout, Box, detect_body
from .compose import dress
from .garment import cut_out

__all__ = ["BodyLayout", "Box", "cut_out", "detect_body", "dress"]
