"""Catalogue batches: many persons x many outfits, each look an ordinary async job.

A batch is a record in Redis beside its jobs, and every look is a job of tryon.jobs.queue, so
each keeps the jobs' promises (durable, resumed by another worker, never paid twice).

Layout in Redis (both expire with the jobs, TRYON_JOB_TTL):
  tryon:batch:<id>   a hash: "meta" (JSON: the inputs' digests, the outfits, options, model,
                     estimate, owner) and "cell:<n>" (JSON: person, outfit and the job ids it
                     ran as, the newest last: a retry adds one)

Submitting checks everything before the first upload: the counts (1-20 persons, 1-50 outfits of
1-4 garments, at most TRYON_BATCH_MAX_LOOKS looks), the model, and the whole batch's quota and
budget (a reservation per look, all or none). Then each photo is uploaded once and the looks
are queued. Cancel stops the looks no worker has taken (their reservations are released); the
ones running finish, since the vendor may already bill them. Retry queues a new job for each
look that failed or was cancelled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..errors import InvalidRequest, TryOnError
from ..limits import Hold, Visitor
from ..outfit import Outfit
from .queue import FINISHED, Job, new_job_id, now_ms, valid_job_id

if TYPE_CHECKING:  # the service imports this module
    from ..images import ImageSource
    from ..service import TryOnService, Upload

BATCH_KEY = "tryon:batch:{}"
MAX_PERSONS = 20
MAX_OUTFITS = 50
MAX_GARMENTS_PER_OUTFIT = 4


@dataclass(frozen=True)
class OutfitRequest:
    """One outfit of a batch: 1-4 garment pictures with their categories and descriptions (by
    position; missing ones are "auto" and empty), as a single look's controls take them."""

    garments: Sequence["ImageSource"]
    categories: Sequence[str] = ()
    descriptions: Sequence[str] = ()

    def outfit(self, options: Outfit) -> Outfit:
        """The batch's options with this outfit's garments' details (checked as a single look's are)."""
        parsed = Outfit.parse(list(self.categories), list(self.descriptions))
        return Outfit(parsed.categories, parsed.descriptions, (), options.num_images, options.aspect_ratio,
                      options.resolution, options.model)


@dataclass
class Cell:
    person: int  # 1-based
    outfit: int  # 1-based
    jobs: list[str] = field(default_factory=list)  # every job this look ran as, the newest last

    @property
    def job_id(self) -> str:
        return self.jobs[-1]

    def to_json(self) -> str:
        return json.dumps({"person": self.person, "outfit": self.outfit, "jobs": self.jobs})

    @classmethod
    def from_json(cls, raw: str) -> "Cell":
        data = json.loads(raw)
        return cls(int(data["person"]), int(data["outfit"]), [str(j) for j in data["jobs"]])


@dataclass
class Batch:
    batch_id: str
    meta: dict[str, Any]
    cells: list[Cell]

    @property
    def created_at(self) -> int:
        return int(self.meta.get("created_at", 0))


class BatchStore:
    """The batch records: one hash each, written whole at submit, a cell at a time by retry."""

    def __init__(self, client, ttl_s: int):
        self.redis = client
        self.ttl_s = ttl_s

    def create(self, batch: Batch) -> None:
        key = BATCH_KEY.format(batch.batch_id)
        mapping = {"meta": json.dumps(batch.meta, separators=(",", ":"))}
        mapping.update({f"cell:{n}": cell.to_json() for n, cell in enumerate(batch.cells)})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, self.ttl_s)
        pipe.execute()

    def get(self, batch_id: str) -> Batch | None:
        if not valid_job_id(batch_id):
            return None
        data = self.redis.hgetall(BATCH_KEY.format(batch_id))
        if not data or "meta" not in data:
            return None
        cells = sorted(((int(k.split(":", 1)[1]), Cell.from_json(v)) for k, v in data.items() if k.startswith("cell:")))
        return Batch(batch_id, json.loads(data["meta"]), [cell for _, cell in cells])

    def save_cell(self, batch_id: str, index: int, cell: Cell) -> None:
        key = BATCH_KEY.format(batch_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, f"cell:{index}", cell.to_json())
        pipe.expire(key, self.ttl_s)  # a retried batch lives as long as its newest looks
        pipe.execute()

    def update_meta(self, batch_id: str, **changes: Any) -> None:
        batch = self.get(batch_id)
        if batch is not None:
            self.redis.hset(BATCH_KEY.format(batch_id), "meta", json.dumps({**batch.meta, **changes}, separators=(",", ":")))


