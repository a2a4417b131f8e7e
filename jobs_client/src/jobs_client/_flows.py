"""One flow per operation of the API (see ``_protocol`` for what a flow is), plus the flows
built on them: waiting for a job, following pages, watching a job's changes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ._codec import encode
from ._protocol import (
    Emit,
    Flow,
    PollConfig,
    Request,
    RetryConfig,
    Sleep,
    body,
    call,
    parse,
    send,
)
from .errors import Conflict, ServiceUnavailable, WaitTimeout, retry_after
from .models import (
    BatchRequest,
    BatchResponse,
    BatchResult,
    Job,
    JobHistory,
    JobPage,
    JobStatus,
    JobUpdate,
    NewJob,
    Reschedule,
)
from .operator_models import (
    PurgeReport,
    PurgeRequest,
    SchedulerStart,
    SchedulerStatus,
    ShardPage,
    Timeline,
)

# the states a control leaves a job in: after a lost answer, its repeat's 409 is no conflict
# if the job is in one of them (``Flows._settled``)
SETTLES = {"pause": {JobStatus.PAUSED}, "resume": {JobStatus.SCHEDULED, JobStatus.RETRYING}}


def job_path(job_id: str, suffix: str = "") -> str:
    return f"/jobs/{quote(job_id, safe='')}{suffix}"


def query(**values: Any) -> dict[str, str]:
    """Query parameters: ``None`` left out, times as ISO-8601, the rest as text."""
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name}: {value!r} has no time zone")
            value = value.isoformat().replace("+00:00", "Z")
        out[name] = str(value)
    return out


def _seconds(value: float) -> str:
    """Seconds as the API's ``wait`` grammar wants them: digits, maybe a fraction."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def finished(job: Job, runs_before: int) -> bool:
    """What the API's own wait means by finished: final, or (a recurring job) another run
    done."""
    return job.is_final or job.runs > runs_before


def _state(job: Job) -> tuple[Any, ...]:
    return (job.status, job.attempts, job.runs, job.due_at, job.updated_at, job.started_at,
            job.finished_at)


