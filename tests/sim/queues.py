"""The world's queue service, for state-change events: outages per queue, random refusals,
and sends that are delivered but reported as failed (the sender sends again: duplicates).

Every process sends through its own view, which dies with the process. What reached each queue
is counted by event id; the oracle's I10 compares that with the events the final log (and the
blobs retention purged) says happened.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from jobs_core.events import EventSendError

from .faults import ProcessCrashed

QUEUES = ("job-events", "billing")  # the default queue, and the notify queue of some jobs


@dataclass(frozen=True)
class QueuePlan:
    outages: tuple[tuple[str, float, float], ...] = ()  # queue, from, to (virtual seconds)
    p_fail: float = 0.0  # a send is refused
    p_ambiguous: float = 0.0  # a send is delivered, then reported as failed
    max_latency: float = 0.01

    @classmethod
    def draw(cls, rng: random.Random, duration: float) -> QueuePlan:
        outages = []
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            start = rng.uniform(0, duration)
            outages.append((rng.choice(QUEUES), start, start + rng.choice([30.0, 600.0, 3600.0])))
        return cls(tuple(outages), p_fail=rng.choice([0.0, 0.01, 0.05]),
                   p_ambiguous=rng.choice([0.0, 0.01]),
                   max_latency=rng.choice([0.001, 0.01, 0.05]))


class SimQueues:
    def __init__(self, plan: QueuePlan, rng: random.Random) -> None:
        self.plan = plan
        self.rng = rng
        self.faults_on = True
        self.delivered: dict[str, Counter[str]] = defaultdict(Counter)  # queue -> id -> n
        self.injected: Counter[str] = Counter()

    def down(self, queue: str, now: float) -> bool:
        return self.faults_on and any(q == queue and start <= now < end
                                      for q, start, end in self.plan.outages)

    def roll(self, p: float) -> bool:
        return self.faults_on and p > 0 and self.rng.random() < p

    def view(self, alive: Callable[[], bool]) -> ProcessQueues:
        return ProcessQueues(self, alive)


class ProcessQueues:
    """One process's connection to the queue service (an ``EventSink``)."""

    def __init__(self, shared: SimQueues, alive: Callable[[], bool]) -> None:
        self.s = shared
        self.alive = alive

    async def send(self, queue: str, messages: list[str]) -> None:
        if not self.alive():
            raise ProcessCrashed("queue send")
        await asyncio.sleep(self.s.rng.uniform(0, self.s.plan.max_latency))
        if not self.alive():
            raise ProcessCrashed("queue send")
        now = asyncio.get_running_loop().time()
        if self.s.down(queue, now):
            self.s.injected["queue:outage"] += 1
            raise EventSendError(f"queue {queue!r} is down (simulated outage)")
        if self.s.roll(self.s.plan.p_fail):
            self.s.injected["queue:refused"] += 1
            raise EventSendError(f"queue {queue!r} refused the messages (simulated)")
        for message in messages:
            for event in json.loads(message)["events"]:
                self.s.delivered[queue][event["id"]] += 1
        if self.s.roll(self.s.plan.p_ambiguous):
            self.s.injected["queue:ambiguous"] += 1
            raise EventSendError(f"queue {queue!r}: timeout after the send (simulated)")

    async def close(self) -> None:
        return None
