"""The archive of a catalogue batch (persons x outfits, one look per cell): a ZIP streamed as it is built.

Members, in this order:
  person-<p>_outfit-<o>[_v<k>].png   every finished picture, re-encoded as PNG with no metadata
  contact_sheet.png                  the grid of all looks, from thumbnails kept while streaming
  manifest.json, manifest.csv        every look (finished or not) with its recipe and files

The ZIP is written to a non-seekable sink (zipfile then uses data descriptors), and what the sink
holds is yielded after each member: only one full picture is in memory at a time, plus the small
thumbnails the contact sheet needs. A picture that cannot be fetched (expired, unreachable,
undecodable) does not break the archive: its look is marked "missing" in the manifests.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from PIL import Image, ImageCms, ImageDraw, ImageFont, ImageOps

from ..images import target_size

CELL_PX = 256  # the contact sheet's picture side, before shrinking for large batches
MIN_CELL_PX = 16
MAX_SHEET_SIDE = 8000  # px: a sheet any viewer opens, whatever the batch size
SHEET_BACKGROUND = (255, 255, 255)
CELL_BACKGROUND = (242, 242, 242)  # behind a fitted picture
CELL_GREY = (190, 190, 190)  # a look with no picture: its status word on this
TEXT_COLOUR = (40, 40, 40)
STATUS_COLOUR = (90, 90, 90)
CSV_FIRST_COLUMNS = ("person", "outfit", "status", "files")
# What Pillow may open: results only, never an exotic codec. (A camera's MPO opens as JPEG.)
PICTURE_FORMATS = ("JPEG", "PNG", "WEBP")
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class ArchiveLook:
    person: int  # 1-based person number
    outfit: int  # 1-based outfit number
    status: str  # "queued" | "processing" | "done" | "error" | "cancelled"
    refs: tuple[str, ...]  # result references, one per variant (empty unless done)
    recipe: dict  # the manifest entry for this look (JSON-serialisable)


def file_names(look: ArchiveLook) -> list[str]:
    """"person-1_outfit-2.png"; with several variants "person-1_outfit-2_v1.png", "..._v2.png"."""
    stem = f"person-{look.person}_outfit-{look.outfit}"
    if len(look.refs) == 1:
        return [f"{stem}.png"]
    return [f"{stem}_v{k}.png" for k in range(1, len(look.refs) + 1)]


# -- the streamed ZIP ---------------------------------------------------------------------------


class _ChunkSink:
    """A write-only file for zipfile: no tell() or seek(), so zipfile streams (data descriptors)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        """What was written since the last drain, as one chunk (nothing if nothing was)."""
        if self._parts:
            chunk, self._parts = b"".join(self._parts), []
            yield chunk


@dataclass
class _LookOutcome:
    files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None  # the class name of the first failure
    thumbnail: Image.Image | None = None  # of the first picture that made it


def archive_chunks(batch: dict, looks: Sequence[ArchiveLook], fetch: Callable[[str], bytes]) -> Iterator[bytes]:
    """A ZIP of the batch, yielded as it is built (never the whole archive in memory).

    Bad looks (a cell twice, a number below 1, a recipe JSON cannot hold) raise here, at the call,
    so a server can still answer with an error instead of a response cut off mid-way."""
    ordered = _checked_looks(batch, looks)
    return _stream(batch, ordered, fetch)


def _stream(batch: dict, ordered: list[ArchiveLook], fetch: Callable[[str], bytes]) -> Iterator[bytes]:
    persons, outfits = _grid(batch, ordered)
    thumb_side = sheet_layout(persons, outfits, CELL_PX).cell  # thumbnails at the size the sheet will draw
    when = _zip_time(batch)
    sink = _ChunkSink()
    outcomes: dict[tuple[int, int], _LookOutcome] = {}
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for look in ordered:
            outcomes[look.person, look.outfit] = yield from _write_look(archive, sink, look, fetch, when, thumb_side)
        final = [_final_look(look, outcomes[look.person, look.outfit]) for look in ordered]
        thumbnails = {cell: outcome.thumbnail for cell, outcome in outcomes.items()}
        _write_member(archive, "contact_sheet.png", contact_sheet(batch, final, thumbnails), zipfile.ZIP_STORED, when)
        thumbnails.clear()
        yield from sink.drain()
        entries = [_manifest_entry(look, outcomes[look.person, look.outfit]) for look in final]
        _write_member(archive, "manifest.json", _manifest_json(batch, entries), zipfile.ZIP_DEFLATED, when)
        yield from sink.drain()
        _write_member(archive, "manifest.csv", _manifest_csv(entries), zipfile.ZIP_DEFLATED, when)
        yield from sink.drain()
    yield from sink.drain()  # the central directory, written on close