class Flows:
    def __init__(self, retry: RetryConfig, poll: PollConfig) -> None:
        self.retry = retry
        self.poll = poll

    def _job(self, method: str, path: str, *, json: Any = None,
             params: Mapping[str, str] | None = None) -> Flow[Job]:
        return call(Request(method, path, dict(params or {}), json), Job, self.retry)

    # --- jobs ---
    def schedule(self, job: NewJob, wait: float | None = None) -> Flow[tuple[Job, float | None]]:
        """``POST /api/jobs``; with ``wait``, ``Prefer: wait=N``. Returns the job and, if the
        answer was 202 (not finished yet), its ``Retry-After`` (0 without one; None: not a
        202). Without an idempotency key a 503 is not retried: the job might have been written
        (README, I1)."""
        answer, hint, _ = yield from self._post_job(job, wait)
        return answer, hint

    def _post_job(self, job: NewJob, wait: float | None) -> Flow[tuple[Job, float | None, bool]]:
        """As ``schedule``, and whether the API waited (``Preference-Applied: wait``)."""
        headers = {"Prefer": f"wait={_seconds(wait)}"} if wait else {}
        request = Request("POST", "/jobs", json=encode(job), headers=headers,
                          extra_read_seconds=wait or 0.0,
                          retry_unavailable=job.idempotency_key is not None)
        response = yield from send(request, self.retry)
        hint = (retry_after(response) or 0.0) if response.status_code == 202 else None
        waited = response.headers.get("preference-applied", "").strip().lower() == "wait"
        return parse(Job, response), hint, waited

    def schedule_many(self, jobs: list[NewJob]) -> Flow[list[BatchResult]]:
        safe = all(j.idempotency_key is not None for j in jobs)
        request = Request("POST", "/jobs/batch", json=encode(BatchRequest(jobs)),
                          retry_unavailable=safe)
        return (yield from call(request, BatchResponse, self.retry)).results

    def schedule_and_wait(self, job: NewJob, timeout: float) -> Flow[Job]:
        deadline = time.monotonic() + timeout
        scheduled, hint, waited = yield from self._post_job(job, wait=timeout)
        if scheduled.is_final or (hint is None and (waited or finished(scheduled, 0))):
            # 200 after the API's wait (Preference-Applied): finished. Without the header (an
            # API from before it, or one that did not wait): the rule of before, which takes a
            # replayed job with runs done for finished
            return scheduled
        # 202: not finished, whatever runs the job shows (a replayed key may find some done:
        # the API waits for the next one, and so do we; this once returned at once)
        return (yield from self.wait(scheduled.id, deadline - time.monotonic(), job=scheduled,
                                     runs_before=scheduled.runs, retry_after=hint or None))

    def get(self, job_id: str) -> Flow[Job]:
        return self._job("GET", job_path(job_id))

    def cancel(self, job_id: str, reason: str | None = None) -> Flow[Job]:
        return self._settled(Request("DELETE", job_path(job_id), query(reason=reason)),
                             job_id, {JobStatus.CANCELLED})

    def update(self, job_id: str, update: JobUpdate) -> Flow[Job]:
        # repeated after a 503 like any control: a 409 then is no "nothing changed"
        return self._settled(Request("PATCH", job_path(job_id), json=encode(update)), job_id,
                             set())

    def control(self, job_id: str, action: str) -> Flow[Job]:
        """``POST /api/jobs/{id}/<action>``: run, retry, pause, resume. A 503 may hide a
        change that took effect (its answer was lost): pause and resume are repeated (see
        ``_settled``); run and retry are not (a repeat could run the job again: once its
        new run ended, a second retry would apply too), so their 503 is raised."""
        request = Request("POST", job_path(job_id, f"/{action}"),
                          retry_unavailable=action not in ("run", "retry"))
        if action in SETTLES:
            return self._settled(request, job_id, SETTLES[action])
        return call(request, Job, self.retry)

    def _settled(self, request: Request, job_id: str, wanted: set[JobStatus]) -> Flow[Job]:
        """A control repeated after a 503 whose repeat met a 409: the first try may have
        taken effect before its answer was lost, so the 409 is no "nothing changed" (it was
        said of a cancel that had: hunt of stop 29). If the job is now in the state asked
        for, that is the answer; otherwise the outcome is unknown (``ServiceUnavailable``,
        as the first try's answer said). An update or a reschedule names no such state
        (``wanted`` empty): a reschedule to now that applied, then the job started, met 409
        and was reported as a ``Conflict``."""
        try:
            return (yield from call(request, Job, self.retry))
        except Conflict as conflict:
            if not conflict.maybe_applied:
                raise
            job = yield from self.get(job_id)
            if job.status in wanted:
                return job
            raise ServiceUnavailable(
                f"{request.method} {request.path}: the first try's answer was lost (503) and "
                f"the repeat was refused ({conflict}); the job is {job.status} now, so whether "
                "the first try took effect is unknown: read its history", status=503) \
                from conflict

    def reschedule(self, job_id: str, when: Reschedule) -> Flow[Job]:
        # (a state cannot tell whether the first try applied: its 409 after a 503 is unknown)
        return self._settled(Request("POST", job_path(job_id, "/reschedule"),
                                     json=encode(when)), job_id, set())

    def history(self, job_id: str) -> Flow[JobHistory]:
        return call(Request("GET", job_path(job_id, "/history")), JobHistory, self.retry)

    def list_page(self, filters: Mapping[str, Any], cursor: str | None = None) -> Flow[JobPage]:
        params = query(**filters, cursor=cursor)
        return call(Request("GET", "/jobs", params), JobPage, self.retry)

    def pages(self, filters: Mapping[str, Any]) -> Flow[None]:
        """Emits every page, following ``next_cursor`` to the last."""
        cursor = None
        while True:
            page = yield from self.list_page(filters, cursor)
            yield Emit(page)
            cursor = page.next_cursor
            if not cursor:
                return

    def jobs(self, filters: Mapping[str, Any]) -> Flow[None]:
        """Emits every job of every page."""
        return _every_item(lambda cursor: self.list_page(filters, cursor), "jobs")

    def wait(self, job_id: str, timeout: float, *, job: Job | None = None,
             runs_before: int | None = None, retry_after: float | None = None) -> Flow[Job]:
        """Poll until the job is final (a recurring job: until its next run finished), never
        sooner than ``retry_after``; ``WaitTimeout`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if job is None:
            job = yield from self.get(job_id)
        before = job.runs if runs_before is None else runs_before
        delay = max(self.poll.initial, retry_after or 0.0)
        while not finished(job, before):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout:g} s",
                                  job)
            yield Sleep(min(delay, remaining))
            job = yield from self.get(job_id)
            delay = max(retry_after or 0.0, min(self.poll.max, delay * self.poll.factor))
        return job

    def watch(self, job_id: str, interval: float, timeout: float | None) -> Flow[None]:
        """Emits the job when first read and after each change, until it is final."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            job = yield from self.get(job_id)
            if _state(job) != seen:
                seen = _state(job)
                yield Emit(job)
            if job.is_final:
                return
            if deadline is not None and time.monotonic() + interval > deadline:
                raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout:g} s",
                                  job)
            yield Sleep(interval)

    # --- operators ---
    def status(self) -> Flow[SchedulerStatus]:
        return call(Request("GET", "/scheduler"), SchedulerStatus, self.retry)

    def start(self) -> Flow[SchedulerStart]:
        return call(Request("POST", "/scheduler/start"), SchedulerStart, self.retry)

    def shards_page(self, filters: Mapping[str, Any],
                    cursor: str | None = None) -> Flow[ShardPage]:
        return call(Request("GET", "/shards", query(**filters, cursor=cursor)), ShardPage,
                    self.retry)

    def shards(self, filters: Mapping[str, Any]) -> Flow[None]:
        """Emits every shard row of every page."""
        return _every_item(lambda cursor: self.shards_page(filters, cursor), "shards")

    def timeline(self, minutes: int | None = None) -> Flow[Timeline]:
        return call(Request("GET", "/timeline", query(minutes=minutes)), Timeline, self.retry)

    def purge(self, request: PurgeRequest) -> Flow[PurgeReport]:
        return call(Request("POST", "/maintenance/purge", json=encode(request)), PurgeReport,
                    self.retry)

    def openapi(self) -> Flow[dict[str, Any]]:
        response = yield from send(Request("GET", "/openapi.json"), self.retry)
        return dict(body(response))


def _every_item(page_at: Callable[[str | None], Flow[Any]], items: str) -> Flow[None]:
    """Emits each of the ``items`` of every page, following ``next_cursor`` to the last."""
    cursor = None
    while True:
        page = yield from page_at(cursor)
        for item in getattr(page, items):
            yield Emit(item)
        cursor = page.next_cursor
        if not cursor:
            return
