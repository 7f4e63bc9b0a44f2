"""Workers for async jobs: threads inside the app, or a process of their own.

    python -m tryon.worker        # TRYON_WORKERS threads, on REDIS_URL (or this machine's embedded Redis)

A worker takes the next job (one whose worker went silent first), claims it,
runs it through the shared service (TryOnService.run_job) and writes the
outcome, all fenced on owning the job. Redis hiccups leave the job pending
for another attempt; a job that keeps losing its workers ends in `error`
after TRYON_JOB_MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import redis

from ..config import Settings
from ..errors import ConfigError, TryOnError
from .queue import JobQueue, consumer_name, now_ms
from ..service import TryOnService

log = logging.getLogger(__name__)


class LostJob(RuntimeError):
    """The job's record names another worker now: this attempt must stop making calls."""


class Worker(threading.Thread):
    def __init__(self, service: TryOnService, stop: threading.Event, number: int = 0):
        super().__init__(name=f"tryon-worker-{number}", daemon=True)
        self.service = service
        self.queue: JobQueue = service.queue
        self.stopping = stop
        self.consumer = consumer_name()
        self.current: str | None = None  # the message being worked on, for release at shutdown

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self.queue.next_message(self.consumer, block_ms=500)
                if message is not None:
                    self.current = message[0]
                    try:
                        self.process(*message)
                    finally:
                        self.current = None
            except redis.RedisError as error:
                log.warning("worker %s: Redis unavailable (%s); retrying", self.consumer, type(error).__name__)
                self.stopping.wait(1.0)
            except Exception:
                log.exception("worker %s: unexpected failure", self.consumer)
                self.stopping.wait(1.0)

    def process(self, message_id: str, job_id: str) -> None:
        queue, me = self.queue, self.consumer
        state = queue.claim(job_id, me)
        if state in ("missing", "done", "error", "cancelled"):  # expired, finished by an earlier owner, or cancelled
            queue.done_with(message_id)
            return
        attempt = int(state)
        job = queue.get(job_id)
        if job is None:
            queue.done_with(message_id)
            return
        if attempt > queue.max_attempts:
            error = TryOnError("gave_up", attempts=queue.max_attempts)
            if queue.finish(job_id, message_id, me, status="error", error=error.message(), error_code=error.code):
                self.service.record("async", error.code, job.timings, max(0, len(job.inputs) - 1))
                self.service.settle_job(job, None)
            return
        lease = queue.lease(message_id, me)
        log.info("job %s: attempt %d on %s", job_id, attempt, me)

        def persist(steps: list[dict], request_id: str | None) -> None:
            # Each step as it is submitted and done; the provider is recorded with a new request id,
            # so a resumed job polls the vendor that has it and pays for no step twice.
            fields: dict = {"steps": steps}
            if request_id is not None:
                fields.update(provider_request_id=request_id, provider=self.service.served_by(request_id))
                if job.provider_started_at is None:
                    fields["provider_started_at"] = job.provider_started_at = now_ms()
            if not queue.update(job_id, me, **fields):
                # Another worker took the job over (this one was silent too long): stop before paying again.
                raise LostJob(job_id)

        garments = max(0, len(job.inputs) - 1)
        try:
            image_url, timings = self.service.run_job(job, persist=persist, on_poll=lease.renew)
        except TryOnError as error:
            if queue.finish(job_id, message_id, me, status="error", error=error.message(), error_code=error.code):
                self.service.record("async", error.code, job.timings, garments)
                self.service.settle_job(job, None, error)
            return
        except redis.RedisError:
            raise  # leave the job pending: another attempt will resume it
        except LostJob:
            log.warning("job %s: taken over by another worker; this attempt stops", job_id)
            return
        except Exception:
            log.exception("job %s failed", job_id)
            error = TryOnError("internal_error")
            if queue.finish(job_id, message_id, me, status="error", error=error.message(), error_code=error.code):
                self.service.record("async", error.code, job.timings, garments)
                self.service.settle_job(job, None)
            return
        if queue.finish(job_id, message_id, me, status="done", image_url=image_url, timings=timings):
            self.service.record("async", "ok", timings, garments)
            self.service.settle_job(job, timings)
        else:
            log.warning("job %s: finished, but another worker owns it now; keeping its outcome", job_id)


class WorkerPool:
    def __init__(self, service: TryOnService, size: int):
        self.stop_event = threading.Event()
        self.workers = [Worker(service, self.stop_event, n) for n in range(size)]

    def start(self) -> "WorkerPool":
        for worker in self.workers:
            worker.start()
        return self

    def stop(self, grace_s: float = 20.0) -> None:
        """Take no new job; let jobs in flight finish for up to `grace_s`; hand the rest back."""
        self.stop_event.set()
        deadline = time.monotonic() + grace_s
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            message_id = worker.current
            if worker.is_alive() and message_id is not None:
                try:
                    worker.queue.release(message_id, worker.consumer)
                    log.info("shutdown: handed job message %s back to the queue", message_id)
                except redis.RedisError:
                    pass  # it will be taken over after the visibility timeout instead


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from ..limits import Ledger
    from ..metrics import Metrics
    from ..providers import build_provider
    from ..redis_server import connect

    try:
        settings = Settings.from_env()
        handle = connect(settings.redis_url, settings.data_dir)
        queue = JobQueue(handle.client, settings.job_ttl_s, settings.job_visibility_s, settings.job_max_attempts)
        # The same metrics and ledger as the app's: a job finished here is counted and settled there.
        service = TryOnService(settings, build_provider(settings, handle.client), queue, metrics=Metrics(handle.client),
                               ledger=Ledger(handle.client, settings))
    except ConfigError as error:
        print(f"tryon worker: configuration error: {error}", file=sys.stderr)
        return 2
    pool = WorkerPool(service, max(1, settings.workers)).start()
    log.info("%d worker(s) on %s, provider %s", len(pool.workers), handle.description, settings.provider)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    log.info("stopping: no new jobs; up to %.0f s for jobs in flight", settings.shutdown_grace_s)
    pool.stop(settings.shutdown_grace_s)
    handle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
