"""The API side of the scheduler: schedule, query and control jobs."""

from __future__ import annotations

import base64
import binascii
import logging
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from . import records as rec
from . import transitions as tr
from .errors import (
    BlobNotFoundError,
    BlockLimitError,
    IdempotencyConflictError,
    InvalidCursorError,
    JobNotFoundError,
    JobsError,
    ShardFullError,
)
from .events import EventPublisher, EventState, JobEvent, publish_to
from .group_commit import GroupCommitter
from .handlers import HandlerRegistry
from .ids import (
    MAX_INDEX,
    ShardBlob,
    ShardKey,
    bucket_of,
    new_job_id,
    parse_job_id,
    parse_shard_name,
    slot_prefix,
)
from .model import Job, JobStatus
from .settings import JobsSettings
from .shard_cache import ShardCache
from .store import AppendResult, JobStore
from .validation import JobRequest, ValidJob, parse_due_at, validate

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Scheduled:
    job: Job
    created: bool  # False when an earlier job with the same idempotency key was returned

    @property
    def slot(self) -> int:
        return parse_job_id(self.job.id).key.slot


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


def shard_metadata(shard: ShardBlob) -> dict[str, str]:
    return {"format": str(rec.FORMAT_VERSION), "slot": str(shard.key.slot),
            "bucket": rec.ts(shard.key.bucket), "index": str(shard.index)}


