"""Settings: the one place that reads the environment, once, at start-up.

Invalid values fail immediately with a ConfigError that names the variable, so
a typo in a Space's settings shows up in its start-up log, not on the first
request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from .errors import ConfigError
from .prompts import DEFAULT_SYNC_PROMPT

PROVIDER_CHOICES = ("auto", "fal", "local")
MAX_GARMENTS = 4
MIN_SIDE = 256  # the seed's troubleshooting guide: below ~256 px the model can't see the subject

T = TypeVar("T")


def _default_data_dir(env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tryon"


def _parse(env: Mapping[str, str], name: str, default: T, convert: Callable[[str], T], check: Callable[[T], bool], expected: str) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = convert(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be {expected}; got {raw!r}") from None
    if not check(value):
        raise ConfigError(f"{name} must be {expected}; got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    # repr=False: the key must never reach a log line through a printed Settings.
    fal_key: str | None = field(default=None, repr=False)
    provider_choice: str = "auto"
    data_dir: Path = field(default_factory=lambda: _default_data_dir(os.environ))
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 1024
    sync_prompt: str = DEFAULT_SYNC_PROMPT

    @property
    def provider(self) -> str:
        """The provider actually used: 'auto' means FAL when a key is set, else the offline preview."""
        if self.provider_choice == "auto":
            return "fal" if self.fal_key else "local"
        return self.provider_choice

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        # The seed's priority: FAL_KEY, then FAL_API_KEY.
        fal_key = (env.get("FAL_KEY") or "").strip() or (env.get("FAL_API_KEY") or "").strip() or None
        provider_choice = _parse(
            env, "TRYON_PROVIDER", "auto", lambda s: s.lower(), lambda v: v in PROVIDER_CHOICES,
            "one of " + ", ".join(PROVIDER_CHOICES),
        )
        if provider_choice == "fal" and not fal_key:
            raise ConfigError("TRYON_PROVIDER=fal needs a FAL key: set FAL_KEY (or FAL_API_KEY)")
        data_dir = Path(env.get("TRYON_DATA_DIR") or _default_data_dir(env)).expanduser()
        max_upload_mb = _parse(
            env, "TRYON_MAX_UPLOAD_MB", 20.0, float, lambda v: 0.1 <= v <= 500,
            "a number of megabytes between 0.1 and 500",
        )
        max_megapixels = _parse(
            env, "TRYON_MAX_MEGAPIXELS", 50.0, float, lambda v: 0.1 <= v <= 200,
            "a number of megapixels between 0.1 and 200",
        )
        max_side = _parse(
            env, "TRYON_MAX_SIDE", 1024, int, lambda v: MIN_SIDE <= v <= 4096,
            f"a whole number of pixels between {MIN_SIDE} and 4096",
        )
        sync_prompt = _parse(
            env, "TRYON_PROMPT", DEFAULT_SYNC_PROMPT, str, lambda v: 10 <= len(v) <= 2000,
            "a prompt of 10 to 2000 characters",
        )
        return cls(
            fal_key=fal_key,
            provider_choice=provider_choice,
            data_dir=data_dir,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_pixels=int(max_megapixels * 1_000_000),
            max_side=max_side,
            sync_prompt=sync_prompt,
        )