class Batches:
    """The batch operations of the one service layer (the page, gradio_client, REST and MCP)."""

    def __init__(self, service: "TryOnService"):
        self.service = service
        self.store: BatchStore | None = None  # made on first use: the service's queue may be set after it

    # -- submit ----------------------------------------------------------------------------

    def submit(self, persons: Sequence["ImageSource | None"], outfits: Sequence[OutfitRequest], options: Outfit | None = None,
               visitor: Visitor | None = None) -> dict[str, Any]:
        service, store = self.service, self._store()
        if visitor is not None and visitor.pays_own_way:
            raise InvalidRequest("own_key_sync_only")  # the workers would need the key: it is never stored
        options = options or Outfit()
        persons = [p for p in persons or [] if not _empty(p)]
        looks = self._check_counts(persons, outfits)
        per_outfit = [request.outfit(options) for request in outfits]
        garments = [[g for g in request.garments if not _empty(g)] for request in outfits]
        models = service.choose_models(options)
        estimate = self.estimate(len(persons), [len(g) for g in garments], options)
        received_ts, started = now_ms(), time.perf_counter()
        holds = self._reserve(visitor, per_outfit, garments, len(persons), models)
        queued = 0
        try:
            person_uploads = self._upload([(f"persons_{n}", p) for n, p in enumerate(persons, start=1)])
            outfit_uploads = [self._upload([(f"garment_{k}", g) for k, g in enumerate(items, start=1)], f"outfit_{m}")
                              for m, items in enumerate(garments, start=1)]
            inputs_ms = round((time.perf_counter() - started) * 1000, 1)
            cells: list[Cell] = []
            for p, person in enumerate(person_uploads, start=1):
                for m, (outfit, uploads) in enumerate(zip(per_outfit, outfit_uploads), start=1):
                    hold = holds[len(cells)]
                    job = service.enqueue([person, *uploads], outfit, models, hold, received_ts, inputs_ms)
                    queued += 1
                    cells.append(Cell(p, m, [job.job_id]))
        except BaseException:
            for hold in holds[queued:]:
                service._settle(hold, [])  # never queued: nothing will be spent
            raise
        meta = {
            "created_at": received_ts,
            "persons": [{"n": n, "sha256": u.image.digest} for n, u in enumerate(person_uploads, start=1)],
            "outfits": [{"n": m, "garments": [{"slot": k, "sha256": u.image.digest,
                                               "category": outfit.categories.get(u.field, "auto"),
                                               "description": outfit.descriptions.get(u.field, "")}
                                              for k, u in enumerate(uploads, start=1)]}
                        for m, (outfit, uploads) in enumerate(zip(per_outfit, outfit_uploads), start=1)],
            "options": options.public(),
            "model": models[0].id if models[0] else None,
            "estimate": estimate,
            "looks": looks,
        }
        batch = Batch(new_job_id(), meta, cells)
        store.create(batch)
        return self.status(batch.batch_id)

    def estimate(self, persons: int, garments_per_outfit: Sequence[int], options: Outfit) -> dict[str, Any]:
        """What the whole batch should cost: every outfit's async estimate, once per person."""
        each = [self.service.estimate(options, max(1, g), "async") for g in garments_per_outfit]
        usd = None if any(e["usd"] is None for e in each) else round(persons * sum(e["usd"] for e in each), 4)
        return {"looks": persons * len(each), "calls": persons * sum(int(e["calls"]) for e in each),
                "images": persons * sum(int(e["images"]) for e in each), "usd": usd,
                "model": each[0]["model"] if each else None, "offline_preview": self.service.provider.is_preview}

    def _check_counts(self, persons: Sequence[Any], outfits: Sequence[OutfitRequest]) -> int:
        if not persons:
            raise InvalidRequest("batch_no_person")
        if len(persons) > MAX_PERSONS:
            raise InvalidRequest("batch_too_many_persons", count=len(persons), limit=MAX_PERSONS)
        if not outfits:
            raise InvalidRequest("batch_no_outfit")
        if len(outfits) > MAX_OUTFITS:
            raise InvalidRequest("batch_too_many_outfits", count=len(outfits), limit=MAX_OUTFITS)
        for m, request in enumerate(outfits, start=1):
            count = sum(1 for g in request.garments if not _empty(g))
            if not 1 <= count <= MAX_GARMENTS_PER_OUTFIT:
                raise InvalidRequest("batch_outfit_garments", outfit=m, count=count, limit=MAX_GARMENTS_PER_OUTFIT)
        looks = len(persons) * len(outfits)
        limit = self.service.settings.batch_max_looks
        if looks > limit:
            raise InvalidRequest("batch_too_large", looks=looks, persons=len(persons), outfits=len(outfits), limit=limit)
        return looks

    def _reserve(self, visitor: Visitor | None, per_outfit: list[Outfit], garments: list[list[Any]], persons: int,
                 models) -> list[Hold | None]:
        """A reservation for every look, or none: the first refusal releases the ones made."""
        holds: list[Hold | None] = []
        try:
            for _ in range(persons):
                for outfit, items in zip(per_outfit, garments):
                    holds.append(self.service._hold(visitor, outfit, len(items), "async", models))
        except TryOnError:
            for hold in holds:
                self.service._settle(hold, [])
            raise
        return holds

    def _upload(self, inputs: list[tuple[str, Any]], group: str | None = None) -> list["Upload"]:
        """Upload a group in parallel; an error names the person, or the outfit and its garment."""
        try:
            return self.service.upload_all(inputs)
        except TryOnError as error:
            if group is not None:
                raise error.for_field(f"{group}.{error.field}" if error.field else group) from None
            raise

    # -- read --------------------------------------------------------------------------------

    def _store(self) -> BatchStore:
        queue = self.service.queue
        if queue is None:
            raise InvalidRequest("async_unavailable", http_status=503)
        if self.store is None or self.store.redis is not queue.redis:
            self.store = BatchStore(queue.redis, queue.ttl_s)
        return self.store

    def get(self, batch_id: str) -> Batch:
        batch = self._store().get(batch_id) if isinstance(batch_id, str) else None
        if batch is None:
            raise InvalidRequest("batch_not_found", http_status=404)
        return batch

    def looks(self, batch: Batch) -> list[tuple[Cell, Job | None]]:
        jobs = self.service.queue.get_many([cell.job_id for cell in batch.cells])
        return list(zip(batch.cells, jobs))

    def status(self, batch_id: str) -> dict[str, Any]:
        """The batch and every look: status, error, picture URLs, cost; counts by status."""
        batch = self.get(batch_id)
        cells, counts, spent = [], {s: 0 for s in ("queued", "processing", "done", "error", "cancelled")}, 0.0
        for cell, job in self.looks(batch):
            status = job.status if job is not None else "expired"
            counts[status] = counts.get(status, 0) + 1
            shown: dict[str, Any] = {"person": cell.person, "outfit": cell.outfit, "status": status,
                                     "job_id": cell.job_id, "tries": len(cell.jobs)}
            if job is not None:
                shown.update(error=job.error, error_code=job.error_code, attempts=job.attempts)
                if job.status == "done":
                    cost = job.timings.get("cost_usd")
                    spent += float(cost or 0.0)
                    refs = list(job.timings.get("variant_refs") or [job.image_url])
                    shown.update(cost_usd=cost, model=job.timings.get("model"), ms=job.timings.get("total_backend_ms"),
                                 variants=len(refs), refs=refs,
                                 # the pictures a browser can load (the offline preview's are in the archive)
                                 image_urls=[ref for ref in refs if str(ref).startswith("https://")])
            cells.append(shown)
        finished = all(c["status"] in (*FINISHED, "expired") for c in cells)
        return {
            "batch_id": batch.batch_id,
            "created_at": batch.created_at,
            "persons": len(batch.meta["persons"]),
            "outfits": len(batch.meta["outfits"]),
            "looks": len(cells),
            "model": batch.meta.get("model"),
            "options": batch.meta.get("options"),
            "estimate": batch.meta.get("estimate"),
            "cost_usd": round(spent, 6),
            "counts": counts,
            "finished": finished,
            "cancelled": bool(batch.meta.get("cancelled_at")),
            "offline_preview": self.service.provider.is_preview,
            "cells": cells,
            "archive": f"/api/batches/{batch.batch_id}/archive",
        }

    # -- change ------------------------------------------------------------------------------

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel every look no worker has taken; release their reservations."""
        batch = self.get(batch_id)
        for cell, job in self.looks(batch):
            if job is not None and job.status == "queued" and self.service.queue.cancel(job.job_id):
                if job.hold:
                    self.service._settle(Hold.from_public(job.hold), [])
        self._store().update_meta(batch_id, cancelled_at=now_ms())
        return self.status(batch_id)

    def retry(self, batch_id: str, visitor: Visitor | None = None, cells: Sequence[int] | None = None) -> dict[str, Any]:
        """A new job for each look that ended in error or was cancelled (or expired), with its own
        reservation; `cells` (0-based, in the grid's order) narrows it to those."""
        if visitor is not None and visitor.pays_own_way:
            raise InvalidRequest("own_key_sync_only")
        self.get(batch_id)  # 404 before waiting for anything
        # One retry of a batch at a time, across replicas: each reads the looks afresh under the
        # lock, so two presses (or sixteen requests) at once queue each failed look once.
        with self._store().redis.lock(BATCH_KEY.format(batch_id) + ":retry", timeout=60, blocking_timeout=30):
            return self._retry(batch_id, visitor, cells)

    def _retry(self, batch_id: str, visitor: Visitor | None, cells: Sequence[int] | None) -> dict[str, Any]:
        batch = self.get(batch_id)
        service = self.service
        wanted = None if cells is None else set(cells)
        again = [(n, cell, job) for n, (cell, job) in enumerate(self.looks(batch))
                 if (wanted is None or n in wanted) and (job is None or job.status in ("error", "cancelled"))]
        for n, cell, job in again:
            source = job or service.queue.get(cell.jobs[0])
            if source is None:  # every record of this look expired: its inputs are gone too
                continue
            outfit = _outfit_of(source)
            models = service.choose_models(outfit)
            hold = service._hold(visitor, outfit, len(source.inputs) - 1, "async", models)
            try:
                fresh = service.queue.submit(source.inputs, service.provider.name, _fresh_timings(source.timings),
                                             hold=hold.public() if hold else None)
            except BaseException:
                service._settle(hold, [])
                raise
            cell.jobs.append(fresh.job_id)
            self._store().save_cell(batch_id, n, cell)
        if again:
            self._store().update_meta(batch_id, cancelled_at=None)
        return self.status(batch_id)

    # -- the archive ---------------------------------------------------------------------------

    def archive(self, batch_id: str) -> Iterator[bytes]:
        """The batch as a ZIP, built while it is sent (tryon.jobs.archive)."""
        from .archive import ArchiveLook, archive_chunks

        batch = self.get(batch_id)
        status = self.status(batch_id)
        looks = []
        for (cell, job), shown in zip(self.looks(batch), status["cells"]):
            refs = tuple(job.timings.get("variant_refs") or [job.image_url]) if job is not None and job.status == "done" else ()
            looks.append(ArchiveLook(cell.person, cell.outfit, shown["status"], refs, self._recipe(batch, cell, job)))
        header = {"batch_id": batch.batch_id, "created_at": batch.created_at, "persons": status["persons"],
                  "outfits": status["outfits"], "model": status["model"], "options": status["options"],
                  "estimate": status["estimate"], "cost_usd": status["cost_usd"], "counts": status["counts"],
                  "offline_preview": status["offline_preview"]}
        return archive_chunks(header, looks, self.service._fetch_result)

    def _recipe(self, batch: Batch, cell: Cell, job: Job | None) -> dict[str, Any]:
        """What re-runs the look later: the inputs by digest, garments in the order worn, model,
        prompt, seed (None: the model takes none), options; and what this run took and cost."""
        person = batch.meta["persons"][cell.person - 1]
        outfit = batch.meta["outfits"][cell.outfit - 1]
        timings = job.timings if job is not None else {}
        return {
            "person_sha256": person["sha256"],
            "garments": outfit["garments"],
            "order": [item.get("field") for item in timings.get("order") or []],
            "model": timings.get("model") or batch.meta.get("model"),
            "prompt": (timings.get("prompts") or [None])[-1],
            "seed": timings.get("seed"),
            "options": batch.meta.get("options"),
            "job_id": cell.job_id,
            "tries": len(cell.jobs),
            "error": job.error if job is not None else "expired",
            "error_code": job.error_code if job is not None else "expired",
            "cost_usd": timings.get("cost_usd"),
            "total_backend_ms": timings.get("total_backend_ms"),
            "fal_duration_ms": timings.get("fal_duration_ms"),
            "queue_wait_ms": timings.get("queue_wait_ms"),
        }


def _outfit_of(job: Job) -> Outfit:
    chosen = job.timings.get("options") or {}
    return Outfit(num_images=int(chosen.get("num_images", 1)), aspect_ratio=chosen.get("aspect_ratio", "same"),
                  resolution=chosen.get("resolution", "1K"), model=job.timings.get("model_requested"))


# What a job's record says before it runs (tryon.service.enqueue); a retry starts from that, not from the failed run's.
_BEFORE_RUN = ("mode", "provider", "be_received_ts", "inputs_ms", "garments", "uploads", "order", "options", "prompts",
               "model_requested", "models_to_try", "estimate")


def _fresh_timings(timings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in timings.items() if k in _BEFORE_RUN}


def _empty(source: object) -> bool:
    return source is None or (isinstance(source, (str, bytes)) and not source)
