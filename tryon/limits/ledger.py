"""Quotas per visitor and the day's budget: each look reserves its estimate before any model is
called and settles what it really cost afterwards, in Redis, so every replica and worker counts
against the same totals.

Three counters are checked at once, in one Lua script (no two replicas can both take the last
call): the visitor's quota window (paid model calls and US$ per TRYON_QUOTA_WINDOW, by kind of
visitor), the visitor's day (TRYON_DAILY_BUDGET_PER_VISITOR_USD) and the app's day
(TRYON_DAILY_BUDGET_USD). Days are UTC days. Windows are fixed (they reset on the hour for a one-hour
window), which is what a "resets in" message can promise. Money is counted in micro-dollars.

A reservation that is never settled (the process died) stays counted: the cap errs on the side of
not spending. Every key expires shortly after its window or day ends.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from ..config import Settings
from ..errors import InvalidRequest
from .visitor import Visitor

MICRO = 1_000_000
DAY_S = 86400
PREFIX = "tryon:limits"

# KEYS: visitor window, visitor day, app day, settled marker. ARGV: calls, micro, limit calls,
# limit micro (window), limit micro (visitor day), limit micro (app day), window ttl, day ttl;
# a limit < 0 is none. Answers {"ok"} or {which limit, what is used}.
RESERVE = """
local calls, micro = tonumber(ARGV[1]), tonumber(ARGV[2])
local function used(key, name) return tonumber(redis.call('HGET', key, name) or '0') end
local checks = {{1, 'calls', calls, 3, 'calls'}, {1, 'micro', micro, 4, 'window_usd'},
                {2, 'micro', micro, 5, 'visitor_day'}, {3, 'micro', micro, 6, 'app_day'}}
for _, check in ipairs(checks) do
  local limit = tonumber(ARGV[check[4]])
  local now = used(KEYS[check[1]], check[2])
  if limit >= 0 and now + check[3] > limit then return {check[5], tostring(now)} end
end
for n = 1, 3 do
  redis.call('HINCRBY', KEYS[n], 'calls', calls)
  redis.call('HINCRBY', KEYS[n], 'micro', micro)
  redis.call('HINCRBY', KEYS[n], 'looks', 1)
  local ttl = (n == 1) and ARGV[7] or ARGV[8]
  if redis.call('TTL', KEYS[n]) < 0 then redis.call('EXPIRE', KEYS[n], ttl) end
end
return {'ok', '0'}
"""

# Settle once (the marker), by the difference between what was reserved and what was spent.
SETTLE = """
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[3]) == false then return 0 end
for n = 1, 3 do
  if redis.call('EXISTS', KEYS[n]) == 1 then
    redis.call('HINCRBY', KEYS[n], 'calls', ARGV[1])
    redis.call('HINCRBY', KEYS[n], 'micro', ARGV[2])
  end
