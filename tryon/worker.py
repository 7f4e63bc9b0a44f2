"""`python -m tryon.worker`: a process of job workers (the code lives in tryon.jobs.worker)."""

import sys

from .jobs.worker import LostJob, Worker, WorkerPool, main

__all__ = ["LostJob", "Worker", "WorkerPool", "main"]

if __name__ == "__main__":
    sys.exit(main())
