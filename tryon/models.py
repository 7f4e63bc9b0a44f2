"""The model catalogue: every model tryon can run, what it takes, what it costs, and how one
request becomes its arguments. Providers build their requests here; nothing outside this module
asks "which model is this?".

A `Model` says:
- who runs it (`provider`: "fal" or "replicate") and what it is (`kind`: a general image
  editor that reads a prompt, or a dedicated try-on model that takes one garment photo);
- what it can honour: a prompt (so descriptions), several garments in one call, how many results,
  which aspect ratios and resolutions, a seed, and which of our garment categories it dresses
  (mapped to its own words: our "dress" is fashn's "one-pieces");
- where its input schema is published (source and date beside each), in whose field names
  `arguments()` builds one call and `check()` refuses what the model cannot do, before anything
  is paid for;
- its list price per output image by resolution (`TRYON_MODEL_PRICES` overrides it), from which
  `estimate()` prices a request: model × calls × results × resolution.

Prices are list prices as the vendor published them on the date given: no discounts, credits or
taxes. A model that is not in the catalogue cannot be chosen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from .errors import InvalidRequest

EDIT, TRYON = "edit", "tryon"  # a general image editor (prompt + images), a dedicated try-on model

# Our aspect ratios as every prompt-reading FAL editor takes them ("auto": the model's choice).
NANO_RATIOS = ("auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16")


@dataclass(frozen=True)
class Call:
    """One model call as the service asks for it, in our words."""

    prompt: str
    person: str  # a reference the provider can read
    garments: tuple[str, ...]
    categories: tuple[str, ...] = ()  # ours, one per garment ("top", "dress", ...; "auto": not known)
    num_images: int = 1
    aspect_ratio: str = "auto"  # what the model is asked for (ours: "same" already made a ratio)
    same_as_person: bool = False  # the user asked for the person photo's shape
    resolution: str = "1K"
    seed: int | None = None


@dataclass(frozen=True)
class Model:
    id: str
    provider: str  # "fal" | "replicate"
    label: str
    kind: str  # EDIT | TRYON
    good_at: Mapping[str, str]  # one line, {"en", "es"}
    prices: Mapping[str, float]  # US$ per output image by resolution ("*": any)
    price_source: str
    reads_prompt: bool = True
    garments_per_call: int = 4  # 1: a chain of one call per garment, in sync and async alike
    max_results: int = 4
    aspect_ratios: tuple[str, ...] = NANO_RATIOS  # of ours the model can be asked for
    resolutions: tuple[str, ...] = ("1K", "2K", "4K")
    takes_seed: bool = False
    # Ours -> the model's garment category; None: the model is told in the prompt, or not at all.
    categories: Mapping[str, str] | None = None
    schema_source: str = ""  # where its input schema is published (the FAL test server holds a copy)
    family: str = ""  # whose argument builder it uses (a model named in the settings: its provider's default); "": its own
    notes: str = ""

    # -- what it costs ---------------------------------------------------------------------

    def price(self, resolution: str = "1K") -> float | None:
        """US$ per output image at `resolution`; None when the model has no known price."""
        value = self.prices.get(resolution, self.prices.get("*"))
        return None if value is None else float(value)

    def calls_for(self, garments: int, mode: str) -> int:
        """Paid calls for one look: sync is the seed's chain (one call per garment) on every model;
        async is one call with every garment, unless the model takes one garment per call."""
        if mode == "async" and garments <= self.garments_per_call:
            return 1
        return max(1, garments)

    def public(self, lang: str = "en") -> dict[str, Any]:
        """What the page and the APIs show of a model."""
        return {"id": self.id, "provider": self.provider, "label": self.label, "kind": self.kind,
                "good_at": self.good_at.get(lang, self.good_at["en"]), "price_usd": dict(self.prices),
                "price_source": self.price_source, "reads_prompt": self.reads_prompt,
                "garments_per_call": self.garments_per_call, "max_results": self.max_results,
                "aspect_ratios": list(self.aspect_ratios), "resolutions": list(self.resolutions),
                "seed": self.takes_seed, "categories": sorted(self.categories) if self.categories else None}

    # -- what it can honour ------------------------------------------------------------------

    def check(self, *, categories: Mapping[str, str], descriptions: Mapping[str, str], num_images: int,
              aspect_ratio: str, resolution: str) -> None:
        """Refuse, with a specific message, an option this model cannot honour (nothing is paid yet).
        `categories`: the user's own per slot ("auto" and guesses are mapped, never refused)."""
        def refuse(option: dict[str, str], choices: str, slot: str | None = None) -> None:
            raise InvalidRequest("model_cannot", field=slot, model=self.label, option=option, choices=choices)

        if resolution not in self.resolutions:
            refuse({"en": f"a {resolution} result", "es": f"un resultado de {resolution}"}, ", ".join(self.resolutions))
        ratio = "auto" if aspect_ratio == "same" else aspect_ratio
        if ratio not in self.aspect_ratios:
            refuse({"en": f"the {aspect_ratio} aspect ratio", "es": f"la relación de aspecto {aspect_ratio}"},
                   ", ".join(("same" if r == "auto" else r) for r in self.aspect_ratios))
        if num_images > self.max_results:
            refuse({"en": f"{num_images} results", "es": f"{num_images} resultados"}, f"1 to {self.max_results}")
        if descriptions and not self.reads_prompt:
            slot = next(iter(descriptions))
            refuse({"en": "garment descriptions (it reads no prompt)", "es": "descripciones de prendas (no lee instrucciones)"},
                   "—", slot)
        if self.categories is not None:
            for slot, category in categories.items():
                if category != "auto" and category not in self.categories:
                    refuse({"en": f"the category {category}", "es": f"la categoría {category}"},
                           ", ".join(c for c in self.categories if c != "auto"), slot)

    def category_for(self, ours: str) -> str | None:
        """The model's word for our category (a guess it cannot take becomes its "auto")."""
        if self.categories is None:
            return None
        return self.categories.get(ours, self.categories.get("auto"))

    # -- one call's arguments ----------------------------------------------------------------

    def arguments(self, call: Call) -> dict[str, Any]:
        builder = _BUILDERS[self.family or self.id.partition(":")[0]]
        arguments = builder(self, call)
        return {k: v for k, v in arguments.items() if v is not None}

    def output_urls(self, output: Any) -> tuple[str, ...]:
        """The result URLs in this model's answer (an `images` list, or one `image`)."""
        if not isinstance(output, dict):
            return ()
        items = output.get("images")
        if items is None and isinstance(output.get("image"), dict):
            items = [output["image"]]
        return tuple(i["url"] for i in items or [] if isinstance(i, dict) and isinstance(i.get("url"), str) and i["url"])


