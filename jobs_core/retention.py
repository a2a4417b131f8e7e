"""Retention: delete shard blobs whose jobs all finished longer ago than the retention.

A shard blob is deleted only when all of these hold:

1. its time bucket ended more than the retention ago (bucket start + ``JOBS_BUCKET_MINUTES``
   + retention < now), read from the blob name;
2. replaying its log (the same replay every reader uses) shows every job final: succeeded,
   failed or cancelled, or moved away (``moves.py``). A job whose *home* this blob is (its id
   names it) but that moved on is found where it lives now and must be final there too: the
   home blob is how GET finds it. So must a job that moved out of this blob (not its home)
   unless GET finds it without this blob (``_bypassed``): a home at the block limit leaves
   GET to follow the ``moved`` records, and this blob may be on that path;
3. the newest change of any of its jobs (finish, cancel, move) is older than the retention;
4. none of its touch records points at a blob whose bucket has not begun (the planner needs
   that hint until then);
5. with ``events``, every queue has had its state-change events (``event_log.py``: the
   cursor in the blob's metadata has reached its size, and no queue lags).

The decision is made from the log bytes, never from the summary metadata alone. The summary
(``shard_summary.py``) is only used to skip a blob it proves live: the summary describes exactly
the current size and counts pending jobs.

Races: a record can be appended (a control record, an outcome, a scheduler with a skewed clock)
between the read and the delete. The delete is conditional on the ETag listed before the read
(``If-Match``), and the read must end at the listed size. Append blobs only grow, so an unchanged
ETag means the bytes that were judged are the whole blob. A metadata-only change (a planner
writing its summary) changes the ETag but not the size: the blob is listed again and, if its
size is still the one that was read, the delete is tried once more with the new ETag.
Anything else keeps the blob for the next run. Two purges at once are safe: the loser finds
the blob gone and counts it as ``shards_vanished``.

Requests: one ``list`` per 5,000 blobs, then one ``read`` per 4 MiB of each blob old enough to be
a candidate, and one ``delete`` per deleted blob. A candidate that jobs moved out of also reads
the blobs on their paths (each once per candidate: the home, where the job lives now, and the
blobs between when the home holds no pointer). Claims (``claims/sNNN``) are never touched.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from .errors import BlobNotFoundError, ConcurrencyConflictError, JobsError
from .event_log import undelivered
from .ids import SHARD_PREFIX, parse_job_id, parse_shard_name
from .model import iso
from .moves import ReadState, find, locate
from .settings import JobsSettings
from .shard_state import ShardState
from .shard_summary import live_touches
from .store import BlobInfo, JobStore

log = logging.getLogger(__name__)
PURGE_CONCURRENCY = 4  # blobs judged at once (each holds one whole blob and its jobs in memory)
MAX_REPORTED_ERRORS = 20




class Verdict(StrEnum):
    DELETED = "deleted"  # (dry run: would be deleted)
    RECENT = "recent"  # bucket or newest finish within the retention
    UNFINISHED = "unfinished"  # a job is not final
    CHANGED = "changed"  # appended to between the read and the delete
    VANISHED = "vanished"  # deleted by someone else first
    ERROR = "error"


@dataclass
class PurgeReport:
    """What one purge did. In a dry run the ``*_deleted`` counts say what would be deleted."""

    cutoff: datetime  # now - retention
    dry_run: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    shards_scanned: int = 0  # shard blobs listed
    shards_read: int = 0  # of those, read and replayed to decide
    shards_deleted: int = 0
    jobs_deleted: int = 0
    bytes_deleted: int = 0
    shards_kept_recent: int = 0
    shards_kept_unfinished: int = 0
    shards_kept_changed: int = 0
    shards_kept_events: int = 0  # some queue has not had the blob's events yet (event_log.py)
    shards_vanished: int = 0
    errors: list[str] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS
    error_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": iso(self.cutoff), "dry_run": self.dry_run,
            "shards_scanned": self.shards_scanned, "shards_read": self.shards_read,
            "shards_deleted": self.shards_deleted, "jobs_deleted": self.jobs_deleted,
            "bytes_deleted": self.bytes_deleted, "shards_kept_recent": self.shards_kept_recent,
            "shards_kept_unfinished": self.shards_kept_unfinished,
            "shards_kept_changed": self.shards_kept_changed,
            "shards_kept_events": self.shards_kept_events,
            "shards_vanished": self.shards_vanished, "error_count": self.error_count,
            "errors": list(self.errors),
        }

    def tally(self, verdict: Verdict, info: BlobInfo, jobs: int) -> None:
        if verdict is Verdict.DELETED:
            self.shards_deleted += 1
            self.jobs_deleted += jobs
            self.bytes_deleted += info.size
        elif verdict is Verdict.RECENT:
            self.shards_kept_recent += 1
        elif verdict is Verdict.UNFINISHED:
            self.shards_kept_unfinished += 1
        elif verdict is Verdict.CHANGED:
            self.shards_kept_changed += 1
        elif verdict is Verdict.VANISHED:
            self.shards_vanished += 1

    def add_error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(text)


@dataclass(frozen=True)
class _Judgement:
    verdict: Verdict
    jobs: int = 0


async def purge_shards(store: JobStore, settings: JobsSettings, now: datetime,
                       retention: timedelta, dry_run: bool = False, *,
                       events: bool = False) -> PurgeReport:
    """Delete (or with ``dry_run`` only count) the shard blobs that are past retention (see
    the module docstring). With ``events`` (state-change events are published from the log),
    a blob whose events some queue has not had yet is kept. Errors on single blobs are
    reported and the blob is kept; only a failing listing raises (``StoreError``)."""
    if retention <= timedelta(0):
        raise ValueError(f"retention must be positive, got {retention}")
    report = PurgeReport(cutoff=now - retention, dry_run=dry_run, now=now)
    bucket = timedelta(minutes=settings.bucket_minutes)
    gate = asyncio.Semaphore(PURGE_CONCURRENCY)

    async def one(info: BlobInfo) -> None:
        async with gate:
            try:
                judged = await _judge(store, info, report, dry_run, settings.bucket_minutes)
            except JobsError as exc:  # e.g. a newer record format, or storage trouble
                report.add_error(f"{info.name}: {exc}")
                return
            report.tally(judged.verdict, info, judged.jobs)

    tasks = []
    for info in await store.list(SHARD_PREFIX):
        shard = parse_shard_name(info.name)
        if shard is None:
            continue  # not ours: never delete what we cannot read as a shard
        report.shards_scanned += 1
        if shard.key.bucket + bucket >= report.cutoff:
            report.shards_kept_recent += 1
        elif _summary_says_pending(info):
            report.shards_kept_unfinished += 1
        elif events and undelivered(info.metadata, info.size):
            report.shards_kept_events += 1
        else:
            tasks.append(one(info))
    await asyncio.gather(*tasks)
    return report


def _summary_says_pending(info: BlobInfo) -> bool:
    """True when the blob's summary describes its current size and counts pending jobs: proof
    enough to keep it (never to delete it)."""
    meta = info.metadata
    return meta.get("seen_size") == str(info.size) and meta.get("pending", "0") != "0"


async def _judge(store: JobStore, info: BlobInfo, report: PurgeReport,
                 dry_run: bool, bucket_minutes: int) -> _Judgement:
    read = await store.read(info.name)
    report.shards_read += 1
    if read.size != info.size:
        return _Judgement(Verdict.CHANGED)  # appended to since the listing
    state = _replay(info.name, read.data)
    if any(not job.status.is_final for job in state.jobs.values()):
        return _Judgement(Verdict.UNFINISHED)
    if live_touches(state.touched, report.now, bucket_minutes):
        return _Judgement(Verdict.UNFINISHED)
    newest = state.latest_change
    if newest is not None and newest >= report.cutoff:
        return _Judgement(Verdict.RECENT)
    path = _PathReader(store, report, state)
    for job_id in sorted(set(state.moved) | set(state.pointers)):
        home = parse_job_id(job_id).name
        if home != info.name and await _bypassed(path, job_id, info.name):
            continue  # GET finds the job without this blob: nothing reads it for the job
        job, _ = await locate(path, job_id)
        if job is not None and not job.status.is_final:
            return _Judgement(Verdict.UNFINISHED)
        if job is not None and (job.updated_at or job.created_at) >= report.cutoff:
            return _Judgement(Verdict.RECENT)
    jobs = len(state.jobs)
    if dry_run:
        return _Judgement(Verdict.DELETED, jobs)
    return _Judgement(await _delete_if_unchanged(store, info), jobs)


class _PathReader:
    """Reads the blobs on the paths of the jobs that moved out of one judged blob, each once
    per judgement (an evacuated blob's jobs share their destination, and often their homes)."""

    def __init__(self, store: JobStore, report: PurgeReport, judged: ShardState) -> None:
        self._store, self._report = store, report
        self._states: dict[str, ShardState | None] = {judged.blob: judged}

    async def __call__(self, name: str) -> ShardState:
        if name not in self._states:
            try:
                self._states[name] = await _read_state(self._store, name, self._report)
            except BlobNotFoundError:
                self._states[name] = None
        state = self._states[name]
        if state is None:
            raise BlobNotFoundError(name)
        return state


async def _bypassed(read: ReadState, job_id: str, blob: str) -> bool:
    """Whether a job that moved out of ``blob`` (not its home) is found without ``blob``: from
    its home, by its pointer and ``moved`` records, as GET finds it. (Not from the order of
    blob names: a job run now or rescheduled earlier moves from a future blob to an earlier
    one; with a home too full for its pointer, deleting a blob whose name sorted before the
    pointer lost a live job, from review of stop 27.) A copy still *moving* to ``blob`` is not
    the job: GET reads ``blob`` after it (a move whose last step did not land), and a move
    finished without ``blob`` would re-create it with that stale copy. A home that is gone,
    or does not know the job: nothing finds the job."""
    async def read_without(name: str) -> ShardState:
        if name == blob:
            raise BlobNotFoundError(name)
        return await read(name)

    found = await find(read_without, job_id)
    if found.job is not None:
        return found.job.moving_to != blob
    return not found.added and found.blob == parse_job_id(job_id).name


def _replay(name: str, data: bytes) -> ShardState:
    state = ShardState(name, keep_finished=True)
    end = data.rfind(b"\n") + 1  # whole lines only, like every other reader
    state.feed_lines(data[:end].split(b"\n"))
    return state


async def _read_state(store: JobStore, name: str, report: PurgeReport) -> ShardState:
    read = await store.read(name)
    report.shards_read += 1
    return _replay(name, read.data)


async def _delete_if_unchanged(store: JobStore, info: BlobInfo) -> Verdict:
    etag = info.etag
    for attempt in range(2):
        try:
            deleted = await store.delete(info.name, if_match=etag)
        except ConcurrencyConflictError:
            current = [b for b in await store.list(info.name) if b.name == info.name]
            if not current:
                return Verdict.VANISHED
            if current[0].size != info.size or attempt:
                log.info("retention: %s changed while it was judged; kept", info.name)
                return Verdict.CHANGED
            etag = current[0].etag  # metadata only (same bytes): once more
            continue
        return Verdict.DELETED if deleted else Verdict.VANISHED
    return Verdict.CHANGED
