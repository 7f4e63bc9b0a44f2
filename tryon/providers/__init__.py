"""Image providers behind one small interface (see base.Provider)."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import EditResult, Provider
from .local import LocalPreviewProvider


def build_provider(settings: Settings) -> Provider:
    """The provider the settings ask for ('auto' resolves to FAL with a key, else the offline preview)."""
    if settings.provider == "local":
        return LocalPreviewProvider()
    raise ConfigError(f"TRYON_PROVIDER resolved to {settings.provider!r}, which is not available in this build")


__all__ = ["EditResult", "LocalPreviewProvider", "Provider", "build_provider"]
