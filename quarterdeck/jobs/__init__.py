"""The durable job runner shared by every domain: jobs are rows with due times and leases, claimed by
workers, retried with backoff and parked when they keep failing.

Domains register handlers per kind in a `register_jobs(registry)` function and enqueue jobs through
`enqueue` in their own transaction. This package imports no domain.
"""

from quarterdeck.jobs.metrics import JobsCollector
from quarterdeck.jobs.registry import (
    Handler,
    JobContext,
    JobRegistry,
    PermanentFailure,
    RetryLater,
    collect,
)
from quarterdeck.jobs.retry import NO_RETRY, Backoff
from quarterdeck.jobs.runner import Outcome, Worker
from quarterdeck.jobs.schemas import JobEventOut, JobOut, KindStats, QueueStats
from quarterdeck.jobs.service import cancel, enqueue, get_job, job_events, list_jobs, queue_stats, retry
from quarterdeck.jobs.states import JobState, operator_moves

__all__ = [
    "NO_RETRY",
    "Backoff",
    "Handler",
    "JobContext",
    "JobEventOut",
    "JobOut",
    "JobRegistry",
    "JobState",
    "JobsCollector",
    "KindStats",
    "Outcome",
    "PermanentFailure",
    "QueueStats",
    "RetryLater",
    "Worker",
    "cancel",
    "collect",
    "enqueue",
    "get_job",
    "job_events",
    "list_jobs",
    "operator_moves",
    "queue_stats",
    "retry",
]
