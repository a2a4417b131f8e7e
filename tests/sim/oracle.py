"""The oracle: records every answer, handler invocation, crash and ambiguous write of a run, and
checks the guarantees at its end (``final_checks.py``; the README's Guarantees name these
invariants):

I1 nothing lost      every job accepted with 2xx is final at the end (or keeps recurring, or
                     is paused by a pause that took effect)
I2 never early       no invocation before the due time of its occurrence
I3 duplicates        a handler re-runs an occurrence it already ran (or is running) only where a
                     crash or an ambiguous write touched that job; every duplicate is counted
I4 read-your-writes  a 2xx job is readable at once from the process that answered, and a
                     process never reads a job state older than one it answered before the
                     read was asked (concurrent requests may be answered in either order)
I5 idempotency       one key -> one job id; a different body with a used key -> 409
I6 truthful controls 200 means the change happened (a cancelled job never starts after,
                     unless a retry is asked for; a paused one not before a resume is asked
                     for; an updated one starts with what the update set; a retried one
                     is waiting; the occurrence a run-now or reschedule set is not skipped
                     as a misfire within the grace of the request: from the log);
                     409 means it did not
I7 recurrence        one run per occurrence (a daily cron: one per local day, DST included;
                     an occurrence once passed never runs again: a run whose due time no
                     control set is due after every earlier such run), and recurring jobs
                     keep running (no blob limit stops them); with overlap allow, one job
                     per occurrence, each run (fired_jobs.py, also I1, I5)
I8 retention         a purge never removes a job that is not final
I9 fencing           (checked from the log) an outcome is recorded only by the execution that
                     the job's latest start belongs to
I10 events           every change the log records (final blobs, and blobs retention purged)
                     reaches each of its queues at least once, across crashes and queue
                     outages (changes of the run's last 100 s excepted: the publisher's
                     next pass never comes); no event reaches a queue for a change the log
                     does not hold; duplicates are counted
I11 on time          once the faults have ended (and crashed processes, claims and leases have
                     had 10 minutes to recover), every attempt starts within
                     JOBS_MAX_SLEEP_SECONDS + 60 s of its due time
I12 limits          a limited handler's attempts (and its compensations, also its code)
                     never overlap more than its max_concurrency, nor do its attempts start
                     faster than its max_per_second allows
I13 ends             the world ends within runner.REAL_SECONDS of real time: no work piles up
                     without end (a slot queueing a plan per deadline behind a dead process did)
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs_core.errors import IdempotencyKeyExpiredError
from jobs_core.handlers import JobContext
from jobs_core.model import Job, JobStatus

from .facts import Accepted, Invocation, Violation, world_time
from .final_checks import FinalChecks

if TYPE_CHECKING:
    from jobs_core import JobRequest

    from .world import SimConfig

RANK = {JobStatus.SCHEDULED: 0, JobStatus.RUNNING: 1, JobStatus.RETRYING: 2,
        JobStatus.SUCCEEDED: 3, JobStatus.FAILED: 3, JobStatus.CANCELLED: 3}


class Oracle(FinalChecks):
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.jobs: dict[str, Accepted] = {}
        self.order: list[str] = []
        self.keys: dict[str, set[str]] = defaultdict(set)
        self.key_payload: dict[str, Any] = {}
        self.invocations: list[Invocation] = []
        self.by_job: dict[str, list[Invocation]] = defaultdict(list)
        self.taints: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.crashes: list[tuple[str, float]] = []
        # what each process answered of each job: (when, (runs, attempts, rank))
        self.seen: dict[tuple[str, str], list[tuple[float, tuple[int, int, int]]]] = {}
        self.purges: list[tuple[float, datetime, int]] = []
        self.compensations: list[tuple[str, int, float]] = []
        self.compensated_on: list[tuple[str, str, float]] = []  # job, process, when
        self.compensating: list[Invocation] = []  # compensation runs of limited handlers
        self.violations: list[Violation] = []
        self.trace: list[str] = []
        self.ops = Counter[str]()
        self.cycles = 0
        self.fail_fast = 0
        self.faults_end = 0.0
        self.duplicates: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()  # injected, by kind

    # --- recording ------------------------------------------------------------------------
    def log(self, at: float, text: str) -> None:
        self.trace.append(f"{at:10.3f} {text}")

    def violate(self, invariant: str, detail: str) -> None:
        self.violations.append(Violation(invariant, detail))

    def tainted(self, cause: str, job_ids: set[str]) -> None:
        import asyncio
        now = asyncio.get_running_loop().time()
        for job_id in sorted(job_ids):
            self.taints[job_id].append((now, cause))
        self.log(now, f"fault {cause}: {sorted(job_ids)[:4]}")

    def crashed(self, proc: str, at: float) -> None:
        self.crashes.append((proc, at))
        self.log(at, f"crash {proc}")
        for key in [k for k in self.seen if k[0] == proc]:
            del self.seen[key]  # a new incarnation remembers nothing
        for inv in self.invocations:
            if inv.proc == proc and (inv.end is None or inv.end >= at - 600):
                self.taints[inv.job_id].append((at, f"crash of {proc}"))
        for job_id, on, when in self.compensated_on:  # (its failure may not be recorded)
            if on == proc and when >= at - 600:
                self.taints[job_id].append((at, f"crash of {proc}"))

    def faults_ended(self, at: float) -> None:
        self.faults_end = at

    def invoked(self, ctx: JobContext, proc: str, at: float) -> Invocation:
        inv = Invocation(ctx.job_id, ctx.run, ctx.attempt, ctx.due_at, proc, at,
                         token=ctx.execution, payload=ctx.payload, handler=ctx.handler)
        self.invocations.append(inv)
        self.by_job[ctx.job_id].append(inv)
        self.ops["invocations"] += 1
        self.log(at, f"invoke {ctx.job_id} run {ctx.run} attempt {ctx.attempt} on {proc}")
        return inv

    def returned(self, inv: Invocation, at: float, *, ok: bool, error: str | None = None) -> None:
        inv.end, inv.ok, inv.error = at, ok, error

    def compensated(self, ctx: JobContext, at: float, proc: str) -> None:
        self.compensations.append((ctx.job_id, ctx.run, at))
        self.compensated_on.append((ctx.job_id, proc, at))

    def compensation_began(self, ctx: JobContext, proc: str, at: float) -> Invocation:
        """A limited handler's compensation runs from ``at`` (its end is ``returned``)."""
        run = Invocation(ctx.job_id, ctx.run, ctx.attempt, ctx.due_at, proc, at,
                         token=ctx.execution, payload=ctx.payload, handler=ctx.handler)
        self.compensating.append(run)
        self.log(at, f"compensate {ctx.job_id} run {ctx.run} on {proc}")
        return run

    def accepted(self, request: JobRequest, job: Job, created: bool, proc: str, began: float,
                 at: float) -> None:
        self.ops["schedule"] += 1
        self.log(at, f"{'201' if created else '200'} {job.id} {request.handler} due "
                     f"{job.due_at:%H:%M:%S.%f} key={request.idempotency_key} on {proc}")
        key = request.idempotency_key
        if key is not None:
            self.keys[key].add(job.id)
            if len(self.keys[key]) > 1:
                self.violate("I5", f"key {key} answered with jobs {sorted(self.keys[key])}")
            if key in self.key_payload and self.key_payload[key] != request.payload:
                self.violate("I5", f"key {key} with a different body answered 2xx ({job.id})")
            self.key_payload.setdefault(key, request.payload)
        if job.id not in self.jobs:
            changed = (job.updated_at or job.created_at) - world_time(0)
            self.jobs[job.id] = Accepted(job.id, request, job.due_at, job.recurrence is not None,
                                         changed.total_seconds(), request.payload,
                                         created=created)
            self.order.append(job.id)
        self.observed(proc, job, began, at)

    def answer_conflict(self, request: JobRequest, exc: Exception) -> None:
        self.ops["conflict"] += 1
        key = request.idempotency_key
        if isinstance(exc, IdempotencyKeyExpiredError) and self._purged_ok(exc.job_id):
            return  # the key's job finished and was purged: the key cannot make a new one
        if key in self.key_payload and self.key_payload[key] == request.payload:
            self.violate("I5", f"key {key} with the same body answered 409: {exc}")

    def batch_refused(self, requests: list[JobRequest]) -> None:
        plain = [r for r in requests if r.idempotency_key is None or
                 self.key_payload.get(r.idempotency_key, r.payload) == r.payload]
        if plain:
            self.violate("I5", f"a batch of {len(requests)} was refused whole for one "
                               "conflicting idempotency key")

    def schedule_failed(self, request: JobRequest, exc: BaseException) -> None:
        self.ops["schedule_error"] += 1

    def observed(self, proc: str, job: Job, began: float, at: float) -> None:
        """``proc`` answered ``job`` to a request made at ``began``: it may not be older than
        what ``proc`` answered before ``began``. (An answer to a concurrent request may be:
        concurrent changes apply in either order, and each answers the state its own change
        made. Seed 27982: a resume asked 16 ms before a cancel applied first; the cancel was
        answered `cancelled` 4 ms before the resume was answered `scheduled`.)"""
        # a paused job keeps its occurrence and attempts; pause and resume move the status
        # between waiting states, so a paused read is compared on (runs, attempts) only
        rank = RANK.get(job.status, -1)
        key = (job.runs, job.attempts, rank)
        history = self.seen.setdefault((proc, job.id), [])
        for answered, last in history:
            if answered > began:  # (at the same instant: asked after it, in virtual time)
                continue
            paused = rank < 0 or last[2] < 0
            if (key[:2] < last[:2]) if paused else key < last:
                self.violate("I4", f"{proc} read {job.id} as {key} after {last} "
                                   "(not monotonic)")
                return
        history.append((at, key))

    def read_missing(self, proc: str, job_id: str, why: str, at: float) -> None:
        if not self._purged_ok(job_id):
            self.violate("I4", f"{proc} answered 404 for {job_id} {why}")

    def pick_job(self, rng: random.Random) -> str | None:
        return rng.choice(self.order) if self.order else None

    def pick_recurring(self, rng: random.Random) -> str | None:
        """Half the time a recurring job (mostly waiting: an update of a finished job is a
        409)."""
        recurring = [job_id for job_id in self.order if self.jobs[job_id].recurring]
        return rng.choice(recurring) if recurring and rng.random() < 0.5 else None

    def pick_paused(self, rng: random.Random) -> str | None:
        """Mostly a job a pause was answered 200 for (a resume of a random job is a 409)."""
        paused = [job_id for job_id in self.order
                  if any(c[0] == "pause" and c[1] == "200" for c in self.jobs[job_id].controls)]
        return rng.choice(paused) if paused and rng.random() < 0.8 else None

    def pick_finished(self, rng: random.Random) -> str | None:
        """Mostly a job likely to be failed or cancelled (a retry of another is a 409)."""
        done = [job_id for job_id in self.order
                if any(c[0] == "cancel" and c[1] == "200" for c in self.jobs[job_id].controls)
                or any(i.ok is False for i in self.by_job.get(job_id, []))]
        return rng.choice(done) if done and rng.random() < 0.8 else None

    def control(self, op: str, job_id: str, answer: str, job: Job | None, began: float,
                at: float, proc: str, due: datetime | None, exc: BaseException | None,
                payload: Any = None) -> None:
        self.ops[op] += 1
        info = self.jobs.get(job_id)
        self.log(at, f"{op} {job_id} -> {answer} {job.status.value if job else exc!r}")
        if info is not None and op != "get":
            info.controls.append((op, answer, began, at, job.due_at if job else due))
        if info is not None and op == "update":
            info.updates.append((answer, began, at, payload))
        if op == "update" and job is not None and job.payload != payload:
            self.violate("I6", f"update {job_id} answered 200 with payload {job.payload!r}")
        if answer == "404" and not self._purged_ok(job_id):
            self.violate("I4", f"{op} answered 404 for accepted job {job_id} on {proc}")
        if job is None:
            return
        self.observed(proc, job, began, at)
        if op == "cancel" and job.status is not JobStatus.CANCELLED:
            self.violate("I6", f"cancel {job_id} answered 200 with status {job.status.value}")
        if op in ("run_now", "reschedule", "resume", "retry") and not job.status.is_waiting:
            self.violate("I6", f"{op} {job_id} answered 200 with status {job.status.value}")
        if op == "pause" and job.status is not JobStatus.PAUSED:
            self.violate("I6", f"pause {job_id} answered 200 with status {job.status.value}")

    def purged(self, at: float, cutoff: datetime, deleted: int) -> None:
        self.ops["purge"] += 1
        self.log(at, f"purge cutoff {cutoff:%d %H:%M:%S} deleted {deleted}")
        self.purges.append((at, cutoff, deleted))
