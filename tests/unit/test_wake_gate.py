"""Wake-ups (jobs_api/wake.py): at most one event per slot per second per process, none for a
job due after the slot's known next wake-up, none at all while a slot works back-to-back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs_api.wake import SlotWake, WakeGate

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class FakeDurable:
    """The slots' custom status ``next_wake`` and the events raised, counted."""

    def __init__(self, next_wake: dict[int, datetime | None]) -> None:
        self.next_wake = next_wake
        self.status_reads = 0
        self.raised: list[int] = []

    async def status(self, client: object, slot: int) -> SlotWake | None:
        self.status_reads += 1
        next_wake = self.next_wake.get(slot)
        return None if next_wake is None else SlotWake(next_wake)  # (a slot that worked)

    async def raise_event(self, client: object, slot: int) -> None:
        self.raised.append(slot)


def _gate(durable: FakeDurable, clock: list[float]) -> WakeGate:
    async def sleep(seconds: float) -> None:  # the fake clock moves on
        clock[0] += seconds

    return WakeGate(durable.status, durable.raise_event, clock=lambda: clock[0], sleep=sleep)


async def test_a_burst_raises_one_event_per_slot_per_second() -> None:
    """The first job of a burst wakes its slot at once; the jobs after it within the second
    get one trailing wake-up when the second is over (the woken cycle may have planned before
    they were written)."""
    durable, clock = FakeDurable({0: NOW + timedelta(seconds=60), 1: None}), [0.0]
    gate = _gate(durable, clock)
    for i in range(1000):  # 1,000 POSTs within one second, all due now
        clock[0] = i / 1000
        gate.wake(None, {i % 2: NOW})
    await gate.drain()

    assert sorted(durable.raised) == [0, 0, 1, 1]
    assert gate.stats.asked == 1000 and gate.stats.skipped_recent == 998
    assert durable.status_reads <= 4  # the status is cached for two seconds


async def test_no_event_for_a_job_due_after_the_slots_next_wake_up() -> None:
    durable, clock = FakeDurable({0: NOW + timedelta(seconds=10)}), [0.0]
    gate = _gate(durable, clock)
    gate.wake(None, {0: NOW + timedelta(seconds=30)})
    await gate.drain()
    clock[0] = 0.1  # the skipped one did not use up the slot's second
    gate.wake(None, {0: NOW + timedelta(seconds=5)})
    await gate.drain()

    assert durable.raised == [0] and gate.stats.skipped_not_earlier == 1


async def test_sustained_load_on_a_working_slot_raises_nothing() -> None:
    """A slot working back-to-back reports next_wake = its last cycle: every new job is due
    after it, so no wake event is worth its cost."""
    durable, clock = FakeDurable({0: NOW - timedelta(milliseconds=200)}), [0.0]
    gate = _gate(durable, clock)
    for second in range(30):  # 30 s at 1,000 POSTs/s
        for i in range(1000):
            clock[0] = second + i / 1000
            gate.wake(None, {0: NOW + timedelta(seconds=second)})
        await gate.drain()

    assert durable.raised == [] and gate.stats.skipped_not_earlier == 60  # 1 + 1 trailing / s
    assert durable.status_reads <= 15  # one status read per slot per 2 s at most


async def test_a_failing_event_is_counted_and_the_timer_remains() -> None:
    async def refuse(client: object, slot: int) -> None:
        raise RuntimeError("404: no such instance")

    durable, clock = FakeDurable({}), [0.0]
    gate = WakeGate(durable.status, refuse, clock=lambda: clock[0])
    gate.wake(None, {3: NOW})
    await gate.drain()

    assert gate.stats.failed == 1 and gate.stats.raised == 0
