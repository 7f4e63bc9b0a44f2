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
    if settings.provider == "fal":
        from .fal import FalProvider  # imports fal-client, which reads FAL_RUN_HOST at import

        return FalProvider(settings)
    raise ConfigError(f"TRYON_PROVIDER resolved to {settings.provider!r}, which this build does not know")


__all__ = ["EditResult", "LocalPreviewProvider", "Provider", "build_provider"]
