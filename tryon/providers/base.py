"""The provider interface: the one seam between the try-on flow and whoever draws the picture.

Like an httpx transport, a provider is small and swappable: it stores images
and returns opaque references, runs one edit over references, and hands back
the bytes behind a reference. Chaining, timing, validation and caching live in
the service, so every provider gets them for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from ..images import NormalizedImage


@dataclass(frozen=True)
class EditOptions:
    """What a call asks for beyond the prompt: results and their size; and, for providers that
    do not read prompts (the offline preview), each garment's category in `garments` order."""

    num_images: int = 1
    aspect_ratio: str = "auto"  # "auto" (the model's choice) or "3:4", "1:1", ...
    same_as_person: bool = False  # the user asked for the person photo's shape (aspect_ratio is its nearest ratio)
    resolution: str = "1K"
    categories: tuple[str, ...] = ()
    model: str | None = None  # a catalogue model id (tryon.models) of this provider; None: its default


@dataclass(frozen=True)
class EditResult:
    ref: str  # a reference the same provider accepts as the person of the next edit
    duration_ms: float  # time spent by the provider (queue + inference), as seen from here
    request_id: str | None = None  # the provider's own id, for support tickets and resuming
    provider: str | None = None  # who served it (set by a ProviderChain; else the provider itself)
    skipped: tuple[dict, ...] = ()  # providers passed over before it: {"provider", "reason"}
    variants: tuple[str, ...] = ()  # every result when several were asked for (ref is the first)
    model: str | None = None  # the model that made it (None: one we do not name, e.g. your RunPod endpoint)

    @property
    def refs(self) -> tuple[str, ...]:
        return self.variants or (self.ref,)


class Provider(Protocol):
    name: str  # short id used in timings and logs: "local", "fal", "replicate", "runpod"
    label: str  # what the UI shows
    is_preview: bool  # True when the output is a CPU approximation, not the AI model
    upload_ttl_s: int | None  # how long an uploaded reference stays valid; None: not worth caching

    def upload(self, image: NormalizedImage) -> str:
        """Store one image where the provider can read it; return its reference."""

    def edit(self, prompt: str, person: str, garments: Sequence[str], timeout_s: float | None = None,
             options: EditOptions | None = None) -> EditResult:
        """Dress the person (a reference) in the garments (references), in one provider call.
        Past `timeout_s` the provider cancels its work and raises ProviderError(provider_timeout)."""

    def fetch(self, ref: str) -> bytes:
        """The encoded image behind a reference (JPEG or PNG bytes)."""
