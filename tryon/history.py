"""The looks a browser session made: inputs, settings, results and timings, newest first.

Everything lives in Redis, so a look made through one replica of the app is shown by any other:
its record is a JSON entry in the list `tryon:looks:<session key>` (trimmed to `limit`), its
pictures (the inputs, each result, the thumbnail) are the hash `tryon:look-pictures:<session
key>:<look id>` (field: `<sha256 of the bytes>.<ext>`), both expiring with the job TTL. The
history survives a page reload (same session cookie), an app restart and a change of replica;
nothing is shared between sessions. The session key is a hash of the session cookie: the cookie
itself is never stored.

Gradio shows pictures from files, so the pictures a read returns are also written to a cache on
this machine, `<root>/<session key>/<sha256>.<ext>` (written aside and renamed, checked against
their name): a file missing there is fetched from Redis again, so the cache is safe to delete.
A cached file's time is that of the newest look using it; it is removed once that look has
expired, or at the next read of the session's history once no look uses it (a look deleted or
dropped through another replica).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from PIL import Image
from redis.client import NEVER_DECODE

log = logging.getLogger(__name__)

KEY = "tryon:looks:{}"  # the session's records, newest first
PICTURES_KEY = "tryon:look-pictures:{}:{}"  # session key, look id: file name -> bytes
THUMB_HEIGHT = 240  # px: the history gallery shows them about 200 px high
SAME_PIXELS = 4  # mean grey-level difference (of 255) below which two photos are the same photo re-encoded
SWEEP_EVERY_S = 60.0
GRACE_S = 60.0  # a cached file this young may belong to a look being added right now; a temp file this old was abandoned
_NAME = re.compile(r"[0-9a-f]{64}\.(jpg|png|webp|gif)")
_KINDS = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"))


def signature(inputs: dict[str, bytes], settings: dict[str, Any]) -> dict[str, Any]:
    """What makes two looks the same: the settings, and each photo as a coarse picture of its
    pixels (16×16 grey levels), not its bytes. A look brought back from the history and tried
    again has been re-encoded, yet is the same look."""
    return {"settings": json.loads(json.dumps(_plain(settings), sort_keys=True, default=str)),
            "photos": {field: _pixels(data) for field, data in sorted(inputs.items()) if data}}


def same_look(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if not a or not b or a["settings"] != b["settings"] or set(a["photos"]) != set(b["photos"]):
        return False
    for field, pixels in a["photos"].items():
        mine, theirs = base64.b64decode(pixels), base64.b64decode(b["photos"][field])
        if len(mine) != len(theirs) or sum(abs(x - y) for x, y in zip(mine, theirs)) > SAME_PIXELS * len(mine):
            return False
    return True


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as the page sends them back: 2.0 and 2 results are the same, None and "" descriptions too."""
    plain = dict(settings)
    if isinstance(plain.get("num_images"), float) and plain["num_images"].is_integer():
        plain["num_images"] = int(plain["num_images"])
    plain["descriptions"] = [d or "" for d in plain.get("descriptions") or []]
    return plain


def _pixels(data: bytes) -> str:
    """A kept photo as 16×16 grey levels (base64)."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.draft("L", (64, 64))  # JPEG decodes at 1/8 scale: a few ms even for a 2K photo
            small = picture.convert("L").resize((16, 16), Image.Resampling.BOX)
            return base64.b64encode(small.tobytes()).decode()
    except OSError:
        return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _kind(data: bytes) -> str | None:
    for magic, ext in _KINDS:
        if data.startswith(magic):
            return ext
    return "webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def _encoded(source: bytes | Image.Image | str | os.PathLike) -> bytes:
    """A picture's bytes: encoded bytes as they are, a PIL image as JPEG (a JPEG it was) or PNG,
    a data URL decoded, a file read."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, Image.Image):
        buffer = io.BytesIO()
        if source.format == "JPEG" and source.mode in ("RGB", "L"):
            source.save(buffer, "JPEG", quality=95)  # a JPEG result (the offline preview's) stays one: a PNG is 5× the bytes
        else:
            source.save(buffer, "PNG")
        return buffer.getvalue()
    if isinstance(source, str) and source.startswith("data:"):
        return base64.b64decode(source.split(",", 1)[1])
    return Path(source).read_bytes()


