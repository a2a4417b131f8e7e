"""Runs activity functions with a concurrency cap and reports results as history payloads."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from .indexer import IndexedFunction
from .invoker import FunctionInvoker

log = logging.getLogger("devhost.activities")


@dataclass
class ActivityOutcome:
    instance_id: str
    execution_id: str
    seq: int
    succeeded: bool
    result: str | None = None  # JSON text for TaskCompleted.Result
    reason: str | None = None
    details: str | None = None


class ActivityPool:
    def __init__(
        self,
        activities: dict[str, IndexedFunction],
        invoker: FunctionInvoker,
        max_concurrency: int,
        on_done: Callable[[ActivityOutcome], Awaitable[None]],
    ) -> None:
        self._activities = activities
        self._invoker = invoker
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._on_done = on_done
        self._tasks: set[asyncio.Task[None]] = set()

    def dispatch(
        self, instance_id: str, execution_id: str, seq: int, name: str, input_json: Any
    ) -> None:
        task = asyncio.create_task(self._run(instance_id, execution_id, seq, name, input_json))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, instance_id: str, execution_id: str, seq: int, name: str, input_json: Any
    ) -> None:
        async with self._semaphore:
            outcome = await self._execute(instance_id, execution_id, seq, name, input_json)
        await self._on_done(outcome)

    async def _execute(
        self, instance_id: str, execution_id: str, seq: int, name: str, input_json: Any
    ) -> ActivityOutcome:
        fn = self._activities.get(name)
        if fn is None:
            return ActivityOutcome(
                instance_id, execution_id, seq, False,
                reason=f"The function '{name}' doesn't exist, is disabled, or is not an "
                "activity function.",
                details=None,
            )
        try:
            value = ActivityTriggerConverter.decode(
                meta.Datum(type="json", value=input_json), trigger_metadata=None
            )
            result = await self._invoker.invoke(fn, value)
            encoded = ActivityTriggerConverter.encode(result, expected_type=None).value
            return ActivityOutcome(instance_id, execution_id, seq, True, result=encoded)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return ActivityOutcome(
                instance_id, execution_id, seq, False,
                reason=f"Activity function '{name}' failed: {type(exc).__name__}: {exc}",
                details=getattr(exc, "remote_traceback", "") or
                "".join(traceback.format_exception(exc)),
            )

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