# -- argument builders: one per model family --------------------------------------------------

def _nano_banana(model: Model, call: Call) -> dict[str, Any]:
    return {"prompt": call.prompt, "image_urls": [call.person, *call.garments], "num_images": call.num_images,
            "aspect_ratio": call.aspect_ratio,
            "resolution": call.resolution, "output_format": "jpeg",
            "seed": call.seed if model.takes_seed else None}


def _fashn(model: Model, call: Call) -> dict[str, Any]:
    return {"model_image": call.person, "garment_image": call.garments[0],
            "category": model.category_for(call.categories[0] if call.categories else "auto"),
            "mode": "balanced", "garment_photo_type": "auto", "num_samples": call.num_images,
            "output_format": "jpeg", "seed": call.seed}


def _kolors(model: Model, call: Call) -> dict[str, Any]:
    return {"human_image_url": call.person, "garment_image_url": call.garments[0]}


# seedream's image_size is pixels, each side 1920..4096 (its page, read 2026-11-30): our ratio at
# the long side of the resolution asked for, grown until the short side is 1920.
SEEDREAM_LONG_SIDE = {"2K": 2560, "4K": 4096}
SEEDREAM_MIN, SEEDREAM_MAX = 1920, 4096


def _seedream(model: Model, call: Call) -> dict[str, Any]:
    if call.aspect_ratio in ("auto", ""):
        size: Any = f"auto_{call.resolution}"
    else:
        a, b = (int(x) for x in call.aspect_ratio.split(":"))
        wide = a >= b
        ratio = max(a, b) / min(a, b)
        long_side = SEEDREAM_LONG_SIDE.get(call.resolution, SEEDREAM_LONG_SIDE["2K"])
        short_side = round(long_side / ratio)
        if short_side < SEEDREAM_MIN:
            short_side, long_side = SEEDREAM_MIN, min(SEEDREAM_MAX, round(SEEDREAM_MIN * ratio))
        size = {"width": long_side, "height": short_side} if wide else {"width": short_side, "height": long_side}
    return {"prompt": call.prompt, "image_urls": [call.person, *call.garments], "image_size": size,
            "num_images": call.num_images, "max_images": 1, "seed": call.seed, "enable_safety_checker": True}