class LookHistory:
    def __init__(self, client: redis.Redis, root: Path, ttl_s: int, limit: int = 12):
        self.redis = client
        self.root = Path(root)  # this machine's cache of the pictures
        self.ttl_s = ttl_s
        self.limit = limit
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # photos of people: ours only
        self._next_sweep = 0.0
        self._sweep_lock = threading.Lock()

    @staticmethod
    def key_of(session: str) -> str:
        return hashlib.sha256(session.encode()).hexdigest()[:32]

    def add(self, session: str, inputs: dict[str, bytes | None], settings: dict[str, Any],
            results: list[Image.Image | str | bytes], timings: dict[str, Any]) -> dict[str, Any]:
        """Keep one finished look; `inputs`: {"person": jpeg, "garment_1": jpeg, ...}, the intake's
        normalized copies (no metadata, GPS included), never the raw uploads. The same photos with
        the same settings again replace the older look instead of piling up beside it."""
        key = self.key_of(session)
        look_id = uuid.uuid4().hex[:16]
        pictures: dict[str, bytes] = {}

        def keep(source) -> str | None:
            try:
                data = _encoded(source)
            except (OSError, ValueError) as error:
                log.warning("could not keep a picture of a look: %s", type(error).__name__)
                return None
            kind = _kind(data)
            if kind is None:
                log.warning("could not keep a picture of a look: not an image")
                return None
            name = f"{hashlib.sha256(data).hexdigest()}.{kind}"
            pictures[name] = data
            return name

        kept = {field: name for field, source in inputs.items() if source and (name := keep(source))}
        shown = [name for name in (keep(picture) for picture in results) if name]
        thumbnail = self._thumbnail(pictures, shown, [kept[f] for f in sorted(kept) if f.startswith("garment_")])
        if thumbnail is not None:
            pictures[thumbnail[0]] = thumbnail[1]
        look = {"v": 2, "id": look_id, "created_at": int(time.time() * 1000), "inputs": kept, "settings": settings,
                "results": shown, "timings": timings,
                "signature": signature({field: pictures[name] for field, name in kept.items()}, settings),
                "thumbnail": thumbnail[0] if thumbnail else None}
        entries = self._entries(key)
        for same in [old for old in entries if same_look(old.get("signature"), look["signature"])]:
            self._drop(key, same)
        self._cache(key, pictures, look["created_at"])  # this machine's copies: the paths returned exist
        with self.redis.pipeline() as pipe:  # MULTI: the pictures and their record together
            if pictures:
                pipe.hset(PICTURES_KEY.format(key, look_id), mapping=pictures)
                pipe.expire(PICTURES_KEY.format(key, look_id), self.ttl_s)
            pipe.lpush(KEY.format(key), json.dumps(look))
            pipe.lrange(KEY.format(key), self.limit, -1)
            pipe.ltrim(KEY.format(key), 0, self.limit - 1)
            pipe.expire(KEY.format(key), self.ttl_s)
            dropped = pipe.execute()[-3]
        if dropped:
            gone = [json.loads(entry) for entry in dropped]
            self._forget(key, gone, keep_for=self._entries(key))
        self._maybe_sweep()
        return self._with_paths(key, look)

    def remove(self, session: str | None, look_id: str) -> bool:
        """Delete one look of this session, its pictures included; False if it was not there."""
        if not session:
            return False
        key = self.key_of(session)
        look = next((entry for entry in self._entries(key) if entry["id"] == look_id), None)
        if look is None:
            return False
        self._drop(key, look)
        return True

    def looks(self, session: str | None) -> list[dict[str, Any]]:
        """The session's looks, newest first (those whose pictures are still kept), with local paths."""
        if not session:
            return []
        key = self.key_of(session)
        oldest = (time.time() - self.ttl_s) * 1000
        entries = [look for look in self._entries(key)[: self.limit] if look.get("created_at", 0) > oldest]
        fresh = [look for look in entries if look.get("v") == 2]
        offered = {look["id"] for look in fresh if self._materialise(key, look)}
        self._tidy(key, fresh)
        shown = []
        for look in entries:
            if look.get("v") != 2:  # written by an older version: its pictures are files under the data dir
                if look["results"] and all(Path(p).exists() for p in look["results"]):
                    shown.append(look)
            elif look["id"] in offered and look["results"]:
                shown.append(self._with_paths(key, look))
        return shown

    def find(self, session: str | None, look_id: str) -> dict[str, Any] | None:
        return next((look for look in self.looks(session) if look["id"] == look_id), None)

    # -- Redis ------------------------------------------------------------------------------

    def _entries(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(KEY.format(key), 0, -1)]

    def _drop(self, key: str, look: dict[str, Any]) -> None:
        # LREM by value: the stored JSON is what lrange gave back, byte for byte.
        for raw in self.redis.lrange(KEY.format(key), 0, -1):
            if json.loads(raw)["id"] == look["id"]:
                self.redis.lrem(KEY.format(key), 1, raw)
        self._forget(key, [look], keep_for=self._entries(key))

    def _forget(self, key: str, gone: list[dict[str, Any]], keep_for: list[dict[str, Any]]) -> None:
        """Delete looks' pictures: in Redis, and this machine's copies that no remaining look uses."""
        ids = [look["id"] for look in gone if str(look["id"]).isalnum()]  # the id is ours (hex), never a path
        if ids:
            self.redis.delete(*(PICTURES_KEY.format(key, look_id) for look_id in ids))
        used = {name for look in keep_for for name in _names(look)}
        folder = self.root / key
        for look in gone:
            for name in set(_names(look)) - used:
                (folder / name).unlink(missing_ok=True)
            if look.get("v") != 2 and str(look["id"]).isalnum():
                shutil.rmtree(folder / look["id"], ignore_errors=True)  # an older version's folder

    # -- this machine's copies --------------------------------------------------------------

    def _with_paths(self, key: str, look: dict[str, Any]) -> dict[str, Any]:
        """The record as callers get it: file names become paths in the cache."""
        folder = self.root / key
        shown = dict(look)
        shown["inputs"] = {field: str(folder / name) for field, name in look["inputs"].items()}
        shown["results"] = [str(folder / name) for name in look["results"]]
        shown["thumbnail"] = str(folder / look["thumbnail"]) if look.get("thumbnail") else None
        return shown

    def _materialise(self, key: str, look: dict[str, Any]) -> bool:
        """Make sure every picture of the look is in the cache (from Redis if not); False if it is gone."""
        folder = self.root / key
        names = _names(look)
        if not all(_NAME.fullmatch(name) for name in names):
            return False
        stamp = look["created_at"] / 1000
        missing = []
        for name in names:
            try:
                if os.stat(folder / name).st_mtime < stamp:
                    os.utime(folder / name, (stamp, stamp))  # kept as long as the newest look using it
            except FileNotFoundError:
                missing.append(name)
        if not missing:
            return True
        found = self.redis.execute_command("HMGET", PICTURES_KEY.format(key, look["id"]), *missing, **{NEVER_DECODE: []})
        pictures = dict(zip(missing, found))
        if any(data is None or hashlib.sha256(data).hexdigest() != name.split(".")[0] for name, data in pictures.items()):
            return False  # expired (or not what its name says)
        self._cache(key, pictures, look["created_at"])
        return True

    def _cache(self, key: str, pictures: dict[str, bytes], created_at: int) -> None:
        folder = self.root / key
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = created_at / 1000
        for name, data in pictures.items():
            target = folder / name
            # Written aside, then renamed: another thread or process reading the cache never sees half a picture.
            temp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                temp.write_bytes(data)
                os.utime(temp, (stamp, stamp))
                os.replace(temp, target)
            except OSError as error:
                log.warning("could not cache a picture of a look: %s", error.strerror)
            finally:
                temp.unlink(missing_ok=True)

    def _tidy(self, key: str, looks: list[dict[str, Any]]) -> None:
        """Remove the session's cached pictures that no look uses any more (deleted or dropped
        through another replica, expired); the young ones may be a look being added."""
        folder = self.root / key
        used = {name for look in looks for name in _names(look)}
        now = time.time()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if _NAME.fullmatch(entry.name) and entry.name not in used and now - entry.stat().st_mtime > GRACE_S:
                        os.unlink(entry.path)
        except FileNotFoundError:
            pass

    def _maybe_sweep(self) -> None:
        with self._sweep_lock:
            if time.time() < self._next_sweep:
                return
            self._next_sweep = time.time() + SWEEP_EVERY_S
        self.sweep()

    def sweep(self, now: float | None = None) -> int:
        """Remove cached pictures whose looks have expired (and an older version's look folders),
        temp files left by a crash, and emptied session folders; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for session_dir in self.root.iterdir():
            try:  # another request (or process) may be sweeping or adding at the same moment
                if not session_dir.is_dir():
                    continue
                for entry in session_dir.iterdir():
                    limit = GRACE_S if entry.name.endswith(".tmp") else self.ttl_s
                    if now - entry.stat().st_mtime <= limit:
                        continue
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)  # an older version's look folder
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
                if not any(session_dir.iterdir()):
                    session_dir.rmdir()  # a session whose looks have all expired
            except OSError:
                continue
        return removed

    @staticmethod
    def _thumbnail(pictures: dict[str, bytes], results: list[str], garments: list[str]) -> tuple[str, bytes] | None:
        """The history's picture of a look: the result, with the garments it wears in a strip beside it."""
        if not results:
            return None
        try:
            with Image.open(io.BytesIO(pictures[results[0]])) as result:
                result = result.convert("RGB")
                result.thumbnail((THUMB_HEIGHT * 2, THUMB_HEIGHT))
            strip = garments[:4]
            cell = result.height // max(4, len(strip)) if strip else 0
            sheet = Image.new("RGB", (result.width + cell, result.height), (255, 255, 255))
            sheet.paste(result, (0, 0))
            for n, name in enumerate(strip):
                with Image.open(io.BytesIO(pictures[name])) as garment:
                    garment = garment.convert("RGB")
                    garment.thumbnail((cell - 4, cell - 4))
                    sheet.paste(garment, (result.width + 2, n * cell + 2))
            buffer = io.BytesIO()
            sheet.save(buffer, "JPEG", quality=85)
            data = buffer.getvalue()
            return f"{hashlib.sha256(data).hexdigest()}.jpg", data
        except OSError as error:
            log.warning("could not make a look's thumbnail: %s", type(error).__name__)
            return None


def _names(look: dict[str, Any]) -> list[str]:
    """The file names of a look's pictures (none for an older version's record, which held paths)."""
    if look.get("v") != 2:
        return []
    return [*look["inputs"].values(), *look["results"], *([look["thumbnail"]] if look.get("thumbnail") else [])]
