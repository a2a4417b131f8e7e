"""The executor side: plan a slot's cycle (``slot_planner.py``), then execute batches of due
jobs.

``plan`` and ``execute`` take and return plain data (``Plan``, ``Batch``, ``BatchResult``), so a
Durable orchestrator can call them as activities, possibly in different processes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from . import records
from .attempts import fires_occurrences, outcome_name
from .claims import ClaimManager
from .clock import Clock, utcnow
from .errors import BlockLimitError, JobsError
from .events import EventPublisher, EventState, JobEvent
from .group_commit import GroupCommitter
from .handler_limits import HandlerPermits
from .handlers import HandlerRegistry
from .model import ErrorInfo, Job, JobStatus
from .moves import Mover
from .outbox import Outbox
from .plans import (
    Batch,
    BatchResult,
    DueOrder,
    Plan,
)
from .recurrence import late_from, misfired
from .settings import JobsSettings
from .shard_cache import ShardCache
from .shard_state import ShardState
from .slot_listing import SlotListing
from .slot_planner import SlotPlanner
from .store import JobStore
from .telemetry import attempt_span

log = logging.getLogger(__name__)


class Executor(SlotPlanner):
    """Plans a slot's cycles and executes its batches.

    Every execution of a job has its own random token. The ``start`` record carries the token
    and a lease (the job's timeout, plus its compensation's, plus the grace) measured from the
    moment the handler really starts; the outcome carries the token too and applies only while
    that execution is still the job's current one. A running job whose lease has passed is
    abandoned: recorded as a failed attempt (``ExecutorLost``) and retried. So an outcome can
    never be recorded by an execution that a newer one superseded, whatever the claim, the
    process or the Durable cycle.
    """

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
        self.committer = GroupCommitter(store, linger=self.settings.commit_linger_ms / 1000,
                                        max_block_bytes=self.settings.commit_max_bytes,
                                        cache=self.cache)
        self.claims = ClaimManager(store, ttl=self.settings.claim_ttl_seconds)
        self.mover = Mover(store, self.committer, self.cache, self.settings, clock)
        self.listing = SlotListing(store)  # today and busy past days, not a year ahead
        self._outbox = Outbox(events, self.settings.commit_linger_ms / 1000)
        self._starting: Counter[str] = Counter()  # blob -> start records being written here
        self._due_order = DueOrder()  # a plan's due work per blob, shared by its batches
        self.permits = HandlerPermits(store, registry.limits(self.settings.handler_limits),
                                      clock)
        self.overrunning: dict[str, list[threading.Event]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._unknown_warned: set[str] = set()  # handlers this process found jobs for

    # --- execute -----------------------------------------------------------------------------
    async def execute(self, batch: Batch) -> BatchResult:
        """Run the batch's jobs that are still due, each as its own execution: a ``start``
        record when the handler can really start (group-committed with the batch's other
        starts and outcomes), the handler, then its outcome record, retried until its lease
        ends. Abandoned executions are recorded as failed attempts. At-least-once: a crash
        between a start and its outcome re-runs the job once its lease has passed."""
        result = BatchResult()
        # always read what is new (one small tail read): the plan may come from another
        # process, and a ``full`` record from any process must stop starts here at once
        state = await self.cache.refresh(batch.blob)
        now = self.clock()
        jobs = [state.jobs[i] for i in self._due_order.select(batch, state, self._abandoned)]
        result.skipped += max(0, batch.planned - len(jobs))
        full = state.full or \
            await self._blocks(batch.blob) + len(state.running) >= self.settings.evacuate_blocks
        if full and not state.full:  # tell every process: no more starts in this blob
            state = await self._write(batch.blob, [records.full(now)])
        gate = asyncio.Semaphore(self.settings.max_concurrency)
        work = []
        overflow: list[str] = []  # jobs not started because the blob has no room for them
        for job in jobs:
            if job.status.is_waiting and job.due_at <= now and job.moving_to is None:
                if full:
                    overflow.append(job.id)
                elif misfired(job.recurrence, job.attempts, job.due_at, now, job.due_set_at) and \
                        (nxt := self._next(job, now, runs_done=job.runs)) is not None:
                    work.append(self._skip_misfire(batch, job, nxt, now, result))
                else:
                    work.append(self._execute_one(batch, job.id, gate, result, overflow))
            elif job.status is JobStatus.RUNNING and self._abandoned(job, now):
                work.append(self._abandon(batch, job, result))  # (headroom is for these)
            else:
                result.skipped += 1
        await asyncio.gather(*work)
        if overflow:  # every waiting job of the blob leaves in one round
            state = await self.cache.refresh(batch.blob)
            if not state.full:
                state = await self._write(batch.blob, [records.full(self.clock())])
            result.moved += await self.mover.evacuate(batch.blob, state)
        await self._outbox.drain()  # the batch's events are out before it reports
        self._due_order.done(batch)
        return result

    async def _skip_misfire(self, batch: Batch, job: Job, nxt: datetime, now: datetime,
                            result: BatchResult) -> None:
        """An occurrence later than its recurrence's misfire grace is not run: the job waits
        for ``nxt``, its next occurrence after now. (With no next occurrence, because the
        recurrence ends, the caller runs the late one instead: it is the last.)"""
        assert job.recurrence is not None
        rid = self._token()
        try:
            _, made = await self.committer.write_made(
                batch.blob, records.misfire(job.id, nxt, now, rid=rid, run=job.runs,
                                            late_from=late_from(job.due_at, job.due_set_at)),
                rid, job.id)
        except JobsError as exc:  # not written (or cannot tell): the next cycle decides again
            log.warning("could not skip the misfired occurrence of %s: %s", job.id, exc)
            return
        result.skipped += 1
        if made.applied:
            log.info("job %s: occurrence due %s skipped (misfire grace %s s); next %s", job.id,
                     job.due_at.isoformat(), job.recurrence.misfire_grace_seconds,
                     nxt.isoformat())
        if made.job is not None:  # (unknown: the log publisher announces it)
            self._outbox.add([JobEvent.of(made.job, EventState.SCHEDULED, now)])

    def _room_to_start(self, blob: str, state: ShardState) -> bool:
        """Whether one more job may start in ``blob``: every running job (of any process, as
        far as this process has read) and every start being written here owes the blob one
        outcome block, and those blocks are counted as used, so the outcomes of what started
        always fit under the 50,000-block limit (with ``JOBS_EVACUATE_BLOCKS`` defaults, 5,000
        blocks are left for starts racing in from other processes and the evacuation)."""
        if state.full:
            return False
        owed = len(state.running) + self._starting[blob]
        return self.cache.blocks(blob) + owed < self.settings.evacuate_blocks

    async def _blocks(self, blob: str) -> int:
        """The blob's block count: known from our own appends, else one HEAD request (once
        per blob and process), so a cold process never starts jobs in a blob past
        ``JOBS_EVACUATE_BLOCKS``."""
        known = self.cache.blocks(blob)
        if known:
            return known
        info = await self.store.stat(blob)
        self.cache.note_blocks(blob, info.block_count or 0)
        return info.block_count or 0

    async def _write(self, blob: str, batch: list[records.Record]) -> ShardState:
        """Append through group commit; the blob's state with the records replayed."""
        return await self.committer.write(blob, batch)

    async def _execute_one(self, batch: Batch, job_id: str, gate: asyncio.Semaphore,
                           result: BatchResult, overflow: list[str]) -> None:
        async with gate:
            state = self.cache.cached(batch.blob)
            if state is None:  # dropped from this process's cache meanwhile: next cycle
                result.skipped += 1
                return
            if not self._room_to_start(batch.blob, state):
                overflow.append(job_id)  # the rest of the blob is for outcomes: move it
                result.skipped += 1
                return
            job = state.jobs.get(job_id) if state is not None else None
            now = self.clock()
            if job is None or not job.status.is_waiting or job.due_at > now or \
                    job.moving_to is not None:
                result.skipped += 1  # changed while it waited for the gate
                return
            if self._waits_for_handler(job, result):  # (an occurrence needs it too)
                return
            token = self._token()
            lease = now + timedelta(seconds=self._lease_seconds(job))
            # (an attempt that only creates an occurrence's job needs no permit: that job does)
            limited = self.permits.limited(job.handler) and not fires_occurrences(job)
            if limited and not await self.permits.acquire(job.handler, token, lease):
                result.throttled += 1  # its handler is at its limit: it stays scheduled
                return
            try:
                await self._start_and_run(batch, job, token, now, lease, result)
            finally:
                threads = self.overrunning.pop(token, None)
                if limited:
                    await self._give_back(job.handler, token, threads, lease)

    def _waits_for_handler(self, job: Job, result: BatchResult) -> bool:
        """True (the job counted as throttled) if this process does not know the job's
        handler: the job is left waiting, as it is, for an instance that has it. During a
        rolling deployment an instance of the release before the handler's may run the slot's
        batch (jobs were accepted by one that knows it). Failing it for good would lose it
        (from the hunt of stop 28). Logged once per handler and process."""
        if self.registry.find(job.handler) is not None:
            return False
        result.throttled += 1
        if job.handler not in self._unknown_warned:
            self._unknown_warned.add(job.handler)
            log.warning("job %s: handler %r is not registered in this process: the job waits "
                        "for an instance that has it (a release without the handler leaves "
                        "its jobs waiting: cancel them)", job.id, job.handler)
        return True

    async def _give_back(self, handler: str, token: str, threads: list[threading.Event] | None,
                         lease: datetime) -> None:
        """Release a permit now, or once the sync threads that ran past their timeout under
        it have returned."""
        if threads:
            self._later(self._release_when(handler, token, threads, lease))
        else:
            await self.permits.release(handler, token)

    async def _release_when(self, handler: str, token: str, threads: list[threading.Event],
                            lease: datetime) -> None:
        """Give a permit back once the attempt's overrunning threads have returned (at the
        latest when the attempt's lease ends: the permit expires then anyway)."""
        for ended in threads:
            wait = max(0.0, (lease - self.clock()).total_seconds())
            await asyncio.to_thread(ended.wait, wait)
        await self.permits.release(handler, token)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_and_run(self, batch: Batch, job: Job, token: str, now: datetime,
                             lease: datetime, result: BatchResult) -> None:
        start = records.start(job.id, job.attempts + 1, batch.epoch, now, token=token,
                              run=job.runs, lease=lease)
        self._starting[batch.blob] += 1
        try:
            state = await self._write(batch.blob, [start])
        except JobsError as exc:  # not written (or cannot tell): the next cycle retries
            log.warning("could not start job %s: %s", job.id, exc)
            result.skipped += 1
            return
        finally:
            self._starting[batch.blob] -= 1
        mine = state.jobs.get(job.id)
        if mine is None or mine.token != token:
            result.skipped += 1  # cancelled, moved or started by someone else first
            return
        result.started += 1
        result.lateness.record((now - job.due_at).total_seconds() * 1000)
        self._outbox.add([JobEvent.of(mine, EventState.STARTED, now)])
        events: list[JobEvent] = []
        with attempt_span(mine.id, mine.handler, mine.attempts, mine.runs, mine.due_at, now,
                          mine.traceparent) as span:
            outcome = await self._run(mine, batch.epoch, result, events)
            span.outcome(outcome_name(outcome),
                         outcome.error.message if isinstance(outcome, records.Fail) else None)
        if await self._record_outcome(batch.blob, outcome, mine):
            self._outbox.add(events)  # only outcomes that applied are announced

    async def _record_outcome(self, blob: str, record: records.Ok | records.Fail, job: Job) -> bool:
        """Append an outcome, retrying storage errors until the execution's lease ends.
        Returns whether the outcome applied (False: superseded, or no storage in time)."""
        deadline = job.lease_until or (self.clock() + timedelta(seconds=30))
        delay = 0.2
        rid = self._token()  # the replay says whether this very record applied
        record = replace(record, rid=rid)
        while True:
            try:
                state = await self._write(blob, [record])
            except BlockLimitError:
                log.error("outcome of %s not recorded: %s is at the block limit", job.id, blob)
                return False
            except JobsError as exc:
                if self.clock() + timedelta(seconds=delay) >= deadline:
                    log.error("outcome of %s not recorded before its lease ended: %s", job.id,
                              exc)
                    return False
                log.warning("recording the outcome of %s failed (%s); retry in %.1f s", job.id,
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            return bool(state.rids.get(rid))

    async def _abandon(self, batch: Batch, job: Job, result: BatchResult) -> None:
        """Record a lost execution as a failed attempt. If that failure is final and the
        handler is limited and has a compensation, this takes a permit of its own first (the
        lost execution's expired with its lease), so the compensation runs within the
        handler's limits; a retry runs no handler code here, and takes none."""
        now = self.clock()
        error = ErrorInfo("ExecutorLost", f"attempt {job.attempts} started at "
                          f"{job.started_at} never reported back within its lease (executor "
                          "lost)", job.attempts)
        if self._gives_up(job, error) and self._waits_for_handler(job, result):
            # its compensation is that handler's: an instance that has it records the failure
            # (from review of stop 28: failed here with the compensation silently skipped)
            return
        limited = self._gives_up(job, error) and self.permits.limited(job.handler) and \
            self._compensation_of(job) is not None
        token = self._token()
        lease = now + timedelta(seconds=self._lease_seconds(job))
        if limited and not await self.permits.acquire(job.handler, token, lease):
            result.throttled += 1  # the handler is at its limit: abandoned next cycle
            return
        lost = job.token  # (its overrunning threads, if it ran here, are under this token)
        try:
            if self._gives_up(job, error) and self._compensation_of(job) is not None:
                taken = await self._take_over(batch, job, now, token, lease)
                if taken is None:  # another executor took it (or it moved on): theirs
                    result.skipped += 1
                    return
                job = taken
                await self._record_abandoned(batch, job, now, error, result, taken_over=True)
            else:
                await self._record_abandoned(batch, job, now, error, result)
        finally:
            threads = [*(self.overrunning.pop(lost, []) if lost else []),
                       *self.overrunning.pop(token, [])] or None
            if limited:
                await self._give_back(job.handler, token, threads, lease)

    async def _take_over(self, batch: Batch, job: Job, now: datetime, token: str,
                         lease: datetime) -> Job | None:
        """Before the compensation of a lost execution's last attempt: take the job over
        (``records.TakeOver``), so that no cycle planned while the compensation runs takes
        the job for abandoned again and compensates it once more (from the hunt of stop 27:
        a compensation longer than ``JOBS_CYCLE_DEADLINE_SECONDS`` ran once per cycle). The
        job as taken over, or None when the record did not apply."""
        rid = self._token()
        record = records.take_over(job.id, job.attempts, now, token=token, prev=job.token,
                                   lease=lease, rid=rid)
        try:
            state = await self._write(batch.blob, [record])
        except JobsError as exc:
            log.warning("could not take over abandoned job %s: %s", job.id, exc)
            return None
        taken = state.jobs.get(job.id)
        return taken if state.rids.get(rid) and taken is not None and taken.token == token \
            else None

    async def _record_abandoned(self, batch: Batch, job: Job, now: datetime, error: ErrorInfo,
                                result: BatchResult, *, taken_over: bool = False) -> None:
        events: list[JobEvent] = []
        probe = BatchResult()
        record = await self._failure(job, batch.epoch, now, error, probe, events)
        if taken_over:  # its own execution now: the outcome is retried until its lease ends
            # (a fail written once and lost would leave the job to be taken over, and
            # compensated, again: from review of the take-over)
            applied = await self._record_outcome(batch.blob, record, job)
        else:
            rid = self._token()
            record = replace(record, rid=rid)
            try:
                state = await self._write(batch.blob, [record])
            except JobsError as exc:
                log.warning("could not record abandoned job %s: %s", job.id, exc)
                return
            applied = bool(state.rids.get(rid))
        if applied:  # (a stale view may abandon what already moved on)
            probe.abandoned += 1
            result.add(probe)
            self._outbox.add(events)
        else:
            result.skipped += 1

    # --- convenience -------------------------------------------------------------------------
    async def run_cycle(self, slot: int) -> tuple[Plan, BatchResult]:
        """plan + execute every batch concurrently (what one orchestrator cycle does)."""
        plan = await self.plan(slot)
        total = BatchResult()
        for outcome in await asyncio.gather(*(self.execute(b) for b in plan.batches)):
            total.add(outcome)
        return plan, total

