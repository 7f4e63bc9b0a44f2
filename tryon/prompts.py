"""The prompts sent to the image-edit model, in one place.

The model (fal-ai/nano-banana-pro/edit) takes `prompt` + `image_urls`; the
figures are numbered in the order of `image_urls`, person first. The sync
chain applies one garment per call (Figure 1 = person, Figure 2 = garment);
a single call with several garments names each figure, inner layer first.
A garment's category and description (tryon.outfit) say what it is and what
it replaces. A category guessed from the picture (the user left "auto") is
named like a chosen one when the guess is sure; an unsure guess is not named
(the model sees the picture), and an operator's own TRYON_PROMPT stays the
prompt of every garment the user left on "auto" without a description, as
before guessing.
"""

from __future__ import annotations

from typing import Sequence

from .outfit import REPLACES, GarmentSpec

DEFAULT_SYNC_PROMPT = (
    "Dress the person in Figure 1 in the clothing garment from Figure 2. "
    "Keep the person's face, hair, body shape, pose, skin tone and the background exactly as they are; "
    "replace only the clothing that the garment covers, fitted naturally with realistic folds and lighting. "
    "Photorealistic result."
)


KEEP = ("Keep the person's face, hair, body shape, pose, skin tone and the background exactly as they are. "
        "Photorealistic result.")


def sync_prompt(template: str = DEFAULT_SYNC_PROMPT, spec: GarmentSpec | None = None) -> str:
    """The prompt for one step of the chain: Figure 1 is the person, Figure 2 the garment.
    A garment with a category or a description gets a prompt that names it and what it
    replaces; one without either gets `template` (TRYON_PROMPT) as it is."""
    if spec is None or (spec.prompt_category == "auto" and not spec.description):
        return template
    if spec.guessed and not spec.description and template != DEFAULT_SYNC_PROMPT:
        return template  # the operator's prompt, not our guess, decides for undescribed garments
    return (
        f"Dress the person in Figure 1 in {_garment_words(spec)} shown in Figure 2. "
        f"{_placement(spec)} "
        "Keep every other garment the person is already wearing as it is, fitted naturally with realistic folds "
        f"and lighting. {KEEP}"
    )


def outfit_prompt(specs: Sequence[GarmentSpec]) -> str:
    """One prompt for one call with every garment, `specs` in the order they go on (inner to
    outer); Figure 2 is specs[0], Figure 3 specs[1], ... (the image list follows the same order)."""
    if not specs:
        raise ValueError("an outfit needs at least one garment")
    if len(specs) == 1 and specs[0].prompt_category == "auto" and not specs[0].description:
        return DEFAULT_SYNC_PROMPT
    lines = [f"Dress the person in Figure 1 in the {len(specs)} garment(s) shown in the other figures, "
             "putting them on in this order, from the innermost layer to the outermost:"]
    for n, spec in enumerate(specs, start=1):
        lines.append(f"{n}. Figure {n + 1}: {_garment_words(spec)}. {_placement(spec)}")
    lines.append("Each later garment is worn over the earlier ones where they overlap, as a person would wear them; "
                 "fit every garment naturally with realistic folds and lighting. " + KEEP)
    return "\n".join(lines)


def _garment_words(spec: GarmentSpec) -> str:
    """'the blue denim jacket (outerwear)', 'the garment (top)', 'the clothing garment'."""
    category = spec.prompt_category
    noun = spec.description or ("clothing garment" if category == "auto" else "garment")
    return f"the {noun}" + (f" ({category})" if category != "auto" else "")


def _placement(spec: GarmentSpec) -> str:
    if spec.prompt_category == "auto":
        return "It replaces only the clothing it covers."
    return f"It replaces {REPLACES[spec.prompt_category]}."
