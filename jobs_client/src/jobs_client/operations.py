"""Which client method stands for which operation of the API, with its body models and the
query parameters it can send. ``jobs_client.drift`` checks this table against the served
OpenAPI document (``GET /api/openapi.json``); ``JobsClient`` and ``AsyncJobsClient`` both have
every method named here."""

from __future__ import annotations

from dataclasses import dataclass

from .models import BatchRequest, BatchResponse, Job, JobHistory, JobPage, JobUpdate, NewJob
from .models import Reschedule as RescheduleBody
from .operator_models import (
    PurgeReport,
    PurgeRequest,
    SchedulerStart,
    SchedulerStatus,
    ShardPage,
    Timeline,
)


@dataclass(frozen=True)
class Operation:
    method: str  # the client method
    request: type | None = None  # the body's model (None: no body)
    response: type | None = None  # the 2xx body's model (None: not modelled, e.g. a document)
    query: frozenset[str] = frozenset()  # the query parameters the client can send


def _q(*names: str) -> frozenset[str]:
    return frozenset(names)


JOB_FILTERS = _q("status", "handler", "label", "slot", "due_from", "due_to", "limit", "cursor")

# (method, path under /api) -> Operation
OPERATIONS: dict[tuple[str, str], Operation] = {
    # ?wait=N is sent as its equivalent, the header Prefer: wait=N
    ("post", "/jobs"): Operation("schedule", NewJob, Job, _q("wait")),
    ("post", "/jobs/batch"): Operation("schedule_many", BatchRequest, BatchResponse),
    ("get", "/jobs"): Operation("list_page", None, JobPage, JOB_FILTERS),
    ("get", "/jobs/{id}"): Operation("get", None, Job),
    ("delete", "/jobs/{id}"): Operation("cancel", None, Job, _q("reason")),
    ("patch", "/jobs/{id}"): Operation("update", JobUpdate, Job),
    ("post", "/jobs/{id}/run"): Operation("run_now", None, Job),
    ("post", "/jobs/{id}/retry"): Operation("retry", None, Job),
    ("post", "/jobs/{id}/reschedule"): Operation("reschedule", RescheduleBody, Job),
    ("post", "/jobs/{id}/pause"): Operation("pause", None, Job),
    ("post", "/jobs/{id}/resume"): Operation("resume", None, Job),
    ("get", "/jobs/{id}/history"): Operation("history", None, JobHistory),
    ("get", "/scheduler"): Operation("status", None, SchedulerStatus),
    ("post", "/scheduler/start"): Operation("start", None, SchedulerStart),
    ("get", "/shards"): Operation("shards_page", None, ShardPage,
                                  _q("slot", "bucket_from", "bucket_to", "limit", "cursor")),
    ("get", "/timeline"): Operation("timeline", None, Timeline, _q("minutes")),
    ("post", "/maintenance/purge"): Operation("purge", PurgeRequest, PurgeReport),
    ("get", "/openapi.json"): Operation("openapi"),
}

# Operations of the document the client leaves out on purpose, with the reason.
NOT_IN_CLIENT: dict[tuple[str, str], str] = {
    ("get", "/dashboard"): "an HTML page for a browser (open /api/dashboard?code=<key>)",
}

# Client operations the server is getting in a change not merged yet: the checker accepts that
# the document lacks them, and fails once it has them (then take them out of this set).
AHEAD_OF_SERVER: frozenset[tuple[str, str]] = frozenset()