def _replicate_nano(model: Model, call: Call) -> dict[str, Any]:
    ratio = "match_input_image" if call.same_as_person else (call.aspect_ratio if call.aspect_ratio != "auto" else None)
    return {"prompt": call.prompt, "image_input": [call.person, *call.garments], "output_format": "jpg",
            "aspect_ratio": ratio, "resolution": call.resolution if len(model.resolutions) > 1 else None}


# -- the catalogue ------------------------------------------------------------------------

FASHN_CATEGORIES = {"auto": "auto", "top": "tops", "outerwear": "tops", "bottom": "bottoms", "dress": "one-pieces"}
KOLORS_CATEGORIES = {"auto": "auto", "top": "top", "outerwear": "outerwear", "bottom": "bottom", "dress": "dress"}

MODELS: dict[str, Model] = {m.id: m for m in (
    Model(
        "fal-ai/nano-banana-pro/edit", "fal", "Nano Banana Pro (Google)", EDIT,
        {"en": "Best quality and text on clothes; layers several garments in one call; strict with face and outfit swaps.",
         "es": "La mejor calidad y texto en la ropa; combina varias prendas en una llamada; estricto con cambios de cara y ropa."},
        {"1K": 0.15, "2K": 0.15, "4K": 0.30},
        "fal.ai/models/fal-ai/nano-banana-pro/edit, Pricing: $0.15 per image; 4K at twice the rate (read 2026-11-30)",
        takes_seed=True,
        schema_source="fal.ai/models/fal-ai/nano-banana-pro/edit/api (OpenAPI, 2026-06-18)",
    ),
    Model(
        "fal-ai/nano-banana-2/edit", "fal", "Nano Banana 2 (Google)", EDIT,
        {"en": "Nearly Pro quality, faster and about half the price; several garments in one call.",
         "es": "Calidad casi Pro, más rápido y a mitad de precio; varias prendas en una llamada."},
        {"1K": 0.08, "2K": 0.12, "4K": 0.16},
        "fal.ai/models/fal-ai/nano-banana-2/edit/llms.txt: $0.08 per 1K image; 2K 1.5×, 4K 2× (read 2026-11-30)",
        takes_seed=True,
        schema_source="fal-js libs/client/src/types/endpoints.ts (381105e, 2026-08-02); prompt 3..50000 from FAL's OpenAPI",
    ),
    Model(
        "fal-ai/fashn/tryon/v1.6", "fal", "FASHN Try-On v1.6", TRYON,
        {"en": "A dedicated try-on model: keeps the face and body, rarely refuses; tops, bottoms and one-pieces, one per call.",
         "es": "Un modelo de prueba virtual: conserva cara y cuerpo, casi nunca se niega; partes de arriba, de abajo y piezas enteras, una por llamada."},
        {"*": 0.075},
        "fal.ai/models/fal-ai/fashn/tryon/v1.6/llms.txt: $0.075 per generation, each sample counted (read 2026-11-30)",
        reads_prompt=False, garments_per_call=1, max_results=4, aspect_ratios=("auto",), resolutions=("1K",),
        takes_seed=True, categories=FASHN_CATEGORIES,
        schema_source="fal-js libs/client/src/types/endpoints.ts (381105e, 2026-08-02); num_samples 1..4 from its llms.txt",
    ),
    Model(
        "fal-ai/kling/v1-5/kolors-virtual-try-on", "fal", "Kling Kolors Virtual Try-On v1.5", TRYON,
        {"en": "A dedicated try-on model: fast and cheap, one garment and one result per call, no options.",
         "es": "Un modelo de prueba virtual: rápido y barato, una prenda y un resultado por llamada, sin opciones."},
        {"*": 0.07},
        "fal.ai/models/fal-ai/kling/v1-5/kolors-virtual-try-on/llms.txt: $0.07 per generation (read 2026-11-30)",
        reads_prompt=False, garments_per_call=1, max_results=1, aspect_ratios=("auto",), resolutions=("1K",),
        categories=KOLORS_CATEGORIES,
        schema_source="fal-js libs/client/src/types/endpoints.ts (381105e, 2026-08-02): human_image_url, garment_image_url; answers {image}",
    ),
    Model(
        "fal-ai/bytedance/seedream/v4.5/edit", "fal", "Seedream 4.5 Edit (ByteDance)", EDIT,
        {"en": "The cheapest editor, sharp 2K and 4K; several garments in one call; less faithful to the face.",
         "es": "El editor más barato, nítido a 2K y 4K; varias prendas en una llamada; menos fiel a la cara."},
        {"*": 0.04},
        "$0.04 per image: FAL's price for seedream v4.5 (text-to-image page); the edit page gives none (checked 2026-11-30)",
        resolutions=("2K", "4K"), takes_seed=True, aspect_ratios=tuple(r for r in NANO_RATIOS if r != "21:9"),
        schema_source="fal.ai/models/fal-ai/bytedance/seedream/v4.5/edit/llms.txt and fal-js endpoints.ts (381105e, 2026-08-02)",
        notes="Its smallest output is 2K (each side 1920 to 4096 px), so it offers 2K and 4K; 21:9 does not fit those sides.",
    ),
    Model(
        "google/nano-banana", "replicate", "Nano Banana (Google, on Replicate)", EDIT,
        {"en": "Google's first Nano Banana on Replicate: cheap, one size; one result per prediction.",
         "es": "El primer Nano Banana de Google en Replicate: barato, un solo tamaño; un resultado por predicción."},
        {"*": 0.039},
        "replicate.com/google/nano-banana, Pricing (read 2026-11-30): $0.039 per output image",
        aspect_ratios=NANO_RATIOS, resolutions=("1K",),
        schema_source="replicate.com/google/nano-banana/api/schema (2026-06)",
    ),
    Model(
        "google/nano-banana-pro", "replicate", "Nano Banana Pro (Google, on Replicate)", EDIT,
        {"en": "Nano Banana Pro on Replicate: the FAL default's model, at 1K, 2K or 4K.",
         "es": "Nano Banana Pro en Replicate: el modelo por defecto de FAL, a 1K, 2K o 4K."},
        {"1K": 0.15, "2K": 0.15, "4K": 0.30},
        "replicate.com/google/nano-banana-pro, Pricing (read 2026-11-30): $0.15 per 1K/2K image, $0.30 per 4K image",
        schema_source="replicate.com/google/nano-banana-pro/api/schema (2026-06)",
    ),
)}

