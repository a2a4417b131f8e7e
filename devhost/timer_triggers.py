"""Timer triggers: NCRONTAB schedules (UTC), ``run_on_startup``, ``%Setting%`` schedules."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re

from azure.functions import meta
from azure.functions.timer import TimerRequestConverter

from . import ncrontab
from .history import format_ts, utc_now
from .indexer import IndexedFunction
from .invoker import FunctionInvoker

log = logging.getLogger("devhost.timers")
_SETTING = re.compile(r"^%([^%]+)%$")
PAST_DUE_SLACK_SECONDS = 1.0


def resolve_schedule(fn: IndexedFunction) -> str:
    schedule = str(fn.trigger.get("schedule", ""))
    m = _SETTING.match(schedule)
    if m:
        schedule = os.environ.get(m.group(1), "")
        if not schedule:
            raise ValueError(f"app setting {m.group(1)!r} for '{fn.name}' schedule is not set")
    return schedule


class TimerTriggerRunner:
    def __init__(self, functions: list[IndexedFunction], invoker: FunctionInvoker) -> None:
        self.functions = [f for f in functions if f.trigger_type == "timerTrigger"]
        self.invoker = invoker
        self.schedules = {f.name: ncrontab.parse(resolve_schedule(f)) for f in self.functions}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for fn in self.functions:
            self._tasks.append(asyncio.create_task(self._run(fn)))

    async def _fire(self, fn: IndexedFunction, past_due: bool) -> None:
        schedule = self.schedules[fn.name]
        now = utc_now()
        payload = json.dumps({
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {"Last": format_ts(now), "Next": format_ts(schedule.next_after(now)),
                               "LastUpdated": format_ts(now)},
            "IsPastDue": past_due,
        })
        request = TimerRequestConverter.decode(meta.Datum(type="json", value=payload),
                                               trigger_metadata=None)
        try:
            await self.invoker.invoke(fn, request)
        except Exception:
            log.exception("Timer function '%s' failed", fn.name)

    async def _run(self, fn: IndexedFunction) -> None:
        schedule = self.schedules[fn.name]
        if fn.trigger.get("runOnStartup"):
            await self._fire(fn, past_due=False)
        due = schedule.next_after(utc_now())
        while True:
            await asyncio.sleep(max(0.0, (due - utc_now()).total_seconds()))
            late = (utc_now() - due).total_seconds() > PAST_DUE_SLACK_SECONDS
            await self._fire(fn, past_due=late)
            due = schedule.next_after(max(due, utc_now()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