def _checked_looks(batch: dict, looks: Sequence[ArchiveLook]) -> list[ArchiveLook]:
    """The looks by (person, outfit), checked."""
    cells = [(look.person, look.outfit) for look in looks]
    if any(person < 1 or outfit < 1 for person, outfit in cells):
        raise ValueError("person and outfit numbers start at 1")
    if len(set(cells)) != len(cells):
        raise ValueError("two looks for the same person and outfit")
    json.dumps([batch] + [look.recipe for look in looks])  # TypeError now, not after the pictures
    return sorted(looks, key=lambda look: (look.person, look.outfit))


def _grid(batch: dict, looks: Sequence[ArchiveLook]) -> tuple[int, int]:
    """(persons, outfits): the batch's counts, widened if a look lies outside them."""
    persons = max([int(batch.get("persons") or 0)] + [look.person for look in looks] + [1])
    outfits = max([int(batch.get("outfits") or 0)] + [look.outfit for look in looks] + [1])
    return persons, outfits


def _zip_time(batch: dict) -> tuple[int, int, int, int, int, int]:
    """The batch's creation time (UTC) for every member: the same batch gives the same archive."""
    created_ms = batch.get("created_at")
    seconds = created_ms / 1000 if isinstance(created_ms, (int, float)) else time.time()
    stamp = time.gmtime(seconds)[:6]
    return min(max(stamp, (1980, 1, 1, 0, 0, 0)), (2107, 12, 31, 23, 59, 58))  # what a ZIP date can hold


def _write_member(archive: zipfile.ZipFile, name: str, data: bytes, compression: int,
                  when: tuple[int, int, int, int, int, int]) -> None:
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = compression
    info.external_attr = 0o644 << 16  # rw-r--r-- once unzipped
    archive.writestr(info, data)


def _write_look(archive: zipfile.ZipFile, sink: _ChunkSink, look: ArchiveLook, fetch: Callable[[str], bytes],
                when: tuple[int, int, int, int, int, int], thumb_side: int) -> Iterator[bytes]:
    """Each of a finished look's pictures into the archive, one at a time; returns its _LookOutcome."""
    outcome = _LookOutcome()
    if look.status != "done":
        return outcome
    for name, ref in zip(file_names(look), look.refs):
        try:
            png, thumbnail = _archived_picture(fetch(ref), thumb_side if outcome.thumbnail is None else None)
        except Exception as error:  # expired, unreachable, not a picture: this picture only
            outcome.missing.append(name)
            outcome.error = outcome.error or type(error).__name__
            continue
        _write_member(archive, name, png, zipfile.ZIP_STORED, when)  # PNG is compressed already
        del png
        outcome.files.append(name)
        if thumbnail is not None:
            outcome.thumbnail = thumbnail
        yield from sink.drain()
    return outcome


def _archived_picture(encoded: bytes, thumb_side: int | None) -> tuple[bytes, Image.Image | None]:
    """(PNG bytes, thumbnail if a side is given). Encoded before its member is opened: a failure here
    leaves no half-written entry."""
    picture = clean_picture(encoded)
    return png_bytes(picture), fitted(picture, thumb_side) if thumb_side else None


def _final_look(look: ArchiveLook, outcome: _LookOutcome) -> ArchiveLook:
    """A finished look none of whose pictures could be fetched is "missing"."""
    if look.status == "done" and not outcome.files:
        return replace(look, status="missing")
    return look


# -- pictures -----------------------------------------------------------------------------------


