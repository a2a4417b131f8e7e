"""Every Durable payload stays small at the most generous settings (issue #13; README,
"Durable backend").

The Azure Storage backend offloads a queue message above 45 KB to a blob (and a history
property above 60 KB UTF-16), the Durable Task Scheduler refuses messages over 1 MiB, and a
custom status over 16 KB UTF-16 fails the orchestration. Our budget: every activity input and
output and the ``continue_as_new`` input ≤ 40 KB serialized, custom status ≤ 16 KB UTF-16.
The orchestrator runs here on a stand-in context fed the largest outputs its activities can
return, cycle after cycle (its state must not grow either).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.durable_functions.models.Task import TaskState

from jobs_api import orchestrator
from jobs_core import Batch, BatchResult, Plan
from jobs_core.metrics import BOUNDS_MS, Histogram
from jobs_core.plans import MAX_BATCHES_PER_CYCLE

MESSAGE_BUDGET = 40 * 1024
STATUS_BUDGET_UTF16 = 16 * 1024
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BIG = 10**15  # counters after years of cycles


def _size(value: Any) -> int:
    return len(json.dumps(value).encode())


def _utf16(value: Any) -> int:
    return len(json.dumps(value).encode("utf-16-le"))


def _largest_plan() -> dict[str, Any]:
    """50 batches in 50 blobs, each the range of 10,000 jobs between two full keys; long
    errors; every counter huge."""
    cut = []
    for b in range(MAX_BATCHES_PER_CYCLE):
        blob = f"shards/s999/20261202T{b:04d}-9999.jsonl"
        ends = [(T0 + timedelta(microseconds=b * 7 + k), f"j20261202T{b:04d}-s999-9999-{k:016x}")
                for k in range(2)]
        cut.append(Batch(999, BIG, blob, T0, ends[0], ends[1], 10_000))
    plan = Plan(999, "x" * 200 + "/jobs-slot-999", BIG, T0, cut, T0, due=BIG, pending=BIG,
                shards_read=BIG, errors=["E" * 5000] * 500, claim_ms=1e9, publish=True)
    out = plan.to_dict()  # plus what plan_cycle adds
    out["storage_requests_per_minute"] = BIG
    out["events"] = {"events": BIG, "messages_sent": BIG, "send_failures": BIG,
                     "retried": BIG, "dropped": BIG, "pending": BIG}
    out["timing"] = orchestrator.CycleTiming(*[3599.999999999] * 5).to_dict()
    return out


def _largest_result() -> dict[str, Any]:
    result = BatchResult(*([BIG] * 8), lateness=Histogram([BIG] * (len(BOUNDS_MS) + 1),
                                                          1e12 + 0.123, 1e18 + 0.123))
    return result.to_dict()


def _largest_publish_report() -> dict[str, Any]:
    report = {"blobs_read": BIG, "events": BIG, "messages_sent": BIG, "send_failures": BIG,
              "lagging": {f"q{i:03d}-" + "x" * 58: BIG for i in range(64)},
              "errors": ["QueueSendError: " + "y" * 5000] * 100}
    return orchestrator.bounded_report(report)


class _Task:
    def __init__(self, kind: str, name: str = "", children: list[_Task] | None = None) -> None:
        self.kind, self.name, self.children = kind, name, children or []
        self.state: TaskState = TaskState.RUNNING
        self.result: Any = None
        self.at: datetime | None = None  # a timer's

    @property
    def is_completed(self) -> bool:
        return self.state is not TaskState.RUNNING

    def done(self, result: Any) -> _Task:
        self.state, self.result = TaskState.SUCCEEDED, result
        return self

    def cancel(self) -> None:
        pass


class _Context:
    """Just enough of ``DurableOrchestrationContext`` to run one ``jobs_slot`` episode."""

    def __init__(self, state: dict[str, Any], now: datetime) -> None:
        self.state, self.current_utc_datetime, self.is_replaying = state, now, False
        self.sent: list[Any] = []  # activity inputs
        self.status: Any = None
        self.next_input: Any = None
        self.waited: list[str] = []  # the sleeps ("timer or wake")
        self.timers: list[datetime] = []  # when each timer created fires

    def get_input(self) -> dict[str, Any]:
        return self.state

    def call_activity(self, name: str, payload: Any) -> _Task:
        self.sent.append(payload)
        return _Task("activity", name)

    def task_all(self, tasks: list[_Task]) -> _Task:
        return _Task("all", children=tasks)

    def task_any(self, tasks: list[_Task]) -> _Task:
        return _Task("any", children=tasks)

    def create_timer(self, at: datetime) -> _Task:
        timer = _Task("timer")
        timer.at = at
        self.timers.append(at)
        return timer

    def wait_for_external_event(self, name: str) -> _Task:
        return _Task("event", name)

    def set_custom_status(self, status: Any) -> None:
        self.status = status

    def continue_as_new(self, state: Any) -> None:
        self.next_input = state


def _episode(state: dict[str, Any], now: datetime, outputs: dict[str, Any], *,
             overdue: bool = False, plan_lost: bool = False, one_fails: bool = False) -> _Context:
    """One episode; ``overdue``: the cycle's deadline fires before any batch reports;
    ``one_fails``: the first batch fails, the others report (task_all fails as the SDK's)."""
    ctx = _Context(state, now)
    episode: Generator[Any, Any, None] = orchestrator.jobs_slot(ctx)  # type: ignore[arg-type]
    step = next(episode)
    try:
        while True:
            if step.kind == "activity":
                step = episode.send(outputs[step.name])
            elif step.kind == "any" and step.children[0].kind == "activity":  # the plan
                planning, deadline = step.children
                if plan_lost:
                    ctx.current_utc_datetime = deadline.at  # (replayed: the deadline fired)
                    step = episode.send(deadline.done(None))
                else:
                    step = episode.send(planning.done(outputs[planning.name]))
            elif step.kind == "any" and step.children[0].kind == "all":
                work, deadline = step.children
                if overdue:
                    ctx.current_utc_datetime = deadline.at
                    step = episode.send(deadline.done(None))
                else:
                    for child in work.children:
                        child.done(outputs[child.name])
                    if one_fails:
                        failure = RuntimeError("the batch's instance was lost")
                        work.children[0].state, work.children[0].result = \
                            TaskState.FAILED, failure
                        work.state, work.result = TaskState.FAILED, failure
                        step = episode.send(work)
                    else:
                        step = episode.send(work.done([c.result for c in work.children]))
            else:  # the sleep: the timer fires
                ctx.waited.append("timer or wake")
                step = episode.send(step.children[0].done(None))
    except StopIteration:
        pass
    return ctx


def test_the_largest_plan_is_a_small_message() -> None:
    plan = _largest_plan()
    assert len(plan["batches"]) == MAX_BATCHES_PER_CYCLE
    assert _size(plan) <= MESSAGE_BUDGET, _size(plan)
    assert max(_size(b) for b in plan["batches"]) <= 400


def test_a_batch_covers_its_range_however_many_jobs_it_holds() -> None:
    batch = Batch.from_dict(json.loads(json.dumps(_largest_plan()["batches"][0])))
    assert batch.count == 10_000 and batch.at == T0 and batch.through is not None


def test_every_episode_stays_within_the_budgets_cycle_after_cycle() -> None:
    outputs = {"plan_cycle": _largest_plan(), "execute_batch": _largest_result(),
               "publish_events": _largest_publish_report()}
    state: dict[str, Any] = {"slot": 999, "cycle": BIG, "errors": BIG, "empty": 0,
                             "last_error": "z" * 500}
    now, sizes = T0, []
    for _ in range(4):
        ctx = _episode(state, now, outputs)
        assert ctx.next_input is not None and ctx.status is not None
        assert all(_size(sent) <= MESSAGE_BUDGET for sent in ctx.sent)
        assert _size(outputs["execute_batch"]) <= MESSAGE_BUDGET
        assert _size(outputs["publish_events"]) <= MESSAGE_BUDGET
        assert _size(ctx.next_input) <= MESSAGE_BUDGET, _size(ctx.next_input)
        assert _utf16(ctx.status) <= STATUS_BUDGET_UTF16, _utf16(ctx.status)
        sizes.append(_size(ctx.next_input))
        state, now = ctx.next_input, now + timedelta(seconds=1)
    assert max(sizes[1:]) - min(sizes[1:]) <= 64  # the state does not grow (but for digits)
    assert len(ctx.sent) == 1 + MAX_BATCHES_PER_CYCLE + 1  # plan, batches, publish


def test_a_failed_plan_reports_a_bounded_error() -> None:
    ctx = _episode({"slot": 1}, T0, {"plan_cycle": {"claim_held": "c" * 10_000,
                                                    "batches": []}})
    assert len(ctx.status["last_error"]) <= orchestrator.MAX_ERROR_CHARS
    assert _utf16(ctx.status) <= STATUS_BUDGET_UTF16


def test_a_cycle_whose_activities_are_overdue_replans_at_once() -> None:
    """An activity lost with its instance returns after a 5-minute visibility timeout: the
    cycle's deadline ends the wait, and the next cycle is planned without sleeping."""
    outputs = {"plan_cycle": _largest_plan(), "execute_batch": _largest_result(),
               "publish_events": _largest_publish_report()}
    ctx = _episode({"slot": 1}, T0, outputs, overdue=True)
    assert ctx.status["last_error"] is None and ctx.status["counts"]["started"] == 0
    assert ctx.status["next_wake"] == ctx.status["last_cycle"]  # no sleep: re-plan
    assert ctx.next_input["empty"] == 0


def test_a_failed_batch_does_not_erase_what_the_others_report() -> None:
    """task_all fails on its first failed task and its result holds no other's: the counts
    the other batches reported still go into the cycle's counts and the slot's totals (a
    failed job run beside a failed batch was once missing from ``totals.failed``)."""
    plan = {"batches": [{"slot": 1, "blob": f"b{i}"} for i in range(3)], "publish": False}
    outputs = {"plan_cycle": plan, "execute_batch": BatchResult(started=2, failed=1).to_dict()}
    ctx = _episode({"slot": 1, "totals": {"failed": 5}}, T0, outputs, one_fails=True)
    assert "execute_batch failed" in ctx.status["last_error"]
    assert (ctx.status["counts"]["started"], ctx.status["counts"]["failed"]) == (4, 2)
    assert ctx.status["totals"]["failed"] == 7 and ctx.next_input["totals"]["failed"] == 7
    assert ctx.next_input["errors"] == 1


def test_a_plan_lost_with_its_instance_does_not_hold_the_slot() -> None:
    """The same deadline covers ``plan_cycle``: lost with its instance, it would otherwise
    hold the slot for the message's 5-minute visibility timeout."""
    ctx = _episode({"slot": 1}, T0, {}, plan_lost=True)
    assert len(ctx.sent) == 1 and ctx.status["last_error"] is None
    assert ctx.next_input["empty"] == 0  # re-planned as soon as the deadline fired
    assert ctx.status["next_wake"] == "2026-12-02T12:00:00.500000Z"  # (0.5 s, long past)


def test_after_plans_that_missed_the_deadline_a_cycle_waits_longer_for_its_own() -> None:
    """The first cycle whose plan misses the deadline re-plans at once (an instance died).
    While plans keep missing it, the activities' instances are down or their queue is backed
    up, and re-planning after every deadline would queue one more plan behind them without
    end (the simulation's seed 34542 piled up thousands). So each next cycle waits for its
    own plan the deadline plus 1 s, 2 s, 4 s ... up to the longest sleep, and uses it if it
    comes then; a plan in time starts over."""
    deadline = orchestrator.get_runtime().api.cycle_deadline_seconds
    cap = orchestrator.get_runtime().settings.max_sleep_seconds
    state: dict[str, Any] = {"slot": 1}
    waits = []
    for n in range(9):
        ctx = _episode(state, T0, {}, plan_lost=True)
        state = ctx.next_input
        waits.append((ctx.timers[0] - T0).total_seconds())  # the cycle's deadline
        assert ctx.status["plans_overdue"] == state["plans_overdue"] == n + 1
        assert ctx.status["last_error"] is None and len(ctx.sent) == 1
        assert ctx.waited == []  # re-planned at once
    assert waits == [deadline] + [deadline + min(cap, 2.0 ** k) for k in range(8)]
    outputs = {"plan_cycle": {"batches": [{"slot": 1, "blob": "b"}], "publish": False},
               "execute_batch": BatchResult(started=1).to_dict()}
    late_plan = _episode(state, T0, outputs)  # it came within the cycle's longer wait
    assert (late_plan.timers[0] - T0).total_seconds() == deadline + cap
    assert late_plan.status["counts"]["started"] == 1 and len(late_plan.sent) == 2
    assert late_plan.next_input["plans_overdue"] == 0 and late_plan.status["plans_overdue"] == 0
    after = _episode(late_plan.next_input, T0, outputs)
    assert (after.timers[0] - T0).total_seconds() == deadline


def test_batches_that_outlast_the_deadline_do_not_hold_the_slot_back() -> None:
    """Handlers may run longer than the cycle's deadline (JOBS_JOB_TIMEOUT_SECONDS may exceed
    it): a slot whose batches are still out at every deadline, its plans in time, re-plans
    at once each cycle for the other due jobs, as many cycles in a row as that lasts."""
    outputs = {"plan_cycle": {"batches": [{"slot": 1, "blob": "b"}], "publish": False,
                              "due": 1},
               "execute_batch": BatchResult(started=1).to_dict()}
    state: dict[str, Any] = {"slot": 1}
    for _ in range(5):
        ctx = _episode(state, T0, outputs, overdue=True)
        state = ctx.next_input
        assert state["plans_overdue"] == 0 and ctx.waited == []
        assert ctx.status["next_wake"] == ctx.status["last_cycle"]  # re-planned at once
