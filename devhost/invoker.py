"""Invoke user functions like the Python worker: async on one loop, sync in a thread pool."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import azure.functions as func

from .indexer import IndexedFunction

log = logging.getLogger("devhost.functions")


class InvocationContext(func.Context):
    """The ``context`` argument the worker passes to functions that declare one."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._tls = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


class FunctionInvoker(Protocol):
    """How devhost runs a function: in this process (``Invoker``) or in a worker process
    (``workers.WorkerPool``). ``pool`` is the thread pool orchestrator episodes run on."""

    pool: ThreadPoolExecutor

    async def invoke(self, fn: IndexedFunction, trigger_value: Any,
                     log_execution: bool = True) -> Any: ...


class Invoker:
    def __init__(self, app_dir: str, client_binding_json: str, max_workers: int = 16) -> None:
        self.app_dir = app_dir
        self.client_binding_json = client_binding_json
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="devhost-fn")

    async def invoke(
        self, fn: IndexedFunction, trigger_value: Any, log_execution: bool = True
    ) -> Any:
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {fn.trigger_param: trigger_value}
        for param in fn.durable_client_params:
            kwargs[param] = self.client_binding_json
        if fn.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, fn.name, self.app_dir)
        started = time.perf_counter()
        outcome = "Succeeded"
        try:
            if fn.is_async:
                return await fn.func(**kwargs)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.pool, functools.partial(fn.func, **kwargs))
        except Exception:
            outcome = "Failed"
            raise
        finally:
            if log_execution:
                ms = (time.perf_counter() - started) * 1000
                log.info(
                    "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
                    fn.name, outcome, invocation_id, ms,
                )

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
