"""The prompts sent to the image-edit model, in one place.

The model (fal-ai/nano-banana-pro/edit) takes `prompt` + `image_urls`; the
figures are numbered in the order of `image_urls`, person first. The sync
chain applies one garment per call (Figure 1 = person, Figure 2 = garment);
a single call with several garments names each figure.
"""

from __future__ import annotations

DEFAULT_SYNC_PROMPT = (
    "Dress the person in Figure 1 in the clothing garment from Figure 2. "
    "Keep the person's face, hair, body shape, pose, skin tone and the background exactly as they are; "
    "replace only the clothing that the garment covers, fitted naturally with realistic folds and lighting. "
    "Photorealistic result."
)


def sync_prompt(template: str = DEFAULT_SYNC_PROMPT) -> str:
    """The prompt for one step of the chain: Figure 1 is the person, Figure 2 the garment."""
    return template


def multi_garment_prompt(garment_count: int) -> str:
    """One prompt that applies `garment_count` garments (Figures 2..N+1) in a single call."""
    if garment_count < 1:
        raise ValueError("garment_count must be at least 1")
    if garment_count == 1:
        return DEFAULT_SYNC_PROMPT
    figures = ", ".join(f"Figure {i + 2}" for i in range(garment_count - 1))
    figures += f" and Figure {garment_count + 1}"
    return (
        f"Dress the person in Figure 1 in all of the clothing garments shown in {figures}, "
        "each garment worn where it belongs on the body, layered as a person would wear them. "
        "Keep the person's face, hair, body shape, pose, skin tone and the background exactly as they are; "
        "replace only the clothing the garments cover, fitted naturally with realistic folds and lighting. "
        "Photorealistic result."
    )
