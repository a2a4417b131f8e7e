"""Running one attempt of a job and deciding what follows: the handler under its timeout, the
outcome record (``ok``, or ``fail`` with the next retry), the next occurrence of a recurring
job, the compensation after a final failure, and the events that go with them.

``AttemptRunner`` is the part of ``Executor`` that does this; it uses the executor's registry,
settings, clock and random source. The rule for errors a handler raises: a ``JobsError``
(``PermanentJobError``, ``UnknownHandlerError``, a validation error) fails the job for good,
except ``RetryLaterError``, which asks for a later attempt; any other exception is retried
with the job's back-off; a timeout too.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from . import records
from .errors import (
    IdempotencyConflictError,
    IdempotencyKeyExpiredError,
    JobNotFoundError,
    JobsError,
    JobUnreachableError,
    StoreError,
)
from .events import EventPublisher, EventState, JobEvent
from .handlers import Handler, HandlerRegistry, JobContext, RetryLaterError
from .labels import MAX_LABELS
from .model import ErrorInfo, Job
from .plans import BatchResult
from .recurrence import after_run, next_occurrence, recurrence_ends, with_jitter
from .scheduler import JobScheduler
from .settings import JobsSettings
from .store import JobStore
from .validation import JobRequest, check_json_size

log = logging.getLogger(__name__)


class AttemptRunner:
    """Mixed into ``Executor``: what running an attempt needs of it is declared here."""

    registry: HandlerRegistry
    settings: JobsSettings
    clock: Callable[[], datetime]
    store: JobStore
    events: EventPublisher | None
    _rng: random.Random
    _occurrences: JobScheduler | None = None  # (overlap "allow": creates the occurrences)
    # execution token -> the events the sync threads of its handler or compensation set when
    # they return, for those that timed out while still running (the executor holds the
    # attempt's permit until every one has returned)
    overrunning: dict[str, list[threading.Event]]

    def _token(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    def timeout_of(self, job: Job) -> float:
        """The job's own timeout, else its handler's registered one, else the default."""
        if job.timeout_seconds:
            return job.timeout_seconds
        handler = self.registry.find(job.handler)
        if handler is not None and handler.timeout_seconds:
            return handler.timeout_seconds
        return self.settings.job_timeout_seconds

    def _lease_seconds(self, job: Job) -> float:
        """How long one execution may own the job: the handler's timeout, its compensation's
        (run before the outcome is recorded), and the grace for recording the outcome."""
        timeout = self.timeout_of(job)
        handler = self.registry.find(job.handler)
        compensation = timeout if handler is not None and handler.compensate_func else 0.0
        return timeout + compensation + self.settings.abandon_grace_seconds

    def _abandon_at(self, job: Job) -> datetime:
        if job.lease_until is not None:
            return job.lease_until
        started = job.started_at or job.due_at  # a v1 start record: no lease written
        return started + timedelta(seconds=self._lease_seconds(job))

    def _abandoned(self, job: Job, now: datetime) -> bool:
        """A running execution whose lease has passed: its executor is gone (or stuck)."""
        return self._abandon_at(job) <= now

    async def _run(self, job: Job, epoch: int, result: BatchResult,
                   events: list[JobEvent]) -> records.Ok | records.Fail:
        started = self.clock()
        timeout = self.timeout_of(job)
        try:
            if fires_occurrences(job):
                value: Any = await asyncio.wait_for(self._fire(job), timeout)
            else:
                handler = self.registry.get(job.handler)
                ctx = self._context(job, handler, started, timeout)
                ended = threading.Event()  # (a sync handler's thread outlives a timeout)
                value = await asyncio.wait_for(_call(handler.func, ctx, ended), timeout)
            check_json_size(value, self.settings.max_result_bytes, "result")
        except Exception as exc:
            if isinstance(exc, TimeoutError) and not fires_occurrences(job):
                self._overran(job, ended)
            error = _error_info(exc, job.attempts, timeout)
            return await self._failure(job, epoch, self.clock(), error, result, events,
                                       retry_after=getattr(exc, "retry_after", None))
        at = self.clock()
        result.succeeded += 1
        nxt = self._next(job, at)
        events.append(JobEvent.of(job, EventState.SUCCEEDED, at, result=value))
        _next_occurrence_event(events, job, at, nxt)
        return records.ok(job.id, job.attempts, epoch, at, value, nxt, token=job.token)

    async def _fire(self, job: Job) -> dict[str, Any]:
        """Overlap ``allow``: this occurrence runs as a one-off job of its own (the same
        handler, payload, retry policy, timeout, notify queue and labels, plus the label
        ``schedule_id``), so occurrences may overlap; the recurring job's attempt only creates
        it. The idempotency key ``occurrence:<id>:<run>`` makes that at most one job per
        occurrence, whatever crash re-runs this attempt (``JobScheduler.schedule_occurrence``).
        The label ``schedule_id`` is always this job's id (it replaces one the schedule has);
        a schedule that already has ``MAX_LABELS`` other labels leaves it off."""
        if self._occurrences is None:
            self._occurrences = JobScheduler(self.store, self.registry, self.settings,
                                             clock=self.clock, rng=self._rng,
                                             events=self.events)
        labels = dict(job.labels or {})
        if "schedule_id" in labels or len(labels) < MAX_LABELS:
            labels["schedule_id"] = job.id
        try:
            fired = await self._occurrences.schedule_occurrence(JobRequest(
                job.handler, job.payload, retry=job.retry, notify=job.notify,
                timeout_seconds=job.timeout_seconds, labels=labels or None,
                traceparent=job.traceparent), job.id, job.runs)
        except (StoreError, JobUnreachableError) as exc:  # storage trouble (or a path of
            # moves too long to follow) is retried with the job's back-off, not taken for a
            # handler's permanent failure (the key makes a retry the same job)
            raise OccurrenceNotCreated(f"the occurrence's job was not created: {exc}") from exc
        except IdempotencyConflictError as exc:
            if isinstance(exc, IdempotencyKeyExpiredError):
                raise
            # claimed before the upgrade that fingerprints occurrence keys by the key alone
            # (with the schedule's payload then): the job the key names is the occurrence's
            try:
                return {"occurrence_job": (await self._occurrences.get(exc.job_id)).id,
                        "run": job.runs}
            except JobNotFoundError:
                raise OccurrenceNotCreated(f"the occurrence's job {exc.job_id} was claimed "
                                           "by an earlier release and is not there") from exc
        return {"occurrence_job": fired.job.id, "run": job.runs}

    def _next(self, job: Job, at: datetime, *, runs_done: int | None = None) -> datetime | None:
        """The next occurrence after the one ending now, by the recurrence's catch-up and
        overlap policies (``recurrence.after_run``); with ``runs_done`` (occurrences run by
        then; a misfire being skipped, not run) simply the next one after ``at``. None: the
        job is then final (a one-off job, or a recurrence past its ``until`` or at its
        ``max_runs``)."""
        if job.recurrence is None:
            return None
        try:
            nxt = next_occurrence(job.recurrence, max(at, job.due_at)) if runs_done is not None \
                else after_run(job.recurrence, job.due_at, job.started_at, at, job.due_set_at)
        except OverflowError:  # (a grid anchored near year 9999 by an earlier release)
            log.error("job %s: recurrence ends, its next occurrence is past the calendar's "
                      "end", job.id)
            return None
        except JobsError as exc:  # a stored expression this release no longer accepts
            log.error("job %s: recurrence ends, its next occurrence cannot be computed: %s",
                      job.id, exc)
            return None
        if recurrence_ends(job.recurrence, job.runs + 1 if runs_done is None else runs_done,
                           nxt):
            return None
        return with_jitter(job.recurrence, nxt, self._rng)  # (recorded: replays agree)

    async def _failure(self, job: Job, epoch: int, at: datetime, error: ErrorInfo,
                       result: BatchResult, events: list[JobEvent], *,
                       retry_after: float | None = None) -> records.Fail:
        if not self._gives_up(job, error):
            result.retried += 1
            delay = max(job.retry.delay(job.attempts, self._rng), retry_after or 0.0)
            retry_at = at + timedelta(seconds=delay)
            events.append(JobEvent.of(job, EventState.RETRYING, at, error=error,
                                      retry_at=retry_at, due_at=retry_at))
            return records.fail(job.id, job.attempts, epoch, at, error, retry_at=retry_at,
                                token=job.token)
        result.failed += 1
        compensation = await self._compensate(job, error, result)
        nxt = self._next(job, at)
        events.append(JobEvent.of(job, EventState.FAILED, at, error=error))
        _next_occurrence_event(events, job, at, nxt)
        return records.fail(job.id, job.attempts, epoch, at, error, retry_at=None, next_due=nxt,
                            compensation=compensation, token=job.token)

    @staticmethod
    def _gives_up(job: Job, error: ErrorInfo) -> bool:
        """Whether failing with ``error`` ends the job's run (no retry follows: compensate)."""
        return error.permanent or job.attempts >= job.retry.max_attempts

    def _compensation_of(self, job: Job) -> Handler | None:
        """The handler whose compensation a final failure of ``job`` runs, if any."""
        if fires_occurrences(job):
            return None  # its attempt only creates the occurrence's job: the handler never ran
        handler = self.registry.find(job.handler)
        return handler if handler is not None and handler.compensate_func else None

    async def _compensate(self, job: Job, error: ErrorInfo, result: BatchResult) -> str | None:
        handler = self._compensation_of(job)
        if handler is None or handler.compensate_func is None:
            return None
        timeout = self.timeout_of(job)
        ctx = self._context(job, handler, self.clock(), timeout, error)
        ended = threading.Event()
        try:
            await asyncio.wait_for(_call(handler.compensate_func, ctx, ended), timeout)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                self._overran(job, ended)
            log.warning("compensation of job %s failed: %r", job.id, exc)
            return _utf8(f"failed: {type(exc).__name__}: {exc}"[:500])
        result.compensated += 1
        return "succeeded"

    def _overran(self, job: Job, ended: threading.Event) -> None:
        """A call timed out: if it was a sync one whose thread still runs, the attempt's
        permit waits for that thread."""
        if not ended.is_set() and job.token is not None:
            self.overrunning.setdefault(job.token, []).append(ended)

    def _context(self, job: Job, handler: Handler, started: datetime, timeout: float,
                 error: ErrorInfo | None = None) -> JobContext:
        return JobContext(job_id=job.id, handler=handler.name,
                          payload=copy.deepcopy(job.payload), attempt=job.attempts,
                          max_attempts=job.retry.max_attempts, due_at=job.due_at,
                          deadline=started + timedelta(seconds=timeout), error=error,
                          run=job.runs, execution=job.token, clock=self.clock)


