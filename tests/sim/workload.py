"""The simulation's clients: a seeded stream of schedules, batches, controls and purges sent to
random live processes, each answer reported to the oracle, and ``simulate``, which runs one
world with its workload to the end and checks it."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

from jobs_core import JobRequest, JobScheduler
from jobs_core.errors import (
    IdempotencyConflictError,
    InvalidTransitionError,
    JobNotFoundError,
    JobsError,
    JobValidationError,
)
from jobs_core.model import RetryPolicy
from jobs_core.retention import purge_shards
from jobs_core.store import JobStore

from .facts import EPOCH
from .faults import ProcessCrashed
from .oracle import Oracle
from .world import ZONES, Process, SimConfig, World


class Workload:
    def __init__(self, world: World) -> None:
        self.w = world
        self.rng = random.Random(world.config.seed * 31 + 7)
        self.keys = 0

    def request(self) -> tuple[JobRequest, bool]:
        rng, now = self.rng, self.w.clock()
        handlers, weights = ["ok", "flaky", "perm", "slow", "hang", "charge"], \
            [50, 15, 5, 10, 3, 10]
        if self.w.config.v3_controls:  # (off: the workload as before limits)
            handlers, weights = [*handlers, "limited"], [*weights, 12]
        handler = rng.choices(handlers, weights)[0]
        payload: dict[str, Any] = {"n": rng.randrange(10**6)}
        if handler in ("ok", "limited"):
            payload["t"] = rng.choice([0.01, 0.2, 1.0])
        if handler == "flaky":
            payload["fail_until"] = rng.choice([1, 2, 5])
        timing = rng.random()
        due_at = delay = None
        bucket = self.w.config.bucket_minutes * 60
        if timing < 0.3:
            delay = rng.choice([0.0, 1.0, 30.0, 300.0, 4000.0])
        elif timing < 0.6:  # absolute, near a bucket edge
            edge = (int(self.w.now() // bucket) + rng.choice([0, 1, 2])) * bucket
            due_at = EPOCH + timedelta(seconds=edge + rng.uniform(-0.5, 0.5))
        elif timing < 0.7:
            due_at = now - timedelta(seconds=rng.uniform(0, 600))
        timeout = 1.0 if handler in ("slow", "hang") else None
        keyed = rng.random() < 0.35
        key = None
        if keyed:
            self.keys += 1
            key = f"k{self.w.config.seed}-{self.keys}"
        notify = "billing" if int(payload.get("n", 1)) % 5 == 0 else None  # (no new draw)
        # a third of the limited jobs have one attempt: a crash in it makes its abandonment
        # final, and its compensation then runs from the executor that abandons it
        retry = RetryPolicy(max_attempts=1) if handler == "limited" and \
            int(payload["n"]) % 3 == 0 else None
        return JobRequest(handler=handler, payload=payload, due_at=due_at, delay=delay,
                          idempotency_key=key, timeout_seconds=timeout, notify=notify,
                          retry=retry), keyed

    def recurring_request(self, i: int) -> JobRequest:
        rng = self.rng
        kind = i % 3
        if kind == 0:  # daily, at a time inside Europe's and Lord Howe's DST windows
            zone = rng.choice(ZONES[:3])
            minute = rng.choice([0, 15, 30, 45])
            hour = 2 if zone != "Australia/Lord_Howe" else 1
            recurrence = {"cron": f"{minute} {hour} * * *", "timezone": zone}
        elif kind == 1:
            recurrence = {"cron": rng.choice(["*/5 * * * *", "0 * * * *", "*/1 * * * *"]),
                          "timezone": rng.choice(ZONES)}
        else:
            recurrence = {"interval_seconds": rng.choice([60.0, 300.0])}
        cfg = self.w.config  # (no draw below: the world is the same but for these)
        if cfg.v3_controls:
            if kind == 1:
                recurrence["misfire_grace_seconds"] = 120.0  # skips what crashes made late
            elif kind == 2:
                recurrence.update(interval_mode="fixed_rate", jitter_seconds=5.0)
                if (i // 3) % 2 or (cfg.workload >= 4 and cfg.seed % 2):
                    # catch up after crashes, and buffer overlaps (odd seeds, from workload 4)
                    recurrence.update(catch_up_max=3, overlap="buffer_one")
                    del recurrence["jitter_seconds"]  # (catch-up runs at nominal times)
        if kind == 1 and cfg.workload >= 4 and cfg.seed % 4 == 3:
            # each occurrence a job of its own (tests/sim/final_checks.py: _check_fired)
            recurrence.update(cron="*/15 * * * *", overlap="allow")
        return JobRequest(handler="ok", payload={"t": 0.05, "r": i}, recurrence=recurrence)

    async def run(self) -> None:
        cfg = self.w.config
        for i in range(cfg.recurring):
            self.w.spawn(self.schedule(self.recurring_request(i), keyed=False))
        gap = cfg.duration / max(1, cfg.ops)
        for _ in range(cfg.ops):
            await asyncio.sleep(self.rng.expovariate(1 / gap))
            self.w.spawn(self.one())

    async def one(self) -> None:
        ops = ["schedule", "batch", "get", "cancel", "run_now", "reschedule", "purge"]
        weights = [45, 8, 15, 12, 8, 8, 1]
        if self.w.config.v3_controls:
            ops, weights = [*ops, "pause", "resume", "update", "retry"], [*weights, 5, 5, 5, 4]
        op = self.rng.choices(ops, weights)[0]
        if op == "schedule":
            request, keyed = self.request()
            await self.schedule(request, keyed)
        elif op == "batch":
            requests = [self.request()[0] for _ in range(self.rng.randint(2, 8))]
            await self.batch(requests)
        elif op == "purge":
            await self.purge()
        else:
            oracle = self.w.oracle
            # (workload 6: half the reschedules and run-nows go to recurring jobs, where a
            # misfire grace or catch-up meets a due time a control set)
            aimed = op in ("reschedule", "run_now") and self.w.config.workload >= 6 and \
                self.rng.random() < 0.5
            job_id = oracle.pick_paused(self.rng) if op == "resume" else \
                oracle.pick_recurring(self.rng) if op == "update" or aimed else \
                oracle.pick_finished(self.rng) if op == "retry" else None
            job_id = job_id or oracle.pick_job(self.rng)
            if job_id is not None:
                await self.control(op, job_id)

    async def schedule(self, request: JobRequest, keyed: bool, tries: int = 0) -> None:
        w, oracle = self.w, self.w.oracle
        proc = await w.pick()
        began = w.now()
        try:
            scheduled = await proc.call(lambda p: p.scheduler.schedule(request))
        except IdempotencyConflictError as exc:
            oracle.answer_conflict(request, exc)
            return
        except JobValidationError:
            return
        except (JobsError, ProcessCrashed) as exc:
            oracle.schedule_failed(request, exc)
            if keyed and tries < 3:  # a client retries with the same key (and body)
                wait = self.rng.choice([0.5, 5.0, self.w.config.bucket_minutes * 60 * 1.5])
                await asyncio.sleep(wait)
                await self.schedule(request, keyed, tries + 1)
            return
        oracle.accepted(request, scheduled.job, scheduled.created, proc.name, began, w.now())
        w.wake_for(scheduled.job.id, scheduled.job.due_at)
        await self.read_back(proc, scheduled.job.id, "after schedule")
        if keyed and self.rng.random() < 0.2:  # a duplicate request, on another process
            changed = self.rng.random() < 0.2
            again = replace(request, payload={**request.payload, "x": 1}) if changed else request
            if request.due_at is None and self.rng.random() < 0.5:
                await asyncio.sleep(self.w.config.bucket_minutes * 60 * 1.2)
            await self.schedule(again, keyed=True, tries=3)

    async def batch(self, requests: list[JobRequest]) -> None:
        w, oracle = self.w, self.w.oracle
        proc = await w.pick()
        began = w.now()
        try:
            results = await proc.call(lambda p: p.scheduler.schedule_many(requests))
        except IdempotencyConflictError as exc:
            for request in requests:
                if request.idempotency_key is not None:
                    oracle.answer_conflict(request, exc)
            oracle.batch_refused(requests)
            return
        except (JobsError, ProcessCrashed) as exc:
            for request in requests:
                oracle.schedule_failed(request, exc)
            return
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, JobsError):
                continue
            oracle.accepted(request, result.job, result.created, proc.name, began, w.now())
            w.wake_for(result.job.id, result.job.due_at)

    async def read_back(self, proc: Process, job_id: str, why: str) -> None:
        began = self.w.now()
        try:
            job = await proc.call(lambda p: p.scheduler.get(job_id))
        except JobNotFoundError:
            self.w.oracle.read_missing(proc.name, job_id, why, self.w.now())
            return
        except (JobsError, ProcessCrashed):
            return
        self.w.oracle.observed(proc.name, job, began, self.w.now())

    async def control(self, op: str, job_id: str) -> None:
        w, oracle = self.w, self.w.oracle
        proc = await w.pick()
        began = w.now()
        due = None

        async def act(p: Process) -> Any:
            if op == "cancel":
                return await p.scheduler.cancel(job_id, "sim")
            if op == "run_now":
                return await p.scheduler.run_now(job_id)
            if op == "reschedule":
                return await p.scheduler.reschedule(job_id, due)
            if op == "pause":
                return await p.scheduler.pause(job_id)
            if op == "update":
                return await p.scheduler.update(job_id, {"payload": payload})
            if op == "resume":
                return await p.scheduler.resume(job_id)
            if op == "retry":
                return await p.scheduler.retry(job_id)
            return await p.scheduler.get(job_id)

        payload = None
        if op == "reschedule":
            offsets = [-30.0, 5.0, 120.0, 5000.0]
            if w.config.workload >= 6:  # into the past by more than the misfire grace (120 s)
                offsets.append(-600.0)
            due = w.clock() + timedelta(seconds=self.rng.choice(offsets))
        if op == "update":  # the same behaviour, marked: the oracle checks who sees which
            payload = {**(oracle.jobs[job_id].request.payload or {}),
                       "u": self.rng.randrange(10**6)}
        try:
            job = await proc.call(act)
        except InvalidTransitionError as exc:
            oracle.control(op, job_id, "409", None, began, w.now(), proc.name, due, exc,
                           payload)
            return
        except JobNotFoundError as exc:
            oracle.control(op, job_id, "404", None, began, w.now(), proc.name, due, exc,
                           payload)
            return
        except (JobsError, ProcessCrashed) as exc:
            oracle.control(op, job_id, "error", None, began, w.now(), proc.name, due, exc,
                           payload)
            return
        oracle.control(op, job_id, "200", job, began, w.now(), proc.name, due, None, payload)
        if op != "get":
            w.wake_for(job_id, job.due_at)

    async def purge(self) -> None:
        w = self.w
        proc = await w.pick()
        retention = timedelta(hours=w.config.retention_hours)
        began = w.now()
        cutoff = w.clock() - retention
        w.oracle.purged(began, cutoff, -1)  # it may delete blobs even if it then fails
        try:
            report = await proc.call(
                lambda p: purge_shards(p.store, w.config.settings, w.clock(), retention,
                                       events=True))
        except (JobsError, ProcessCrashed):
            return
        w.oracle.log(w.now(), f"purge deleted {report.shards_deleted}")


async def simulate(config: SimConfig, store: JobStore | None = None) -> Oracle:
    """Run one world to its end and check it; ``store``: a real store (Azurite) instead of
    the in-memory one (the block limit is then the service's own)."""
    world = World(config, store)
    drivers = [world.spawn(world.slot_driver(s)) for s in range(config.slots)]
    world.spawn(world.crasher())
    workload = Workload(world)
    await workload.run()
    await asyncio.sleep(max(0.0, config.duration - world.now()))
    world.storage.faults_on = False
    world.queues.faults_on = False
    world.oracle.faults_ended(world.now())
    await asyncio.sleep(config.quiet)
    world.running = False
    for proc in world.processes:
        proc.crash()  # stop every handler still running
    for task in drivers:
        task.cancel()
    final = Process(world, "final")
    final.store = world.storage.view(lambda: True)
    final.scheduler = JobScheduler(final.store, world.registry, config.settings,
                                   clock=world.clock, rng=random.Random(0))
    await world.oracle.check_final(final, world)
    world.oracle.faults.update(world.storage.injected)
    world.oracle.faults.update(world.queues.injected)
    world.oracle.faults["crash"] += len(world.oracle.crashes)
    world.oracle.ops["task_all failed fast"] += world.oracle.fail_fast
    world.oracle.ops["jobs moved"] += sum(
        e.mover.moved for p in world.processes for e in p.executors.values())
    return world.oracle
