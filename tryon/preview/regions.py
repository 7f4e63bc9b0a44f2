"""Where each garment category goes on the body, from the detected torso and legs boxes."""

from __future__ import annotations

from .body import Box, BodyLayout


def region_for(category: str, layout: BodyLayout, width: int, height: int) -> Box:
    """The box a garment of `category` is laid over ("auto" and "top": the torso)."""
    torso, legs = layout.torso, layout.legs
    if category == "bottom":  # from the waist (a little under the torso's hem) down the legs
        top = torso.bottom - torso.height // 8
        return _clamp(Box(legs.left, top, legs.right, legs.bottom), width, height)
    if category == "dress":  # shoulders to knees
        bottom = legs.top + int(0.6 * legs.height)
        return _clamp(Box(torso.left, torso.top, torso.right, bottom), width, height)
    if category == "outerwear":  # over the top: a little wider and longer
        grow = torso.width // 12
        return _clamp(Box(torso.left - grow, torso.top - grow // 2, torso.right + grow, torso.bottom + torso.height // 6), width, height)
    if category == "shoes":  # the last eighth of the legs
        foot = max(8, legs.height // 8)
        return _clamp(Box(legs.left, legs.bottom - foot, legs.right, legs.bottom), width, height)
    if category == "accessory":  # small, at the chest
        side = torso.width // 3
        centre = (torso.left + torso.right) // 2
        return _clamp(Box(centre - side // 2, torso.top, centre + side // 2, torso.top + side), width, height)
    return torso


def jittered(box: Box, variant: int, width: int, height: int) -> Box:
    """Variant n of a placement: the same box nudged and resized a little, so results differ."""
    if variant == 0:
        return box
    steps = [(0, 0, 0), (1, 0, 1), (-1, 1, -1), (0, -1, 2)]
    dx, dy, grow = steps[variant % len(steps)]
    unit = max(2, box.width // 30)
    return _clamp(Box(box.left + dx * unit - grow * unit, box.top + dy * unit, box.right + dx * unit + grow * unit,
                      box.bottom + dy * unit + grow * unit), width, height)


def _clamp(box: Box, width: int, height: int) -> Box:
    return Box(max(0, box.left), max(0, box.top), min(width, box.right), min(height, box.bottom))
