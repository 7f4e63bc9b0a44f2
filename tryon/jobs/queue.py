"""Async jobs on Redis: the Job record and the JobQueue (a worker process renews its claims, tryon.jobs.worker).

Layout in Redis:
  tryon:job:<id>   a hash per job (its record), expiring after TRYON_JOB_TTL
  tryon:jobs       a stream of job ids, read by the consumer group "workers"

Submitting is one MULTI (hash + expiry + XADD), so a job is never queued
without its record or recorded without being queued. A worker reads with
XREADGROUP; a job whose worker died stays pending and is taken over with
XAUTOCLAIM once idle for the visibility timeout. A live worker renews its
claim (XCLAIM ... JUSTID, every held job in one call) while it waits on the provider, and every write it
makes to the record is fenced on `worker == me`, so a worker that lost its
job (paused too long, then woke up) cannot overwrite the new owner's work.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

STREAM = "tryon:jobs"
GROUP = "workers"
JOB_KEY = "tryon:job:{}"
STATUSES = ("queued", "processing", "done", "error", "cancelled")
FINISHED = ("done", "error", "cancelled")
JSON_FIELDS = ("inputs", "timings", "steps", "hold")

# Fenced write: update the record only while this worker owns the job.
_FENCED_HSET = """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# Claim: count the attempt and take ownership, unless the job is gone or already finished.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'done' or status == 'error' or status == 'cancelled' then return status end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'worker', ARGV[1], 'status', 'processing')
if redis.call('HEXISTS', KEYS[1], 'started_at') == 0 then redis.call('HSET', KEYS[1], 'started_at', ARGV[2]) end
return tostring(attempts)
"""


# Cancel: only a job no worker has claimed yet (one running may already be paid for at the vendor).
_CANCEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1], 'error_code', 'cancelled')
return 1
"""


def new_job_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