def clean_picture(encoded: bytes) -> Image.Image:
    """The decoded picture, upright, in sRGB, as RGB (RGBA if it has transparency), with no metadata."""
    Image.init()  # with `formats`, Image.open only tries the plugins loaded so far (not WEBP)
    picture = Image.open(io.BytesIO(encoded), formats=PICTURE_FORMATS)
    picture.load()
    picture = ImageOps.exif_transpose(picture)  # the orientation tag goes with the EXIF: turn the pixels now
    picture = _to_srgb(picture)
    picture.info = {}  # Pillow's PNG writer copies icc_profile (and more) from here
    return picture


def _to_srgb(picture: Image.Image) -> Image.Image:
    """The colours in sRGB, so they survive dropping the ICC profile."""
    mode = "RGBA" if _has_alpha(picture) else "RGB"
    profile = picture.info.get("icc_profile")
    if profile:
        try:
            return ImageCms.profileToProfile(picture, ImageCms.ImageCmsProfile(io.BytesIO(profile)), _SRGB,
                                             outputMode=mode)
        except Exception:  # a broken profile, or a mode littlecms does not take: keep the pixels as they are
            pass
    return picture if picture.mode == mode else picture.convert(mode)


def _has_alpha(picture: Image.Image) -> bool:
    return picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def fitted(picture: Image.Image, side: int) -> Image.Image:
    """The picture shrunk (never enlarged, aspect kept) to fit a side x side square."""
    size = target_size(picture.width, picture.height, side)
    if size == picture.size:
        return picture
    return picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# -- manifests ----------------------------------------------------------------------------------


def _manifest_entry(look: ArchiveLook, outcome: _LookOutcome) -> dict[str, Any]:
    """The look's recipe led by its cell, status and files; what went missing, and why, if anything did."""
    ours: dict[str, Any] = {"person": look.person, "outfit": look.outfit, "status": look.status,
                            "files": outcome.files}
    if outcome.missing:
        ours |= {"error": outcome.error, "missing_files": outcome.missing}
    return ours | {key: value for key, value in look.recipe.items() if key not in ours}


def _manifest_json(batch: dict, entries: list[dict[str, Any]]) -> bytes:
    manifest = {"batch": batch, "looks": entries}
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _manifest_csv(entries: list[dict[str, Any]]) -> bytes:
    """One row per look: the first columns, then every recipe key (sorted); nested values as compact JSON."""
    recipe_keys = sorted({key for entry in entries for key in entry} - set(CSV_FIRST_COLUMNS))
    columns = list(CSV_FIRST_COLUMNS) + recipe_keys
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    for entry in entries:
        row = dict(entry, files=";".join(entry["files"]))
        writer.writerow([row.get(column) or "" if column in VERBATIM_COLUMNS else _csv_value(row.get(column)) for column in columns])
    return text.getvalue().encode("utf-8")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
VERBATIM_COLUMNS = ("job_id", "person_sha256")  # ours, never a visitor's text (a job id may start with "-")


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        # A garment's description is the visitor's text: a spreadsheet must not run "=HYPERLINK(...)".
        return "'" + text if text.startswith(FORMULA_STARTS) else text
    return json.dumps(value)  # numbers stay numbers (a negative one is not a formula)


# -- the contact sheet --------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetLayout:
    """Where everything sits on a contact sheet: a header row, a label column, then the grid of cells,
    each a cell x cell picture square with its name in a strip of `label` px below it."""

    persons: int
    outfits: int
    cell: int
    label: int
    gap: int
    left: int  # width of the "Person n" column
    top: int  # height of the "Outfit n" row
    header_font: int  # font sizes, px
    label_font: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.left + self.gap + self.outfits * (self.cell + self.gap),
                self.top + self.gap + self.persons * (self.cell + self.label + self.gap))

    def cell_box(self, person: int, outfit: int) -> tuple[int, int, int, int]:
        """The picture square of a look (1-based), as (left, top, right, bottom), right and bottom excluded."""
        x = self.left + self.gap + (outfit - 1) * (self.cell + self.gap)
        y = self.top + self.gap + (person - 1) * (self.cell + self.label + self.gap)
        return x, y, x + self.cell, y + self.cell


