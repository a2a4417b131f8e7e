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

The handlers are in ``handlers.py``; the clients, and ``simulate`` that runs a world with them,
are in ``workload.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from jobs_core import Batch, Executor, JobScheduler, JobsSettings
from jobs_core.errors import ClaimHeldError, JobsError
from jobs_core.event_log import LogPublisher
from jobs_core.events import EventPublisher
from jobs_core.model import RetryPolicy
from jobs_core.store import JobStore

from .facts import EPOCH
from .faults import FaultPlan, ProcessCrashed, SharedStorage
from .handlers import CURRENT, make_registry
from .oracle import Oracle
from .queues import QUEUES, QueuePlan, SimQueues

T = TypeVar("T")
VISIBILITY_TIMEOUT = 300.0  # a crashed activity's queue message reappears after this
HUB = "JobsHub"
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC")


# what each version of the workload added (a seed replays the version it was found with):
WORKLOADS = {
    2: "schedules, batches, reads, cancels, run-nows, reschedules, purges; recurring jobs",
    3: "+ pause, resume, update and retry; a limited handler; misfire grace and jitter",
    4: "+ the recurrence policies on odd seeds: catch-up with buffer_one, overlap allow",
    5: "+ cycles end at a (scaled) deadline while their activities run on, as the "
       "orchestrator's do: cycles of a slot overlap; half the compensations outlast a cycle "
       "(after plans that missed it, a cycle waits longer, as the orchestrator's has "
       "since stop 29)",
    6: "+ reschedules 600 s into the past (beyond the misfire grace), and half the "
       "reschedules and run-nows aimed at recurring jobs: due times a control set, which "
       "the I6 log check and I7 follow",
}
LATEST_WORKLOAD = max(WORKLOADS)

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
    workload: int = LATEST_WORKLOAD  # its version (``WORKLOADS``): a seed replays the one
    # it was found with

    @property
    def v3_controls(self) -> bool:
        return self.workload >= 3

    @property
    def cycle_deadline(self) -> float | None:
        """Workload 5: the slot orchestrators' cycle deadline in seconds (drawn apart from
        the config, so earlier workloads' worlds stay as they were); None before."""
        if self.workload < 5:
            return None
        return random.Random(f"deadline-{self.seed}").choice([0.5, 1.5, 5.0, 60.0])

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
        errors = empty = plans_overdue = 0
        api_min_sleep, api_error_sleep = 1.0, 5.0
        cap = self.config.settings.max_sleep_seconds
        # workload 5: the cycle's deadline (JOBS_CYCLE_DEADLINE_SECONDS, scaled down like the
        # block limit: the handlers here take seconds, not minutes), after which the
        # orchestrator plans again while the activities still out run on
        deadline = self.config.cycle_deadline
        while self.running:
            error = overdue = plan_overdue = False
            plan = None
            began = self.now()
            # after plans that missed the deadline, the cycle waits longer for its own, as
            # the orchestrator's does (re-planning after every deadline queued a plan per
            # deadline behind dead processes: seed 34542 piled up thousands, and its world
            # never ended)
            late = min(cap, api_min_sleep * 2 ** min(20, plans_overdue - 1)) \
                if plans_overdue else 0.0
            try:
                if deadline is None:
                    plan = await self.activity(lambda p: p.executor(slot).plan(slot))
                else:
                    planning = self.spawn(self.activity(lambda p: p.executor(slot).plan(slot)))
                    self._watch(planning, slot)
                    done_plan, _ = await asyncio.wait([planning], timeout=deadline + late)
                    if done_plan:
                        plan = planning.result()
                    else:
                        overdue = plan_overdue = True
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
                if deadline is None:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                else:
                    for task in tasks:
                        self._watch(task, slot)
                    left = max(0.0, deadline + late - (self.now() - began))
                    done, pending = await asyncio.wait(tasks, timeout=left,
                                                       return_when=asyncio.FIRST_EXCEPTION)
                    overdue = overdue or (bool(pending) and not any(
                        t.exception() is not None for t in done))
                progress = any(made_progress(t.result()) for t in done if t.exception() is None)
                failed = [t for t in done if t.exception() is not None]
                if failed:  # task_all fails fast; the other batches keep running
                    error = True
                    self.oracle.fail_fast += 1
                    for t in failed:
                        if not isinstance(t.exception(), JobsError):
                            raise t.exception()  # type: ignore[misc]
            errors = errors + 1 if error else 0
            plans_overdue = plans_overdue + 1 if plan_overdue else 0
            empty = 0 if progress or overdue else empty + 1  # (overdue: as the orchestrator)
            if error:
                sleep = min(cap, api_error_sleep * 2 ** min(10, errors - 1))
            elif overdue or (batches and progress):  # (overdue: plan again at once)
                sleep = 0.0
            else:
                sleep = min(cap, api_min_sleep * 2 ** min(20, empty - 1))
                if plan is not None:
                    sleep = min(sleep, max(0.0, (plan.next_wake - self.clock()).total_seconds()))
            if sleep > 0:
                self.wake[slot].clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake[slot].wait(), sleep)

    def _watch(self, task: asyncio.Task[Any], slot: int) -> None:
        """An activity the cycle may stop waiting for: an error other than the core's own
        (``JobsError``) is a bug, as if the orchestrator had awaited it."""
        def done(t: asyncio.Task[Any]) -> None:
            if t.cancelled() or t.exception() is None or isinstance(t.exception(), JobsError):
                return
            self.oracle.violate("I1", f"slot {slot}: an activity failed: {t.exception()!r}")
        task.add_done_callback(done)

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