def valid_job_id(job_id: object) -> bool:
    return isinstance(job_id, str) and 16 <= len(job_id) <= 64 and all(c.isalnum() or c in "-_" for c in job_id)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Job:
    job_id: str
    status: str
    created_at: int
    inputs: list[dict[str, Any]]  # [{"field": "person", "ref": "https://..."}, ...]
    provider: str
    attempts: int = 0
    started_at: int | None = None
    provider_started_at: int | None = None
    finished_at: int | None = None
    image_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    provider_request_id: str | None = None
    worker: str | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)  # tryon.dressing's journal: each call, submitted then done
    hold: dict[str, Any] | None = None  # tryon.limits.Hold: the estimate reserved at submit, settled at the end

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> "Job":
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = data.get(name)
            if raw is None or raw == "":
                continue
            if name in JSON_FIELDS:
                values[name] = json.loads(raw)
            elif name in ("created_at", "started_at", "provider_started_at", "finished_at", "attempts"):
                values[name] = int(raw)
            else:
                values[name] = raw
        values.setdefault("inputs", [])
        values.setdefault("created_at", 0)
        values.setdefault("status", "queued")
        values.setdefault("provider", "")
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """What /job_status answers: the seed's fields first, then ours."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "image_url": self.image_url,
            "error": self.error,
            "timestamps": {
                "created_at": self.created_at,
                "started_at": self.started_at,
                "provider_started_at": self.provider_started_at,
                "finished_at": self.finished_at,
            },
            "error_code": self.error_code,
            "attempts": self.attempts,
            "provider": self.provider,
            "garments": max(0, len(self.inputs) - 1),
            "timings": self.timings or None,
        }


def _encode(fields: dict[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) if k in JSON_FIELDS else str(v) for k, v in fields.items() if v is not None}


def consumer_name() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class JobQueue:
    def __init__(self, client: redis.Redis, ttl_s: int = 86400, visibility_s: float = 30.0, max_attempts: int = 3):
        self.redis = client
        self.ttl_s = ttl_s
        self.visibility_ms = int(visibility_s * 1000)
        self.max_attempts = max_attempts
        self._fenced_hset = client.register_script(_FENCED_HSET)
        self._claim = client.register_script(_CLAIM)
        self._cancel = client.register_script(_CANCEL)
        self._group_ready = False

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    # -- the submitting side ----------------------------------------------------------------

    def submit(self, inputs: list[dict[str, Any]], provider: str, timings: dict[str, Any] | None = None,
               hold: dict[str, Any] | None = None) -> Job:
        if not self._group_ready:
            self.ensure_group()
        job = Job(job_id=new_job_id(), status="queued", created_at=now_ms(), inputs=inputs, provider=provider,
                  timings=timings or {}, hold=hold)
        key = JOB_KEY.format(job.job_id)
        fields = ("job_id", "status", "created_at", "inputs", "provider", "attempts", "timings") + (("hold",) if hold else ())
        record = _encode({k: getattr(job, k) for k in fields})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=record)
        pipe.expire(key, self.ttl_s)
        pipe.xadd(STREAM, {"job_id": job.job_id})
        pipe.execute()
        return job

    def get(self, job_id: str) -> Job | None:
        if not valid_job_id(job_id):
            return None
        data = self.redis.hgetall(JOB_KEY.format(job_id))
        return Job.from_hash(data) if data else None

    def get_many(self, job_ids: list[str]) -> list[Job | None]:
        """Several records in one round trip (a batch's looks)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(JOB_KEY.format(job_id))
        return [Job.from_hash(data) if data else None for data in pipe.execute()]

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that is still queued (True); a claimed or finished one is left as it is.
        Its stream entry stays: the worker that reads it sees `cancelled` and drops it."""
        return bool(self._cancel(keys=[JOB_KEY.format(job_id)], args=[now_ms()]))

    def waiting(self) -> int:
        """Jobs in the stream that no worker has taken yet (finished ones are deleted from it)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(STREAM)
        pipe.xpending(STREAM, GROUP)
        try:
            length, pending = pipe.execute()
        except redis.ResponseError:  # no group yet: nothing was ever taken
            return self.redis.xlen(STREAM)
        return max(0, length - int(pending.get("pending", 0)))

    def ttl(self, job_id: str) -> int:
        return self.redis.ttl(JOB_KEY.format(job_id))

    # -- the working side ---------------------------------------------------------------------

    def next_message(self, consumer: str, block_ms: int = 1000) -> tuple[str, str] | None:
        """(message id, job id): first a job whose worker went silent, else a new one."""
        if not self._group_ready:
            self.ensure_group()
        try:
            # [next id, entries] on Redis 6.2; 7.0 adds a third element (deleted ids)
            claimed = self.redis.xautoclaim(STREAM, GROUP, consumer, self.visibility_ms, "0-0", count=1)[1]
            if not claimed:
                read = self.redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=1, block=block_ms)
                claimed = read[0][1] if read else []
        except redis.ResponseError as error:
            if "NOGROUP" in str(error):  # Redis lost its data (a fresh server): start over
                self._group_ready = False
                return None
            raise
        for message_id, fields in claimed:
            if fields and "job_id" in fields:
                return message_id, fields["job_id"]
            self.redis.xack(STREAM, GROUP, message_id)  # an entry deleted under us
        return None

    def claim(self, job_id: str, consumer: str) -> str:
        """'missing', 'done', 'error', 'cancelled', or the attempt number now starting (as text)."""
        return self._claim(keys=[JOB_KEY.format(job_id)], args=[consumer, now_ms()])

    def update(self, job_id: str, consumer: str, **fields: Any) -> bool:
        """Write fields to the record if `consumer` still owns the job. False: it was taken over."""
        args: list[Any] = [consumer]
        for name, value in _encode(fields).items():
            args += [name, value]
        return bool(self._fenced_hset(keys=[JOB_KEY.format(job_id)], args=args))

    def finish(self, job_id: str, message_id: str, consumer: str, **fields: Any) -> bool:
        """Write the outcome (fenced), refresh the expiry, and take the message off the stream."""
        written = self.update(job_id, consumer, finished_at=now_ms(), **fields)
        if written:
            self.redis.expire(JOB_KEY.format(job_id), self.ttl_s)
            self.done_with(message_id)
        return written

    def done_with(self, message_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(STREAM, GROUP, message_id)
        pipe.xdel(STREAM, message_id)
        pipe.execute()

    def release(self, message_id: str, consumer: str) -> None:
        """Hand a job back at once (a worker shutting down): its message looks idle past the
        visibility timeout, so the next XAUTOCLAIM takes it without waiting."""
        self.redis.xclaim(STREAM, GROUP, consumer, 0, [message_id], idle=self.visibility_ms + 1000, justid=True)

    def renew(self, message_id: str, consumer: str) -> None:
        """Reset the message's idle time: 'still working on it'."""
        self.redis.xclaim(STREAM, GROUP, consumer, 0, [message_id], justid=True)

    def renew_many(self, message_ids: list[str], consumer: str) -> None:
        """Reset the idle time of every message a process holds, in one call per 500."""
        for start in range(0, len(message_ids), 500):
            self.redis.xclaim(STREAM, GROUP, consumer, 0, message_ids[start:start + 500], justid=True)
