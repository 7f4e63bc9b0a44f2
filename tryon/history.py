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
            results: list[Image.Image | str], timings: dict[str, Any]) -> dict[str, Any]:
        """Keep one finished look; `inputs`: {"person": jpeg, "garment_1": jpeg, ...}, the intake's
        normalized copies (no metadata, GPS included), never the raw uploads."""
        key = self.key_of(session)
        look_id = uuid.uuid4().hex[:16]
        folder = self.root / key / look_id
        folder.mkdir(parents=True)
        kept = {field: self._keep(source, folder / f"{field}.jpg") for field, source in inputs.items() if source}
        pictures = [self._keep(picture, folder / f"result_{n}.png") for n, picture in enumerate(results, start=1)]
        look = {"id": look_id, "created_at": int(time.time() * 1000), "inputs": kept, "settings": settings,
                "results": [p for p in pictures if p], "timings": timings}
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
