"""Workers for async jobs: threads inside the app, or a process of their own.

    python -m tryon.worker        # TRYON_WORKERS threads, on REDIS_URL (or this machine's embedded Redis)

One WorkerPool per process, as plain nouns:
- the feeder takes the next job from the queue (one whose worker went silent first) whenever the
  provider has room: a process holds at most its provider's concurrency in looks
  (TRYON_FAL_CONCURRENCY, ...; Settings.jobs_in_flight), whatever its thread count;
- a worker thread claims the job and runs it through the shared service (TryOnService.run_job)
  up to the provider's answer: it submits the step, writes the request id down, and parks the
  wait with the waiter (tryon.jobs.waiter) instead of blocking on it; when the request is done,
  a worker thread resumes the job from its journal, to the next step or the outcome;
- the lease keeper renews, in one call, the claim on every job the process holds, so a live
  process never has a job taken over however long its provider takes, and a dead one's jobs
  are taken over after the visibility timeout (and resumed, never paid for twice).
Every write is fenced on owning the job. Redis hiccups leave the job pending for another
attempt; a job that keeps losing its workers ends in `error` after TRYON_JOB_MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
import queue as local_queue
import signal
import sys
import threading
import time
from dataclasses import dataclass

import redis

from ..config import Settings
from ..errors import ConfigError, TryOnError
from .queue import FINISHED, JobQueue, consumer_name, now_ms
from .waiter import Parked, ParkedWait, Waiter
from ..service import TryOnService

log = logging.getLogger(__name__)


class LostJob(RuntimeError):
    """The job's record names another worker now: this attempt must stop making calls."""


@dataclass(frozen=True)
class Task:
    message_id: str
    job_id: str
    ready: str | None = None  # resuming: the request the waiter saw finish (wait for it here, do not park it again)