def sheet_layout(persons: int, outfits: int, cell_px: int = CELL_PX) -> SheetLayout:
    """The layout with cells of cell_px, shrunk until the sheet's long side is at most MAX_SHEET_SIDE
    (or the cells reach MIN_CELL_PX)."""
    if cell_px < MIN_CELL_PX:
        raise ValueError(f"cell_px must be at least {MIN_CELL_PX}")
    layout = _layout(persons, outfits, cell_px)
    while max(layout.size) > MAX_SHEET_SIDE and layout.cell > MIN_CELL_PX:
        # the margins do not scale with the cells: shrink in proportion, then step down until it fits
        smaller = min(layout.cell - 1, int(layout.cell * MAX_SHEET_SIDE / max(layout.size)))
        layout = _layout(persons, outfits, max(MIN_CELL_PX, smaller))
    return layout


def _layout(persons: int, outfits: int, cell: int) -> SheetLayout:
    gap = max(2, cell // 32)
    header_font = min(20, max(8, cell // 10))
    label_font = _label_font_size(f"person-{persons}_outfit-{outfits}", cell - 2)
    left = round(_font(header_font).getlength(f"Person {persons}")) + 2 * gap
    top = _line_height(header_font) + 2 * gap
    label = _line_height(label_font) + gap
    return SheetLayout(persons, outfits, cell, label, gap, left, top, header_font, label_font)


def _label_font_size(widest: str, room: int) -> int:
    """The largest size up to 16 px at which the widest cell name fits under its picture."""
    size = 16
    while size > 6 and _font(size).getlength(widest) > room:
        size -= 1
    return size


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # the font tryon.preview.badge stamps with


def _line_height(size: int) -> int:
    ascent, descent = _font(size).getmetrics()
    return ascent + descent


def contact_sheet(batch: dict, looks: Sequence[ArchiveLook], pictures: Mapping[tuple[int, int], Image.Image | None],
                  cell_px: int = CELL_PX) -> bytes:
    """The batch as one PNG: a row per person, a column per outfit; each finished look's (first) picture,
    and the status word of every other look in a grey cell ("missing": done, but no picture)."""
    persons, outfits = _grid(batch, looks)
    layout = sheet_layout(persons, outfits, cell_px)
    sheet = Image.new("RGB", layout.size, SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _draw_headers(draw, layout)
    for look in looks:
        _draw_cell(sheet, draw, layout, look, pictures.get((look.person, look.outfit)))
    return png_bytes(sheet)


def _draw_headers(draw: ImageDraw.ImageDraw, layout: SheetLayout) -> None:
    font = _font(layout.header_font)
    for outfit in range(1, layout.outfits + 1):
        left, _, right, _ = layout.cell_box(1, outfit)
        draw.text(((left + right) / 2, layout.top / 2), f"Outfit {outfit}", font=font, fill=TEXT_COLOUR, anchor="mm")
    for person in range(1, layout.persons + 1):
        _, top, _, bottom = layout.cell_box(person, 1)
        draw.text((layout.left - layout.gap, (top + bottom) / 2), f"Person {person}", font=font, fill=TEXT_COLOUR,
                  anchor="rm")


def _draw_cell(sheet: Image.Image, draw: ImageDraw.ImageDraw, layout: SheetLayout, look: ArchiveLook,
               picture: Image.Image | None) -> None:
    left, top, right, bottom = box = layout.cell_box(look.person, look.outfit)
    centre = ((left + right) / 2, (top + bottom) / 2)
    if look.status == "done" and picture is not None:
        draw.rectangle((left, top, right - 1, bottom - 1), fill=CELL_BACKGROUND)
        _paste_centred(sheet, fitted(picture, layout.cell), box)
    else:
        word = "missing" if look.status == "done" else look.status
        draw.rectangle((left, top, right - 1, bottom - 1), fill=CELL_GREY)
        draw.text(centre, word, font=_font(layout.header_font), fill=STATUS_COLOUR, anchor="mm")
    name = f"person-{look.person}_outfit-{look.outfit}"
    draw.text((centre[0], bottom + layout.gap // 2), name, font=_font(layout.label_font), fill=TEXT_COLOUR,
              anchor="mt")


def _paste_centred(sheet: Image.Image, thumbnail: Image.Image, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    at = (left + (right - left - thumbnail.width) // 2, top + (bottom - top - thumbnail.height) // 2)
    if thumbnail.mode == "RGBA":
        sheet.paste(thumbnail, at, thumbnail)  # transparency shows the cell's light background
    else:
        sheet.paste(thumbnail.convert("RGB"), at)
