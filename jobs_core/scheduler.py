"""The API side of the scheduler: schedule, query and control jobs."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from . import records
from .clock import Clock, utcnow
from .errors import (
    BlobNotFoundError,
    BlockLimitError,
    IdempotencyKeyExpiredError,
    InvalidCursorError,
    JobConflictError,
    JobNotFoundError,
    JobsError,
    StoreError,
)
from .events import EventPublisher, EventState, JobEvent, publish_to
from .group_commit import GroupCommitter
from .handlers import HandlerRegistry
from .ids import (
    JOB_ID_PATTERN,
    ShardBlob,
    ShardKey,
    bucket_of,
    new_job_id,
    parse_job_id,
    parse_shard_name,
    slot_prefix,
)
from .job_controls import JobControls
from .key_blobs import fingerprint
from .key_index import DEFAULT_SKEW, KeyIndex
from .labels import LabelFilter, matches
from .model import Job, JobStatus
from .moves import Mover, find, locate, shard_metadata
from .settings import MIN_RETENTION_DAYS, JobsSettings
from .shard_cache import ShardCache
from .shard_indexes import ShardIndexes
from .shard_state import ShardState
from .store import AppendResult, JobStore
from .validation import JobRequest, ValidJob, occurrence_key, validate

log = logging.getLogger(__name__)
KEY_PARTITIONS = 64  # of the idempotency key index: part of the storage format, never change


@dataclass(frozen=True)
class Scheduled:
    job: Job  # as it is now (it may have started already)
    created: bool  # False when an earlier job with the same idempotency key was returned
    # the job as this request's own ``add`` record wrote it, when that record is the one that
    # landed: its ``scheduled`` event is sent from it (events_of(add) gives the same event)
    added: Job | None = field(default=None, compare=False, repr=False)

    @property
    def slot(self) -> int:
        return parse_job_id(self.job.id).key.slot


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class JobScheduler(JobControls):
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
                                        max_block_bytes=self.settings.commit_max_bytes,
                                        cache=self.cache)
        self.keys = KeyIndex(store, self.committer, partitions=KEY_PARTITIONS,
                             window=timedelta(days=max(1.0, self.settings.retention_days)),
                             clock=clock)
        self.mover = Mover(store, self.committer, self.cache, self.settings, clock)
        self.shards = ShardIndexes(self.mover, clock, self.settings.bucket_minutes)

    # --- scheduling --------------------------------------------------------------------------
    async def schedule(self, request: JobRequest) -> Scheduled:
        """Validate and durably schedule one job (group-committed with concurrent calls)."""
        return await self._schedule_one(
            validate(request, self.registry, self.settings, self.clock(), self._rng))

    async def schedule_occurrence(self, request: JobRequest, schedule_id: str,
                                  run: int) -> Scheduled:
        """Overlap ``allow``: the job of occurrence ``run`` of a schedule, created once
        whatever re-runs the attempt that asks for it. Its key (``occurrence_key``, a prefix
        clients may not use) is claimed with a fingerprint of the key alone, not of the
        payload: an attempt retried after the schedule was updated finds the occurrence's job
        (or completes its lost add) instead of conflicting with it. The schedule's labels and
        notify queue are carried over as stored, not checked again: a rule tightened since
        (stop 28: whole-value patterns) must not stop a schedule's occurrences for good."""
        key = occurrence_key(schedule_id, run)
        valid = validate(replace(request, labels=None, notify=None), self.registry,
                         self.settings, self.clock(), self._rng)
        return await self._schedule_one(replace(
            valid, labels=request.labels, notify=request.notify, idempotency_key=key,
            claim_fingerprint=fingerprint(key, None)))

    async def _schedule_one(self, valid: ValidJob) -> Scheduled:
        outcome = (await self._schedule_valid([valid]))[0]
        if isinstance(outcome, JobsError):
            raise outcome
        return outcome

    async def schedule_many(self, requests: Sequence[JobRequest]) -> list[Scheduled | JobsError]:
        """Schedule many jobs with one append per shard. Each item gets its own answer: a
        scheduled job, or the error of that item (invalid, its key used for another body, or
        the storage error of its shard's append); the others are scheduled regardless."""
        now = self.clock()
        results: list[Scheduled | JobsError | None] = [None] * len(requests)
        valid: list[tuple[int, ValidJob]] = []
        for i, request in enumerate(requests):
            try:
                valid.append((i, validate(request, self.registry, self.settings, now, self._rng)))
            except JobsError as exc:
                results[i] = exc
        done = await self._schedule_valid([v for _, v in valid])
        for (i, _), outcome in zip(valid, done, strict=True):
            results[i] = outcome
        return [r for r in results if r is not None]

    async def _schedule_valid(self, specs: list[ValidJob]) -> list[Scheduled | JobsError]:
        now = self.clock()
        placed: dict[ShardKey, list[tuple[int, Job]]] = {}
        results: list[Scheduled | JobsError | None] = [None] * len(specs)
        keyed: list[tuple[int, ValidJob]] = []
        for i, spec in enumerate(specs):
            if spec.idempotency_key is not None:
                keyed.append((i, spec))
                continue
            placed.setdefault(self._shard_for(spec, now), []).append((i, self._job(spec, now)))
        outcomes = await asyncio.gather(*(self._append_new(key, [j for _, j in jobs])
                                          for key, jobs in placed.items()),
                                        *(self._schedule_keyed(spec, now) for _, spec in keyed),
                                        return_exceptions=True)
        for (_key, jobs), outcome in zip(placed.items(), outcomes, strict=False):
            for k, (i, _) in enumerate(jobs):
                results[i] = _item(outcome, k)
        for (i, _), outcome in zip(keyed, outcomes[len(placed):], strict=True):
            results[i] = _single(outcome)
        done = [r for r in results if r is not None]
        await publish_to(self.events, [JobEvent.of(s.added, EventState.SCHEDULED, now)
                                       for s in done if isinstance(s, Scheduled) and s.created
                                       and s.added is not None])
        return done

    def _job(self, spec: ValidJob, now: datetime) -> Job:
        return Job(id="", handler=spec.handler, due_at=spec.due_at, created_at=now,
                   updated_at=now, payload=spec.payload, idempotency_key=spec.idempotency_key,
                   retry=spec.retry, recurrence=spec.recurrence, notify=spec.notify,
                   timeout_seconds=spec.timeout_seconds, labels=spec.labels,
                   traceparent=spec.traceparent)

    def _shard_for(self, spec: ValidJob, now: datetime) -> ShardKey:
        if spec.idempotency_key is not None:
            slot = zlib.crc32(spec.idempotency_key.encode()) % self.settings.slots
        else:
            slot = self._rng.randrange(self.settings.slots)
        return ShardKey(bucket_of(max(spec.due_at, now), self.settings.bucket_minutes), slot)

    async def _schedule_keyed(self, spec: ValidJob, now: datetime) -> Scheduled:
        """The key index decides which job a key belongs to (first claim wins, across
        processes and time); the job's add follows its claim. A claim whose add never landed
        (its caller crashed, or saw an error) is completed by the next request with the key."""
        key = self._shard_for(spec, now)
        job = self._job(spec, now)
        shard = await self.shards.current(key)
        job = replace(job, id=new_job_id(shard, self._token()))
        key_text = spec.idempotency_key or ""
        fp = spec.claim_fingerprint or fingerprint(spec.handler, spec.payload)
        claim = await self.keys.claim(key_text, fp, job.id, now)
        if not claim.created:
            found = await find(self._read, claim.job_id)
            if found.job is not None:
                return Scheduled(found.job, created=False)
            # its add landed and the blob it moved to is gone (a purge: a job due in a later
            # bucket, run now and moved out, then purged while its id's bucket was young),
            # or no add is found and a purge may have come since (judged on the clock now,
            # not at the request's start: a slow claim or lookup must not stretch the window)
            if found.added or not self._add_may_be_lost(claim.job_id, self.clock()):
                raise IdempotencyKeyExpiredError(key_text, claim.job_id)
            # claimed, but its add is not there: its request died between claim and add, or
            # is still on its way (a concurrent request with the key). Add it: the first add
            # of an id wins, so this cannot make a second job. The key's job was created by
            # the request that claimed it, not by this one.
            job = replace(job, id=claim.job_id)
        blob = parse_job_id(job.id)
        # a claim made in an earlier bucket: its blob may be one the planners no longer list
        # (a past day whose blobs were done; soak seed 33162 ran 540 s late), so the current
        # bucket gets the hint whenever the add goes to a past bucket's blob
        await self._touch_if_earlier(
            job, blob.name,
            revived=blob.key.bucket < bucket_of(now, self.settings.bucket_minutes))
        appended = await self._add_at(blob, [job])
        try:
            added, _ = await self._locate(job.id)
        except StoreError:
            if not claim.created or not self._add_kept(blob.name, job.id, appended):
                raise  # (an add may have been dropped: only a read tells)
            # A fresh claim's id is new, made for its shard's current blob, and its add is
            # durable and kept: the job exists, and a 503 would leave the caller unsure of a
            # written job. (The one other add of this id is a request with the same key
            # completing the claim: the same handler and payload, whichever add landed first.)
            return Scheduled(job, created=True)
        if added is None:  # the blob dropped the add: answer the job it holds, never ours
            return await self._held_by_blob(blob.name, key_text, job.id)
        ours = added.created_at == job.created_at and added.due_at == job.due_at and \
            added.handler == job.handler
        return Scheduled(added, created=claim.created, added=job if ours else None)

    def _add_kept(self, blob: str, job_id: str, appended: AppendResult) -> bool:
        """Whether the replay certainly kept our add of ``job_id`` without a read: this
        process's view of ``blob`` replayed it, or nothing was before it in the blob. A
        blob's earlier version-1 add with the key drops it (``_held_by_blob``): a fresh claim
        does not rule that out (the key index never heard of version-1 keys)."""
        state = self.cache.cached(blob)
        if state is not None and (self.cache.known_size(blob) or 0) >= appended.size:
            return state.knows(job_id)
        return appended.offset == 0

    async def _held_by_blob(self, blob: str, key: str, job_id: str) -> Scheduled:
        """After an add the replay dropped: a version-1 job of the blob holds the key (its
        blob deduplicated keys before the key index, which never heard of it). Anything else
        is a conflict: nothing was added (an answer with the job we meant to add would name
        a job that GET answers 404 for)."""
        state = self.cache.cached(blob)
        holder = state.keys.get(key) if state is not None else None
        existing = (await self._locate(holder))[0] if holder is not None else None
        if existing is None:
            raise JobConflictError(f"job {job_id} for idempotency key {key!r} could not be "
                                   f"added to {blob} (it was purged or is being purged): it "
                                   "does not exist")
        return Scheduled(existing, created=False)

    def _add_may_be_lost(self, job_id: str, now: datetime) -> bool:
        """A claimed job that cannot be found: its add was lost (its request died between
        claim and add, or saw an error), unless the job was purged since. No purge deletes
        the blob the job's id names (where its add goes) before that blob's bucket ended
        ``MIN_RETENTION_DAYS`` ago (one hour; less 5 minutes for clock skew): until then the
        request adds it (the first add of an id wins, so a concurrent add of it makes no
        second job). Later the key counts as spent: an add then could race a purge of that
        blob and re-create it. (Before, the key was spent 10 minutes after its claim: an
        overlap-allow occurrence whose attempt was retried later never got its job.)"""
        home = parse_job_id(job_id)
        ended = home.key.bucket + timedelta(minutes=self.settings.bucket_minutes)
        return now < ended + timedelta(days=MIN_RETENTION_DAYS) - DEFAULT_SKEW

    async def _append_new(self, key: ShardKey, jobs: list[Job]) -> list[Scheduled]:
        tokens = [self._token() for _ in jobs]
        while True:
            shard = await self.shards.current(key)
            placed = [replace(job, id=new_job_id(shard, token))
                      for job, token in zip(jobs, tokens, strict=True)]
            try:
                await self._add_at(shard, placed)
            except BlockLimitError:  # (verified: the block is not in the blob)
                self.shards.advance(key, shard.index)
                continue
            return [Scheduled(job, created=True, added=job) for job in placed]

    async def _add_at(self, shard: ShardBlob, jobs: list[Job]) -> AppendResult:
        result = await self.committer.append(shard.name, [records.add(job) for job in jobs],
                                             shard_metadata(shard))
        if result.block_count >= self.settings.seal_blocks or \
                result.size >= self.settings.seal_bytes:
            self.shards.advance(shard.key, shard.index)
        return result

    # --- queries and control -----------------------------------------------------------------
    async def _read(self, blob: str) -> ShardState:
        try:
            return await self.cache.refresh(blob)
        except BlobNotFoundError:
            self.cache.forget(blob)
            raise

    async def _locate(self, job_id: str) -> tuple[Job | None, str]:
        return await locate(self._read, job_id)

    async def get(self, job_id: str) -> Job:
        """The job as the blob it lives in says (one read; two if it moved)."""
        job, _ = await self._locate(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def list(self, *, slot: int | None = None, status: JobStatus | None = None,
                   due_from: datetime | None = None, due_to: datetime | None = None,
                   handler: str | None = None, limit: int = 100,
                   cursor: str | None = None, labels: LabelFilter | None = None) -> JobPage:
        """Jobs in shard order (slot, bucket, blob; by id within a blob), filtered; ``cursor``
        continues a page. ``labels``: each key must be present (with that value, unless None).
        With ``due_to``: the blobs of buckets up to it, and the later blobs their ``touch``
        records name (a job rescheduled or run earlier stays in its blob: from the hunt of
        stop 28, it was left out). Ordered by id within a blob, a page never skips a job that
        stays where it is when others move out of its blob (positions shifted: a job was
        never listed, another twice)."""
        after_blob, after_id = _decode_cursor(cursor) if cursor else ("", "")
        slots = [slot] if slot is not None else range(self.settings.slots)
        out: list[Job] = []

        def wanted(job: Job) -> bool:
            return not ((status and job.status != status) or
                        (handler and job.handler != handler) or
                        (due_from and job.due_at < due_from) or
                        (due_to and job.due_at >= due_to) or
                        (labels and not matches(job.labels, labels)))

        for s in slots:
            touched: set[str] = set()
            prefix = slot_prefix(s)
            for info in await self.store.list(prefix):
                shard = parse_shard_name(info.name)
                passed = info.name < after_blob  # a page before listed its jobs
                if shard is None or (passed and (due_to is None or
                                                 not after_blob.startswith(prefix))):
                    continue
                if due_to is not None and shard.key.bucket > due_to and \
                        info.name not in touched:
                    continue
                state = await self.cache.refresh_listed(info.name, info.size)
                if state is None:  # purged (retention) since the listing
                    continue
                touched |= state.touched
                if passed:  # read again for its touch hints only (from review of stop 28:
                    continue  # a page after it skipped the later blob they name)
                for job in sorted(filter(wanted, state.jobs.values()), key=lambda j: j.id):
                    if info.name == after_blob and job.id < after_id:
                        continue
                    if len(out) == limit:
                        return JobPage(out, _encode_cursor(info.name, job.id))
                    out.append(job)
        return JobPage(out, None)

    async def close(self) -> None:
        await self.committer.drain()


def _single(outcome: object) -> Scheduled | JobsError:
    if isinstance(outcome, Scheduled | JobsError):
        return outcome
    if isinstance(outcome, BaseException):
        raise outcome
    raise TypeError(f"unexpected outcome {outcome!r}")


def _item(outcome: object, k: int) -> Scheduled | JobsError:
    """Item ``k`` of one shard's append: its job, or the append's error for every item."""
    if isinstance(outcome, list):
        return _single(outcome[k])
    return _single(outcome)


def _encode_cursor(blob: str, next_id: str) -> str:
    """Where the next page starts: in ``blob``, at the job ``next_id`` (or the first after)."""
    return base64.urlsafe_b64encode(f"{blob}|{next_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        blob, at = base64.urlsafe_b64decode(cursor.encode()).decode().rsplit("|", 1)
        if parse_shard_name(blob) is None:
            raise ValueError(blob)
        if at.lstrip("-").isdigit():  # a position, from a release before: the blob again
            return blob, ""
        if not JOB_ID_PATTERN.fullmatch(at):
            raise ValueError(at)
        return blob, at
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError("the cursor is not one this API returned; start without it") \
            from None
