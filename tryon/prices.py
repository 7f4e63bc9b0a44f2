"""What a model call probably cost: a small price table, per output image, in US dollars.

An **estimate**, for the Metrics tab: list prices of the default models only, as their vendors
publish them (sources beside each row); no discounts, credits or taxes. A model that is not in
the table has no price ("–" on the page) rather than a guessed one. RunPod bills seconds of your
own endpoint's GPU, not images, so it has no price unless `TRYON_RUNPOD_PRICE_USD` says what one
image costs you. The offline preview runs on our CPU and costs $0.

A later issue replaces this table with a full model catalogue; keep it small until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import DEFAULT_FAL_MODEL, DEFAULT_REPLICATE_MODEL

if TYPE_CHECKING:
    from .config import Settings

# (provider, model) -> US$ per output image, by resolution ("*": any resolution).
PRICES_USD: dict[tuple[str, str], dict[str, float]] = {
    # fal.ai/models/fal-ai/nano-banana-pro/edit, "Pricing": $0.15 per image; 4K outputs are
    # charged at twice the standard rate.
    ("fal", "fal-ai/nano-banana-pro/edit"): {"1K": 0.15, "2K": 0.15, "4K": 0.30},
    # replicate.com/google/nano-banana, "Pricing": $0.039 per output image (one size).
    ("replicate", "google/nano-banana"): {"*": 0.039},
}

OFFLINE = "local"  # the offline preview's provider name


def model_of(provider: str, settings: "Settings | None" = None) -> str | None:
    """The model a provider runs with these settings (defaults without settings); None for
    providers whose model we do not name (RunPod: whatever your endpoint runs)."""
    if provider == "fal":
        return settings.fal_model if settings else DEFAULT_FAL_MODEL
    if provider == "replicate":
        model = settings.replicate_model if settings else DEFAULT_REPLICATE_MODEL
        return model.split(":", 1)[0]  # owner/name:version is priced as owner/name
    return None


def price_per_image(provider: str, resolution: str = "1K", settings: "Settings | None" = None) -> float | None:
    """Estimated US$ for one output image of `provider` at `resolution`; None when unknown."""
    if provider == OFFLINE:
        return 0.0
    if provider == "runpod":
        return settings.runpod_price_usd if settings else None
    prices = PRICES_USD.get((provider, model_of(provider, settings) or ""))
    if prices is None:
        return None
    return prices.get(resolution, prices.get("*"))