class JobScheduler:
    def __init__(self, store: JobStore, registry: HandlerRegistry,
                 settings: JobsSettings | None = None, *, clock: Clock = utcnow,
                 rng: random.Random | None = None, events: EventPublisher | None = None) -> None:
        self.store = store
        self.events = events
        self.registry = registry
        self.settings = settings or JobsSettings()
        self.clock = clock
        self._rng = rng or random.Random()
        self.cache = ShardCache(store, keep_finished=True, max_blobs=64)
        self.committer = GroupCommitter(store, linger=self.settings.commit_linger_ms / 1000,
                                        max_block_bytes=self.settings.commit_max_bytes)
        self._index: dict[ShardKey, int] = {}  # blob index new jobs of a shard go to

    # --- scheduling --------------------------------------------------------------------------
    async def schedule(self, request: JobRequest) -> Scheduled:
        """Validate and durably schedule one job (group-committed with concurrent calls)."""
        return (await self._schedule_valid([validate(request, self.registry, self.settings,
                                                     self.clock())]))[0]

    async def schedule_many(self, requests: Sequence[JobRequest]) -> list[Scheduled | JobsError]:
        """Schedule many jobs with one append per shard. Invalid items get their error in
        place; valid ones are scheduled."""
        now = self.clock()
        results: list[Scheduled | JobsError | None] = [None] * len(requests)
        valid: list[tuple[int, ValidJob]] = []
        for i, request in enumerate(requests):
            try:
                valid.append((i, validate(request, self.registry, self.settings, now)))
            except JobsError as exc:
                results[i] = exc
        done = await self._schedule_valid([v for _, v in valid])
        for (i, _), outcome in zip(valid, done, strict=True):
            results[i] = outcome
        return [r for r in results if r is not None]

    async def _schedule_valid(self, specs: list[ValidJob]) -> list[Scheduled]:
        now = self.clock()
        placed: dict[ShardKey, list[tuple[int, Job]]] = {}
        results: list[Scheduled | None] = [None] * len(specs)
        for i, spec in enumerate(specs):
            key = self._shard_for(spec, now)
            if spec.idempotency_key is not None:
                existing = await self._find_by_key(key, spec)
                if existing is not None:
                    results[i] = Scheduled(existing, created=False)
                    continue
            job = Job(id="", handler=spec.handler, due_at=spec.due_at, created_at=now,
                      updated_at=now, payload=spec.payload, idempotency_key=spec.idempotency_key,
                      retry=spec.retry, recurrence=spec.recurrence, notify=spec.notify,
                      timeout_seconds=spec.timeout_seconds)
            placed.setdefault(key, []).append((i, job))
        for key, jobs in placed.items():
            for i, job in await self._append_new(key, [j for _, j in jobs]):
                results[jobs[i][0]] = job
        done = [r for r in results if r is not None]
        await publish_to(self.events, [JobEvent.of(s.job, EventState.SCHEDULED, now)
                                       for s in done if s.created])
        return done


    def _shard_for(self, spec: ValidJob, now: datetime) -> ShardKey:
        if spec.idempotency_key is not None:
            slot = zlib.crc32(spec.idempotency_key.encode()) % self.settings.slots
        else:
            slot = self._rng.randrange(self.settings.slots)
        return ShardKey(bucket_of(max(spec.due_at, now), self.settings.bucket_minutes), slot)

    async def _append_new(self, key: ShardKey, jobs: list[Job]) -> list[tuple[int, Scheduled]]:
        tokens = [f"{self._rng.getrandbits(64):016x}" for _ in jobs]
        while True:
            shard = ShardBlob(key, self._index.get(key, 0))
            placed = [replace(job, id=new_job_id(shard, token))
                      for job, token in zip(jobs, tokens, strict=True)]
            records = [rec.add(job) for job in placed]
            try:
                result = await self.committer.append(shard.name, records, shard_metadata(shard))
            except BlockLimitError:
                self._advance(key, shard.index)
                continue
            if result.block_count >= self.settings.seal_blocks or \
                    result.size >= self.settings.seal_bytes:
                self._advance(key, shard.index)
            return await self._confirm_adds(shard.name, result, records, placed)

    def _advance(self, key: ShardKey, index: int) -> None:
        if index >= MAX_INDEX:
            raise ShardFullError(f"shard {key.prefix} has no blob index left")
        self._index[key] = max(self._index.get(key, 0), index + 1)

    async def _confirm_adds(self, blob: str, result: AppendResult, records: list[rec.Record],
                            placed: list[Job]) -> list[tuple[int, Scheduled]]:
        """Keyed adds are confirmed against the replayed log: when several adds raced with the
        same idempotency key, the first in the log wins and every caller gets that job."""
        keyed = any(job.idempotency_key is not None for job in placed)
        state = self.cache.cached(blob)
        if state is not None and not self.cache.apply_own(blob, result, records):
            state = await self.cache.refresh(blob) if keyed else None
        elif state is None and keyed:
            state = await self.cache.refresh(blob)
        out = []
        for i, job in enumerate(placed):
            if job.idempotency_key is not None and state is not None:
                winner = state.jobs.get(state.keys.get(job.idempotency_key, job.id), job)
                out.append((i, Scheduled(winner, created=winner.id == job.id)))
            else:
                out.append((i, Scheduled(job, created=True)))
        return out

    async def _find_by_key(self, key: ShardKey, spec: ValidJob) -> Job | None:
        """An earlier job with this idempotency key, looked up in the key's shard and in the
        previous bucket's shard (so a retried 'now' request across a bucket edge is found)."""
        earlier = ShardKey(key.bucket - timedelta(minutes=self.settings.bucket_minutes), key.slot)
        for shard in (key, earlier):
            for info in await self.store.list(shard.prefix):
                try:
                    state = await self.cache.refresh(info.name, if_size_differs=info.size)
                except BlobNotFoundError:  # purged (retention) since the listing
                    self.cache.forget(info.name)
                    continue
                job_id = state.keys.get(spec.idempotency_key or "")
                if job_id is None:
                    continue
                job = state.jobs[job_id]
                if job.handler != spec.handler or job.payload != spec.payload:
                    raise IdempotencyConflictError(spec.idempotency_key or "", job_id)
                return job
        return None

    # --- queries and control -----------------------------------------------------------------
    async def get(self, job_id: str) -> Job:
        shard = parse_job_id(job_id)
        try:
            state = await self.cache.refresh(shard.name)
        except BlobNotFoundError:
            raise JobNotFoundError(job_id) from None
        job = state.jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        at = self.clock()
        job = await self._control(job_id, lambda job: tr.cancel(job, at, reason),
                                  rec.cancel(job_id, at, reason))
        await publish_to(self.events, [JobEvent.of(job, EventState.CANCELLED, at)])
        return job

    async def run_now(self, job_id: str) -> Job:
        at = self.clock()
        job = await self._control(job_id, lambda j: tr.run_now(j, at), rec.run_now(job_id, at))
        await self._touch(job_id, at)
        await publish_to(self.events, [JobEvent.of(job, EventState.SCHEDULED, at)])
        return job

    async def reschedule(self, job_id: str, due_at: str | datetime) -> Job:
        at = self.clock()
        due = parse_due_at(due_at)
        job = await self._control(job_id, lambda j: tr.reschedule(j, due, at),
                                  rec.reschedule(job_id, due, at))
        if due < parse_job_id(job_id).key.bucket:
            await self._touch(job_id, at)
        await publish_to(self.events, [JobEvent.of(job, EventState.SCHEDULED, at)])
        return job

    async def _control(self, job_id: str, change: Callable[[Job], Job],
                       record: rec.Record) -> Job:
        """Check the change against the current state, append it, then confirm it took effect
        (a record appended concurrently by someone else may have come first)."""
        current = await self.get(job_id)
        change(current)  # raises InvalidTransitionError with the reason, nothing written
        blob = parse_job_id(job_id).name
        try:
            result = await self.committer.append(blob, [record], {})
        except BlockLimitError:
            raise ShardFullError(f"shard blob {blob} is full; the job cannot be changed") \
                from None
        if self.cache.apply_own(blob, result, [record]):
            state = self.cache.cached(blob)  # nothing came in between: no need to read
        else:
            state = await self.cache.refresh(blob)
        after = state.jobs.get(job_id) if state is not None else None
        if after is None:
            raise JobNotFoundError(job_id)
        if after == current:  # our record did not apply: someone changed the job first
            change(after)  # raises the reason why it no longer fits
        return after

    async def _touch(self, job_id: str, at: datetime) -> None:
        """Tell the slot's planner (which reads the current bucket) to look at this shard."""
        shard = parse_job_id(job_id)
        current = ShardBlob(ShardKey(bucket_of(at, self.settings.bucket_minutes),
                                     shard.key.slot), 0)
        if current.key == shard.key:
            return
        await self.committer.append(current.name, [rec.touch(shard.name, at)],
                                    shard_metadata(current))

    async def list(self, *, slot: int | None = None, status: JobStatus | None = None,
                   due_from: datetime | None = None, due_to: datetime | None = None,
                   handler: str | None = None, limit: int = 100,
                   cursor: str | None = None) -> JobPage:
        """Jobs in shard order (slot, bucket, blob), filtered; ``cursor`` continues a page."""
        after_blob, after_pos = _decode_cursor(cursor) if cursor else ("", -1)
        slots = [slot] if slot is not None else range(self.settings.slots)
        out: list[Job] = []
        for s in slots:
            for info in await self.store.list(slot_prefix(s)):
                shard = parse_shard_name(info.name)
                if shard is None or info.name < after_blob:
                    continue
                if due_to is not None and shard.key.bucket > due_to:
                    break
                try:
                    state = await self.cache.refresh(info.name, if_size_differs=info.size)
                except BlobNotFoundError:  # purged (retention) since the listing
                    self.cache.forget(info.name)
                    continue
                for pos, job in enumerate(state.jobs.values()):
                    if info.name == after_blob and pos <= after_pos:
                        continue
                    if (status and job.status != status) or (handler and job.handler != handler) \
                            or (due_from and job.due_at < due_from) \
                            or (due_to and job.due_at >= due_to):
                        continue
                    if len(out) == limit:
                        return JobPage(out, _encode_cursor(info.name, pos - 1))
                    out.append(job)
        return JobPage(out, None)

    async def close(self) -> None:
        await self.committer.drain()


def _encode_cursor(blob: str, pos: int) -> str:
    return base64.urlsafe_b64encode(f"{blob}|{pos}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        blob, pos = base64.urlsafe_b64decode(cursor.encode()).decode().rsplit("|", 1)
        if parse_shard_name(blob) is None:
            raise ValueError(blob)
        return blob, int(pos)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError("the cursor is not one this API returned; start without it") \
            from None
