"""Settings: the one place that reads the environment, once, at start-up.

Invalid values fail immediately with a ConfigError that names the variable, so
a typo in a Space's settings shows up in its start-up log, not on the first
request.
"""

from __future__ import annotations

import math
import os
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from .errors import ConfigError
from .prompts import DEFAULT_SYNC_PROMPT

REMOTE_PROVIDERS = ("fal", "replicate", "runpod")  # the order "auto" tries them in
DEFAULT_FAL_MODEL = "fal-ai/nano-banana-pro/edit"
DEFAULT_REPLICATE_MODEL = "google/nano-banana"  # the same family as the FAL default: prompt + images
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_GARMENTS = 4
MIN_SIDE = 256  # the seed's troubleshooting guide: below ~256 px the model can't see the subject

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Behind Hugging Face's proxy the app sees the proxy's private address: trust private ranges there.
SPACES_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,::1/128,fc00::/7"
# Per kind of visitor: (paid model calls, estimated US$) per quota window. Safe for an open Space:
# an anonymous visitor makes a few looks an hour, a signed-in one more, an API key (a script) many.
DEFAULT_QUOTAS = {"anonymous": (6, 0.90), "signed_in": (30, 4.50), "api_key": (300, 45.0)}
QUOTA_ENV = {"anonymous": "TRYON_QUOTA_ANONYMOUS", "signed_in": "TRYON_QUOTA_SIGNED_IN", "api_key": "TRYON_QUOTA_API_KEY"}


