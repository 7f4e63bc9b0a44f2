"""Downloading a provider's result: an https URL on its CDN, or a data: URL some endpoints return.

One client for every remote provider, without any provider's Authorization header: result hosts
are CDNs and must never see an API key.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx

from ..errors import ProviderError

MAX_RESULT_BYTES = 50 * 2**20


class ResultDownloader:
    def __init__(self, max_bytes: int = MAX_RESULT_BYTES):
        self.max_bytes = max_bytes
        self._client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=True)

    def fetch(self, ref: str) -> bytes:
        if ref.startswith("data:"):
            return self._decode_data_url(ref)
        try:
            with self._client.stream("GET", ref) as response:
                if response.status_code != 200:
                    raise ProviderError("bad_result_image", reason=f"HTTP {response.status_code}")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ProviderError("bad_result_image", reason="larger than 50 MB")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise ProviderError("bad_result_image", reason=type(error).__name__) from None

    def _decode_data_url(self, ref: str) -> bytes:
        header, _, payload = ref.partition(",")
        if not header.endswith(";base64") or len(payload) > self.max_bytes * 4 // 3 + 4:
            raise ProviderError("bad_result_image", reason="not a base64 data URL under 50 MB")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError("bad_result_image", reason="invalid base64") from None


def first_image_url(output: Any) -> str | None:
    """Image models answer with a URL, a list of URLs, or {"images": [{"url": ...}]}."""
    if isinstance(output, str):
        return output or None
    if isinstance(output, list) and output:
        return first_image_url(output[0])
    if isinstance(output, dict):
        if "url" in output:
            return first_image_url(output["url"])
        if "images" in output:
            return first_image_url(output["images"])
    return None


def all_image_urls(output: Any) -> tuple[str, ...]:
    """Every image URL of an answer: {"images": [{"url"}, ...]}, a list of URLs, or one URL."""
    if isinstance(output, dict) and "images" in output:
        output = output["images"]
    items = output if isinstance(output, list) else [output]
    return tuple(url for url in (first_image_url(item) for item in items) if url)