DEFAULT_FAMILY = {"fal": "fal-ai/nano-banana-pro/edit", "replicate": "google/nano-banana"}

_BUILDERS = {
    "fal-ai/nano-banana-pro/edit": _nano_banana, "fal-ai/nano-banana-2/edit": _nano_banana,
    "fal-ai/fashn/tryon/v1.6": _fashn, "fal-ai/kling/v1-5/kolors-virtual-try-on": _kolors,
    "fal-ai/bytedance/seedream/v4.5/edit": _seedream,
    "google/nano-banana": _replicate_nano, "google/nano-banana-pro": _replicate_nano,
}


def known(model_id: str) -> bool:
    return model_id.strip().partition(":")[0] in MODELS


def generic(model_id: str, provider: str) -> Model:
    """A model the catalogue does not list but the settings name (TRYON_FAL_MODEL, or your own
    Replicate model owner/name:version): called as the provider's default family (prompt +
    images), with no price, so its spend shows as unknown rather than guessed."""
    family = DEFAULT_FAMILY[provider]
    return replace(MODELS[family], id=model_id, family=family, label=model_id, prices={}, price_source="not in the catalogue: unknown",
                   good_at={"en": "A model named in the settings (not in the catalogue).",
                            "es": "Un modelo indicado en la configuración (fuera del catálogo)."})


