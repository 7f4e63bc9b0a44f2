"""Who may use the app, and how often.

- TRYON_API_KEYS gates the REST API (`apiKey` in the body, as the seed's
  auth.ts did) and the gradio API: gradio's own login accepts any user name
  with an API key as the password, so gradio_client passes
  `auth=("api", key)`. TRYON_AUTH adds user:password logins for the page.
- Keys are compared in constant time, against every key, so timing tells
  nothing about how much of a guess was right.
- The REST rate limit is a token bucket per client (its key, else its IP); failed logins and
  failed keys have a bucket of their own per address (`auth_throttle.AuthThrottle`).
- `GradioLogins` reads gradio's own login session, so routes gradio does not guard itself
  (its MCP server) can require the same login.
"""

from __future__ import annotations

import hmac
import threading
import time
from typing import Callable, Mapping

from ..config import Settings


def key_is_valid(candidate: object, keys: tuple[str, ...]) -> bool:
    if not isinstance(candidate, str) or not keys:
        return False
    given = candidate.encode()
    matched = False
    for key in keys:  # no early exit: every key costs the same
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class GradioLogins:
    """Who is logged in through gradio's own `/login`: its cookie names a token in the app's table
    (the same lookup as `get_current_user` in gradio/routes.py)."""

    def __init__(self, gradio_app):
        self.gradio_app = gradio_app

    @classmethod
    def mounted_in(cls, parent) -> "GradioLogins":
        """The gradio app that `gr.mount_gradio_app` mounted into `parent`."""
        from gradio.routes import App

        (gradio_app,) = [r.app for r in parent.routes if isinstance(getattr(r, "app", None), App)]
        return cls(gradio_app)

    def user(self, cookies: Mapping[str, str]) -> str | None:
        cookie_id = self.gradio_app.cookie_id
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return self.gradio_app.tokens.get(token) if token else None


def gradio_auth(settings: Settings) -> Callable[[str, str], bool] | None:
    """gradio's login check, or None when the app is open (no keys, no users)."""
    if not settings.api_keys and not settings.auth_users:
        return None

    def check(username: str, password: str) -> bool:
        user_ok = False
        for user, secret in settings.auth_users:
            user_ok |= hmac.compare_digest(username.encode(), user.encode()) & hmac.compare_digest(password.encode(), secret.encode())
        return user_ok | key_is_valid(password, settings.api_keys)

    return check


def openness(settings: Settings) -> str:
    """One line for the start-up log about who can use this app."""
    if not settings.api_keys and not settings.auth_users:
        return "OPEN: no TRYON_API_KEYS or TRYON_AUTH, so anyone who can reach this address can use it"
    parts = []
    if settings.api_keys:
        parts.append(f"{len(settings.api_keys)} API key(s) for REST and gradio API")
    if settings.auth_users:
        parts.append(f"{len(settings.auth_users)} login(s) for the page")
    return "protected: " + ", ".join(parts)


class RateLimiter:
    """A token bucket per client: `per_minute` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds until `client` has a token again (0: it has one now); takes nothing."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def refund(self, client: str) -> None:
        """Give back a token taken by `allow` (the attempt turned out not to count)."""
        with self._lock:
            if client in self._buckets:
                tokens, last = self._buckets[client]
                self._buckets[client] = (min(self.capacity, tokens + 1), last)

    def allow(self, client: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be)."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                allowed, wait = True, 0.0
            else:
                self._buckets[client] = (tokens, now)
                allowed, wait = False, (1 - tokens) / self.rate
            if len(self._buckets) > self.max_clients:  # forget the quietest clients rather than grow without bound
                for stale in sorted(self._buckets, key=lambda c: self._buckets[c][1])[: self.max_clients // 10]:
                    del self._buckets[stale]
        return allowed, wait
