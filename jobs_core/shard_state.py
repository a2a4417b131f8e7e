"""Replaying a shard log into the current state of its jobs."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from . import records, transitions
from .errors import InvalidTransitionError, UnsupportedRecordVersionError
from .model import Job, JobStatus

log = logging.getLogger(__name__)
EXECUTION_TYPES = (records.Start, records.Ok, records.Fail)
Observer = Callable[[records.Record, "Job | None", "Job | None"], None]


class ShardState:
    """The jobs of one shard blob, as its log says they are.

    With ``keep_finished=False`` (executors) a job is dropped once it is final, so memory does
    not grow with the number of finished jobs; only counts (and the idempotency keys of
    version-1 adds, see ``keys``) are kept.
    """

    def __init__(self, blob: str, *, keep_finished: bool = True) -> None:
        self.blob = blob
        self.keep_finished = keep_finished
        self.jobs: dict[str, Job] = {}
        # idempotency key -> job id, of version-1 adds: their blob deduplicated keys (the
        # first add wins); since version 2 the key index does, and a key may name a new job
        # once its claim expired (a later add with it, another id, is that job)
        self.keys: dict[str, str] = {}
        self.dropped: Counter[str] = Counter()  # finished jobs no longer held, by status
        # those jobs: id -> (status, runs, version); a later add of one is a replay, a retry
        # revives it (at the next version: a job's versions only grow, kept or not)
        self.finished: dict[str, tuple[str, int, int]] = {}
        self.max_epoch = 0  # highest epoch of v1 execution records: lower v1 ones are fenced off
        self.touched: set[str] = set()
        self.skipped = 0  # malformed lines and records whose transition did not apply
        self.fenced = 0
        # request id of a control or outcome record -> the job version its record made (0: it
        # did not apply): a caller tells the state its change made from later ones
        self.rids: dict[str, int] = {}
        # request ids a caller of this process waits on (``ShardCache.watch``): the job as
        # each one's record left it, once it applied
        self.watched: dict[str, Job | None] = {}
        self.running: set[str] = set()  # ids of running jobs: each owes the blob an outcome
        self.moved: dict[str, str] = {}  # job id -> blob it moved to (gone from this blob)
        self.pointers: dict[str, str] = {}  # (home blob) job id -> blob it lives in now
        self.latest_change: datetime | None = None  # newest ``at`` of any applied record
        self.full = False  # a ``full`` record: past JOBS_EVACUATE_BLOCKS, waiting jobs leave
        # called for every record that changed a job, with the job before and after it
        # (``None`` before an add, after a ``moved``): state-change events come from here
        self.observer: Observer | None = None

    # --- feeding -----------------------------------------------------------------------------
    def feed_lines(self, lines: Iterable[bytes]) -> None:
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "op" not in record:
                    raise ValueError("not a record object")
            except ValueError as exc:
                self.skipped += 1
                log.warning("shard %s: skipped a malformed record (%s): %.80r", self.blob, exc,
                            line)
                continue
            self.apply(record)

    def apply(self, record: records.Record | records.Wire) -> None:
        """Apply one record: typed (our own, just written) or the JSON object of a line."""
        if isinstance(record, dict):
            version = record.get("v")
            if version not in records.READABLE_VERSIONS:
                if isinstance(version, int) and version > records.FORMAT_VERSION:
                    raise UnsupportedRecordVersionError(version, self.blob)
                self.skipped += 1
                log.warning("shard %s: skipped a record without a known version: %.80r",
                            self.blob, record)
                return
            try:
                decoded = records.decode(record)
            except (KeyError, TypeError, ValueError) as exc:
                self.skipped += 1
                log.warning("shard %s: skipped an invalid %s record (%s)", self.blob,
                            record.get("op"), exc)
                return
            record = decoded
        elif isinstance(record, records.Add):  # the writer's own: the replay numbers a copy
            record = replace(record, job=replace(record.job))
        try:
            self._apply(record)
        except InvalidTransitionError as exc:
            self.skipped += 1
            log.debug("shard %s: record %s for %s not applied: %s", self.blob, record.OP,
                      getattr(record, "id", None), exc)

    def _apply(self, r: records.Record) -> None:
        # an add, or the blob's
        if isinstance(r, records.Add | records.Touch | records.Pointer | records.Full):
            if isinstance(r, records.Add):
                self._add(r)
            elif isinstance(r, records.Touch):
                self.touched.add(r.shard)
            elif isinstance(r, records.Pointer):
                self.pointers[r.id] = r.to
                self._changed(r.at)  # (retention: a home just pointed at its job is recent)
            elif isinstance(r, records.Full):
                self.full = True
            return
        rid = getattr(r, "rid", None)
        if rid is not None and rid in self.rids:
            return  # the same control request again (a block committed twice): once only
        if isinstance(r, records.Retry) and r.id in self.finished:
            self._revive(r)
            return
        if isinstance(r, EXECUTION_TYPES) and r.token is None:  # v1: fenced by claim epoch
            if r.epoch < self.max_epoch:
                self.fenced += 1
                log.info("shard %s: fenced off a %s record of epoch %d (current %d) for %s",
                         self.blob, r.OP, r.epoch, self.max_epoch, r.id)
                return
            self.max_epoch = r.epoch
        job = self.jobs.get(r.id)
        if job is None:
            if rid is not None:
                self.rids[rid] = 0
            return  # unknown, moved away, or finished and dropped: nothing can change it
        at = r.at
        try:
            if isinstance(r, records.Move | records.Moved) and r.to == self.blob:
                raise InvalidTransitionError("move", job.status.value, job.status.value,
                                             "a job cannot move to the blob it is in")
            if isinstance(r, records.Moved):
                if job.moving_to != r.to:
                    raise InvalidTransitionError("finish moving", job.status.value,
                                                 job.status.value, "it was not moving there")
                self.jobs.pop(job.id, None)
                self.running.discard(job.id)
                self.moved[job.id] = r.to
                self.dropped["moved"] += 1
                self._changed(at)
                if self.observer is not None:
                    self.observer(r, job, None)
                return
            job = _transition(job, r)
        except InvalidTransitionError:
            if rid is not None:
                self.rids[rid] = 0
            raise
        self._changed(at)
        before = self.jobs[job.id]
        _set_version(job, before.version + 1)
        if rid is not None:
            self.rids[rid] = job.version
            if rid in self.watched:
                self.watched[rid] = job
        if self.observer is not None:
            self.observer(r, before, job)
        self._put(job)

    def _revive(self, r: records.Retry) -> None:
        """A retry of a finished job this replay dropped: the record carries the new state.
        The checks are those of ``transitions.retry`` on what was kept of the job."""
        status, runs, version = self.finished[r.id]
        if status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
            if r.rid is not None:
                self.rids[r.rid] = 0
            raise InvalidTransitionError("retry", status, JobStatus.SCHEDULED.value,
                                         f"it is {status}: only a failed or cancelled job is "
                                         "retried")
        if r.run is not None and r.run != runs:
            if r.rid is not None:
                self.rids[r.rid] = 0
            raise InvalidTransitionError("retry", status, JobStatus.SCHEDULED.value,
                                         f"the request was for run {r.run}, the job is on "
                                         f"run {runs}")
        del self.finished[r.id]
        self.dropped[status] -= 1
        job = replace(r.job)
        _set_version(job, version + 1)
        if r.rid is not None:
            self.rids[r.rid] = job.version
            if r.rid in self.watched:
                self.watched[r.rid] = job
        self._changed(r.at)
        if self.observer is not None:
            self.observer(r, None, job)
        self._put(job)

    def _changed(self, at: datetime) -> None:
        if self.latest_change is None or at > self.latest_change:
            self.latest_change = at

    def _add(self, r: records.Add) -> None:
        job_id = r.id
        key = r.job.idempotency_key
        if job_id in self.jobs or job_id in self.moved or job_id in self.finished or \
                (key is not None and key in self.keys and r.source is None):
            return  # a duplicate add: the first one wins
        job = r.job
        _set_version(job, 1)
        if key is not None and r.v1:
            self.keys.setdefault(key, job_id)
        self._changed(job.updated_at or job.created_at)
        if self.observer is not None:
            self.observer(r, None, job)
        self._put(job)

    def _put(self, job: Job) -> None:
        if job.status is JobStatus.RUNNING:
            self.running.add(job.id)
        else:
            self.running.discard(job.id)
        if not self.keep_finished and job.status.is_final:
            self.jobs.pop(job.id, None)
            self.dropped[job.status.value] += 1
            self.finished[job.id] = (job.status.value, job.runs, job.version)
        else:
            self.jobs[job.id] = job

    # --- questions -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter(self.dropped)
        counts.update(job.status.value for job in self.jobs.values())
        return {status.value: counts.get(status.value, 0) for status in JobStatus}

    def pending(self) -> list[Job]:
        """Jobs not final in this blob (moving ones included: they are not gone yet)."""
        return [j for j in self.jobs.values() if not j.status.is_final]

    def knows(self, job_id: str) -> bool:
        """Whether this blob holds the job's add: the job, or a record of it finishing (when
        dropped), moving away, or (home blob) living elsewhere."""
        return job_id in self.jobs or job_id in self.finished or job_id in self.moved or \
            job_id in self.pointers

    def location(self, job_id: str) -> str | None:
        """Where a job of this blob went, if it left: its pointer (home blob), the blob it
        moved to, or the blob it is moving to."""
        if job_id in self.pointers:
            return self.pointers[job_id]
        if job_id in self.moved:
            return self.moved[job_id]
        job = self.jobs.get(job_id)
        return None if job is None else job.moving_to


def _set_version(job: Job, version: int) -> None:
    """Set the version of a job the replay has just built (a new object nobody else holds
    yet: every transition returns a copy). Replaying is the hot path of planning and of
    publishing events, and a second ``dataclasses.replace`` per record doubled its cost."""
    object.__setattr__(job, "version", version)


_TRANSITIONS: dict[type, Callable[[Job, Any], Job]] = {
    records.Cancel: lambda job, r: transitions.cancel(job, r.at, r.reason, r.run),
    records.RunNow: lambda job, r: transitions.run_now(job, r.at, r.run),
    records.Reschedule: lambda job, r: transitions.reschedule(job, r.due, r.at, r.run),
    records.Pause: lambda job, r: transitions.pause(job, r.at, r.run),
    records.Resume: lambda job, r: transitions.resume(job, r.due, r.at, r.run),
    records.Update: lambda job, r: transitions.update(job, r.values, r.due, r.at, r.run),
    records.Misfire: lambda job, r: transitions.misfire(job, r.due, r.at, r.run, r.late_from),
    records.Start: lambda job, r: transitions.start(job, r.attempt, r.epoch, r.at, token=r.token,
                                                    run=r.run, lease=r.lease),
    records.Ok: lambda job, r: transitions.succeed(job, r.attempt, r.at, r.result, r.next_due,
                                                   token=r.token),
    records.Fail: lambda job, r: transitions.fail(job, r.attempt, r.at, r.error,
                                                  retry_at=r.retry_at, next_due=r.next_due,
                                                  compensation=r.compensation, token=r.token),
    records.TakeOver: lambda job, r: transitions.take_over(job, r.attempt, r.at, token=r.token,
                                                           prev=r.prev, lease=r.lease),
    records.Retry: lambda job, r: _retried(job, r),
    records.Move: lambda job, r: transitions.move(job, r.to),
}  # the records that change a job (``moved`` removes it; the others are about the blob)


def _retried(job: Job, r: records.Retry) -> Job:
    """The state a retry record carries, once the job it finds may be retried (the same
    state, by construction, as ``transitions.retry`` computes from it)."""
    transitions.retry(job, r.at, r.run)  # raises if it does not fit
    return replace(r.job)


def _transition(job: Job, r: records.Record) -> Job:
    """The job after record ``r`` (raises ``InvalidTransitionError`` if it does not fit)."""
    return _TRANSITIONS[type(r)](job, r)
