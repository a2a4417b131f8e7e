"""The executor side: plan a slot's cycle, then execute batches of due jobs.

``plan`` and ``execute`` take and return plain data (``Plan``, ``Batch``, ``BatchResult``), so a
Durable orchestrator can call them as activities, possibly in different processes.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import records as rec
from .claims import ClaimManager
from .errors import BlobNotFoundError, JobsError, UnknownHandlerError
from .events import EventPublisher, EventState, JobEvent, publish_to
from .handlers import Handler, HandlerRegistry, JobContext, PermanentJobError
from .ids import parse_shard_name, slot_prefix
from .metrics import Histogram
from .model import ErrorInfo, Job, JobStatus
from .scheduler import Clock, utcnow
from .settings import JobsSettings
from .shard_cache import ShardCache
from .shard_summary import summarize
from .store import JobStore
from .validation import check_json_size, next_occurrence

log = logging.getLogger(__name__)
MAX_BATCHES_PER_CYCLE = 50


@dataclass(frozen=True)
class Batch:
    slot: int
    epoch: int
    blob: str
    job_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        return cls(int(data["slot"]), int(data["epoch"]), str(data["blob"]),
                   [str(i) for i in data["job_ids"]])


@dataclass(frozen=True)
class Plan:
    slot: int
    owner: str
    epoch: int
    now: datetime
    batches: list[Batch]
    next_wake: datetime
    due: int = 0
    pending: int = 0
    shards_read: int = 0
    errors: list[str] = field(default_factory=list)
    claim_ms: float = 0.0  # time to acquire (or renew) the slot's claim

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "owner": self.owner, "epoch": self.epoch,
                "now": rec.ts(self.now), "batches": [b.to_dict() for b in self.batches],
                "next_wake": rec.ts(self.next_wake), "due": self.due, "pending": self.pending,
                "shards_read": self.shards_read, "errors": list(self.errors),
                "claim_ms": round(self.claim_ms, 2)}


@dataclass
class BatchResult:
    started: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    abandoned: int = 0
    skipped: int = 0  # due jobs someone else changed first (cancelled, started, fenced)
    compensated: int = 0
    lateness: Histogram = field(default_factory=Histogram)  # start - due of started jobs

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in COUNT_FIELDS}
        out["lateness"] = self.lateness.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchResult:
        return cls(**{name: int(data.get(name, 0)) for name in COUNT_FIELDS},
                   lateness=Histogram.from_dict(data.get("lateness")))

    def add(self, other: BatchResult) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.lateness.merge(other.lateness)


COUNT_FIELDS = ("started", "succeeded", "retried", "failed", "abandoned", "skipped",
                "compensated")


class Executor:
    def __init__(self, store: JobStore, registry: HandlerRegistry,
                 settings: JobsSettings | None = None, *, owner: str, clock: Clock = utcnow,
                 rng: random.Random | None = None, events: EventPublisher | None = None) -> None:
        self.store = store
        self.events = events
        self.registry = registry
        self.settings = settings or JobsSettings()
        self.owner = owner
        self.clock = clock
        self._rng = rng or random.Random()
        self.cache = ShardCache(store, keep_finished=False, max_blobs=4096)
        self.claims = ClaimManager(store, ttl=self.settings.claim_ttl_seconds)

    # --- plan --------------------------------------------------------------------------------
    async def plan(self, slot: int, now: datetime | None = None) -> Plan:
        """Claim ``slot`` (raises ``ClaimHeldError`` if another executor holds it), read its
        shards that may hold due work, and split the due jobs into batches."""
        now = now or self.clock()
        began = time.perf_counter()
        claim = await self.claims.acquire(slot, self.owner, now)
        claim_ms = (time.perf_counter() - began) * 1000
        if self.events is not None:
            await self.events.flush()  # events whose publish failed earlier, if due
        s = self.settings
        next_wake = now + timedelta(seconds=s.max_sleep_seconds)
        due: list[tuple[datetime, str, str]] = []
        pending = shards_read = 0
        touched: set[str] = set()
        errors: list[str] = []
        for info in await self.store.list(slot_prefix(slot)):
            shard = parse_shard_name(info.name)
            if shard is None:
                continue
            meta = info.metadata
            if meta.get("done_size") == str(info.size):
                self.cache.forget(info.name)
                continue
            if shard.key.bucket > now and info.name not in touched:
                next_wake = min(next_wake, shard.key.bucket)
                continue
            if self.cache.known_size(info.name) is None and _idle_until(meta, info.size, now):
                next_wake = min(next_wake, rec.parse_ts(meta["min_due"]))
                pending += int(meta.get("pending", "0"))
                continue
            try:
                state = await self.cache.refresh(info.name, if_size_differs=info.size)
            except BlobNotFoundError:  # purged (retention) since the listing
                self.cache.forget(info.name)
                continue
            except JobsError as exc:  # e.g. a record of a newer format: report, go on
                errors.append(f"{info.name}: {exc}")
                continue
            shards_read += 1
            touched |= state.touched
            for job in state.pending():
                pending += 1
                if job.status.is_waiting:
                    if job.due_at <= now:
                        due.append((job.due_at, info.name, job.id))
                    else:
                        next_wake = min(next_wake, job.due_at)
                elif self._abandoned(job, claim.epoch, now):
                    due.append((job.started_at or now, info.name, job.id))
                else:
                    next_wake = min(next_wake, self._abandon_at(job))
            await self._update_summary(info.name, shard.key.bucket, info.size, meta, state, now)
        due.sort()
        limit = s.batch_size * MAX_BATCHES_PER_CYCLE
        if len(due) > limit:
            next_wake = now  # more is due than one cycle takes: come straight back
        batches = _batches(slot, claim.epoch, due[:limit], s.batch_size)
        return Plan(slot, self.owner, claim.epoch, now, batches, max(next_wake, now), len(due),
                    pending, shards_read, errors, claim_ms)

    def _abandon_at(self, job: Job) -> datetime:
        timeout = job.timeout_seconds or self.settings.job_timeout_seconds
        started = job.started_at or job.due_at
        return started + timedelta(seconds=timeout + self.settings.abandon_grace_seconds)

    def _abandoned(self, job: Job, epoch: int, now: datetime) -> bool:
        """A running attempt whose executor is gone: started under an older claim epoch, or
        running for longer than its timeout plus a grace period."""
        return job.epoch < epoch or self._abandon_at(job) <= now

    async def _update_summary(self, blob: str, bucket: datetime, size: int,
                              listed: dict[str, str], state: Any, now: datetime) -> None:
        bucket_end = bucket + timedelta(minutes=self.settings.bucket_minutes)
        closed = bucket_end + timedelta(seconds=self.settings.abandon_grace_seconds) < now
        summary = summarize(listed, state, size, closed)
        if summary != listed:
            try:
                await self.store.set_metadata(blob, summary)
            except JobsError as exc:  # advisory only: never fail a cycle for it
                log.warning("could not update the summary of %s: %s", blob, exc)

    # --- execute -----------------------------------------------------------------------------
    async def execute(self, batch: Batch) -> BatchResult:
        """Start the batch's jobs that are still due (one append), run them, and record all
        outcomes (one more append). At-least-once: a crash in between re-runs them later."""
        result = BatchResult()
        now = self.clock()
        state = self.cache.cached(batch.blob)
        if state is None or any(i not in state.jobs for i in batch.job_ids):
            # planned in another process (or since then): read the new records first. A cache
            # that is merely behind is safe: if anyone appended since, the start append lands
            # after their records, apply_own fails, and the replay decides which starts count.
            state = await self.cache.refresh(batch.blob)
        starting: list[Job] = []
        records: list[rec.Record] = []
        events: list[JobEvent] = []
        for job_id in batch.job_ids:
            job = state.jobs.get(job_id)
            if job is None:
                continue
            if job.status.is_waiting and job.due_at <= now:
                starting.append(job)
                records.append(rec.start(job.id, job.attempts + 1, batch.epoch, now))
            elif job.status is JobStatus.RUNNING and self._abandoned(job, batch.epoch, now):
                result.abandoned += 1
                error = ErrorInfo("ExecutorLost", f"attempt {job.attempts} started at "
                                  f"{job.started_at} never reported back (executor lost)",
                                  job.attempts)
                records.append(await self._failure(job, batch.epoch, now, error, result,
                                                   events))
        if not records:
            return result
        state = await self._append(batch.blob, records)
        mine = []
        for job in starting:
            now_job = state.jobs.get(job.id)
            if now_job is not None and now_job.status is JobStatus.RUNNING and \
                    now_job.attempts == job.attempts + 1 and now_job.epoch == batch.epoch:
                mine.append(now_job)
                result.lateness.record((now - job.due_at).total_seconds() * 1000)
                events.append(JobEvent.of(now_job, EventState.STARTED, now))
            else:
                result.skipped += 1
        result.started = len(mine)
        # the start events go out while the handlers run (publish never raises)
        starts_published = asyncio.ensure_future(publish_to(self.events, events))
        if not mine:
            await starts_published
            return result
        gate = asyncio.Semaphore(self.settings.max_concurrency)
        outcome_events: list[JobEvent] = []
        outcomes = await asyncio.gather(*(self._run(job, batch.epoch, gate, result,
                                                    outcome_events) for job in mine))
        await self._append(batch.blob, list(outcomes))
        await starts_published  # a job's start event is sent before its outcome event
        await publish_to(self.events, outcome_events)
        return result


    async def _append(self, blob: str, records: list[rec.Record]) -> Any:
        appended = await self.store.append(blob, rec.encode_block(records), create_metadata={})
        if self.cache.apply_own(blob, appended, records):
            return self.cache.cached(blob)
        return await self.cache.refresh(blob)

    async def _run(self, job: Job, epoch: int, gate: asyncio.Semaphore, result: BatchResult,
                   events: list[JobEvent]) -> rec.Record:
        async with gate:
            started = self.clock()
            timeout = job.timeout_seconds or self.settings.job_timeout_seconds
            try:
                handler = self.registry.get(job.handler)
                ctx = self._context(job, handler, started, timeout)
                value = await asyncio.wait_for(_call(handler.func, ctx), timeout)
                check_json_size(value, self.settings.max_result_bytes, "result")
            except Exception as exc:
                error = _error_info(exc, job.attempts, timeout)
                return await self._failure(job, epoch, self.clock(), error, result, events)
            at = self.clock()
            result.succeeded += 1
            nxt = next_occurrence(job.recurrence, max(at, job.due_at)) if job.recurrence else None
            events.append(JobEvent.of(job, EventState.SUCCEEDED, at, result=value))
            _next_occurrence_event(events, job, at, nxt)
            return rec.ok(job.id, job.attempts, epoch, at, value, nxt)

    async def _failure(self, job: Job, epoch: int, at: datetime, error: ErrorInfo,
                       result: BatchResult, events: list[JobEvent]) -> rec.Record:
        if not error.permanent and job.attempts < job.retry.max_attempts:
            result.retried += 1
            retry_at = at + timedelta(seconds=job.retry.delay(job.attempts, self._rng))
            events.append(JobEvent.of(job, EventState.RETRYING, at, error=error,
                                      retry_at=retry_at, due_at=retry_at))
            return rec.fail(job.id, job.attempts, epoch, at, error, retry_at=retry_at)
        result.failed += 1
        compensation = await self._compensate(job, error, result)
        nxt = next_occurrence(job.recurrence, max(at, job.due_at)) if job.recurrence else None
        events.append(JobEvent.of(job, EventState.FAILED, at, error=error))
        _next_occurrence_event(events, job, at, nxt)
        return rec.fail(job.id, job.attempts, epoch, at, error, retry_at=None, next_due=nxt,
                        compensation=compensation)

    async def _compensate(self, job: Job, error: ErrorInfo, result: BatchResult) -> str | None:
        try:
            handler = self.registry.get(job.handler)
        except UnknownHandlerError:
            return None
        if handler.compensate_func is None:
            return None
        timeout = job.timeout_seconds or self.settings.job_timeout_seconds
        ctx = self._context(job, handler, self.clock(), timeout, error)
        try:
            await asyncio.wait_for(_call(handler.compensate_func, ctx), timeout)
        except Exception as exc:
            log.warning("compensation of job %s failed: %r", job.id, exc)
            return f"failed: {type(exc).__name__}: {exc}"[:500]
        result.compensated += 1
        return "succeeded"

    def _context(self, job: Job, handler: Handler, started: datetime, timeout: float,
                 error: ErrorInfo | None = None) -> JobContext:
        return JobContext(job_id=job.id, handler=handler.name,
                          payload=copy.deepcopy(job.payload), attempt=job.attempts,
                          max_attempts=job.retry.max_attempts, due_at=job.due_at,
                          deadline=started + timedelta(seconds=timeout), error=error,
                          run=job.runs)

    # --- convenience -------------------------------------------------------------------------
    async def run_cycle(self, slot: int) -> tuple[Plan, BatchResult]:
        """plan + execute every batch concurrently (what one orchestrator cycle does)."""
        plan = await self.plan(slot)
        total = BatchResult()
        for outcome in await asyncio.gather(*(self.execute(b) for b in plan.batches)):
            total.add(outcome)
        return plan, total


def _next_occurrence_event(events: list[JobEvent], job: Job, at: datetime,
                           nxt: datetime | None) -> None:
    """A recurring job is scheduled again for its next occurrence."""
    if nxt is not None:
        events.append(JobEvent.of(job, EventState.SCHEDULED, at, attempt=0, run=job.runs + 1,
                                  due_at=nxt))


def _batches(slot: int, epoch: int, due: list[tuple[datetime, str, str]],
             size: int) -> list[Batch]:
    by_blob: dict[str, list[str]] = {}
    for _, blob, job_id in due:
        by_blob.setdefault(blob, []).append(job_id)
    return [Batch(slot, epoch, blob, ids[i:i + size])
            for blob, ids in by_blob.items() for i in range(0, len(ids), size)]


def _idle_until(meta: dict[str, str], size: int, now: datetime) -> bool:
    """True when the blob's summary is current and says nothing is due or running before its
    ``min_due``, so a planner that has not cached the blob can skip reading it."""
    if meta.get("seen_size") != str(size) or meta.get("running") != "0" or not meta.get("min_due"):
        return False
    return rec.parse_ts(meta["min_due"]) > now


async def _call(func: Any, ctx: JobContext) -> Any:
    if inspect.iscoroutinefunction(func):
        return await func(ctx)
    value = await asyncio.to_thread(func, ctx)
    return await value if inspect.isawaitable(value) else value


def _error_info(exc: BaseException, attempt: int, timeout: float) -> ErrorInfo:
    if isinstance(exc, TimeoutError):
        return ErrorInfo("Timeout", f"the handler did not finish within {timeout:g} s", attempt)
    permanent = isinstance(exc, PermanentJobError | UnknownHandlerError | JobsError)
    return ErrorInfo(type(exc).__name__, str(exc)[:2000] or repr(exc), attempt, permanent)