class Held:
    """The stream messages this process holds (running or parked), for the lease keeper."""

    def __init__(self):
        self._lock = threading.Lock()
        self._messages: dict[str, str] = {}

    def add(self, message_id: str, job_id: str) -> None:
        with self._lock:
            self._messages[message_id] = job_id

    def drop(self, message_id: str) -> None:
        with self._lock:
            self._messages.pop(message_id, None)

    def __contains__(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._messages

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    def message_ids(self) -> list[str]:
        with self._lock:
            return list(self._messages)


class Worker(threading.Thread):
    def __init__(self, pool: "WorkerPool", number: int = 0):
        super().__init__(name=f"tryon-worker-{number}", daemon=True)
        self.pool = pool
        self.service = pool.service
        self.queue: JobQueue = pool.queue
        self.consumer = pool.consumer
        self.current: str | None = None  # the message being worked on

    def run(self) -> None:
        pool = self.pool
        while not pool.finished.is_set():
            try:
                task = pool.tasks.get(timeout=0.25)
            except local_queue.Empty:
                continue
            self.current = task.message_id
            parked = False
            try:
                parked = self.process(task)
            except redis.RedisError as error:
                log.warning("worker %s: Redis unavailable (%s); the job stays pending", self.name, type(error).__name__)
                pool.finished.wait(1.0)
            except Exception:
                log.exception("worker %s: unexpected failure", self.name)
            finally:
                self.current = None
                if not parked:  # done with it here (finished, lost, or left pending for another attempt)
                    pool.let_go(task.message_id)

    def process(self, task: Task) -> bool:
        """Run the job as far as it goes; True when its wait was parked with the waiter."""
        queue, me, job_id, message_id = self.queue, self.consumer, task.job_id, task.message_id
        if task.ready is None:
            state = queue.claim(job_id, me)
            if state in ("missing", *FINISHED):  # expired, finished by an earlier owner, or cancelled
                queue.done_with(message_id)
                return False
            attempt = int(state)
            job = queue.get(job_id)
            if job is None:
                queue.done_with(message_id)
                return False
            if attempt > queue.max_attempts:
                error = TryOnError("gave_up", attempts=queue.max_attempts)
                if queue.finish(job_id, message_id, me, status="error", error=error.message(), error_code=error.code):
                    self.service.record("async", error.code, job.timings, max(0, len(job.inputs) - 1))
                    self.service.settle_job(job, None)
                return False
            log.info("job %s: attempt %d on %s", job_id, attempt, me)
        else:  # back from the waiter: still ours?
            job = queue.get(job_id)
            if job is None or job.worker != me or job.status in FINISHED:
                return False

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

        def park(request_id: str, options, deadline: float) -> None:
            if request_id != task.ready and self.pool.waiter is not None and self.pool.waiter.can_hold(request_id):
                raise Parked(ParkedWait(message_id, job_id, request_id, options, deadline))

        garments = max(0, len(job.inputs) - 1)
        try:
            image_url, timings = self.service.run_job(job, persist=persist, on_poll=None, park=park)
        except Parked as parked:
            self.pool.waiter.hold(parked.wait)
            return True
        except TryOnError as error:
            if queue.finish(job_id, message_id, me, status="error", error=error.message(), error_code=error.code):
                self.service.record("async", error.code, job.timings, garments)
                self.service.settle_job(job, None, error)
            return False
        except redis.RedisError:
            raise  # leave the job pending: another attempt will resume it
        except LostJob:
            log.warning("job %s: taken over by another worker; this attempt stops", job_id)
            return False
        except Exception:
            log.exception("job %s failed", job_id)
            error = TryOnError("internal_error")
            if queue.finish(job_id, message_id, me, status="error", error=error.message(), error_code=error.code):
                self.service.record("async", error.code, job.timings, garments)
                self.service.settle_job(job, None)
            return False
        if queue.finish(job_id, message_id, me, status="done", image_url=image_url, timings=timings):
            self.service.record("async", "ok", timings, garments)
            self.service.settle_job(job, timings)
        else:
            log.warning("job %s: finished, but another worker owns it now; keeping its outcome", job_id)
        return False


class WorkerPool:
    """The feeder, the worker threads, the waiter and the lease keeper of one process."""

    def __init__(self, service: TryOnService, size: int, in_flight: int | None = None):
        self.service = service
        self.queue: JobQueue = service.queue
        self.consumer = consumer_name()  # one per process: a parked job is resumed by any of its threads
        self.room = threading.BoundedSemaphore(max(1, in_flight or service.settings.jobs_in_flight))
        self.tasks: local_queue.Queue[Task] = local_queue.Queue()
        self.held = Held()
        self.accepting = threading.Event()
        self.finished = threading.Event()
        self.waiter: Waiter | None = Waiter(service.provider, self._resume) if hasattr(service.provider, "poll") else None
        self.workers = [Worker(self, n) for n in range(max(1, size))]
        self._feeder = threading.Thread(target=self._feed, name="tryon-feeder", daemon=True)
        self._keeper = threading.Thread(target=self._keep_leases, name="tryon-leases", daemon=True)

    def start(self) -> "WorkerPool":
        self.accepting.set()
        if self.waiter is not None:
            self.waiter.start()
        for worker in self.workers:
            worker.start()
        self._keeper.start()
        self._feeder.start()
        return self

    # -- the feeder: a job whenever the provider has room ----------------------------------------

    def _feed(self) -> None:
        while self.accepting.is_set():
            if not self.room.acquire(timeout=0.25):
                continue
            taken = False
            try:
                message = self.queue.next_message(self.consumer, block_ms=250)
                if message is not None and message[0] not in self.held:
                    self.held.add(*message)
                    self.tasks.put(Task(*message))
                    taken = True
            except redis.RedisError as error:
                log.warning("worker %s: Redis unavailable (%s); retrying", self.consumer, type(error).__name__)
                self.finished.wait(1.0)
            except Exception:
                log.exception("worker %s: unexpected failure taking a job", self.consumer)
                self.finished.wait(1.0)
            finally:
                if not taken:
                    self.room.release()

    def _resume(self, wait: ParkedWait) -> None:
        self.tasks.put(Task(wait.message_id, wait.job_id, ready=wait.request_id))

    def let_go(self, message_id: str) -> None:
        """A job this process no longer holds: its room is free for the next."""
        if message_id in self.held:
            self.held.drop(message_id)
            self.room.release()

    # -- the lease keeper ----------------------------------------------------------------------

    def _keep_leases(self) -> None:
        every = max(0.2, self.queue.visibility_ms / 1000 / 4)
        while not self.finished.wait(every):
            messages = self.held.message_ids()
            if messages:
                try:
                    self.queue.renew_many(messages, self.consumer)
                except redis.RedisError:
                    pass  # Redis is away; the fenced writes decide later whether this work still counts

    # -- shutdown --------------------------------------------------------------------------------

    def _hand_back_unstarted(self) -> None:
        kept = []
        while True:
            try:
                task = self.tasks.get_nowait()
            except local_queue.Empty:
                break
            if task.ready is not None:  # a parked wait whose request is done: finish it within the grace
                kept.append(task)
                continue
            try:
                self.queue.release(task.message_id, self.consumer)
            except redis.RedisError:
                pass  # taken over after the visibility timeout instead
            self.let_go(task.message_id)
        for task in kept:
            self.tasks.put(task)

    def stop(self, grace_s: float = 20.0) -> None:
        """Take no new job; let the jobs held (running or parked) finish for up to `grace_s`; hand
        the rest back at once, so another worker resumes them without waiting for the timeout."""
        self.accepting.clear()
        self._feeder.join(timeout=2)
        self._hand_back_unstarted()  # taken from the stream but not begun: another worker starts them at once
        deadline = time.monotonic() + grace_s
        while len(self.held) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.waiter is not None:
            self.waiter.stop()
        self.finished.set()
        for worker in self.workers:
            worker.join(max(0.0, min(2.0, deadline - time.monotonic())))
        for message_id in self.held.message_ids():
            try:
                self.queue.release(message_id, self.consumer)
                log.info("shutdown: handed job message %s back to the queue", message_id)
            except redis.RedisError:
                pass  # it will be taken over after the visibility timeout instead
            self.held.drop(message_id)


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
    log.info("%d worker thread(s), up to %d jobs in flight, on %s, provider %s", len(pool.workers),
             settings.jobs_in_flight, handle.description, settings.provider)
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