def _next_occurrence_event(events: list[JobEvent], job: Job, at: datetime,
                           nxt: datetime | None) -> None:
    """A recurring job is scheduled again for its next occurrence."""
    if nxt is not None:
        events.append(JobEvent.of(job, EventState.SCHEDULED, at, attempt=0, run=job.runs + 1,
                                  due_at=nxt))


async def _call(func: Any, ctx: JobContext, ended: threading.Event | None = None) -> Any:
    """Run a handler: a coroutine function awaited, a plain function in a thread (``ended`` is
    set when that thread's call returns, which may be after a timeout gave up on it)."""
    if inspect.iscoroutinefunction(func):
        if ended is not None:
            ended.set()  # (cancelled with the awaiting task: nothing outlives it)
        return await func(ctx)

    def call() -> Any:
        try:
            return func(ctx)
        finally:
            if ended is not None:
                ended.set()

    value = await asyncio.to_thread(call)
    return await value if inspect.isawaitable(value) else value


class OccurrenceNotCreated(RuntimeError):
    """Overlap ``allow``: storage failed while the occurrence's job was created (retried, like
    any failure that is not a ``JobsError``)."""


def fires_occurrences(job: Job) -> bool:
    """Whether the job's attempts create a job per occurrence (overlap ``allow``)."""
    return job.recurrence is not None and job.recurrence.overlap == "allow"


def outcome_name(record: records.Ok | records.Fail) -> str:
    if isinstance(record, records.Ok):
        return "succeeded"
    return "retrying" if record.retry_at is not None else "failed"


def _error_info(exc: BaseException, attempt: int, timeout: float) -> ErrorInfo:
    if isinstance(exc, TimeoutError):
        return ErrorInfo("Timeout", f"the handler did not finish within {timeout:g} s", attempt)
    # a JobsError raised by a handler is permanent (PermanentJobError, UnknownHandlerError,
    # a validation error), except RetryLaterError, which asks for a later attempt
    permanent = isinstance(exc, JobsError) and not isinstance(exc, RetryLaterError)
    return ErrorInfo(type(exc).__name__, _utf8(str(exc)[:2000] or repr(exc)), attempt, permanent)


def _utf8(text: str) -> str:
    """``text`` with any lone surrogate spelled out (``\\udcff``): a handler's message may hold
    one (a file name decoded with ``surrogateescape``), and UTF-8, which the record is written
    in, cannot carry it; the cycle that recorded the failure raised, and the attempt ended as
    ``ExecutorLost`` with its real error lost."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")

