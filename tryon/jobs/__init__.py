"""Async work on Redis: the job queue (queue), the workers that run it (worker), and batches of
many looks (batch) with their archive (archive).

Only the queue is imported here: the worker depends on the service, which depends on the queue.
"""

from .queue import (FINISHED, GROUP, JOB_KEY, JSON_FIELDS, STATUSES, STREAM, Job, JobQueue, consumer_name, new_job_id,
                    now_ms, valid_job_id)

__all__ = ["FINISHED", "GROUP", "JOB_KEY", "JSON_FIELDS", "STATUSES", "STREAM", "Job", "JobQueue", "consumer_name",
           "new_job_id", "now_ms", "valid_job_id"]