def _default_data_dir(env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tryon"


def _parse(env: Mapping[str, str], name: str, default: T, convert: Callable[[str], T], check: Callable[[T], bool], expected: str) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = convert(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be {expected}; got {raw!r}") from None
    if not check(value):
        raise ConfigError(f"{name} must be {expected}; got {raw!r}")
    return value


def _valid_chain(value: str) -> bool:
    names = value.split(",")
    if names in (["auto"], ["local"]):
        return True
    return len(set(names)) == len(names) and all(name in REMOTE_PROVIDERS for name in names)


def _boolean(text: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if text.strip().lower() not in words:
        raise ValueError(text)  # _parse turns it into a ConfigError naming the variable
    return words[text.strip().lower()]


def _limit(convert: Callable[[str], T]) -> Callable[[str], T | None]:
    """A limit, or "none" for no limit."""
    return lambda text: None if text.strip().lower() in ("none", "off", "unlimited") else convert(text)


def _networks(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _duration_seconds(text: str) -> int:
    """'3600', '90m', '12h', '1d' -> seconds."""
    text = text.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:]) if text[-1:].isalpha() else 1
    if unit is None:
        raise ValueError(text)
    number = text[:-1] if text[-1:].isalpha() else text
    return int(float(number) * unit)


@dataclass(frozen=True)
class Settings:
    # repr=False: the key must never reach a log line through a printed Settings.
    fal_key: str | None = field(default=None, repr=False)
    provider_choice: str = "auto"  # "auto", "local", or remote providers in failover order: "fal,replicate"
    replicate_token: str | None = field(default=None, repr=False)
    replicate_model: str = DEFAULT_REPLICATE_MODEL
    replicate_base_url: str = "https://api.replicate.com"
    runpod_endpoint_id: str | None = None
    runpod_api_key: str | None = field(default=None, repr=False)
    runpod_base_url: str = "https://api.runpod.ai/v2"
    runpod_price_usd: float | None = None  # what one image from your endpoint costs you (Metrics' estimate); None: unknown
    breaker_failures: int = 3  # outages in a row before a provider is skipped ...
    breaker_cooldown_s: float = 60.0  # ... for this long
    data_dir: Path = field(default_factory=lambda: _default_data_dir(os.environ))
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 1024
    sync_prompt: str = DEFAULT_SYNC_PROMPT
    request_timeout_s: float = 60.0  # the seed's handler limit (maxDuration = 60 s)
    fal_model: str = DEFAULT_FAL_MODEL  # the default model: the first of TRYON_FAL_MODEL
    fal_fallback_models: tuple[str, ...] = ()  # the rest of TRYON_FAL_MODEL: tried in order when a model refuses
    model_prices: dict[str, float] = field(default_factory=dict)  # TRYON_MODEL_PRICES: model id -> US$ per image
    upload_ttl_s: int = 86400  # photos of people expire from provider storage after a day
    fal_rest_url: str = "https://rest.fal.ai"  # storage tokens and upload initiation
    fal_cdn_url: str = "https://v3.fal.media"  # CDN uploads
    fal_store_io: bool = False  # let FAL keep request/response payloads (its default: 30 days); off: X-Fal-Store-IO: 0
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    workers: int = 16  # in-app worker threads (they mostly wait on the provider) for async jobs (0: only external `python -m tryon.worker`)
    job_ttl_s: int = 86400
    batch_max_looks: int = 200  # persons x outfits in one catalogue batch (tryon.jobs.batch)
    job_visibility_s: float = 30.0  # a job silent this long is taken over by another worker
    job_max_attempts: int = 3
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # TRYON_API_KEYS: gates REST and gradio API
    auth_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # TRYON_AUTH: UI login
    rate_limit_per_min: int = 30  # REST requests per client per minute
    auth_failures_per_min: int = 10  # failed logins and keys per client per minute, then 429
    body_budget: int | None = None  # bytes of request bodies in flight, all requests; None: twice the largest body
    pixel_budget: int | None = None  # decoded pixels in flight in intake; None: twice the largest image
    pixel_wait_s: float = 10.0  # how long intake waits for the pixel budget before answering busy
    queue_size: int = 64  # gradio queue: requests waiting beyond this are refused, not hung
    concurrency: int = 4  # try-ons running at once per event (and REST generate)
    # Async looks one process keeps in flight at each provider (an account's concurrent requests);
    # the workers take jobs only while their provider has room (tryon.jobs.worker).
    fal_concurrency: int = 16
    replicate_concurrency: int = 16
    runpod_concurrency: int = 16
    mcp: bool = True  # serve the named API as MCP tools at /gradio_api/mcp/
    shutdown_grace_s: float = 20.0  # on SIGTERM, how long work in flight may take to finish
    # Hosting in public (tryon/limits/): who a visitor is, what they may spend, the day's cap.
    trusted_proxies: tuple[Network, ...] = ()  # X-Forwarded-For is read only from these peers
    quota_window_s: int = 3600
    quotas: Mapping[str, tuple[int | None, float | None]] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    daily_budget_usd: float | None = 25.0  # the whole app's estimated spend per UTC day
    visitor_daily_budget_usd: float | None = 5.0  # one visitor's, whatever their kind
    own_keys: bool = True  # a visitor may bring their own FAL key for their session
    hf_oauth: bool = False  # "Sign in with Hugging Face" (a Space with hf_oauth: true sets OAUTH_CLIENT_ID)

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers in failover order. 'auto': every remote provider whose credentials are
        set (FAL, Replicate, RunPod), else the offline preview."""
        if self.provider_choice != "auto":
            return tuple(self.provider_choice.split(","))
        configured = tuple(name for name in REMOTE_PROVIDERS if self.has_credentials(name))
        return configured or ("local",)

    @property
    def jobs_in_flight(self) -> int:
        """How many async jobs one process holds at once: the first provider's concurrency (the
        one that takes the looks unless it fails); the offline preview: the worker threads."""
        first = self.providers[0]
        return {"fal": self.fal_concurrency, "replicate": self.replicate_concurrency,
                "runpod": self.runpod_concurrency}.get(first, max(1, self.workers))

    @property
    def provider(self) -> str:
        """The provider chain as one string: "local", "fal", "fal,replicate"."""
        return ",".join(self.providers)

    def has_credentials(self, name: str) -> bool:
        return {
            "fal": bool(self.fal_key),
            "replicate": bool(self.replicate_token),
            "runpod": bool(self.runpod_endpoint_id and self.runpod_api_key),
            "local": True,
        }[name]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        # The seed's priority: FAL_KEY, then FAL_API_KEY.
        fal_key = (env.get("FAL_KEY") or "").strip() or (env.get("FAL_API_KEY") or "").strip() or None
        provider_choice = _parse(
            env, "TRYON_PROVIDER", "auto", lambda s: ",".join(p.strip() for p in s.lower().split(",")), _valid_chain,
            "auto, local, or one or more of fal, replicate, runpod in failover order (e.g. fal,replicate)",
        )
        replicate_token = (env.get("REPLICATE_API_TOKEN") or "").strip() or None
        runpod_endpoint_id = (env.get("RUNPOD_ENDPOINT_ID") or "").strip() or None
        runpod_api_key = (env.get("RUNPOD_API_KEY") or "").strip() or None
        if runpod_endpoint_id and not all(c.isalnum() or c in "-_" for c in runpod_endpoint_id):
            raise ConfigError(f"RUNPOD_ENDPOINT_ID must be an endpoint id such as abc123xyz; got {runpod_endpoint_id!r}")
        needs = {"fal": "FAL_KEY (or FAL_API_KEY)", "replicate": "REPLICATE_API_TOKEN",
                 "runpod": "RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY"}
        present = {"fal": bool(fal_key), "replicate": bool(replicate_token),
                   "runpod": bool(runpod_endpoint_id and runpod_api_key), "local": True, "auto": True}
        for name in provider_choice.split(","):
            if not present[name]:
                raise ConfigError(f"TRYON_PROVIDER={provider_choice} uses {name}, which needs {needs[name]}")
        replicate_model = _parse(
            env, "TRYON_REPLICATE_MODEL", DEFAULT_REPLICATE_MODEL, str,
            lambda v: v.count("/") == 1 and " " not in v, "a Replicate model such as google/nano-banana (owner/name[:version])",
        )
        replicate_base_url = _parse(
            env, "REPLICATE_BASE_URL", "https://api.replicate.com", lambda s: s.rstrip("/"),
            lambda v: v.startswith(("https://", "http://")), "an http(s):// URL",
        )
        runpod_base_url = _parse(
            env, "RUNPOD_ENDPOINT_BASE_URL", "https://api.runpod.ai/v2", lambda s: s.rstrip("/"),
            lambda v: v.startswith(("https://", "http://")), "an http(s):// URL",
        )
        runpod_price_usd = _parse(env, "TRYON_RUNPOD_PRICE_USD", None, float, lambda v: 0 <= v <= 100,
                                  "a price in US dollars per image between 0 and 100 (e.g. 0.02)")
        breaker_failures = _parse(env, "TRYON_BREAKER_FAILURES", 3, int, lambda v: 1 <= v <= 100, "a whole number from 1 to 100")
        breaker_cooldown_s = _parse(
            env, "TRYON_BREAKER_COOLDOWN", 60, _duration_seconds, lambda v: 1 <= v <= 3600,
            "a duration between 1s and 1h (e.g. 60, 5m)",
        )
        data_dir = Path(env.get("TRYON_DATA_DIR") or _default_data_dir(env)).expanduser()
        max_upload_mb = _parse(
            env, "TRYON_MAX_UPLOAD_MB", 20.0, float, lambda v: 0.1 <= v <= 500,
            "a number of megabytes between 0.1 and 500",
        )
        max_megapixels = _parse(
            env, "TRYON_MAX_MEGAPIXELS", 50.0, float, lambda v: 0.1 <= v <= 200,
            "a number of megapixels between 0.1 and 200",
        )
        max_side = _parse(
            env, "TRYON_MAX_SIDE", 1024, int, lambda v: MIN_SIDE <= v <= 4096,
            f"a whole number of pixels between {MIN_SIDE} and 4096",
        )
        sync_prompt = _parse(
            env, "TRYON_PROMPT", DEFAULT_SYNC_PROMPT, str, lambda v: 10 <= len(v) <= 2000,
            "a prompt of 10 to 2000 characters",
        )
        request_timeout_s = _parse(
            env, "TRYON_REQUEST_TIMEOUT", 60.0, float, lambda v: 1 <= v <= 900,
            "a number of seconds between 1 and 900",
        )
        fal_models = _parse(
            env, "TRYON_FAL_MODEL", (DEFAULT_FAL_MODEL,), lambda s: tuple(dict.fromkeys(p.strip() for p in s.split(",") if p.strip())),
            lambda v: bool(v) and all(m.count("/") >= 1 and " " not in m and _fal_model_id(m) for m in v),
            "a FAL model id such as fal-ai/nano-banana-pro/edit, or several separated by commas (the first is the "
            "default; the others answer when a model refuses)",
        )
        model_prices = _parse(env, "TRYON_MODEL_PRICES", {}, _model_prices, lambda v: True,
                              'JSON of catalogue model ids and US$ per image, e.g. {"fal-ai/fashn/tryon/v1.6": 0.05}')
        upload_ttl_s = _parse(
            env, "TRYON_UPLOAD_TTL", 86400, _duration_seconds, lambda v: 60 <= v <= 30 * 86400,
            "a duration between 60s and 30d (e.g. 3600, 12h, 1d)",
        )
        fal_rest_url = _parse(
            env, "TRYON_FAL_REST_URL", "https://rest.fal.ai", lambda s: s.rstrip("/"), lambda v: v.startswith("https://"),
            "an https:// URL",
        )
        fal_cdn_url = _parse(
            env, "TRYON_FAL_CDN_URL", "https://v3.fal.media", lambda s: s.rstrip("/"), lambda v: v.startswith("https://"),
            "an https:// URL",
        )
        fal_store_io = _parse(env, "TRYON_FAL_STORE_IO", False, _boolean, lambda v: True, "1 or 0 (true or false)")
        redis_url = _parse(
            env, "REDIS_URL", None, str, lambda v: v.startswith(("redis://", "rediss://", "unix://")),
            "a redis://, rediss:// or unix:// URL",
        )
        workers = _parse(env, "TRYON_WORKERS", 16, int, lambda v: 0 <= v <= 256, "a whole number from 0 to 256")
        job_ttl_s = _parse(
            env, "TRYON_JOB_TTL", 86400, _duration_seconds, lambda v: 60 <= v <= 30 * 86400,
            "a duration between 60s and 30d (e.g. 3600, 12h, 1d)",
        )
        job_visibility_s = _parse(
            env, "TRYON_JOB_VISIBILITY", 30.0, float, lambda v: 0.5 <= v <= 3600, "a number of seconds between 0.5 and 3600",
        )
        batch_max_looks = _parse(env, "TRYON_BATCH_MAX_LOOKS", 200, int, lambda v: 1 <= v <= 1000, "a whole number from 1 to 1000")
        job_max_attempts = _parse(env, "TRYON_JOB_MAX_ATTEMPTS", 3, int, lambda v: 1 <= v <= 20, "a whole number from 1 to 20")
        api_keys = tuple(k.strip() for k in (env.get("TRYON_API_KEYS") or "").split(",") if k.strip())
        if any(len(k) < 8 for k in api_keys):
            raise ConfigError("TRYON_API_KEYS must be comma-separated keys of at least 8 characters each")
        auth_users = []
        for pair in (env.get("TRYON_AUTH") or "").split(","):
            if not pair.strip():
                continue
            user, sep, password = pair.strip().partition(":")
            if not sep or not user or not password:
                raise ConfigError("TRYON_AUTH must be user:password pairs separated by commas")
            auth_users.append((user, password))
        rate_limit_per_min = _parse(
            env, "TRYON_RATE_LIMIT", 30, lambda s: int(s.split("/")[0]), lambda v: 1 <= v <= 100_000,
            "requests per minute per client, e.g. 30 or 30/min",
        )
        auth_failures_per_min = _parse(
            env, "TRYON_AUTH_FAIL_LIMIT", 10, lambda s: int(s.split("/")[0]), lambda v: 1 <= v <= 10_000,
            "failed logins per minute per client, e.g. 10 or 10/min",
        )
        max_body_mb = _max_body_bytes(int(max_upload_mb * 1024 * 1024)) / 2**20
        body_budget_mb = _parse(
            env, "TRYON_BODY_BUDGET_MB", None, float, lambda v: max_body_mb <= v <= 1_000_000,
            f"a number of megabytes of at least the largest request body ({math.ceil(max_body_mb)} MB, "
            "from TRYON_MAX_UPLOAD_MB)",
        )
        pixel_budget_mp = _parse(
            env, "TRYON_PIXEL_BUDGET_MP", None, float, lambda v: max_megapixels <= v <= 1_000_000,
            f"a number of megapixels of at least TRYON_MAX_MEGAPIXELS ({max_megapixels:g})",
        )
        pixel_wait_s = _parse(env, "TRYON_PIXEL_WAIT", 10.0, float, lambda v: 0 <= v <= 300,
                              "a number of seconds between 0 and 300")
        queue_size = _parse(env, "TRYON_QUEUE_SIZE", 64, int, lambda v: 1 <= v <= 10_000, "a whole number from 1 to 10000")
        concurrency = _parse(env, "TRYON_CONCURRENCY", 4, int, lambda v: 1 <= v <= 256, "a whole number from 1 to 256")
        in_flight = {name: _parse(env, f"TRYON_{name.upper()}_CONCURRENCY", 16, int, lambda v: 1 <= v <= 2000,
                                  "a whole number from 1 to 2000") for name in ("fal", "replicate", "runpod")}
        mcp = _parse(env, "TRYON_MCP", True, _boolean, lambda v: True, "true or false")
        shutdown_grace_s = _parse(env, "TRYON_SHUTDOWN_GRACE", 20.0, float, lambda v: 0 <= v <= 600,
                                  "a number of seconds between 0 and 600")
        trusted_proxies = _parse(env, "TRYON_TRUSTED_PROXIES", _networks(SPACES_PROXIES) if env.get("SPACE_ID") else (),
                                 _networks, lambda v: True, "addresses or networks separated by commas (e.g. 127.0.0.1,10.0.0.0/8)")
        quota_window_s = _parse(env, "TRYON_QUOTA_WINDOW", 3600, _duration_seconds, lambda v: 60 <= v <= 7 * 86400,
                                "a duration between 60s and 7d (e.g. 3600, 1h)")
        quotas = {}
        for kind, prefix in QUOTA_ENV.items():
            calls = _parse(env, f"{prefix}_CALLS", DEFAULT_QUOTAS[kind][0], _limit(int), lambda v: v is None or 0 <= v <= 10**7,
                           "a whole number of model calls per quota window, or none")
            usd = _parse(env, f"{prefix}_USD", DEFAULT_QUOTAS[kind][1], _limit(float), lambda v: v is None or 0 <= v <= 10**7,
                         "US dollars per quota window (e.g. 0.90), or none")
            quotas[kind] = (calls, usd)
        daily_budget_usd = _parse(env, "TRYON_DAILY_BUDGET_USD", 25.0, _limit(float), lambda v: v is None or 0 <= v <= 10**7,
                                  "US dollars per day (e.g. 25), or none")
        visitor_daily_budget_usd = _parse(env, "TRYON_DAILY_BUDGET_PER_VISITOR_USD", 5.0, _limit(float),
                                          lambda v: v is None or 0 <= v <= 10**7, "US dollars per visitor per day (e.g. 5), or none")
        own_keys = _parse(env, "TRYON_OWN_KEYS", True, _boolean, lambda v: True, "1 or 0 (true or false)")
        # As gradio decides (gradio.utils.get_space): its real OAuth routes run only on a Space; elsewhere it
        # would fake them with this machine's own HF login, so the button is shown only where it works.
        hf_oauth = bool((env.get("OAUTH_CLIENT_ID") or "").strip() and (env.get("OPENID_PROVIDER_URL") or "").strip()
                        and env.get("SYSTEM") == "spaces" and (env.get("SPACE_ID") or "").strip())
        return cls(
            trusted_proxies=trusted_proxies,
            quota_window_s=quota_window_s,
            quotas=quotas,
            daily_budget_usd=daily_budget_usd,
            visitor_daily_budget_usd=visitor_daily_budget_usd,
            own_keys=own_keys,
            hf_oauth=hf_oauth,
            fal_key=fal_key,
            provider_choice=provider_choice,
            replicate_token=replicate_token,
            replicate_model=replicate_model,
            replicate_base_url=replicate_base_url,
            runpod_endpoint_id=runpod_endpoint_id,
            runpod_api_key=runpod_api_key,
            runpod_base_url=runpod_base_url,
            runpod_price_usd=runpod_price_usd,
            breaker_failures=breaker_failures,
            breaker_cooldown_s=float(breaker_cooldown_s),
            data_dir=data_dir,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_pixels=int(max_megapixels * 1_000_000),
            max_side=max_side,
            sync_prompt=sync_prompt,
            request_timeout_s=request_timeout_s,
            fal_model=fal_models[0],
            fal_fallback_models=fal_models[1:],
            model_prices=model_prices,
            upload_ttl_s=upload_ttl_s,
            fal_rest_url=fal_rest_url,
            fal_cdn_url=fal_cdn_url,
            fal_store_io=fal_store_io,
            redis_url=redis_url,
            workers=workers,
            job_ttl_s=job_ttl_s,
            job_visibility_s=job_visibility_s,
            job_max_attempts=job_max_attempts,
            batch_max_looks=batch_max_looks,
            api_keys=api_keys,
            auth_users=tuple(auth_users),
            rate_limit_per_min=rate_limit_per_min,
            auth_failures_per_min=auth_failures_per_min,
            body_budget=None if body_budget_mb is None else int(body_budget_mb * 2**20),
            pixel_budget=None if pixel_budget_mp is None else int(pixel_budget_mp * 1_000_000),
            pixel_wait_s=pixel_wait_s,
            queue_size=queue_size,
            concurrency=concurrency,
            fal_concurrency=in_flight["fal"],
            replicate_concurrency=in_flight["replicate"],
            runpod_concurrency=in_flight["runpod"],
            mcp=mcp,
            shutdown_grace_s=shutdown_grace_s,
        )

    @property
    def max_body_bytes(self) -> int:
        """A REST body carries up to five images as base64 (4/3 of their size), plus JSON."""
        return _max_body_bytes(self.max_upload_bytes)

    @property
    def body_budget_bytes(self) -> int:
        return self.body_budget or 2 * self.max_body_bytes

    @property
    def pixel_budget_pixels(self) -> int:
        return self.pixel_budget or 2 * self.max_pixels


def _fal_model_id(model_id: str) -> bool:
    """Not a model of another vendor's catalogue (google/nano-banana runs on Replicate)."""
    from .models import MODELS

    known = MODELS.get(model_id.partition(":")[0])
    return known is None or known.provider == "fal"


def _model_prices(text: str) -> dict[str, float]:
    from .models import parse_prices  # the catalogue knows which ids exist

    return parse_prices(text)


def _max_body_bytes(max_upload_bytes: int) -> int:
    return int(5 * max_upload_bytes * 4 / 3) + 64 * 1024
