"""The looks a browser session made: inputs, settings, results and timings, newest first.

A look's pictures are copied under `<data dir>/looks/<session key>/<look id>/`; its record is a
JSON entry in the Redis list `tryon:looks:<session key>`, trimmed to `limit` and expiring with the
job TTL, so the history survives a page reload (same session cookie) and an app restart, and
nothing is shared between sessions. The session key is a hash of the session cookie: the cookie
itself is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from PIL import Image

log = logging.getLogger(__name__)

KEY = "tryon:looks:{}"
THUMB_HEIGHT = 240  # px: the history gallery shows them about 200 px high
SAME_PIXELS = 4  # mean grey-level difference (of 255) below which two photos are the same photo re-encoded


def signature(inputs: dict[str, str], settings: dict[str, Any]) -> dict[str, Any]:
    """What makes two looks the same: the settings, and each photo as a coarse picture of its
    pixels (16×16 grey levels), not its bytes. A look brought back from the history and tried
    again has been re-encoded, yet is the same look."""
    return {"settings": json.loads(json.dumps(_plain(settings), sort_keys=True, default=str)),
            "photos": {field: _pixels(path) for field, path in sorted(inputs.items()) if path}}


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


def _pixels(path: str) -> str:
    """A kept photo as 16×16 grey levels (base64)."""
    try:
        with Image.open(path) as picture:
            picture.draft("L", (64, 64))  # JPEG decodes at 1/8 scale: a few ms even for a 2K photo
            small = picture.convert("L").resize((16, 16), Image.Resampling.BOX)
            return base64.b64encode(small.tobytes()).decode()
    except OSError:
        return base64.b64encode(hashlib.sha256(path.encode()).digest()).decode()


class LookHistory:
    def __init__(self, client: redis.Redis, root: Path, ttl_s: int, limit: int = 12):
        self.redis = client
        self.root = root
        self.ttl_s = ttl_s
        self.limit = limit
        self.root.mkdir(parents=True, exist_ok=True)

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
        folder = self.root / key / look_id
        folder.mkdir(parents=True)
        kept = {field: self._keep(source, folder / f"{field}.jpg") for field, source in inputs.items() if source}
        pictures = [self._keep(picture, folder / f"result_{n}.png") for n, picture in enumerate(results, start=1)]
        pictures = [p for p in pictures if p]
        look = {"id": look_id, "created_at": int(time.time() * 1000), "inputs": kept, "settings": settings,
                "results": pictures, "timings": timings, "signature": signature(kept, settings),
                "thumbnail": self._thumbnail(pictures, [kept[f] for f in sorted(kept) if f.startswith("garment_")], folder)}
        for same in [old for old in self._entries(key) if same_look(old.get("signature"), look["signature"])]:
            self._drop(key, same)
        with self.redis.pipeline() as pipe:
            pipe.lpush(KEY.format(key), json.dumps(look))
            pipe.lrange(KEY.format(key), self.limit, -1)
            pipe.ltrim(KEY.format(key), 0, self.limit - 1)
            pipe.expire(KEY.format(key), self.ttl_s)
            _, dropped, _, _ = pipe.execute()
        for entry in dropped:
            shutil.rmtree(self.root / key / json.loads(entry)["id"], ignore_errors=True)
        self._forget_old()
        return look

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

    def _entries(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(KEY.format(key), 0, -1)]

    def _drop(self, key: str, look: dict[str, Any]) -> None:
        # LREM by value: the stored JSON is what lrange gave back, byte for byte.
        for raw in self.redis.lrange(KEY.format(key), 0, -1):
            if json.loads(raw)["id"] == look["id"]:
                self.redis.lrem(KEY.format(key), 1, raw)
        if look["id"].isalnum():  # the id is ours (hex), never a path
            shutil.rmtree(self.root / key / look["id"], ignore_errors=True)

    @staticmethod
    def _thumbnail(results: list[str], garments: list[str | None], folder: Path) -> str | None:
        """The history's picture of a look: the result, with the garments it wears in a strip beside it."""
        if not results:
            return None
        try:
            with Image.open(results[0]) as result:
                result = result.convert("RGB")
                result.thumbnail((THUMB_HEIGHT * 2, THUMB_HEIGHT))
            strip = [g for g in garments if g][:4]
            cell = result.height // max(4, len(strip)) if strip else 0
            sheet = Image.new("RGB", (result.width + cell, result.height), (255, 255, 255))
            sheet.paste(result, (0, 0))
            for n, path in enumerate(strip):
                with Image.open(path) as garment:
                    garment = garment.convert("RGB")
                    garment.thumbnail((cell - 4, cell - 4))
                    sheet.paste(garment, (result.width + 2, n * cell + 2))
            target = folder / "thumbnail.jpg"
            sheet.save(target, "JPEG", quality=85)
            return str(target)
        except OSError as error:
            log.warning("could not make a look's thumbnail: %s", type(error).__name__)
            return results[0]

    def looks(self, session: str | None) -> list[dict[str, Any]]:
        """The session's looks, newest first (those whose pictures are still on disk)."""
        if not session:
            return []
        entries = [json.loads(raw) for raw in self.redis.lrange(KEY.format(self.key_of(session)), 0, self.limit - 1)]
        return [look for look in entries if look["results"] and all(Path(p).exists() for p in look["results"])]

    def find(self, session: str | None, look_id: str) -> dict[str, Any] | None:
        return next((look for look in self.looks(session) if look["id"] == look_id), None)

    def _keep(self, source: bytes | Image.Image | str, target: Path) -> str | None:
        """Copy a picture (encoded bytes, a PIL image, a file path or a data URL) into the look's folder."""
        try:
            if isinstance(source, bytes):
                target.write_bytes(source)
            elif isinstance(source, Image.Image):
                source.save(target, "PNG")
            elif source.startswith("data:"):
                target.write_bytes(base64.b64decode(source.split(",", 1)[1]))
            else:
                shutil.copyfile(source, target)
            return str(target)
        except (OSError, ValueError) as error:
            log.warning("could not keep a picture of a look: %s", type(error).__name__)
            return None

    def _forget_old(self) -> None:
        """Delete look folders older than the TTL (their records have expired with it)."""
        cutoff = time.time() - self.ttl_s
        for session_dir in self.root.iterdir():
            try:  # another request may be sweeping or adding at the same moment
                for look_dir in session_dir.iterdir() if session_dir.is_dir() else []:
                    if look_dir.stat().st_mtime < cutoff:
                        shutil.rmtree(look_dir, ignore_errors=True)
                if session_dir.is_dir() and not any(session_dir.iterdir()):
                    session_dir.rmdir()  # a session whose looks have all expired
            except OSError:
                continue
