"""The baseline we compare against: the seed's way, with fal-client and nothing else.

Each garment is one `fal_client.subscribe` call with the raw photos inlined as
base64 data URIs: no resize, no metadata strip, no pre-upload, no cache.
"""

from __future__ import annotations

import base64
import json
import time

import fal_client

from tryon.prompts import DEFAULT_SYNC_PROMPT


def data_uri(data: bytes, media_type: str = "image/jpeg") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def naive_try_on(client: fal_client.SyncClient, model: str, person: bytes, garments: list[bytes]) -> tuple[float, int]:
    """(wall ms, request bytes sent) for one try-on the naive way."""
    started = time.perf_counter()
    sent = 0
    current = data_uri(person)
    for garment in garments:
        arguments = {"prompt": DEFAULT_SYNC_PROMPT, "image_urls": [current, data_uri(garment)]}
        sent += len(json.dumps(arguments))
        result = client.subscribe(model, arguments)
        current = result["images"][0]["url"]  # the next call gets the result by URL, as the seed did
    return (time.perf_counter() - started) * 1000, sent
