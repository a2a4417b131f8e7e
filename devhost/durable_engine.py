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
from typing import Any

from . import history as h
from .activity_pool import ActivityOutcome, ActivityPool
from .backend_model import MAX_MESSAGES_PER_EPISODE, BackendModel, BackendSettings
from .episode_actions import EpisodeActions, is_retry_event
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
    completions,
    interpret,
    shim_progress,
)
from .timers import TimerService

log = logging.getLogger("devhost.durable")


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
        for record in self.records.values():
            if not record.is_active:
                continue
            resumed += 1
            for seq, act in record.activities.items():
                loop.call_later(redeliver, self.activities.dispatch, record.instance_id,
                                record.execution_id, int(seq), act["name"], act["input"])
            for seq, fire_at in record.timers.items():
                self.timers.arm(record.instance_id, record.execution_id, int(seq), fire_at)
            self._kick(record)
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
        record = InstanceRecord(
            instance_id=instance_id, name=name, execution_id=uuid.uuid4().hex,
            created_time=now, last_updated_time=now, status=PENDING, input=input_value,
        )
        record.inbox.append(h.event(h.EXECUTION_STARTED, now, Name=name, Input=input_value,
                                    Version=version))
        self.records[instance_id] = record
        self.store.save(record)
        log.info("Started orchestration '%s' instance %s", name, instance_id)
        self._kick(record)
        return instance_id

    def _active(self, instance_id: str) -> InstanceRecord:
        record = self.records.get(instance_id)
        if record is None:
            raise InstanceNotFound(instance_id)
        if not record.is_active:
            raise InstanceGone(instance_id)
        return record

    def raise_event(self, instance_id: str, name: str, input_json: str) -> None:
        """The event is durable at once; an idle instance sees it at its queue's next poll
        (it was put by another process: an HTTP instance)."""
        record = self._active(instance_id)
        record.inbox.append(h.event(h.EVENT_RAISED, h.format_ts(h.utc_now()), Name=name,
                                    Input=input_json))
        self.store.save(record)
        self.model.raise_event()
        self._kick_after_poll(record)

    def terminate(self, instance_id: str, reason: str) -> None:
        record = self._active(instance_id)
        record.terminate_reason = reason
        self.store.save(record)
        self._kick(record)

    def purge(self, instance_id: str) -> bool:
        record = self.records.get(instance_id)
        if record is None or record.is_active:
            return False
        del self.records[instance_id]
        self.timers.cancel_instance(instance_id)
        self.store.delete(instance_id)
        return True

    # ------------------------------------------------------------ work arrival
    async def _accept_activity(self, o: ActivityOutcome) -> None:
        act = self._dispatched.pop((o.instance_id, o.execution_id, o.seq), None)
        record = self._current(o.instance_id, o.execution_id)
        if record is None or record.activities.pop(str(o.seq), None) is None:
            return
        ts = h.format_ts(h.utc_now())
        if o.succeeded:
            ev = h.event(h.TASK_COMPLETED, ts, TaskScheduledId=o.seq, Result=o.result)
        else:
            ev = h.event(h.TASK_FAILED, ts, TaskScheduledId=o.seq, Reason=o.reason,
                         Details=o.details)
        record.inbox.append(ev)
        self.store.save(record)
        if self.model.enabled:
            self.model.activity(act[0] if act else "?", act[1] if act else None, o.result)
            self.model.local_put(record.instance_id, asyncio.get_running_loop().time())
        self._kick(record)

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
        record = self._current(instance_id, execution_id)
        if record is None:
            return
        fire_at = record.timers.pop(str(seq), None)
        if fire_at is None:
            return
        record.inbox.append(h.event(h.TIMER_FIRED, h.format_ts(h.utc_now()), TimerId=seq,
                                    FireAt=fire_at))
        self.store.save(record)
        self._kick(record)

    def _current(self, instance_id: str, execution_id: str) -> InstanceRecord | None:
        record = self.records.get(instance_id)
        if record is None or record.execution_id != execution_id or not record.is_active:
            return None
        return record

    def _kick_after_poll(self, record: InstanceRecord) -> None:
        delay = 0.0
        if self.model.enabled:
            delay = self.model.arrival(record.instance_id, asyncio.get_running_loop().time())
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._kick, record)
        else:
            self._kick(record)

    def _kick(self, record: InstanceRecord) -> None:
        task = self._drivers.get(record.instance_id)
        if task is None or task.done():
            self._drivers[record.instance_id] = asyncio.create_task(self._drive(record.instance_id))

    async def _drive(self, instance_id: str) -> None:
        while True:
            record = self.records.get(instance_id)
            if record is None or not record.is_active:
                return
            if record.terminate_reason is not None:
                self._terminate_now(record)
                return
            if not record.inbox:
                return
            try:
                await self._episode(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a devhost bug must not wedge the loop silently
                log.exception("Episode of instance %s crashed", instance_id)
                self._fail(record, f"devhost internal error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ episodes
    def _take_batch(self, record: InstanceRecord) -> list[dict[str, Any]]:
        """Next events to deliver. A retry event only ever comes first (its timer/attempt id is
        allocated before the ids of new actions, as the SDK does), and a batch ends after an
        EventRaised (so events after a continue-as-new reach the new execution)."""
        batch: list[dict[str, Any]] = []
        limit = MAX_MESSAGES_PER_EPISODE if self.model.enabled else len(record.inbox)
        for ev in record.inbox:
            if (batch and is_retry_event(record, ev)) or len(batch) >= limit:
                break
            batch.append(ev)
            if ev["EventType"] == h.EVENT_RAISED:
                break
        del record.inbox[: len(batch)]
        return batch

    def _noted(self, iid: str, eid: str, seq: int, name: str, input_json: Any) -> None:
        if self.model.enabled:
            self._dispatched[(iid, eid, seq)] = (name, input_json)
            self.model.work_item_put(asyncio.get_running_loop().time())

    async def _episode(self, record: InstanceRecord) -> None:
        fn = self.orchestrators.get(record.name)
        batch = self._take_batch(record)
        ts = h.next_timestamp(record.last_timestamp)
        record.last_timestamp = ts
        new_events = [h.event(h.ORCHESTRATOR_STARTED, ts), *batch]
        actions = EpisodeActions(record, ts, self.activities.dispatch, self.timers.arm,
                                 self._noted)
        if batch and is_retry_event(record, batch[0]):
            actions.retry_step(batch[0])
        if fn is None:
            record.history.extend(new_events)
            self._fail(record, f"The orchestrator function '{record.name}' does not exist.")
            return
        replay = [{**e, "IsPlayed": True} for e in record.history] + new_events
        context = build_context(record.instance_id, record.input, replay)
        execution_id = record.execution_id
        loop = asyncio.get_running_loop()
        state = await loop.run_in_executor(
            self.invoker.pool, call_orchestrator, fn.func, fn.trigger_param, context
        )
        current = self.records.get(record.instance_id)
        if current is not record or record.execution_id != execution_id:
            return  # purged or replaced meanwhile
        record.history.extend(new_events)
        unsupported = None
        try:
            result = interpret(state)
        except UnsupportedAction as exc:
            result, unsupported = EpisodeResult(is_done=False), str(exc)
        size_error = None
        if "customStatus" in state:
            record.custom_status = result.custom_status
            if self.model.enabled:
                size_error = self.model.custom_status_error(result.custom_status)
        # the extension sets the custom status first, then replays the actions and awaits each
        # in turn: what follows the first one still running waits for a later episode
        progress = shim_progress(state, completions(
            record.history, [a["seq"] for a in record.actions_seen],
            record.retry_groups, record.retry_attempts, record.retry_timers), record.history)
        # an API devhost does not emulate fails the instance at once (nothing of it would run)
        error = size_error or unsupported or (result.error if progress.finished else None)
        if error is not None:
            self._fail(record, f"Orchestrator function '{record.name}' failed: {error}")
            return
        violation = check_determinism(record.actions_seen, result.planned, self.strict)
        if violation is not None:
            self._fail(record, violation)
            return
        for planned in result.planned[len(record.actions_seen):progress.scheduled]:
            actions.planned(planned)
        record.history.extend(actions.out)
        record.history.append(h.event(h.ORCHESTRATOR_COMPLETED, ts))
        record.last_updated_time = h.format_ts(h.utc_now())
        done = result.is_done and progress.finished
        continued = done and result.continue_as_new
        if self.model.enabled:
            self.model.episode(len(batch), len(actions.out), bool(continued),
                               len(record.timers) if continued else 0)
            for ev in batch:
                self.model.history_property(ev["EventType"], ev.get("Result"))
        if continued:
            self._continue_as_new(record, result.continue_as_new_input)
            self.store.save(record)
            return
        if done:
            completed = h.event(h.EXECUTION_COMPLETED, ts, OrchestrationStatus="Completed",
                                Result=json.dumps(result.output))
            record.history.append(completed)
            record.status, record.output = COMPLETED, result.output
            self._clear_pending(record)
            self.store.save(record)
            log.info("Orchestration %s ('%s') completed", record.instance_id, record.name)
            return
        record.status = RUNNING
        self.store.save(record)
        for effect in actions.effects:
            effect()

    def _continue_as_new(self, record: InstanceRecord, new_input: Any) -> None:
        """New execution with a fresh history; undelivered inbox events carry over."""
        log.info("Orchestration %s ('%s') continued as new", record.instance_id, record.name)
        self._clear_pending(record)
        now = h.format_ts(h.utc_now())
        version = next((e.get("Version") for e in record.history
                        if e["EventType"] == h.EXECUTION_STARTED), None)
        record.execution_id = uuid.uuid4().hex
        record.history, record.actions_seen, record.next_seq = [], [], 0
        record.input, record.status, record.output = new_input, RUNNING, None
        record.inbox.insert(0, h.event(h.EXECUTION_STARTED, now, Name=record.name, Input=new_input,
                                         Version=version))

    def _clear_pending(self, record: InstanceRecord) -> None:
        self.timers.cancel_instance(record.instance_id)
        record.activities, record.timers = {}, {}
        record.retry_groups, record.retry_attempts, record.retry_timers = {}, {}, {}

    def _fail(self, record: InstanceRecord, message: str) -> None:
        self._end(record, FAILED, message, h.EXECUTION_COMPLETED, OrchestrationStatus="Failed",
                  Result=message)
        log.error("Orchestration %s ('%s') failed: %s", record.instance_id, record.name, message)

    def _terminate_now(self, record: InstanceRecord) -> None:
        reason = record.terminate_reason
        record.terminate_reason = None
        self._end(record, TERMINATED, reason, h.EXECUTION_TERMINATED, Input=reason)
        log.info("Orchestration %s ('%s') terminated: %s", record.instance_id, record.name, reason)

    def _end(self, record: InstanceRecord, status: str, output: Any, event_type: int,
             **fields: Any) -> None:
        """The instance ends (failed or terminated): its last event, its undelivered events and
        pending work dropped, saved."""
        ts = h.next_timestamp(record.last_timestamp)
        record.last_timestamp = ts
        record.history.append(h.event(event_type, ts, **fields))
        record.status, record.output = status, output
        record.last_updated_time = h.format_ts(h.utc_now())
        record.inbox = []
        self._clear_pending(record)
        self.store.save(record)
