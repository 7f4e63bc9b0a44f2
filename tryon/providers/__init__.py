"""Image providers behind one small interface (see base.Provider)."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import EditResult, Provider
from .chain import ProviderChain
from .local import LocalPreviewProvider
from .store import ImageStore


def build_one(name: str, settings: Settings) -> Provider:
    if name == "local":
        # On disk, so a restarted app (or a worker process on this data dir) finds a job's pictures.
        try:
            store = ImageStore(settings.data_dir / "preview", ttl_s=settings.job_ttl_s)
        except OSError as error:
            raise ConfigError(f"TRYON_DATA_DIR={settings.data_dir} cannot hold preview/: {error.strerror}") from None
        return LocalPreviewProvider(store)
    if name == "fal":
        from .fal import FalProvider  # imports fal-client, which reads FAL_RUN_HOST at import

        return FalProvider(settings)
    if name == "replicate":
        from .replicate import ReplicateProvider

        return ReplicateProvider(settings)
    if name == "runpod":
        from .runpod import RunPodProvider

        return RunPodProvider(settings)
    raise ConfigError(f"TRYON_PROVIDER names {name!r}, which this build does not know")


def build_provider(settings: Settings) -> Provider:
    """The provider the settings ask for: one, or a failover chain of several ('fal,replicate')."""
    names = settings.providers
    if len(names) == 1:
        return build_one(names[0], settings)
    members = [build_one(name, settings) for name in names]
    return ProviderChain(members, failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s)


__all__ = ["EditResult", "LocalPreviewProvider", "Provider", "ProviderChain", "build_provider"]
