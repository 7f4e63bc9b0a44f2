"""Failover: several remote providers behind the one Provider interface, tried in order.

`TRYON_PROVIDER=fal,replicate` builds a ProviderChain. A call goes to the first provider whose
circuit breaker lets it through; on an outage (5xx after the client's own retries, no answer,
429 after the client's own back-off, a rejected key) the call moves on to the next one, and the
result says who served it and why the others were passed over. A rejected input is not an outage:
the same photo would be rejected everywhere, so it is raised as it is. Built with the app's Redis,
the breakers live there (breaker.SharedCircuitBreaker): an outage one replica sees, all replicas skip.

References are the members' own (a FAL CDN URL, a Replicate file URL, a data: URL). When a call
moves to another provider, the photos it was given are uploaded again to that provider if we
still hold them (Replicate's file URLs need its token to read); result URLs are public and are
passed on as they are. Async request ids are qualified, "replicate:<id>", so a resumed job polls
the vendor that has it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

from ..cache import TTLCache
from ..errors import ProviderError
from ..images import NormalizedImage
from ..models import get, known
from .base import EditOptions, EditResult, Provider
from .breaker import CircuitBreaker, SharedCircuitBreaker
from .download import ResultDownloader

if TYPE_CHECKING:
    from redis import Redis

# Errors that say "this provider is down or refusing us", not "this request is bad".
OUTAGES = {"provider_unavailable", "provider_unreachable", "provider_timeout", "provider_busy",
           "provider_auth", "provider_failed", "bad_result_image"}


def _reason(error: ProviderError) -> str:
    return f"{error.code}: {error.message('en')}"


class ProviderChain:
    is_preview = False

    def __init__(self, providers: Sequence[Provider], failures: int = 3, cooldown_s: float = 60.0,
                 clock: Callable[[], float] | None = None, redis: "Redis | None" = None):
        """With `redis`, each member's breaker lives there (`tryon:breaker:<name>`), shared by every
        process of the app; without, in this process (`clock` defaults to Redis's TIME, or to
        `time.monotonic` in memory)."""
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        if any(p.is_preview for p in providers):
            raise ValueError("the offline preview cannot be part of a failover chain")
        self.members = list(providers)
        self.by_name = {p.name: p for p in providers}
        if redis is not None:
            self.breakers = {p.name: SharedCircuitBreaker(redis, p.name, failures, cooldown_s, clock) for p in providers}
        else:
            self.breakers = {p.name: CircuitBreaker(failures, cooldown_s, clock or time.monotonic) for p in providers}
        self.name = ",".join(p.name for p in providers)
        self.label = " → ".join(p.label for p in providers)
        ttls = [p.upload_ttl_s for p in providers]
        self.upload_ttl_s = None if None in ttls else min(ttls)
        self._photos: TTLCache[tuple[str, NormalizedImage]] = TTLCache(capacity=512)  # ref -> (owner, photo)
        self._copies: TTLCache[str] = TTLCache(capacity=1024)  # (provider, digest) -> that provider's ref
        self._skips: TTLCache[tuple] = TTLCache(capacity=1024)  # request id -> providers skipped at submit
        self._downloads = ResultDownloader()

    # -- the Provider interface -----------------------------------------------------------

    def upload(self, image: NormalizedImage) -> str:
        ref, _ = self._first_that_works(lambda provider, _budget: self._upload_to(provider, image), None)
        return ref

    def edit(self, prompt: str, person: str, garments: Sequence[str], timeout_s: float | None = None,
             options: EditOptions | None = None) -> EditResult:
        def attempt(provider, budget):
            result = provider.edit(prompt, *self._refs_for(provider, person, garments), timeout_s=budget, options=options)
            return replace(result, provider=provider.name)

        result, skipped = self._first_that_works(attempt, timeout_s, first=self._host_of(options))
        return replace(result, skipped=skipped)

    def fetch(self, ref: str) -> bytes:
        return self._downloads.fetch(ref)

    # -- resumable halves: ids are "<provider>:<its id>" ------------------------------------

    def submit_edit(self, prompt: str, person: str, garments: Sequence[str], options: EditOptions | None = None,
                    exclude: Sequence[str] = ()) -> str:
        def attempt(provider, _budget):
            return f"{provider.name}:{provider.submit_edit(prompt, *self._refs_for(provider, person, garments), options)}"

        qualified, skipped = self._first_that_works(attempt, None, exclude, first=self._host_of(options))
        self._skips.put(qualified, skipped)  # reported with the result by await_edit
        return qualified

    def await_edit(self, qualified_id: str, timeout_s: float, started: float | None = None, on_poll=None,
                   on_resubmit: Callable[[str], None] | None = None, resubmit_with: tuple | None = None,
                   options: EditOptions | None = None) -> EditResult:
        """Wait for a request at the provider named in its id. With `resubmit_with` = (prompt,
        person, garments, options), an outage there moves the request to the next provider (reported
        through `on_resubmit`) within the same deadline."""
        started = time.perf_counter() if started is None else started
        deadline = time.monotonic() + timeout_s
        skipped: list[dict] = list(self._skips.get(qualified_id) or ())
        tried: list[str] = []
        while True:
            name, request_id = self.split(qualified_id)
            provider = self.by_name.get(name)
            if provider is None:
                raise ProviderError("provider_failed", reason=f"this job was sent to {name}, which is no longer configured")
            tried.append(name)
            remaining = max(0.5, deadline - time.monotonic())
            try:
                result = provider.await_edit(request_id, remaining, started=started, on_poll=on_poll, options=options)
                self.breakers[name].succeeded()
                return replace(result, provider=name, skipped=tuple(skipped))
            except ProviderError as error:
                if error.code not in OUTAGES:
                    self.breakers[name].succeeded()
                    raise
                self.breakers[name].failed()
                if resubmit_with is None or deadline - time.monotonic() < 1.0:
                    raise
                skipped.append({"provider": name, "reason": _reason(error)})
                try:
                    qualified_id = self.submit_edit(*resubmit_with, exclude=tried)
                except ProviderError:
                    raise error from None
                skipped.extend(self._skips.get(qualified_id) or ())
                if on_resubmit is not None:
                    on_resubmit(qualified_id)

    def can_poll(self, qualified_id: str) -> bool:
        """Whether the provider holding the request can be waited on by the waiter (tryon.jobs.waiter)."""
        try:
            name, _ = self.split(qualified_id)
        except ProviderError:
            return False
        return hasattr(self.by_name.get(name), "poll")

    async def poll(self, qualified_id: str, options: EditOptions | None = None) -> bool:
        name, request_id = self.split(qualified_id)
        return await self.by_name[name].poll(request_id, options)

    @staticmethod
    def split(qualified_id: str) -> tuple[str, str]:
        name, sep, request_id = qualified_id.partition(":")
        if not sep:
            raise ProviderError("provider_failed", reason="a request id without its provider")
        return name, request_id

    def served_by(self, qualified_id: str) -> str:
        return self.split(qualified_id)[0]

    def health(self) -> list[dict]:
        """Each member's breaker, for the UI and /api/metrics."""
        health = []
        for p in self.members:
            state, retry_in = self.breakers[p.name].status()  # one read: the two always agree
            health.append({"provider": p.name, "label": p.label, "state": state, "retry_in_s": round(retry_in, 1)})
        return health

    # -- helpers --------------------------------------------------------------------------

    def _host_of(self, options: EditOptions | None) -> str | None:
        """The member that runs the model asked for (a Replicate model goes to Replicate first)."""
        model = options.model if options is not None else None
        return get(model).provider if model and known(model) and get(model).provider in self.by_name else None

    def _first_that_works(self, attempt, timeout_s: float | None, exclude: Sequence[str] = (), first: str | None = None):
        """(what attempt returned, the providers skipped and why), trying members in order
        (`first`, the member that runs the model asked for, before the others)."""
        skipped: list[dict] = []
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        candidates = sorted((p for p in self.members if p.name not in exclude), key=lambda p: p.name != first)
        last_error: ProviderError | None = None
        for index, provider in enumerate(candidates):
            breaker = self.breakers[provider.name]
            if not breaker.allow():
                skipped.append({"provider": provider.name, "reason": f"circuit open: {provider.name} kept failing; "
                                                                     f"next try in {breaker.retry_in():.0f} s"})
                continue
            budget = None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Leave the providers after this one a fair share of the time, so a hang here
                # cannot eat the whole budget.
                later = sum(1 for p in candidates[index + 1:] if self.breakers[p.name].state != "open")
                budget = remaining / (later + 1)
            try:
                value = attempt(provider, budget)
            except ProviderError as error:
                if error.code not in OUTAGES:
                    breaker.succeeded()  # it answered; the request itself is bad
                    raise
                breaker.failed()
                skipped.append({"provider": provider.name, "reason": _reason(error)})
                last_error = error
                continue
            breaker.succeeded()
            return value, tuple(skipped)
        if last_error is None:
            wait = min((self.breakers[p.name].retry_in() for p in candidates), default=0.0)
            raise ProviderError("providers_paused", http_status=503, seconds=max(1.0, wait))
        if len(self.members) == 1:
            raise last_error
        summary = "; ".join(f"{s['provider']}: {s['reason'].split(': ', 1)[-1]}" for s in skipped)
        raise ProviderError("all_providers_failed", http_status=last_error.http_status, summary=summary)

    def _upload_to(self, provider: Provider, image: NormalizedImage) -> str:
        ref = provider.upload(image)
        self._photos.put(ref, (provider.name, image))
        self._copies.put((provider.name, image.digest), ref)
        return ref

    def _refs_for(self, provider: Provider, person: str, garments: Sequence[str]) -> tuple[str, list[str]]:
        """The references as `provider` can read them: our photos uploaded there if needed."""
        def translate(ref: str) -> str:
            held = self._photos.get(ref)
            if held is None or held[0] == provider.name:
                return ref  # a result URL (public) or already this provider's
            copy = self._copies.get((provider.name, held[1].digest))
            return copy if copy is not None else self._upload_to(provider, held[1])

        return translate(person), [translate(g) for g in garments]
