"""The durable engine: instance lifecycle, episodes, activities, timers, retries, recovery.

Per instance, one driver task delivers inbox events to the orchestrator in episodes (see
``_take_batch``), appends the resulting TaskScheduled/TimerCreated events, and persists the
instance before any side effect (activity dispatch, timer arming) happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from . import history as h
from .activity_pool import ActivityOutcome, ActivityPool
from .backend_model import MAX_MESSAGES_PER_EPISODE, BackendModel, BackendSettings
from .errors import DevhostError
from .indexer import IndexedFunction
from .instance_store import (
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    TERMINATED,
    InstanceRecord,
    InstanceStore,
)
from .invoker import FunctionInvoker
from .orchestration_runner import (
    EpisodeResult,
    UnsupportedAction,
    build_context,
    call_orchestrator,
    check_determinism,
    interpret,
)
from .timers import TimerService

log = logging.getLogger("devhost.durable")
Effect = Callable[[], None]


class OrchestratorNotFound(DevhostError):
    pass


class InstanceExists(DevhostError):
    pass


class InstanceNotFound(DevhostError):
    pass


class InstanceGone(DevhostError):
    pass


class DurableEngine:
    def __init__(
        self,
        store: InstanceStore,
        functions: list[IndexedFunction],
        invoker: FunctionInvoker,
        max_activities: int = 8,
        strict_determinism: bool = False,
        model: BackendModel | None = None,
    ) -> None:
        self.store = store
        self.model = model or BackendModel(BackendSettings(enabled=False))
        self.orchestrators = {f.durable_name: f for f in functions
                              if f.trigger_type == "orchestrationTrigger"}
        activities = {f.durable_name: f for f in functions if f.trigger_type == "activityTrigger"}
        self.invoker = invoker
        self.strict = strict_determinism
        self.records: dict[str, InstanceRecord] = {}
        self.timers = TimerService(self._on_timer)
        self.activities = ActivityPool(activities, invoker, max_activities,
                                       self._accept_activity)
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._dispatched: dict[tuple[str, str, int], tuple[str, Any]] = {}  # for the model

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.records = self.store.load_all()
        resumed = 0
        # at-least-once: unfinished activities run again, once their message's visibility
        # timeout has passed (with the backend model; at once without it)
        redeliver = self.model.settings.visibility_seconds if self.model.enabled else 0.0
        loop = asyncio.get_running_loop()
        if self.model.enabled:
            self.model.begin(loop.time())
        for rec in self.records.values():
            if not rec.is_active:
                continue
            resumed += 1
            for seq, act in rec.activities.items():
                loop.call_later(redeliver, self.activities.dispatch, rec.instance_id,
                                rec.execution_id, int(seq), act["name"], act["input"])
            for seq, fire_at in rec.timers.items():
                self.timers.arm(rec.instance_id, rec.execution_id, int(seq), fire_at)
            self._kick(rec)
        if resumed:
            log.info("Resumed %d active orchestration instance(s) from %s", resumed, self.store.dir)

    async def stop(self) -> None:
        self.timers.cancel_all()
        await self.activities.shutdown()
        for task in list(self._drivers.values()):
            task.cancel()
        await asyncio.gather(*self._drivers.values(), return_exceptions=True)

    # ----------------------------------------------------------- client operations
    def start_instance(self, name: str, instance_id: str | None, input_value: Any,
                       version: str | None = None) -> str:
        """Create an instance; atomic per id because it runs on the loop without awaiting."""
        if name not in self.orchestrators:
            raise OrchestratorNotFound(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                "function. Additional info: devhost knows orchestrators "
                f"{sorted(self.orchestrators)}."
            )
        instance_id = instance_id or uuid.uuid4().hex
        existing = self.records.get(instance_id)
        if existing is not None and existing.is_active:
            raise InstanceExists(  # the extension's InvalidOperationException (HTTP 500)
                f"An Orchestration instance with the status {existing.status} already exists."
            )
        self.model.start()
        if existing is not None:
            self.timers.cancel_instance(instance_id)
        now = h.format_ts(h.utc_now())
        rec = InstanceRecord(
            instance_id=instance_id, name=name, execution_id=uuid.uuid4().hex,
            created_time=now, last_updated_time=now, status=PENDING, input=input_value,
        )
        rec.inbox.append(h.event(h.EXECUTION_STARTED, now, Name=name, Input=input_value,
                                 Version=version))
        self.records[instance_id] = rec
        self.store.save(rec)
        log.info("Started orchestration '%s' instance %s", name, instance_id)
        self._kick(rec)
        return instance_id

    def _active(self, instance_id: str) -> InstanceRecord:
        rec = self.records.get(instance_id)
        if rec is None:
            raise InstanceNotFound(instance_id)
        if not rec.is_active:
            raise InstanceGone(instance_id)
        return rec

    def raise_event(self, instance_id: str, name: str, input_json: str) -> None:
        """The event is durable at once; an idle instance sees it at its queue's next poll
        (it was put by another process: an HTTP instance)."""
        rec = self._active(instance_id)
        rec.inbox.append(h.event(h.EVENT_RAISED, h.format_ts(h.utc_now()), Name=name,
                                 Input=input_json))
        self.store.save(rec)
        self.model.raise_event()
        self._kick_after_poll(rec)

    def terminate(self, instance_id: str, reason: str) -> None:
        rec = self._active(instance_id)
        rec.terminate_reason = reason
        self.store.save(rec)
        self._kick(rec)

    def purge(self, instance_id: str) -> bool:
        rec = self.records.get(instance_id)
        if rec is None or rec.is_active:
            return False
        del self.records[instance_id]
        self.timers.cancel_instance(instance_id)
        self.store.delete(instance_id)
        return True

    # ------------------------------------------------------------ work arrival
    async def _accept_activity(self, o: ActivityOutcome) -> None:
        act = self._dispatched.pop((o.instance_id, o.execution_id, o.seq), None)
        rec = self._current(o.instance_id, o.execution_id)
        if rec is None or rec.activities.pop(str(o.seq), None) is None:
            return
        ts = h.format_ts(h.utc_now())
        if o.succeeded:
            ev = h.event(h.TASK_COMPLETED, ts, TaskScheduledId=o.seq, Result=o.result)
        else:
            ev = h.event(h.TASK_FAILED, ts, TaskScheduledId=o.seq, Reason=o.reason,
                         Details=o.details)
        rec.inbox.append(ev)
        self.store.save(rec)
        if self.model.enabled:
            self.model.activity(act[0] if act else "?", act[1] if act else None, o.result)
            self.model.local_put(rec.instance_id, asyncio.get_running_loop().time())
        self._kick(rec)

    def _on_timer(self, instance_id: str, execution_id: str, seq: int) -> None:
        """The timer's message became visible: the instance's queue finds it at its next
        poll (with the backend model)."""
        delay = 0.0
        if self.model.enabled and self._current(instance_id, execution_id) is not None:
            delay = self.model.arrival(instance_id, asyncio.get_running_loop().time())
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._timer_fired, instance_id,
                                                  execution_id, seq)
        else:
            self._timer_fired(instance_id, execution_id, seq)

    def _timer_fired(self, instance_id: str, execution_id: str, seq: int) -> None:
        rec = self._current(instance_id, execution_id)
        if rec is None:
            return
        fire_at = rec.timers.pop(str(seq), None)
        if fire_at is None:
            return
        rec.inbox.append(h.event(h.TIMER_FIRED, h.format_ts(h.utc_now()), TimerId=seq,
                                 FireAt=fire_at))
        self.store.save(rec)
        self._kick(rec)

    def _current(self, instance_id: str, execution_id: str) -> InstanceRecord | None:
        rec = self.records.get(instance_id)
        if rec is None or rec.execution_id != execution_id or not rec.is_active:
            return None
        return rec

    def _kick_after_poll(self, rec: InstanceRecord) -> None:
        delay = 0.0
        if self.model.enabled:
            delay = self.model.arrival(rec.instance_id, asyncio.get_running_loop().time())
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._kick, rec)
        else:
            self._kick(rec)

    def _kick(self, rec: InstanceRecord) -> None:
        task = self._drivers.get(rec.instance_id)
        if task is None or task.done():
            self._drivers[rec.instance_id] = asyncio.create_task(self._drive(rec.instance_id))

    async def _drive(self, instance_id: str) -> None:
        while True:
            rec = self.records.get(instance_id)
            if rec is None or not rec.is_active:
                return
            if rec.terminate_reason is not None:
                self._terminate_now(rec)
                return
            if not rec.inbox:
                return
            try:
                await self._episode(rec)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a devhost bug must not wedge the loop silently
                log.exception("Episode of instance %s crashed", instance_id)
                self._fail(rec, f"devhost internal error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ episodes
    @staticmethod
    def _retry_related(rec: InstanceRecord, ev: dict[str, Any]) -> bool:
        if ev["EventType"] == h.TASK_FAILED:
            return str(ev["TaskScheduledId"]) in rec.retry_attempts
        if ev["EventType"] == h.TIMER_FIRED:
            return str(ev["TimerId"]) in rec.retry_timers
        return False

    def _take_batch(self, rec: InstanceRecord) -> list[dict[str, Any]]:
        """Next events to deliver. A retry event only ever comes first (its timer/attempt id is
        allocated before the ids of new actions, as the SDK does), and a batch ends after an
        EventRaised (so events after a continue-as-new reach the new execution)."""
        batch: list[dict[str, Any]] = []
        limit = MAX_MESSAGES_PER_EPISODE if self.model.enabled else len(rec.inbox)
        for ev in rec.inbox:
            if (batch and self._retry_related(rec, ev)) or len(batch) >= limit:
                break
            batch.append(ev)
            if ev["EventType"] == h.EVENT_RAISED:
                break
        del rec.inbox[: len(batch)]
        return batch

    def _alloc(self, rec: InstanceRecord) -> int:
        seq = rec.next_seq
        rec.next_seq += 1
        return seq

    def _schedule_activity(self, rec: InstanceRecord, seq: int, name: str, input_json: Any,
                           ts: str, out: list[dict[str, Any]], effects: list[Effect]) -> None:
        out.append(h.event(h.TASK_SCHEDULED, ts, seq, Name=name, Input=input_json))
        rec.activities[str(seq)] = {"name": name, "input": input_json}
        iid, eid = rec.instance_id, rec.execution_id
        if self.model.enabled:
            self._dispatched[(iid, eid, seq)] = (name, input_json)
            self.model.work_item_put(asyncio.get_running_loop().time())
        effects.append(lambda: self.activities.dispatch(iid, eid, seq, name, input_json))

    def _create_timer(self, rec: InstanceRecord, seq: int, fire_at: str, ts: str,
                      out: list[dict[str, Any]], effects: list[Effect]) -> None:
        out.append(h.event(h.TIMER_CREATED, ts, seq, FireAt=fire_at))
        rec.timers[str(seq)] = fire_at
        iid, eid = rec.instance_id, rec.execution_id
        effects.append(lambda: self.timers.arm(iid, eid, seq, fire_at))

    def _retry_step(self, rec: InstanceRecord, ev: dict[str, Any], ts: str,
                    out: list[dict[str, Any]], effects: list[Effect]) -> None:
        """What DTFx's RetryInterceptor does: a timer after each failure (also after the last
        one), then a new attempt when the timer fires while attempts remain."""
        if ev["EventType"] == h.TASK_FAILED:
            key = rec.retry_attempts[str(ev["TaskScheduledId"])]
            group = rec.retry_groups[key]
            delay = timedelta(milliseconds=group["interval_ms"])
            fire_at = h.format_ts(h.parse_ts(ts) + delay)
            seq = self._alloc(rec)
            rec.retry_timers[str(seq)] = key
            self._create_timer(rec, seq, fire_at, ts, out, effects)
        else:
            key = rec.retry_timers[str(ev["TimerId"])]
            group = rec.retry_groups[key]
            if group["attempts"] < group["max_attempts"]:
                group["attempts"] += 1
                seq = self._alloc(rec)
                rec.retry_attempts[str(seq)] = key
                self._schedule_activity(rec, seq, group["name"], group["input"], ts, out, effects)

    async def _episode(self, rec: InstanceRecord) -> None:
        fn = self.orchestrators.get(rec.name)
        batch = self._take_batch(rec)
        ts = h.next_timestamp(rec.last_timestamp)
        rec.last_timestamp = ts
        new_events = [h.event(h.ORCHESTRATOR_STARTED, ts), *batch]
        out: list[dict[str, Any]] = []
        effects: list[Effect] = []
        if batch and self._retry_related(rec, batch[0]):
            self._retry_step(rec, batch[0], ts, out, effects)
        if fn is None:
            rec.history.extend(new_events)
            self._fail(rec, f"The orchestrator function '{rec.name}' does not exist.")
            return
        replay = [{**e, "IsPlayed": True} for e in rec.history] + new_events
        context = build_context(rec.instance_id, rec.input, replay)
        execution_id = rec.execution_id
        loop = asyncio.get_running_loop()
        state = await loop.run_in_executor(
            self.invoker.pool, call_orchestrator, fn.func, fn.trigger_param, context
        )
        if self.records.get(rec.instance_id) is not rec or rec.execution_id != execution_id:
            return  # purged or replaced meanwhile
        rec.history.extend(new_events)
        try:
            result = interpret(state)
        except UnsupportedAction as exc:
            result = EpisodeResult(is_done=False, error=str(exc))
        if "customStatus" in state:
            rec.custom_status = result.custom_status
            if self.model.enabled and result.error is None:
                result.error = self.model.custom_status_error(result.custom_status)
        if result.error is not None:
            self._fail(rec, f"Orchestrator function '{rec.name}' failed: {result.error}")
            return
        violation = check_determinism(rec.actions_seen, result.planned, self.strict)
        if violation is not None:
            self._fail(rec, violation)
            return
        for planned in result.planned[len(rec.actions_seen):]:
            seq = self._alloc(rec)
            rec.actions_seen.append({"seq": seq, "kind": planned.kind, "name": planned.name,
                                     "input": planned.input, "fire_at": planned.fire_at})
            if planned.kind == "timer":
                self._create_timer(rec, seq, planned.fire_at or ts, ts, out, effects)
                continue
            if planned.retry is not None:
                rec.retry_groups[str(seq)] = {
                    "name": planned.name, "input": planned.input, "attempts": 1,
                    "max_attempts": int(planned.retry.get("maxNumberOfAttempts", 1)),
                    "interval_ms": int(planned.retry.get("firstRetryIntervalInMilliseconds", 0)),
                }
                rec.retry_attempts[str(seq)] = str(seq)
            self._schedule_activity(rec, seq, planned.name or "", planned.input, ts, out, effects)
        rec.history.extend(out)
        rec.history.append(h.event(h.ORCHESTRATOR_COMPLETED, ts))
        rec.last_updated_time = h.format_ts(h.utc_now())
        continued = result.is_done and result.continue_as_new
        if self.model.enabled:
            self.model.episode(len(batch), len(out), bool(continued),
                               len(rec.timers) if continued else 0)
            for ev in batch:
                self.model.history_property(ev["EventType"], ev.get("Result"))
        if result.is_done and result.continue_as_new:
            self._continue_as_new(rec, result.continue_as_new_input)
            self.store.save(rec)
            return
        if result.is_done:
            rec.history.append(h.event(h.EXECUTION_COMPLETED, ts, OrchestrationStatus="Completed",
                                       Result=json.dumps(result.output)))
            rec.status, rec.output = COMPLETED, result.output
            self._clear_pending(rec)
            self.store.save(rec)
            log.info("Orchestration %s ('%s') completed", rec.instance_id, rec.name)
            return
        rec.status = RUNNING
        self.store.save(rec)
        for effect in effects:
            effect()

    def _continue_as_new(self, rec: InstanceRecord, new_input: Any) -> None:
        """New execution with a fresh history; undelivered inbox events carry over."""
        log.info("Orchestration %s ('%s') continued as new", rec.instance_id, rec.name)
        self._clear_pending(rec)
        now = h.format_ts(h.utc_now())
        version = next((e.get("Version") for e in rec.history
                        if e["EventType"] == h.EXECUTION_STARTED), None)
        rec.execution_id = uuid.uuid4().hex
        rec.history, rec.actions_seen, rec.next_seq = [], [], 0
        rec.input, rec.status, rec.output = new_input, RUNNING, None
        rec.inbox.insert(0, h.event(h.EXECUTION_STARTED, now, Name=rec.name, Input=new_input,
                                         Version=version))

    def _clear_pending(self, rec: InstanceRecord) -> None:
        self.timers.cancel_instance(rec.instance_id)
        rec.activities, rec.timers = {}, {}
        rec.retry_groups, rec.retry_attempts, rec.retry_timers = {}, {}, {}

    def _fail(self, rec: InstanceRecord, message: str) -> None:
        ts = h.next_timestamp(rec.last_timestamp)
        rec.last_timestamp = ts
        rec.history.append(h.event(h.EXECUTION_COMPLETED, ts, OrchestrationStatus="Failed",
                                   Result=message))
        rec.status, rec.output = FAILED, message
        rec.last_updated_time = h.format_ts(h.utc_now())
        rec.inbox = []
        self._clear_pending(rec)
        self.store.save(rec)
        log.error("Orchestration %s ('%s') failed: %s", rec.instance_id, rec.name, message)

    def _terminate_now(self, rec: InstanceRecord) -> None:
        reason = rec.terminate_reason
        ts = h.next_timestamp(rec.last_timestamp)
        rec.last_timestamp = ts
        rec.history.append(h.event(h.EXECUTION_TERMINATED, ts, Input=reason))
        rec.status, rec.output, rec.terminate_reason = TERMINATED, reason, None
        rec.last_updated_time = h.format_ts(h.utc_now())
        rec.inbox = []
        self._clear_pending(rec)
        self.store.save(rec)
        log.info("Orchestration %s ('%s') terminated: %s", rec.instance_id, rec.name, reason)
