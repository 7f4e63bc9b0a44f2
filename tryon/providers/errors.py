"""One mapping from a vendor's failure to the user's message, shared by every remote provider."""

from __future__ import annotations

import logging

import httpx

from ..errors import ProviderError

log = logging.getLogger(__name__)

REJECTED = (400, 404, 409, 413, 422)  # the request (our input) was refused: not an outage


def error_for(status: int | None, error: Exception | None, *, detail: str, variable: str, timeout_s: float,
              vendor: str) -> ProviderError:
    """An HTTP status (or, without one, the exception) -> ProviderError. `detail` must already be
    redacted of the key; `variable` names the setting to fix when the key is refused."""
    if status in (401, 403):
        return ProviderError("provider_auth", status=status, variable=variable)
    if status in REJECTED:
        return ProviderError("provider_rejected_input", http_status=400, detail=(detail or f"HTTP {status}")[:300])
    if status == 429:
        return ProviderError("provider_busy", http_status=429)
    if status is not None:
        return ProviderError("provider_unavailable", status=status)
    if isinstance(error, (httpx.TimeoutException, TimeoutError)):
        return ProviderError("provider_timeout", http_status=504, seconds=timeout_s)
    if not isinstance(error, httpx.TransportError):
        log.error("unexpected error from %s: %s", vendor, type(error).__name__)
    return ProviderError("provider_unreachable")


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
