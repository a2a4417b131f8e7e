"""Replaying a shard log into the current state of its jobs."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from . import records as rec
from . import transitions as tr
from .errors import InvalidTransitionError, UnsupportedRecordVersionError
from .model import ErrorInfo, Job, JobStatus

log = logging.getLogger(__name__)
EXECUTION_OPS = frozenset({"start", "ok", "fail"})
Observer = Callable[[rec.Record, "Job | None", "Job | None"], None]


class ShardState:
    """The jobs of one shard blob, as its log says they are.

    With ``keep_finished=False`` (executors) a job is dropped once it is final, so memory does
    not grow with the number of finished jobs; only counts and idempotency keys are kept.
    """

    def __init__(self, blob: str, *, keep_finished: bool = True) -> None:
        self.blob = blob
        self.keep_finished = keep_finished
        self.jobs: dict[str, Job] = {}
        self.keys: dict[str, str] = {}  # idempotency key -> job id (the first add wins)
        self.dropped: Counter[str] = Counter()  # finished jobs no longer held, by status
        self.finished: set[str] = set()  # ids of those jobs (a later add of one is a replay)
        self.max_epoch = 0  # highest epoch of v1 execution records: lower v1 ones are fenced off
        self.touched: set[str] = set()
        self.skipped = 0  # malformed lines and records whose transition did not apply
        self.fenced = 0
        self.rids: dict[str, bool] = {}  # control request id -> whether its record applied
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

    def apply(self, record: rec.Record) -> None:
        version = record.get("v")
        if version not in rec.READABLE_VERSIONS:
            if isinstance(version, int) and version > rec.FORMAT_VERSION:
                raise UnsupportedRecordVersionError(version, self.blob)
            self.skipped += 1
            log.warning("shard %s: skipped a record without a known version: %.80r", self.blob,
                        record)
            return
        try:
            self._apply(record)
        except InvalidTransitionError as exc:
            self.skipped += 1
            log.debug("shard %s: record %s for %s not applied: %s", self.blob, record["op"],
                      record.get("id"), exc)
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped += 1
            log.warning("shard %s: skipped an invalid %s record (%s)", self.blob,
                        record.get("op"), exc)

    def _apply(self, r: rec.Record) -> None:
        op = r["op"]
        rid = r.get("rid")
        if rid is not None and rid in self.rids:
            return  # the same control request again (a block committed twice): once only
        if op == "add":
            self._add(r)
            return
        if op == "touch":
            self.touched.add(r["shard"])
            return
        if op == "ptr":
            self.pointers[r["id"]] = r["to"]
            return
        if op == "full":
            self.full = True
            return
        if op in EXECUTION_OPS and "x" not in r:  # a v1 record: fenced by claim epoch
            epoch = int(r["e"])
            if epoch < self.max_epoch:
                self.fenced += 1
                log.info("shard %s: fenced off a %s record of epoch %d (current %d) for %s",
                         self.blob, op, epoch, self.max_epoch, r.get("id"))
                return
            self.max_epoch = epoch
        job = self.jobs.get(r["id"])
        if job is None:
            if rid is not None:
                self.rids[rid] = False
            return  # unknown, moved away, or finished and dropped: nothing can change it
        at = rec.parse_ts(r["at"])
        run = r.get("run")
        try:
            if op == "cancel":
                job = tr.cancel(job, at, r.get("why"), run)
            elif op == "run_now":
                job = tr.run_now(job, at, run)
            elif op == "reschedule":
                job = tr.reschedule(job, rec.parse_ts(r["due"]), at, run)
            elif op == "start":
                job = tr.start(job, int(r["a"]), int(r["e"]), at, token=r.get("x"), run=run,
                               lease=_opt_ts(r.get("lease")))
            elif op == "ok":
                job = tr.succeed(job, int(r["a"]), at, r.get("res"), _opt_ts(r.get("next")),
                                 token=r.get("x"))
            elif op == "fail":
                job = tr.fail(job, int(r["a"]), at, ErrorInfo(**r["err"]),
                              retry_at=_opt_ts(r.get("retry")), next_due=_opt_ts(r.get("next")),
                              compensation=r.get("comp"), token=r.get("x"))
            elif op == "move":
                job = tr.move(job, r["to"])
            elif op == "moved":
                if job.moving_to != r["to"]:
                    raise InvalidTransitionError("finish moving", job.status.value,
                                                 job.status.value, "it was not moving there")
                self.jobs.pop(job.id, None)
                self.running.discard(job.id)
                self.moved[job.id] = r["to"]
                self.dropped["moved"] += 1
                self._changed(at)
                if self.observer is not None:
                    self.observer(r, job, None)
                return
            else:
                raise ValueError(f"unknown op {op!r}")
        except InvalidTransitionError:
            if rid is not None:
                self.rids[rid] = False
            raise
        if rid is not None:
            self.rids[rid] = True
        self._changed(at)
        before = self.jobs[job.id]
        _set_version(job, before.version + 1)
        if self.observer is not None:
            self.observer(r, before, job)
        self._put(job)

    def _changed(self, at: datetime) -> None:
        if self.latest_change is None or at > self.latest_change:
            self.latest_change = at

    def _add(self, r: rec.Record) -> None:
        job_id = r["id"]
        key = r.get("k")
        if job_id in self.jobs or job_id in self.moved or job_id in self.finished or \
                (key is not None and key in self.keys and "from" not in r):
            return  # a duplicate add: the first one wins
        job = rec.job_from_add(r)
        _set_version(job, 1)
        if key is not None:
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
            self.finished.add(job.id)
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


def _opt_ts(text: str | None) -> datetime | None:
    return None if text is None else rec.parse_ts(text)
