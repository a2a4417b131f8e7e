"""What a planning cycle hands to its executions, as small plain data (Durable activity inputs
and outputs): ``Plan``, ``Batch``, ``BatchResult``.

A batch names a range, not a list. A slot's due work is ordered by ``(key, job id)``: the key is
a waiting job's due time, or an abandoned execution's start. A cycle takes the first
``batch_size * MAX_BATCHES_PER_CYCLE`` of that order across the slot's blobs, and each batch
covers one blob's jobs whose ``(key, id)`` lies in ``(after, through]`` as of the plan's time
``at``. The executor finds them again in its own (refreshed) replay of the blob. So a batch is
~300 bytes however many jobs it holds, and a whole plan stays far below the 45 KB above which
the Durable Azure Storage backend offloads a message to a blob (README, "Durable backend";
issue #13).

A range is stable while other batches start their jobs (a started job simply leaves the range;
no other job shifts into or out of it). A job whose key changed since the plan (rescheduled,
retried) may fall in another batch's range or in none: another batch then tries to start it and
its start is void (``transitions.start``), or the next cycle, planned at once, takes it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import records
from .metrics import Histogram
from .model import Job, JobStatus
from .shard_state import ShardState

MAX_BATCHES_PER_CYCLE = 50
MAX_PLAN_ERRORS = 5  # a plan names at most this many errors, each cut to MAX_ERROR_CHARS
MAX_ERROR_CHARS = 300
COUNT_FIELDS = ("started", "succeeded", "retried", "failed", "abandoned", "skipped",
                "compensated", "moved", "throttled")

Key = tuple[datetime, str]  # (due time or abandoned start, job id): the order of due work


def due_key(job: Job, at: datetime, abandoned: Callable[[Job, datetime], bool]) -> Key | None:
    """The job's place in the order of due work at ``at``, or None when it is not due then."""
    if job.moving_to is not None or job.status.is_final or job.status is JobStatus.PAUSED:
        return None
    if job.status.is_waiting:
        return (job.due_at, job.id) if job.due_at <= at else None
    if abandoned(job, at):
        return (job.started_at or at, job.id)
    return None


@dataclass(frozen=True)
class Batch:
    """A blob's due jobs with ``after < (key, id) <= through`` at ``at`` (``after`` None: from
    the start). ``job_ids``: the explicit list a plan of an earlier version carried."""

    slot: int
    epoch: int
    blob: str
    at: datetime | None = None
    after: Key | None = None
    through: Key | None = None
    count: int = 0  # jobs in the range when it was planned
    job_ids: list[str] | None = None
    plan: str = ""  # the plan's random id: its batches of one blob share one sorted order

    def select(self, state: ShardState,
               abandoned: Callable[[Job, datetime], bool]) -> list[str]:
        """The ids of the jobs this batch covers in ``state`` (the executor's replay)."""
        if self.job_ids is not None:
            return [i for i in self.job_ids if i in state.jobs]
        assert self.at is not None and self.through is not None
        keys = []
        for job in state.jobs.values():
            key = due_key(job, self.at, abandoned)
            if key is not None and key <= self.through and (self.after is None or
                                                            key > self.after):
                keys.append(key)
        return [job_id for _, job_id in sorted(keys)]

    @property
    def planned(self) -> int:
        return len(self.job_ids) if self.job_ids is not None else self.count

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slot": self.slot, "epoch": self.epoch, "blob": self.blob}
        if self.job_ids is not None:
            out["job_ids"] = list(self.job_ids)
            return out
        assert self.at is not None and self.through is not None
        out.update(at=records.ts(self.at), after=_key_out(self.after),
                   through=_key_out(self.through), count=self.count, plan=self.plan)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        base = (int(data["slot"]), int(data["epoch"]), str(data["blob"]))
        if "job_ids" in data:  # a plan made by an earlier version, still in a Durable history
            return cls(*base, job_ids=[str(i) for i in data["job_ids"]])
        return cls(*base, at=records.parse_ts(data["at"]), after=_key_in(data.get("after")),
                   through=_key_in(data["through"]), count=int(data.get("count", 0)),
                   plan=str(data.get("plan", "")))