def get(model_id: str, prices: Mapping[str, float] | None = None, configured: Sequence[Model] = ()) -> Model:
    """The catalogue entry (a Replicate "owner/name:version" is its owner/name), or one of the
    `configured` models, with the price `TRYON_MODEL_PRICES` sets for it, if any.
    Unknown: InvalidRequest naming the choices."""
    wanted = model_id.strip()
    model = MODELS.get(wanted.partition(":")[0]) or next((m for m in configured if m.id == wanted), None)
    if model is None:
        choices = list(dict.fromkeys([*MODELS, *(m.id for m in configured)]))
        raise InvalidRequest("unknown_model", field="model", value=wanted[:80], choices=", ".join(choices))
    override = (prices or {}).get(model.id.partition(":")[0])
    return replace(model, prices={"*": float(override)}, price_source="TRYON_MODEL_PRICES") if override is not None else model


def resolve(model_id: str, provider: str, prices: Mapping[str, float] | None = None) -> Model:
    """A model id from the settings: the catalogue's entry, else a generic one (see generic())."""
    return get(model_id, prices) if known(model_id) else generic(model_id, provider)


def for_provider(provider: str) -> list[Model]:
    return [m for m in MODELS.values() if m.provider == provider]


def parse_prices(text: str) -> dict[str, float]:
    """TRYON_MODEL_PRICES: JSON {"model id": US$ per image}, e.g. {"fal-ai/fashn/tryon/v1.6": 0.05}."""
    try:
        values = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(values, dict) or not all(isinstance(k, str) and known(k) for k in values):
        raise ValueError("keys must be model ids of the catalogue")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 100 for v in values.values()):
        raise ValueError("prices must be numbers of US dollars between 0 and 100")
    return {k.partition(":")[0]: float(v) for k, v in values.items()}


@dataclass(frozen=True)
class Estimate:
    model: str
    mode: str
    calls: int
    images: int
    usd: float | None  # None: the model has no known price

    def public(self) -> dict[str, Any]:
        return {"model": self.model, "mode": self.mode, "calls": self.calls, "images": self.images,
                "usd": None if self.usd is None else round(self.usd, 4)}


def estimate(model: Model, garments: int, num_images: int = 1, resolution: str = "1K", mode: str = "sync") -> Estimate:
    """What one look should cost at list price: every call makes one image but the last, which
    makes the results asked for (the earlier calls build the outfit they share)."""
    calls = model.calls_for(garments, mode)
    images = calls - 1 + num_images
    price = model.price(resolution)
    return Estimate(model.id, mode, calls, images, None if price is None else images * price)
