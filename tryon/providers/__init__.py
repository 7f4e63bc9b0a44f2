"""Image providers behind one small interface (see base.Provider)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import ConfigError
from .base import EditResult, Provider
from .chain import ProviderChain
from .local import LocalPreviewProvider
from .store import ImageStore

if TYPE_CHECKING:
    from redis import Redis


def build_one(name: str, settings: Settings, redis: "Redis | None" = None) -> Provider:
    if name == "local":
        # In Redis, so any replica, a restarted app or a worker process on another machine finds a
        # job's pictures; without Redis (tests, benchmarks), in this process's memory only.
        return LocalPreviewProvider(ImageStore(redis, ttl_s=settings.job_ttl_s) if redis is not None else None)
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


def build_provider(settings: Settings, redis: "Redis | None" = None) -> Provider:
    """The provider the settings ask for: one, or a failover chain of several ('fal,replicate').
    `redis`: the app's (redis_server.connect); what replicas must agree on lives there (the offline
    preview's pictures, the chain's circuit breakers). Without it, they live in this process."""
    names = settings.providers
    if len(names) == 1:
        return build_one(names[0], settings, redis)
    members = [build_one(name, settings, redis) for name in names]
    return ProviderChain(members, failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s, redis=redis)


__all__ = ["EditResult", "LocalPreviewProvider", "Provider", "ProviderChain", "build_provider"]
