"""Replaying a shard log into the current state of its jobs."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from . import records as rec
from . import transitions as tr
from .errors import InvalidTransitionError, UnsupportedRecordVersionError
from .model import ErrorInfo, Job, JobStatus

log = logging.getLogger(__name__)
EXECUTION_OPS = frozenset({"start", "ok", "fail"})


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
        self.max_epoch = 0  # highest executor epoch seen: lower ones are fenced off
        self.touched: set[str] = set()
        self.skipped = 0  # malformed lines and records whose transition did not apply
        self.fenced = 0

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
        if version != rec.FORMAT_VERSION:
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
        if op == "add":
            self._add(r)
            return
        if op == "touch":
            self.touched.add(r["shard"])
            return
        if op in EXECUTION_OPS:
            epoch = int(r["e"])
            if epoch < self.max_epoch:
                self.fenced += 1
                log.info("shard %s: fenced off a %s record of epoch %d (current %d) for %s",
                         self.blob, op, epoch, self.max_epoch, r.get("id"))
                return
            self.max_epoch = epoch
        job = self.jobs.get(r["id"])
        if job is None:
            return  # unknown, or finished and dropped: nothing can change it any more
        at = rec.parse_ts(r["at"])
        if op == "cancel":
            job = tr.cancel(job, at, r.get("why"))
        elif op == "run_now":
            job = tr.run_now(job, at)
        elif op == "reschedule":
            job = tr.reschedule(job, rec.parse_ts(r["due"]), at)
        elif op == "start":
            job = tr.start(job, int(r["a"]), int(r["e"]), at)
        elif op == "ok":
            job = tr.succeed(job, int(r["a"]), at, r.get("res"), _opt_ts(r.get("next")))
        elif op == "fail":
            job = tr.fail(job, int(r["a"]), at, ErrorInfo(**r["err"]),
                          retry_at=_opt_ts(r.get("retry")), next_due=_opt_ts(r.get("next")),
                          compensation=r.get("comp"))
        else:
            raise ValueError(f"unknown op {op!r}")
        self._put(job)

    def _add(self, r: rec.Record) -> None:
        job_id = r["id"]
        key = r.get("k")
        if job_id in self.jobs or (key is not None and key in self.keys):
            return  # a duplicate add: the first one wins
        job = rec.job_from_add(r)
        if key is not None:
            self.keys[key] = job_id
        self._put(job)

    def _put(self, job: Job) -> None:
        if not self.keep_finished and job.status.is_final:
            self.jobs.pop(job.id, None)
            self.dropped[job.status.value] += 1
        else:
            self.jobs[job.id] = job

    # --- questions -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter(self.dropped)
        counts.update(job.status.value for job in self.jobs.values())
        return {status.value: counts.get(status.value, 0) for status in JobStatus}

    def pending(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.status.is_final]


def _opt_ts(text: str | None) -> datetime | None:
    return None if text is None else rec.parse_ts(text)
