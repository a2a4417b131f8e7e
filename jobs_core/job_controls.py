"""The controls of a job: cancel, run now, reschedule, pause, resume, update (of a waiting
job) and retry (of a failed or cancelled one).

Each checks the change against the job's current state, appends one record where the job lives
and answers the truth: the replay says whether that record (by its request id) applied. A
change that makes the job due before its blob's bucket writes the planners' ``touch`` hint
first. ``JobControls`` is the part of ``JobScheduler`` that does this; it uses the scheduler's
cache, committer, mover, clock and events.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from . import records, transitions
from .errors import (
    BlockLimitError,
    InvalidDueTimeError,
    InvalidTransitionError,
    JobConflictError,
    JobNotFoundError,
    ShardFullError,
)
from .events import EventPublisher, EventState, JobEvent, publish_to
from .group_commit import GroupCommitter
from .handlers import HandlerRegistry
from .ids import ShardKey, bucket_of, parse_job_id, parse_shard_name
from .job_update import parse_update, updated_due, updated_values
from .model import Job, JobStatus
from .moves import Mover, shard_metadata
from .recurrence import next_occurrence
from .settings import JobsSettings
from .shard_cache import ShardCache
from .shard_indexes import ShardIndexes
from .shard_state import ShardState
from .store import JobStore
from .validation import resolve_due

MAX_CONTROL_TRIES = 5
MOVE_WAIT_SECONDS = 0.2  # a control meeting a job halfway through a move waits this long


def resume_due(job: Job, at: datetime) -> datetime:
    """When a job resumed at ``at`` is due: occurrences missed while paused are skipped.
    Raises ``InvalidTransitionError`` (409) when no occurrence is left before its ``until``."""
    if job.due_at >= at:
        return job.due_at
    if job.recurrence is not None and job.attempts == 0:
        due = next_occurrence(job.recurrence, at)
        if job.recurrence.until is not None and due > job.recurrence.until:
            raise InvalidTransitionError(
                "resume", job.status.value, JobStatus.SCHEDULED.value,
                f"its recurrence ended at {job.recurrence.until.isoformat()} while it was "
                "paused; cancel it")
        return due
    return at  # a one-off job, or a retry, that came due while paused: now


def within_until(job: Job, due: datetime) -> None:
    """A recurring job's occurrence may not be moved past its recurrence's ``until``."""
    until = job.recurrence.until if job.recurrence is not None else None
    if until is not None and due > until:
        raise InvalidDueTimeError(f"the new due time {due.isoformat()} is after the "
                                  f"recurrence's until ({until.isoformat()})", field="due_at")


class JobControls:
    """Mixed into ``JobScheduler``: what the controls need of it is declared here."""

    store: JobStore
    settings: JobsSettings
    registry: HandlerRegistry
    clock: Callable[[], datetime]
    events: EventPublisher | None
    cache: ShardCache
    committer: GroupCommitter
    mover: Mover
    shards: ShardIndexes
    _rng: random.Random

    async def _read(self, blob: str) -> ShardState:
        raise NotImplementedError

    async def _locate(self, job_id: str) -> tuple[Job | None, str]:
        raise NotImplementedError

    def _token(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        at = self.clock()
        return await self._control(job_id, lambda j, rid: records.cancel(j.id, at, reason, rid=rid,
                                                                         run=j.runs),
                                  lambda j: transitions.cancel(j, at, reason),
                                  EventState.CANCELLED, at)

    async def update(self, job_id: str, body: dict[str, Any]) -> Job:
        """Change a waiting or paused job's payload, retry policy, recurrence or timeout
        (``job_update.py``); checked like scheduling before anything is read or written."""
        at = self.clock()
        change = parse_update(body, self.settings, at)

        def resolved(job: Job) -> tuple[dict[str, Any], datetime]:
            values = updated_values(job, change, at)
            handler = self.registry.find(job.handler)
            if "payload" in values and handler is not None:
                handler.check(values["payload"])  # (400, nothing written)
            return values, updated_due(job, values, at)

        return await self._control(
            job_id, lambda j, rid: records.update(j.id, *resolved(j), at, rid=rid, run=j.runs),
            lambda j: transitions.update(j, *resolved(j), at), EventState.SCHEDULED, at)

    async def pause(self, job_id: str) -> Job:
        """Hold a waiting job (a recurring schedule, a one-off job, a retry's back-off): it
        keeps its id and history and does not run until ``resume``; ``cancel`` still works."""
        at = self.clock()
        return await self._control(job_id, lambda j, rid: records.pause(j.id, at, rid=rid,
                                                                        run=j.runs),
                                  lambda j: transitions.pause(j, at), EventState.PAUSED, at)

    async def resume(self, job_id: str) -> Job:
        """A paused job waits again: a recurring one for its next occurrence from now (the one
        it was waiting for, if that has not passed), a one-off job for its due time or now."""
        at = self.clock()
        return await self._control(
            job_id, lambda j, rid: records.resume(j.id, resume_due(j, at), at, rid=rid, run=j.runs),
            lambda j: transitions.resume(j, resume_due(j, at), at), EventState.SCHEDULED, at)

    async def run_now(self, job_id: str) -> Job:
        at = self.clock()
        return await self._control(job_id, lambda j, rid: records.run_now(j.id, at, rid=rid,
                                                                          run=j.runs),
                                  lambda j: transitions.run_now(j, at), EventState.SCHEDULED, at)

    async def retry(self, job_id: str) -> Job:
        """Run a failed or cancelled job again now, as a new run with a fresh attempt budget
        (same id; its history stays in its log). A recurring schedule then carries on, unless
        its recurrence has ended."""
        at = self.clock()
        return await self._control(
            job_id, lambda j, rid: records.retry(transitions.retry(j, at), at, rid=rid, run=j.runs),
            lambda j: transitions.retry(j, at), EventState.SCHEDULED, at)

    async def reschedule(self, job_id: str, due_at: str | datetime | None = None, *,
                         delay: float | None = None) -> Job:
        """Move a waiting job's due time to ``due_at`` or ``delay`` seconds from now (one of
        them; the same limits as scheduling: the horizon and JOBS_MAX_PAST_SECONDS)."""
        at = self.clock()
        if due_at is None and delay is None:
            raise InvalidDueTimeError("give the new due time: due_at or delay",
                                      field="due_at")
        due = resolve_due(due_at, delay, self.settings, at)

        def change(job: Job) -> Job:
            within_until(job, due)
            return transitions.reschedule(job, due, at)

        return await self._control(
            job_id, lambda j, rid: records.reschedule(j.id, due, at, rid=rid, run=j.runs), change,
            EventState.SCHEDULED, at)

    async def _control(self, job_id: str, record: Callable[[Job, str], records.Record],
                       change: Callable[[Job], Job], announce: EventState,
                       at: datetime) -> Job:
        """Check the change against the job's current state, append it where the job lives,
        and answer the truth: the replay says whether our record (by its request id) applied;
        a change that applied is announced (``announce``: its event's state, at ``at``).
        When it did not (someone changed the job first), the real state's reason is raised;
        a job that was moving is followed to its new blob and tried again."""
        for _ in range(MAX_CONTROL_TRIES):
            current, blob = await self._locate(job_id)
            if current is None:
                raise JobNotFoundError(job_id)
            if current.moving_to is not None:
                await asyncio.sleep(MOVE_WAIT_SECONDS)
                continue
            changed = change(current)  # raises InvalidTransitionError, nothing written
            state = self.cache.cached(blob)
            if self.cache.blocks(blob) >= self.settings.evacuate_blocks or \
                    (state is not None and state.full):
                if current.status.is_final:  # a retry: only waiting jobs move out
                    raise JobConflictError(
                        f"job {job_id} finished in shard blob {blob}, which is nearly full "
                        f"(JOBS_EVACUATE_BLOCKS); it cannot run again there: schedule a new "
                        "job with its handler and payload")
                # keep the blob's headroom for outcomes: its waiting jobs leave first
                await self.mover.evacuate(blob, await self._read(blob))
                continue
            await self._before_change(current, changed, blob, at)
            rid = self._token()
            try:
                state, made = await self.committer.write_made(blob, record(current, rid), rid,
                                                              job_id)
            except BlockLimitError:
                raise ShardFullError(f"shard blob {blob} is full; the job cannot be changed "
                                     "until it moves to a new blob (within one cycle)") from None
            if made.job is not None:
                await publish_to(self.events, [JobEvent.of(made.job, announce, at)])
                return made.job
            if made.applied:  # the state it made cannot be read back now: answer the one it
                # made from the state it was checked against (exact unless another change came
                # in between); the log publisher announces it
                return changed
            after = state.jobs.get(job_id)
            if after is not None and after.moving_to is None:
                change(after)  # raises the reason why it no longer fits
        raise JobConflictError(f"job {job_id} kept changing (it was moving); try again")

    async def _before_change(self, current: Job, changed: Job, blob: str, at: datetime) -> None:
        """What must land before a change's record, so that the change never lands without it:
        the planner's hint when the change makes the job due before ``blob``'s bucket (the
        planner skips a blob whose bucket has not begun), and, for a retry of a finished job,
        a pointer from its home."""
        await self._touch_if_earlier(changed, blob, revived=current.status.is_final)
        if current.status.is_final:
            await self._point_home(current.id, blob, at)

    async def _point_home(self, job_id: str, blob: str, at: datetime) -> None:
        """Before a finished job that moved out of its home runs again (a retry): a pointer
        from its home. A purge judges the home by reading the blob the job lives in (final,
        old), and deletes the home on the home's ETag only (from the hunt of stop 27, where a
        retry in between answered 200 and GET 404). A purge that read the home before the
        pointer fails its delete; one that reads it after sees a recent change and keeps it;
        one that deleted it already sees the pointer re-create it. Written before the retry
        record, so a retry never lands without it (a pointer whose retry then fails only
        keeps the home for another retention). A home at the hard limit refuses it, and the
        retry with it (409)."""
        home = parse_job_id(job_id)
        if home.name == blob:
            return
        try:
            await self.committer.append(
                home.name, [records.pointer(job_id, blob, at)], shard_metadata(home))
        except BlockLimitError:  # without the pointer a purge could lose the retried job
            raise JobConflictError(
                f"job {job_id} lives in {blob}, and its home blob {home.name} is at the block "
                "limit, so it cannot run again safely: schedule a new job with its handler "
                "and payload") from None

    async def _touch_if_earlier(self, job: Job, blob: str, *, revived: bool = False) -> None:
        """Write the planner's hint *before* a record that makes ``job`` due before ``blob``'s
        bucket: a hint whose change then fails costs one extra read a cycle until the bucket
        begins; a change whose hint failed would leave the job late until its bucket begins.
        A finished job that runs again (``revived``) needs it too: its blob may be of a past
        day the planner no longer lists (every job in it was final)."""
        shard = parse_shard_name(blob)
        if shard is not None and (revived or job.due_at < shard.key.bucket):
            await self._touch(blob, self.clock())

    async def _touch(self, blob: str, at: datetime) -> None:
        """Tell the slot's planner (which reads the current bucket) to read ``blob`` now."""
        shard = parse_shard_name(blob)
        if shard is None:
            return
        key = ShardKey(bucket_of(at, self.settings.bucket_minutes), shard.key.slot)
        if key == shard.key:
            return
        while True:
            current = await self.shards.current(key)
            try:
                result = await self.committer.append(current.name, [records.touch(blob, at)],
                                                     shard_metadata(current))
            except BlockLimitError:
                self.shards.advance(key, current.index)
                continue
            if result.block_count >= self.settings.seal_blocks:
                self.shards.advance(key, current.index)
            return
