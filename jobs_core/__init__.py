"""jobs_core: durable jobs in time-sharded Azure append blobs.

The scheduling domain, free of any Azure Functions import. ``function_app.py`` wires it to HTTP
and Durable Functions; tests and benchmarks drive it directly.
"""

from .errors import *  # noqa: F403 - the error types are part of the public API
from .executor import Executor
from .handlers import HandlerRegistry, JobContext, PermanentJobError
from .memory_store import InMemoryStore
from .model import ErrorInfo, Job, JobStatus, Recurrence, RetryPolicy
from .plans import Batch, BatchResult, Plan
from .scheduler import JobPage, JobScheduler, Scheduled
from .settings import JobsSettings
from .store import JobStore
from .validation import JobRequest

__all__ = [
    "Batch", "BatchResult", "ErrorInfo", "Executor", "HandlerRegistry", "InMemoryStore", "Job",
    "JobContext", "JobPage", "JobRequest", "JobScheduler", "JobStatus", "JobStore",
    "JobsSettings", "PermanentJobError", "Plan", "Recurrence", "RetryPolicy", "Scheduled",
]