end
return 1
"""


@dataclass(frozen=True)
class Hold:
    """One look's reservation: where it was counted and how much. JSON-safe, so an async job can
    carry it to the worker that settles it. Holds digests only, never who the visitor is."""

    id: str
    keys: tuple[str, str, str]
    calls: int
    micro: int

    def public(self) -> dict[str, Any]:
        return {**asdict(self), "keys": list(self.keys)}

    @classmethod
    def from_public(cls, data: dict[str, Any]) -> "Hold":
        return cls(str(data["id"]), tuple(data["keys"]), int(data["calls"]), int(data["micro"]))


def _micro(usd: float | None) -> int:
    return 0 if usd is None else int(round(usd * MICRO))


class Ledger:
    def __init__(self, redis, settings: Settings, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self._reserve = redis.register_script(RESERVE)
        self._settle = redis.register_script(SETTLE)

    # -- names and limits ---------------------------------------------------------------------

    def _window(self, now: float) -> tuple[int, float]:
        """(this window's number, seconds until it ends)."""
        size = self.settings.quota_window_s
        number = int(now // size)
        return number, (number + 1) * size - now

    @staticmethod
    def _day(now: float) -> tuple[str, float]:
        """(today's UTC date, seconds until midnight UTC)."""
        return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d"), DAY_S - now % DAY_S

    def _keys(self, visitor: Visitor, now: float) -> tuple[str, str, str]:
        window, _ = self._window(now)
        day, _ = self._day(now)
        return (f"{PREFIX}:window:{visitor.key}:{window}", f"{PREFIX}:day:{visitor.key}:{day}", f"{PREFIX}:day:all:{day}")

    @staticmethod
    def _limit(value: float | int | None, micro: bool = False) -> int:
        if value is None:
            return -1
        return _micro(value) if micro else int(value)

    # -- reserve and settle -------------------------------------------------------------------

    def reserve(self, visitor: Visitor, calls: int, usd: float | None) -> Hold:
        """Count this look's estimate against every limit, or refuse it (quota_exceeded or
        budget_exhausted, 429 with the seconds until it resets) with nothing counted."""
        now = self.clock()
        keys = self._keys(visitor, now)
        quota_calls, quota_usd = self.settings.quotas.get(visitor.kind, (None, None))
        micro = _micro(usd)
        window_ttl = self.settings.quota_window_s + 60
        answer = self._reserve(keys=list(keys), args=[
            calls, micro, self._limit(quota_calls), self._limit(quota_usd, True),
            self._limit(self.settings.visitor_daily_budget_usd, True), self._limit(self.settings.daily_budget_usd, True),
            window_ttl, DAY_S + 3600])
        which = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
        if which != "ok":
            raise self._refusal(visitor, which, now)
        return Hold(uuid.uuid4().hex, keys, calls, micro)

    def settle(self, hold: Hold, calls: int, usd: float | None) -> bool:
        """Replace the hold's estimate by what was spent (once: a second settle changes nothing)."""
        spent_micro = hold.micro if usd is None else _micro(usd)  # an unknown price keeps the estimate
        return bool(self._settle(keys=[*hold.keys, f"{PREFIX}:settled:{hold.id}"],
                                 args=[calls - hold.calls, spent_micro - hold.micro, DAY_S + 3600]))

    # -- what the Metrics tab shows -----------------------------------------------------------

    def today(self) -> dict[str, Any]:
        """The app's spend today (reserved and settled), against its cap."""
        now = self.clock()
        day, resets_in = self._day(now)
        counted = self.redis.hgetall(f"{PREFIX}:day:all:{day}") or {}
        value = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in counted.items()}
        cap = self.settings.daily_budget_usd
        return {"day": day, "spent_usd": round(value.get("micro", 0) / MICRO, 4), "calls": value.get("calls", 0),
                "looks": value.get("looks", 0), "cap_usd": cap, "resets_in_s": round(resets_in)}

    def prometheus(self) -> str:
        """Today's spend and the cap as Prometheus gauges (appended to /metrics)."""
        today = self.today()
        lines = ["# HELP tryon_spend_today_usd Estimated spend today (UTC), reserved and settled, every replica's.",
                 "# TYPE tryon_spend_today_usd gauge", f"tryon_spend_today_usd {today['spent_usd']}",
                 "# HELP tryon_model_calls_today Paid model calls today (UTC), every replica's.",
                 "# TYPE tryon_model_calls_today gauge", f"tryon_model_calls_today {today['calls']}"]
        if today["cap_usd"] is not None:
            lines += ["# HELP tryon_daily_budget_usd TRYON_DAILY_BUDGET_USD.", "# TYPE tryon_daily_budget_usd gauge",
                      f"tryon_daily_budget_usd {today['cap_usd']}"]
        return "\n".join(lines) + "\n"

    # -- the refusal ---------------------------------------------------------------------------

    def _refusal(self, visitor: Visitor, which: str, now: float) -> InvalidRequest:
        quota_calls, quota_usd = self.settings.quotas.get(visitor.kind, (None, None))
        if which in ("calls", "window_usd"):
            _, wait = self._window(now)
            if which == "calls":
                plural = quota_calls != 1
                limit = {"en": f"{quota_calls} model call{'s' if plural else ''}",
                         "es": f"{quota_calls} llamada{'s' if plural else ''} al modelo"}
            else:
                limit = {"en": f"{_usd(quota_usd, 'en')} of model calls", "es": f"{_usd(quota_usd, 'es')} en llamadas al modelo"}
            return InvalidRequest("quota_exceeded", http_status=429, seconds=math.ceil(wait), limit=limit,
                                  window=_duration_words(self.settings.quota_window_s, per=True), who=WHO[visitor.kind],
                                  wait=_duration_words(wait), hint=self._hint(visitor, quota=True))
        _, wait = self._day(now)
        cap = self.settings.visitor_daily_budget_usd if which == "visitor_day" else self.settings.daily_budget_usd
        whose = ({"en": "Your daily budget", "es": "Tu presupuesto diario"} if which == "visitor_day" else
                 {"en": "This app's daily budget", "es": "El presupuesto diario de esta aplicación"})
        return InvalidRequest("budget_exhausted", http_status=429, seconds=math.ceil(wait), whose=whose,
                              limit={"en": _usd(cap, "en"), "es": _usd(cap, "es")},
                              wait=_duration_words(wait), hint=self._hint(visitor, quota=False))

    def _hint(self, visitor: Visitor, quota: bool) -> dict[str, str]:
        """What the visitor can do now instead of waiting."""
        ways_en, ways_es = [], []
        if quota and visitor.kind == "anonymous" and self.settings.hf_oauth:
            ways_en.append("sign in with Hugging Face")
            ways_es.append("inicia sesión con Hugging Face")
        if self.settings.own_keys:
            ways_en.append("add your own FAL key under Advanced")
            ways_es.append("añade tu propia clave de FAL en Opciones avanzadas")
        if not ways_en:
            return {"en": "", "es": ""}
        return {"en": " To go on now, " + " or ".join(ways_en) + ".", "es": " Para seguir ahora, " + " o ".join(ways_es) + "."}


WHO = {
    "anonymous": {"en": "visitors who are not signed in", "es": "visitantes sin sesión iniciada"},
    "signed_in": {"en": "each signed-in visitor", "es": "cada visitante con sesión iniciada"},
    "api_key": {"en": "each API key", "es": "cada clave de API"},
}


def _usd(amount: float, lang: str) -> str:
    """$0.90 / 0,90 US$, as the page writes money."""
    return f"${amount:.2f}" if lang != "es" else f"{amount:.2f} US$".replace(".", ",")


def _duration_words(seconds: float, per: bool = False) -> dict[str, str]:
    """3600 -> "hour" (per) / "1 h"; 2520 -> "42 min"; 30 -> "30 s"."""
    seconds = max(1, math.ceil(seconds))
    if per:
        if seconds == 3600:
            return {"en": "hour", "es": "hora"}
        if seconds == DAY_S:
            return {"en": "day", "es": "día"}
    if seconds < 60:
        text = f"{seconds} s"
    elif seconds < 3600:
        text = f"{math.ceil(seconds / 60)} min"
    else:
        hours, minutes = divmod(math.ceil(seconds / 60), 60)
        text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return {"en": text, "es": text}
