"""The simulated world: processes over one faulty storage account, one orchestrator per slot,
clients, handlers, crashes and retention purges, all on virtual time and driven by one seed.

What it models of the real host (``jobs_api/orchestrator.py`` on Durable Functions):
- every process (a Functions worker on some instance) has its own ``JobScheduler``, its own
  ``Executor`` per slot and their caches; memory is gone when it crashes;
- one eternal orchestrator per slot: ``plan`` runs as an activity on any live process, the
  batches fan out to any processes, ``task_all`` fails fast (the next cycle can start while
  batches of the previous one still run), then the cycle sleeps until ``next_wake`` or a ``wake``
  event, backing off after empty and failed cycles exactly as the orchestrator does;
- an activity whose process dies is delivered again after the queue's visibility timeout;
- the HTTP API: a schedule due within 60 s wakes its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from jobs_core import Batch, Executor, JobRequest, JobScheduler, JobsSettings
from jobs_core.errors import (
    ClaimHeldError,
    IdempotencyConflictError,
    InvalidTransitionError,
    JobNotFoundError,
    JobsError,
    JobValidationError,
)
from jobs_core.event_log import LogPublisher
from jobs_core.events import EventPublisher
from jobs_core.handlers import HandlerRegistry, JobContext, PermanentJobError
from jobs_core.model import RetryPolicy
from jobs_core.retention import purge_shards
from jobs_core.store import JobStore

from .faults import FaultPlan, ProcessCrashed, SharedStorage
from .oracle import LIMITED, Oracle
from .queues import QUEUES, QueuePlan, SimQueues

T = TypeVar("T")
EPOCH = datetime(2026, 3, 27, 22, 0, tzinfo=UTC)  # two days before Europe's spring change
VISIBILITY_TIMEOUT = 300.0  # a crashed activity's queue message reappears after this
HUB = "JobsHub"
CURRENT: contextvars.ContextVar[Process | None] = contextvars.ContextVar("sim_process",
                                                                           default=None)
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC")


@dataclass(frozen=True)
class SimConfig:
    seed: int
    processes: int
    slots: int
    bucket_minutes: int
    ops: int
    duration: float  # seconds of workload (faults and crashes happen only then)
    quiet: float  # seconds after the workload, without faults, for everything to finish
    crash_every: float  # mean seconds between process crashes (0: none)
    plan: FaultPlan
    settings: JobsSettings
    recurring: int
    retention_hours: float
    v3_controls: bool = True  # pause, resume, update in the workload (off: as before them)

    def unscaled(self) -> SimConfig:
        """The same world with the service's real block limit (for a real store)."""
        return _unscaled(self)

    @classmethod
    def draw(cls, seed: int, ops: int | None = None) -> SimConfig:
        rng = random.Random(f"config-{seed}")
        plan = FaultPlan.draw(rng)
        bucket = rng.choice([1, 5, 15, 60])
        scaled = plan.max_blocks < 50_000
        seal = plan.max_blocks // 2 if scaled else 40_000
        evacuate = plan.max_blocks * 7 // 10 if scaled else 45_000
        settings = JobsSettings(
            slots=rng.choice([1, 2, 3]), bucket_minutes=bucket, seal_blocks=seal,
            evacuate_blocks=evacuate, carry_after_hours=rng.choice([0.25, 2.0, 24.0]),
            batch_size=rng.choice([3, 20, 200]), max_concurrency=rng.choice([2, 8, 32]),
            job_timeout_seconds=rng.choice([2.0, 5.0]), claim_ttl_seconds=120.0,
            abandon_grace_seconds=rng.choice([5.0, 30.0]), max_sleep_seconds=60.0,
            retry=RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=20.0, jitter=0.2),
            notify_queues="billing")
        n_ops = ops if ops is not None else rng.choice([200, 400, 600])
        duration = rng.choice([1800.0, 3 * 3600.0, 12 * 3600.0])
        return cls(seed=seed, processes=rng.choice([1, 2, 3, 4]), slots=settings.slots,
                   bucket_minutes=bucket, ops=n_ops, duration=duration, quiet=3 * 3600.0,
                   crash_every=rng.choice([0.0, 1800.0, 600.0]), plan=plan, settings=settings,
                   recurring=rng.choice([0, 1, 3]), retention_hours=rng.choice([1.0, 6.0]))


