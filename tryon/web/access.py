"""Who may use the app, and how often.

- TRYON_API_KEYS gates the REST API (`apiKey` in the body, as the seed's
  auth.ts did) and the gradio API: gradio's own login accepts any user name
  with an API key as the password, so gradio_client passes
  `auth=("api", key)`. TRYON_AUTH adds user:password logins for the page.
- Keys are compared in constant time, against every key, so timing tells
  nothing about how much of a guess was right.
- The REST rate limit is a token bucket per client (its key, else its IP); failed logins and
  failed keys have a bucket of their own per address (`auth_throttle.AuthThrottle`). Buckets
  live in Redis, shared by every replica of the app.
- `GradioLogins` reads gradio's own login session, so routes gradio does not guard itself
  (its MCP server) can require the same login.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from typing import Callable, Mapping

import redis

from ..config import Settings
from ..redis_server import LUA_NOW

log = logging.getLogger(__name__)

RATE_KEY = "tryon:rate:{}:{}"  # name ("rest", "auth"), sha256 of the client id (first 32 hex digits)


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


class KeyLogins:
    """Which API key each gradio login name logged in with. gradio's session knows only the name,
    and quotas must count per key: a name is tied to the first key that logs in with it (in this
    process), so one key cannot collect a fresh quota per invented name, nor a second key spend
    the first's. Bounded: the oldest names are forgotten past `capacity`."""

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._digests: dict[str, str] = {}
        self._lock = threading.Lock()

    def bind(self, username: str, key: str) -> bool:
        digest = hashlib.sha256(key.encode()).hexdigest()
        with self._lock:
            bound = self._digests.setdefault(username, digest)
            while len(self._digests) > self.capacity:
                del self._digests[next(iter(self._digests))]
        return hmac.compare_digest(bound, digest)

    def digest_of(self, username: str) -> str | None:
        with self._lock:
            return self._digests.get(username)


KEY_LOGINS = KeyLogins()  # the app's one table: gradio's login check writes it, page_visitor reads it


def gradio_auth(settings: Settings, logins: KeyLogins = KEY_LOGINS) -> Callable[[str, str], bool] | None:
    """gradio's login check, or None when the app is open (no keys, no users). A TRYON_AUTH user
    logs in with their password only; any other name with an API key, bound to that key."""
    if not settings.api_keys and not settings.auth_users:
        return None

    def check(username: str, password: str) -> bool:
        user_ok, named_user = False, False
        for user, secret in settings.auth_users:
            same_name = hmac.compare_digest(username.encode(), user.encode())
            named_user |= same_name
            user_ok |= same_name & hmac.compare_digest(password.encode(), secret.encode())
        if named_user:
            return user_ok
        return key_is_valid(password, settings.api_keys) and logins.bind(username, password)

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
    """A token bucket per client: `per_minute` requests a minute, bursts up to the same number.

    The buckets live in Redis, so every replica of the app spends and reads the same ones: the hash
    `tryon:rate:<name>:<sha256 of the client id>` (a client id may hold an API key, which never goes
    into a key name), updated by one Lua script and expiring once it would be full again (a missing
    bucket is a full one). `clock`: the tests' (seconds); by default Redis's `TIME`, one clock for
    every replica. With Redis unreachable, requests are let through (logged once a minute): the
    limiter must not turn a Redis outage into a refusal of everyone."""

    def __init__(self, per_minute: int, client: "redis.Redis", name: str, clock: Callable[[], float] | None = None):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.redis = client
        self.name = name
        self.clock = clock
        self._take = client.register_script(_BUCKET_TAKE)
        self._peek = client.register_script(_BUCKET_PEEK)
        self._refund = client.register_script(_BUCKET_REFUND)
        self._warned = float("-inf")

    def key(self, client: str) -> str:
        return RATE_KEY.format(self.name, hashlib.sha256(client.encode()).hexdigest()[:32])

    def _args(self) -> list:
        return ["" if self.clock is None else repr(float(self.clock())), repr(self.rate), repr(self.capacity)]

    def _unreachable(self, error: Exception) -> None:
        if time.monotonic() - self._warned > 60:
            self._warned = time.monotonic()
            log.warning("rate limiter %s: Redis unreachable (%s); requests let through", self.name, type(error).__name__)

    def wait(self, client: str) -> float:
        """Seconds until `client` has a token again (0: it has one now); takes nothing."""
        try:
            return float(self._peek(keys=[self.key(client)], args=self._args()))
        except redis.RedisError as error:
            self._unreachable(error)
            return 0.0

    def refund(self, client: str) -> None:
        """Give back a token taken by `allow` (the attempt turned out not to count)."""
        try:
            self._refund(keys=[self.key(client)], args=self._args())
        except redis.RedisError as error:
            self._unreachable(error)

    def allow(self, client: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be)."""
        try:
            allowed, wait = self._take(keys=[self.key(client)], args=self._args())
        except redis.RedisError as error:
            self._unreachable(error)
            return True, 0.0
        return bool(int(allowed)), float(wait)


# A bucket: hash t (tokens) and ts (when counted). ARGV: now ("" for Redis's TIME), rate a second,
# capacity. Numbers go back as strings (Redis turns a Lua number into an integer).
_BUCKET = LUA_NOW + """
local rate, capacity = tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
local last = tonumber(redis.call('HGET', KEYS[1], 'ts'))
if not tokens or not last then tokens, last = capacity, now end
"""
_BUCKET_PEEK = _BUCKET + """
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
if tokens >= 1 then return '0' end
return tostring((1 - tokens) / rate)
"""
_BUCKET_TAKE = _BUCKET + """
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
local allowed, wait = 0, (1 - tokens) / rate
if tokens >= 1 then tokens, allowed, wait = tokens - 1, 1, 0 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.floor((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""
_BUCKET_REFUND = _BUCKET + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 't', tostring(math.min(capacity, tokens + 1)))
end
return 0
"""
