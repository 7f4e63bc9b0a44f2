"""How a look is made from model calls, for sync and async alike.

- The steps: sync is the seed's chain (one call per garment, the result of call N the person of
  call N+1) on every model; async is one call with every garment, unless the model takes one
  garment per call (the dedicated try-on models), which then chain in the worker too.
- A refusal (the model's content policy, or an answer with no image) moves the look to the next
  model of the fallback list, from the step that was refused (a new step layout starts again from
  the person photo). A photo the model cannot read is not a refusal: every model would fail it.
- The journal: one entry per step, written when its request is submitted and again when it is
  done. A worker that resumes a job skips the steps already done and waits for the one in flight,
  so nothing is paid for twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .errors import ProviderError
from .models import Model
from .outfit import GarmentSpec, Outfit
from .progress import report
from .prompts import outfit_prompt, sync_prompt
from .providers.base import EditOptions, EditResult, Provider
from .providers.chain import ProviderChain

REFUSED = frozenset({"content_policy", "no_image_returned"})


@dataclass(frozen=True)
class Look:
    """One look to make: references, the garments inner to outer, and the models to try in order."""

    person: str
    garments: Sequence[tuple[GarmentSpec, str]]  # (spec, reference), inner to outer
    outfit: Outfit
    aspect_ratio: str  # what the model is asked for ("same" already made the nearest ratio)
    mode: str  # "sync" | "async"
    models: Sequence[Model | None]  # the chosen one, then the fallbacks; [None]: the provider's own
    sync_template: str


@dataclass
class Dressed:
    result: EditResult  # the last call's
    journal: list[dict[str, Any]]  # the steps that made it, in order
    passed_over: list[dict[str, Any]] = field(default_factory=list)  # {"model", "step", "reason"}
    prompts: list[str] = field(default_factory=list)
    discarded: list[dict[str, Any]] = field(default_factory=list)  # paid calls of a layout left after a refusal


def steps_for(model: Model | None, garments: Sequence, mode: str) -> list[list[int]]:
    """Indexes of the garments each call takes."""
    per_call = model.garments_per_call if model is not None else 4
    if mode == "async" and len(garments) <= per_call:
        return [list(range(len(garments)))]
    return [[n] for n in range(len(garments))]


# Errors after which a call may still be running at the vendor: counted as paid (the cap errs on the side of not spending).
LOST_TRACK = frozenset({"provider_timeout", "provider_unreachable"})


class Dresser:
    def __init__(self, provider: Provider, name: str):
        self.provider = provider
        self.name = name  # the provider's name, for steps a chain does not qualify

    def run(self, look: Look, deadline: float, journal: list[dict[str, Any]] | None = None,
            persist: Callable[[list[dict[str, Any]], str | None], None] | None = None,
            on_poll: Callable[[], None] | None = None,
            park: Callable[[str, EditOptions, float], None] | None = None) -> Dressed:
        """Make the look before `deadline` (monotonic). With `persist` (an async job), calls are
        submitted and awaited separately and every step is written down as it goes: `journal` is
        what an earlier attempt wrote. `park(request_id, options, deadline)`, once a step's request
        is submitted and written down, may raise to hand the wait to tryon.jobs.waiter (the job is
        run again from its journal when the request is done); returning means "wait here"."""
        journal = [dict(entry) for entry in journal or []]
        models = list(look.models) or [None]
        # A resumed job goes on with the model its journal was asking (not who served it: a chain may
        # have handed a step to another vendor).
        asked = journal[-1].get("asked", journal[-1].get("model")) if journal else None
        if asked in [m.id for m in models if m is not None]:
            while models[0] is not None and models[0].id != asked:
                models.pop(0)
        model = models.pop(0)
        steps = steps_for(model, look.garments, look.mode)
        if not self._fits(journal, steps, look, model):  # written for another model or layout of calls: start afresh
            journal = []
        done = [entry for entry in journal if entry.get("ref")]  # in step order; only the last may be pending
        position = len(done)
        current = done[-1]["ref"] if done else look.person
        # Calls made (and paid) for a layout a fallback then left, and the models passed over: carried
        # in the journal's entries, so a job resumed from it (a parked wait, another worker) keeps them.
        last = journal[-1] if journal else {}
        discarded: list[dict[str, Any]] = [dict(e) for e in last.get("discarded", [])]
        passed_over: list[dict[str, Any]] = [dict(e) for e in last.get("passed_over", [])]
        self._carried = (passed_over, discarded)
        prompts: list[str] = [entry.get("prompt", "") for entry in journal[:position]]
        result: EditResult | None = None
        while position < len(steps):
            indexes = steps[position]
            chunk = [look.garments[n] for n in indexes]
            last = position == len(steps) - 1
            if look.mode == "async" and len(steps) == 1:
                prompt = outfit_prompt([spec for spec, _ in chunk])
            else:
                prompt = sync_prompt(look.sync_template, chunk[0][0])
            report("applying", step=position + 1, total=len(steps), field=chunk[0][0].field)
            options = EditOptions(num_images=look.outfit.num_images if last else 1, aspect_ratio=look.aspect_ratio,
                                  same_as_person=look.outfit.aspect_ratio == "same", resolution=look.outfit.resolution,
                                  categories=tuple(spec.category for spec, _ in chunk),
                                  model=model.id if model is not None else None)
            pending = journal[position] if position < len(journal) and not journal[position].get("ref") else None
            try:
                result = self._call(prompt, current, [ref for _, ref in chunk], [spec.field for spec, _ in chunk], options, deadline, pending,
                                    journal, position, persist, on_poll, park)
            except ProviderError as error:
                if error.code not in REFUSED or not models or deadline - time.monotonic() < 1.0:
                    # The calls that made a picture were paid for all the same (the quota counts them).
                    error.paid = discarded + [entry for entry in journal[:position] if entry.get("ref")]
                    if error.code in LOST_TRACK:  # it may be running (or cancelled while it ran): the vendor may bill it
                        error.paid.append({"step": position + 1, "model": model.id if model else None, "provider": self.name,
                                           "images": options.num_images, "resolution": look.outfit.resolution})
                    raise  # no other model, or no time left for one: the refusal is the answer
                passed_over.append({"model": model.id if model else None, "step": position + 1,
                                    "reason": f"{error.code}: {error.message('en')}"})
                previous = steps
                model = models.pop(0)
                steps = steps_for(model, look.garments, look.mode)
                if steps != previous:  # another layout of calls: start again from the person
                    discarded += [entry for entry in journal[:position] if entry.get("ref")]
                    position, current, prompts = 0, look.person, []
                del journal[position:]
                continue
            entry = {"step": position + 1, "model": result.model, "asked": model.id if model else None,
                     "provider": result.provider or self.name, "request_id": result.request_id, "ref": result.ref,
                     "ms": round(result.duration_ms, 1), "images": len(result.refs), "resolution": look.outfit.resolution,
                     "garments": [spec.field for spec, _ in chunk], "prompt": prompt}
            entry.update(self._carry())
            if result.skipped:  # a failover chain passed over these providers for this step
                entry["skipped"] = list(result.skipped)
            if last:
                entry["refs"] = list(result.refs)
            del journal[position:]
            journal.append(entry)
            if persist is not None:
                persist(journal, None)
            prompts.append(prompt)
            current = result.ref
            position += 1
        if result is None:  # every step was done by an earlier attempt
            final = journal[-1]
            result = EditResult(final["ref"], 0.0, final.get("request_id"), provider=final.get("provider"),
                                variants=tuple(final.get("refs") or [final["ref"]]), model=final.get("model"))
        return Dressed(result, journal, passed_over, prompts, discarded)

    def _carry(self) -> dict[str, Any]:
        passed_over, discarded = getattr(self, "_carried", ([], []))
        carried: dict[str, Any] = {}
        if passed_over:
            carried["passed_over"] = [dict(e) for e in passed_over]
        if discarded:  # without their own carried copies: each is a whole entry already
            carried["discarded"] = [{k: v for k, v in e.items() if k not in ("passed_over", "discarded")} for e in discarded]
        return carried

    @staticmethod
    def _fits(journal: list[dict[str, Any]], steps: list[list[int]], look: Look, model: Model | None) -> bool:
        """A journal an earlier attempt wrote fits this run when each entry took the same garments
        on the same model (an empty journal fits anything)."""
        if len(journal) > len(steps):
            return False
        for entry, indexes in zip(journal, steps):
            fields = [look.garments[n][0].field for n in indexes]
            if entry.get("garments", fields) != fields or entry.get("asked", entry.get("model")) != (model.id if model else None):
                return False
        return True

    def _call(self, prompt: str, person: str, garments: list[str], fields: list[str], options: EditOptions, deadline: float,
              pending: dict[str, Any] | None, journal: list[dict[str, Any]], position: int,
              persist: Callable | None, on_poll: Callable | None, park: Callable | None = None) -> EditResult:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderError("provider_timeout")
        if persist is None or not hasattr(self.provider, "submit_edit"):
            return self.provider.edit(prompt, person, garments, timeout_s=remaining, options=options)
        request_id = pending.get("request_id") if pending else None
        if not request_id:
            request_id = self.provider.submit_edit(prompt, person, garments, options)
            del journal[position:]
            journal.append({"step": position + 1, "asked": options.model, "request_id": request_id,
                            "garments": fields, **self._carry()})
            persist(journal, request_id)
        if park is not None:
            park(request_id, options, deadline)  # may raise: the waiter holds the wait, no thread does

        def resubmitted(new_id: str) -> None:  # a chain moved the request to another vendor
            journal[position] = {**journal[position], "request_id": new_id}
            persist(journal, new_id)

        failover = {}
        if isinstance(self.provider, ProviderChain):
            failover = {"on_resubmit": resubmitted, "resubmit_with": (prompt, person, garments, options)}
        return self.provider.await_edit(request_id, max(1.0, deadline - time.monotonic()), on_poll=on_poll,
                                        options=options, **failover)