def _unscaled(config: SimConfig) -> SimConfig:
    plan = replace(config.plan, max_blocks=50_000)
    settings = replace(config.settings, seal_blocks=40_000, evacuate_blocks=45_000)
    return replace(config, plan=plan, settings=settings)


class Process:
    """One worker process: its own scheduler, executors and caches over its own store view."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.alive = True
        self.store = world.storage.view(lambda: self.alive, self.die)
        rng = random.Random(world.rng.random())
        sink = world.queues.view(lambda: self.alive)
        # eager sends (in memory, lost with the process) and the log publisher (the guarantee)
        self.events = EventPublisher(sink, QUEUES[0], clock=world.now)
        self.publisher = LogPublisher(self.store, sink, QUEUES[0], clock=world.clock,
                                      monotonic=world.now)
        self.scheduler = JobScheduler(self.store, world.registry, world.config.settings,
                                      clock=world.clock, rng=rng, events=self.events)
        self.executors: dict[int, Executor] = {}
        self.tasks: dict[asyncio.Task[Any], None] = {}  # ordered: a crash cancels in order

    def executor(self, slot: int) -> Executor:
        if slot not in self.executors:
            self.executors[slot] = Executor(
                self.store, self.world.registry, self.world.config.settings,
                owner=f"{HUB}/jobs-slot-{slot}", clock=self.world.clock,
                rng=random.Random(self.world.rng.random()), events=self.events)
        return self.executors[slot]

    async def call(self, work: Callable[[Process], Awaitable[T]]) -> T:
        """Run ``work`` inside this process; ``ProcessCrashed`` if the process dies first."""
        if not self.alive:
            raise ProcessCrashed(self.name)

        async def inside() -> T:
            CURRENT.set(self)
            return await work(self)

        task = asyncio.get_running_loop().create_task(inside())
        self.tasks[task] = None
        task.add_done_callback(lambda t: self.tasks.pop(t, None))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and not self.alive:
                raise ProcessCrashed(self.name) from None
            raise

    def crash(self) -> None:
        self.alive = False
        for task in list(self.tasks):
            task.cancel()

    def die(self) -> None:
        """Crash now, at this await point (a fault), and come back later, cold."""
        if self.alive:
            self.world.oracle.crashed(self.name, self.world.now())
            self.crash()
            self.world.spawn(self.world.restart(self))


class World:
    def __init__(self, config: SimConfig, store: JobStore | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.oracle = Oracle(config)
        self.storage = SharedStorage(random.Random(config.seed * 7 + 1), config.plan,
                                     self.oracle.tainted, store)
        self.queues = SimQueues(QueuePlan.draw(random.Random(config.seed * 13 + 5),
                                               config.duration),
                                random.Random(config.seed * 17 + 3))
        self.registry = make_registry(self)
        self.processes: list[Process] = [Process(self, f"p{i}") for i in range(config.processes)]
        self.wake = [asyncio.Event() for _ in range(config.slots)]
        self.running = True
        self.background: set[asyncio.Task[Any]] = set()

    # --- time ---------------------------------------------------------------------------
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def clock(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now())

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def live(self) -> list[Process]:
        return [p for p in self.processes if p.alive]

    async def pick(self) -> Process:
        while True:
            live = self.live()
            if live:
                return self.rng.choice(live)
            await asyncio.sleep(1.0)

    # --- the orchestrator per slot ----------------------------------------------------------
    async def activity(self, work: Callable[[Process], Awaitable[T]]) -> T:
        """An activity: runs on some live process; redelivered after the visibility timeout
        if its process dies under it."""
        while True:
            proc = await self.pick()
            try:
                return await proc.call(work)
            except ProcessCrashed:
                await asyncio.sleep(VISIBILITY_TIMEOUT)

    async def slot_driver(self, slot: int) -> None:
        try:
            await self._drive(slot)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in the core: the slot would stop for good
            import traceback
            self.oracle.violate("I1", f"slot {slot}'s orchestrator died: {exc!r} "
                                      f"{traceback.format_exc(limit=-3)}")

    async def _drive(self, slot: int) -> None:
        errors = empty = 0
        api_min_sleep, api_error_sleep = 1.0, 5.0
        cap = self.config.settings.max_sleep_seconds
        while self.running:
            error = False
            plan = None
            try:
                plan = await self.activity(lambda p: p.executor(slot).plan(slot))
            except ClaimHeldError:
                error = True
            except JobsError:
                error = True
            # activity inputs cross the Durable backend as JSON, as in the orchestrator
            batches = [Batch.from_dict(json.loads(json.dumps(b.to_dict())))
                       for b in plan.batches] if plan is not None else []
            progress = False
            publish = plan is not None and plan.publish
            if batches or publish:
                self.oracle.cycles += 1
                tasks = [self.spawn(self.activity(
                    lambda p, b=b: p.executor(slot).execute(b))) for b in batches]
                if publish:  # beside the batches, as the orchestrator does
                    tasks.append(self.spawn(self.activity(
                        lambda p: p.publisher.publish(slot))))
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                progress = any(made_progress(t.result()) for t in done if t.exception() is None)
                failed = [t for t in done if t.exception() is not None]
                if failed:  # task_all fails fast; the other batches keep running
                    error = True
                    self.oracle.fail_fast += 1
                    for t in failed:
                        if not isinstance(t.exception(), JobsError):
                            raise t.exception()  # type: ignore[misc]
            errors = errors + 1 if error else 0
            empty = 0 if progress else empty + 1
            if error:
                sleep = min(cap, api_error_sleep * 2 ** min(10, errors - 1))
            elif batches and progress:
                sleep = 0.0
            else:
                sleep = min(cap, api_min_sleep * 2 ** min(20, empty - 1))
                if plan is not None:
                    sleep = min(sleep, max(0.0, (plan.next_wake - self.clock()).total_seconds()))
            if sleep > 0:
                self.wake[slot].clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake[slot].wait(), sleep)

    def wake_for(self, job_id: str, due: datetime) -> None:
        if (due - self.clock()).total_seconds() <= 60:
            slot = int(job_id.split("-s")[1][:3])
            self.wake[slot].set()

    # --- crashes --------------------------------------------------------------------------
    async def crasher(self) -> None:
        mean = self.config.crash_every
        if not mean:
            return
        while self.now() < self.config.duration:
            await asyncio.sleep(self.rng.expovariate(1 / mean))
            if self.now() >= self.config.duration:
                return
            live = self.live()
            if live:
                self.rng.choice(live).die()

    async def restart(self, dead: Process) -> None:
        await asyncio.sleep(self.rng.uniform(1.0, 30.0))
        if dead in self.processes:
            self.processes[self.processes.index(dead)] = Process(self, dead.name)


def made_progress(result: Any) -> bool:
    """As the orchestrator judges a cycle: it worked if a job started, was abandoned or moved
    (a cycle of batches that did nothing backs off like an empty one)."""
    return bool(getattr(result, "started", 0) or getattr(result, "abandoned", 0) or
                getattr(result, "moved", 0))  # (a PublishReport is no progress)


# --- handlers -------------------------------------------------------------------------------
async def _sleep(seconds: float) -> None:
    proc = CURRENT.get()
    await asyncio.sleep(seconds)
    if proc is not None and not proc.alive:
        raise ProcessCrashed(proc.name)
    if proc is not None and proc.world.storage.roll(proc.world.config.plan.p_crash * 5):
        proc.world.storage.injected["handler:crash"] += 1
        proc.die()  # the process dies while a handler runs (its work may be done)
        raise ProcessCrashed(proc.name)


def make_registry(world: World) -> HandlerRegistry:
    registry = HandlerRegistry()
    oracle = world.oracle

    def wrap(name: str, body: Callable[[JobContext], Awaitable[Any]],
             **options: Any) -> None:
        async def handler(ctx: JobContext) -> Any:
            proc = CURRENT.get()
            inv = oracle.invoked(ctx, proc.name if proc else "?", world.now())
            try:
                value = await body(ctx)
            except BaseException as exc:
                dead = proc is not None and not proc.alive
                oracle.returned(inv, world.now(), ok=False,
                                error="ProcessCrashed" if dead else type(exc).__name__)
                raise
            oracle.returned(inv, world.now(), ok=True)
            return value
        registry.handler(name, **options)(handler)

    async def ok(ctx: JobContext) -> Any:
        await _sleep(float((ctx.payload or {}).get("t", 0.05)))
        return {"done": ctx.job_id, "run": ctx.run}

    async def flaky(ctx: JobContext) -> Any:
        await _sleep(0.05)
        if ctx.attempt <= int((ctx.payload or {}).get("fail_until", 1)):
            raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
        return "recovered"

    async def perm(ctx: JobContext) -> Any:
        await _sleep(0.01)
        raise PermanentJobError("no retry can fix this")

    async def slow(ctx: JobContext) -> Any:  # 0.6 of its 1 s timeout
        await _sleep(0.6)
        return "slow but in time"

    async def hang(ctx: JobContext) -> Any:  # well past its timeout
        await _sleep(3600.0)
        return "never"

    async def charge(ctx: JobContext) -> Any:  # fails now and then; compensation undoes it
        await _sleep(0.1)
        if world.rng.random() < 0.3:
            raise RuntimeError("card declined")
        return "charged"

    async def refund(ctx: JobContext) -> Any:
        oracle.compensated(ctx, world.now())

    async def limited(ctx: JobContext) -> Any:  # one in seven fails for good: compensated
        value = await ok(ctx)
        if int((ctx.payload or {}).get("n", 1)) % 7 == 0:
            raise PermanentJobError("declined for good")
        return value

    async def undo_limited(ctx: JobContext) -> Any:  # handler code too: within the limits
        proc = CURRENT.get()
        run = oracle.compensation_began(ctx, proc.name if proc else "?", world.now())
        try:
            await _sleep(0.3)
        finally:
            oracle.returned(run, world.now(), ok=True)
        oracle.compensated(ctx, world.now())

    wrap("ok", ok)
    wrap("flaky", flaky)
    wrap("perm", perm)
    wrap("slow", slow)
    wrap("hang", hang)
    wrap("charge", charge, compensate=refund)
    most, rate = LIMITED["limited"]
    wrap("limited", limited, max_concurrency=most, max_per_second=rate,
         compensate=undo_limited)
    return registry


# --- the workload --------------------------------------------------------------------------
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
        if self.w.config.v3_controls:  # (no draw: the same world either way, but for these)
            if kind == 1:
                recurrence["misfire_grace_seconds"] = 120.0  # skips what crashes made late
            elif kind == 2:
                recurrence.update(interval_mode="fixed_rate", jitter_seconds=5.0)
                if (i // 3) % 2:  # half of them catch up after crashes, and buffer overlaps
                    recurrence.update(catch_up_max=3, overlap="buffer_one")
                    del recurrence["jitter_seconds"]  # (catch-up runs at nominal times)
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
            job_id = oracle.pick_paused(self.rng) if op == "resume" else \
                oracle.pick_recurring(self.rng) if op == "update" else \
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
        try:
            job = await proc.call(lambda p: p.scheduler.get(job_id))
        except JobNotFoundError:
            self.w.oracle.read_missing(proc.name, job_id, why, self.w.now())
            return
        except (JobsError, ProcessCrashed):
            return
        self.w.oracle.observed(proc.name, job, self.w.now())

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
            due = w.clock() + timedelta(seconds=self.rng.choice([-30.0, 5.0, 120.0, 5000.0]))
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