class DueOrder:
    """Per plan and blob, the order of its due work at a plan's time, sorted once and shared by the
    plan's batches of that blob in this process (each then bisects its range instead of
    scanning the blob). A job is given to a batch only while its key is still the one in the
    order; a job that became due in the range after the order was made waits for the next
    cycle."""

    def __init__(self, max_blobs: int = 16) -> None:
        self.max_blobs = max_blobs
        self._orders: OrderedDict[str, tuple[str, list[Key]]] = OrderedDict()  # blob -> plan

    def select(self, batch: Batch, state: ShardState,
               abandoned: Callable[[Job, datetime], bool]) -> list[str]:
        if batch.job_ids is not None or batch.at is None or batch.through is None or \
                not batch.plan:
            return batch.select(state, abandoned)
        at = batch.at
        known = self._orders.get(batch.blob)
        if known is not None and known[0] == batch.plan:
            order = known[1]
        else:  # a newer plan replaces the blob's order: one order per blob at most
            keys = (due_key(job, at, abandoned) for job in state.jobs.values())
            order = sorted(k for k in keys if k is not None)
            self._orders[batch.blob] = (batch.plan, order)
            self._orders.move_to_end(batch.blob)
            while len(self._orders) > self.max_blobs:
                self._orders.popitem(last=False)
        first = 0 if batch.after is None else bisect_right(order, batch.after)
        out = []
        for key in order[first:bisect_right(order, batch.through)]:
            job = state.jobs.get(key[1])
            if job is not None and due_key(job, at, abandoned) == key:
                out.append(key[1])
        return out


    def done(self, batch: Batch) -> None:
        """The batch has run: its range leaves the order (the others' ranges are disjoint),
        and a blob's order goes once every range of it has run."""
        known = self._orders.get(batch.blob)
        if known is None or known[0] != batch.plan or batch.through is None:
            return
        order = known[1]
        first = 0 if batch.after is None else bisect_right(order, batch.after)
        del order[first:bisect_right(order, batch.through)]
        if not order:
            del self._orders[batch.blob]


def _key_out(key: Key | None) -> list[str] | None:
    return None if key is None else [records.ts(key[0]), key[1]]


def _key_in(raw: Any) -> Key | None:
    return None if raw is None else (records.parse_ts(raw[0]), str(raw[1]))


def batches(slot: int, epoch: int, at: datetime, due: Iterable[tuple[Key, str]],
            size: int, plan: str = "") -> list[Batch]:
    """Cut the selected due work, ``(key, blob)`` in order, into ranges of at most ``size``
    jobs of one blob each."""
    by_blob: dict[str, list[Key]] = {}
    for key, blob in due:
        by_blob.setdefault(blob, []).append(key)
    out = []
    for blob, keys in by_blob.items():
        keys.sort()
        for i in range(0, len(keys), size):
            chunk = keys[i:i + size]
            out.append(Batch(slot, epoch, blob, at, keys[i - 1] if i else None, chunk[-1],
                             len(chunk), plan=plan))
    return out


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
    publish: bool = False  # some blob has events to publish from the log (event_log.py)

    def to_dict(self) -> dict[str, Any]:
        errors = [e[:MAX_ERROR_CHARS] for e in self.errors[:MAX_PLAN_ERRORS]]
        if len(self.errors) > MAX_PLAN_ERRORS:
            errors.append(f"… and {len(self.errors) - MAX_PLAN_ERRORS} more")
        return {"slot": self.slot, "owner": self.owner, "epoch": self.epoch,
                "now": records.ts(self.now), "batches": [b.to_dict() for b in self.batches],
                "next_wake": records.ts(self.next_wake), "due": self.due, "pending": self.pending,
                "shards_read": self.shards_read, "errors": errors,
                "claim_ms": round(self.claim_ms, 2), "publish": self.publish}


@dataclass
class BatchResult:
    started: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    abandoned: int = 0
    skipped: int = 0  # due jobs someone else changed first (cancelled, started, moved)
    compensated: int = 0
    moved: int = 0  # waiting jobs moved out of a blob near its block limit
    throttled: int = 0  # due jobs not started: their handler had no permit (handler_limits)
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
