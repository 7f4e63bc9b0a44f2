"""What the user asked for beyond the photos: each garment's category and description, the
layering order, how many results, and their size.

Layering puts garments on inner to outer, as a person dresses: bottoms, dresses, then tops,
then outerwear, then shoes and accessories; slots of the same layer keep their slot order. The
user may override the order (`Outfit.order_warnings` says what looks wrong in theirs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from .errors import InvalidRequest

CATEGORIES = ("auto", "top", "bottom", "dress", "outerwear", "shoes", "accessory")
# Inner (0) to outer: what goes on first. "auto" dresses like a top (the service replaces it with
# the category guessed from the picture, tryon.garment_guess, before the order is made).
LAYER = {"bottom": 0, "dress": 1, "top": 2, "auto": 2, "outerwear": 3, "shoes": 4, "accessory": 5}
# What each category replaces on the person, for the prompt.
REPLACES = {
    "top": "the upper-body clothing (shirt, T-shirt, blouse, sweater)",
    "bottom": "the lower-body clothing (trousers, jeans, skirt, shorts) on the legs",
    "dress": "both the upper- and lower-body clothing, from shoulders to legs",
    "outerwear": "nothing underneath: it is worn open or closed over the clothes already on the upper body",
    "shoes": "the footwear",
    "accessory": "nothing: it is added (bag, hat, scarf, jewellery, belt) without changing the clothes",
}
ASPECT_RATIOS = ("same", "1:1", "4:5", "3:4", "2:3", "9:16", "5:4", "4:3", "3:2", "16:9", "21:9")
RESOLUTIONS = ("1K", "2K", "4K")
MAX_VARIANTS = 4
MAX_DESCRIPTION = 120


class Guess(Protocol):
    """What the picture looks like (tryon.garment_guess.GarmentGuess)."""

    category: str
    confidence: float

    @property
    def sure(self) -> bool: ...


@dataclass(frozen=True)
class GarmentSpec:
    field: str  # "garment_2": the slot it came from
    category: str = "auto"  # the category used: the user's, or the guess for one left on "auto"
    description: str = ""
    guessed: bool = False  # the user left "auto" and `category` was guessed from the picture
    sure: bool = True  # for a guess: False when the picture said too little ("treated as a top")
    confidence: float | None = None  # for a guess: 0..1

    @property
    def slot(self) -> int:
        return int(self.field.rsplit("_", 1)[1])

    @property
    def prompt_category(self) -> str:
        """What the prompt may say the garment is: an unsure guess is not told to the model."""
        return "auto" if self.guessed and not self.sure else self.category

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"field": self.field, "category": self.category, "description": self.description,
                                 "guessed": self.guessed}
        if self.guessed:
            shown.update(sure=self.sure, confidence=self.confidence)
        return shown

    @classmethod
    def from_public(cls, item: Mapping[str, Any]) -> "GarmentSpec":
        """Back from public() (an async job's record); records from before guessing read as they were."""
        guessed = bool(item.get("guessed", False))
        return cls(str(item["field"]), str(item.get("category", "auto")), str(item.get("description", "")),
                   guessed, bool(item.get("sure", True)) if guessed else True, item.get("confidence") if guessed else None)


@dataclass(frozen=True)
class Outfit:
    """The per-garment details (by slot) and the result options of one try-on."""

    categories: dict[str, str] = field(default_factory=dict)  # field -> category
    descriptions: dict[str, str] = field(default_factory=dict)  # field -> short description
    order: tuple[str, ...] = ()  # the user's own order of fields, inner to outer; () = automatic
    num_images: int = 1
    aspect_ratio: str = "same"
    resolution: str = "1K"
    model: str | None = None  # a model id of the catalogue (tryon.models); None: the app's default

    @classmethod
    def parse(cls, categories: Sequence[Any] | dict | None = None, descriptions: Sequence[Any] | dict | None = None,
              order: Sequence[Any] | str | None = None, num_images: Any = 1, aspect_ratio: Any = "same",
              resolution: Any = "1K", model: Any = None) -> "Outfit":
        """From API values (lists by slot, or {field: value}); every bad value gets its own error."""
        cats = _by_field(categories, "categories")
        for name, value in cats.items():
            if value not in CATEGORIES:
                raise InvalidRequest("bad_category", field=name, value=str(value)[:40], choices=", ".join(CATEGORIES))
        descs = {}
        for name, value in _by_field(descriptions, "descriptions").items():
            text = " ".join(str(value).split())
            if len(text) > MAX_DESCRIPTION:
                raise InvalidRequest("description_too_long", field=name, limit=MAX_DESCRIPTION)
            if text:
                descs[name] = text
        if isinstance(order, str):
            order = [part for part in order.replace(">", ",").split(",") if part.strip()]
        fields = tuple(_field_name(item) for item in (order or []))
        if len(set(fields)) != len(fields):
            raise InvalidRequest("bad_order", detail={"en": "a garment is named twice", "es": "una prenda aparece dos veces"})
        try:  # the slider sends 3.0; 2.5 is not a number of pictures
            count = float(num_images if num_images not in (None, "") else 1)
            variants = int(count) if count.is_integer() else 0
        except (TypeError, ValueError, OverflowError):
            variants = 0
        if not 1 <= variants <= MAX_VARIANTS:
            raise InvalidRequest("bad_variants", limit=MAX_VARIANTS)
        ratio = str(aspect_ratio or "same").strip().lower()
        if ratio not in ASPECT_RATIOS:
            raise InvalidRequest("bad_option", option={"en": "aspect ratio", "es": "relación de aspecto"}, choices=", ".join(ASPECT_RATIOS))
        size = str(resolution or "1K").strip().upper()
        if size not in RESOLUTIONS:
            raise InvalidRequest("bad_option", option={"en": "resolution", "es": "resolución"}, choices=", ".join(RESOLUTIONS))
        if model is not None and not isinstance(model, str):
            raise InvalidRequest("unknown_model", field="model", value=str(model)[:40], choices="a model id such as fal-ai/nano-banana-pro/edit")
        chosen = (model or "").strip() or None  # the service checks it against the models it offers
        return cls(cats, descs, fields, variants, ratio, size, chosen)

    def specs(self, fields: Sequence[str], guesses: Mapping[str, Guess] | None = None) -> list[GarmentSpec]:
        """The given garments (fields of filled slots, in slot order) in the order they go on.
        `guesses`: {field: what its picture looks like}, used for garments left on "auto"."""
        specs = [self._spec(f, (guesses or {}).get(f)) for f in fields]
        if self.order:
            unknown = [f for f in self.order if f not in fields]
            if unknown:
                raise InvalidRequest("bad_order", detail={"en": f"{', '.join(unknown)} has no photo",
                                                          "es": f"{', '.join(unknown)} no tiene foto"})
        return self._in_order(specs)

    def _spec(self, name: str, guess: Guess | None) -> GarmentSpec:
        category, description = self.categories.get(name, "auto"), self.descriptions.get(name, "")
        if category != "auto" or guess is None:
            return GarmentSpec(name, category, description)
        return GarmentSpec(name, guess.category, description, guessed=True, sure=bool(guess.sure),
                           confidence=round(float(guess.confidence), 2))

    def _in_order(self, specs: list[GarmentSpec]) -> list[GarmentSpec]:
        if self.order:
            position = {f: n for n, f in enumerate(self.order)}
            # Garments the user left out of the order keep the automatic rule, after the named ones.
            return sorted(specs, key=lambda s: (position.get(s.field, len(position)), LAYER[s.category], s.slot))
        return sorted(specs, key=lambda s: (LAYER[s.category], s.slot))

    def order_warnings(self, fields: Sequence[str], categories_used: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
        """What looks wrong in the user's own order, as (message key, params) for the page to word:

        - ("order_outerwear_under", {"outer": f, "inner": g, "inner_category": "top" | "dress"}):
          outerwear f goes on before (under) the top or dress g;
        - ("order_bottom_over_dress", {"bottom": f, "dress": g}): the bottom f goes on after (over) the dress g;
        - ("order_shoes_under", {"shoes": f, "clothes": g, "clothes_category": c}): the shoes f go on
          before the bottom or dress g, which would cover them;
        - ("order_accessory_under", {"accessory": f, "clothes": g, "clothes_category": c}): the
          accessory f goes on before a piece of clothing g, which would hide it.

        `fields`: the filled slots; `categories_used`: {field: category} after guessing ("auto" counts
        as a top). The automatic order never warns; fields the order names without a photo are skipped."""
        present = list(dict.fromkeys(fields))
        used = {f: categories_used.get(f, self.categories.get(f, "auto")) for f in present}
        used = {f: ("top" if c == "auto" else c) for f, c in used.items()}
        worn = [s.field for s in self._in_order([GarmentSpec(f, used[f]) for f in present])]
        clothes = ("top", "bottom", "dress", "outerwear")
        warnings: list[tuple[str, dict[str, str]]] = []
        for n, inner in enumerate(worn):
            for outer in worn[n + 1:]:  # `inner` goes on before `outer`
                below, above = used[inner], used[outer]
                if below == "outerwear" and above in ("top", "dress"):
                    warnings.append(("order_outerwear_under", {"outer": inner, "inner": outer, "inner_category": above}))
                elif below == "dress" and above == "bottom":
                    warnings.append(("order_bottom_over_dress", {"bottom": outer, "dress": inner}))
                elif below == "shoes" and above in ("bottom", "dress"):
                    warnings.append(("order_shoes_under", {"shoes": inner, "clothes": outer, "clothes_category": above}))
                elif below == "accessory" and above in clothes:
                    warnings.append(("order_accessory_under", {"accessory": inner, "clothes": outer, "clothes_category": above}))
        return warnings

    def public(self) -> dict[str, Any]:
        return {"num_images": self.num_images, "aspect_ratio": self.aspect_ratio, "resolution": self.resolution,
                "order": list(self.order) or "auto"}


def nearest_ratio(width: int, height: int) -> str:
    """The supported aspect ratio closest to a picture's ("same as the person photo")."""
    actual = width / max(1, height)
    ratios = [r for r in ASPECT_RATIOS if r != "same"]
    return min(ratios, key=lambda r: abs(_ratio(r) - actual))


def _ratio(text: str) -> float:
    a, b = text.split(":")
    return int(a) / int(b)


def _field_name(item: Any) -> str:
    text = str(item).strip().lower().replace(" ", "_")
    if text.isdigit():
        text = f"garment_{text}"
    if text not in {f"garment_{n}" for n in range(1, 5)}:
        raise InvalidRequest("bad_order", detail={
            "en": f"{str(item)[:30]!r} is not a garment slot (garment_1 to garment_4)",
            "es": f"{str(item)[:30]!r} no es una casilla de prenda (garment_1 a garment_4)"})
    return text


def _by_field(values: Sequence[Any] | dict | None, what: str) -> dict[str, str]:
    """[c1, c2, None, c4] or {"garment_1": c1, ...} -> {field: value} for the values given."""
    if values is None:
        return {}
    if isinstance(values, dict):
        return {_field_name(k): str(v).strip().lower() if what == "categories" else str(v)
                for k, v in values.items() if v not in (None, "")}
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise InvalidRequest("bad_option", option=what, choices={"en": "a list with one entry per garment slot",
                                                                  "es": "una lista con un valor por casilla de prenda"})
    if len(values) > 4:
        raise InvalidRequest("bad_option", option=what, choices={"en": "at most 4 entries, one per garment slot",
                                                                  "es": "como máximo 4 valores, uno por casilla de prenda"})
    return {f"garment_{n}": (str(v).strip().lower() if what == "categories" else str(v))
            for n, v in enumerate(values, start=1) if v not in (None, "")}
