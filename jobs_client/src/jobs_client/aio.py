"""``AsyncJobsClient``: the asyncio client (httpx). It runs the same flows as ``JobsClient``
(``_flows``); this module only performs their steps with ``await``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from . import _common
from ._codec import UNSET
from ._common import LabelFilter
from ._flows import Flows
from ._protocol import Emit, Flow, PollConfig, RetryConfig, Sleep, TransportFailure, build
from .models import (
    BatchResult,
    Job,
    JobHistory,
    JobPage,
    NewJob,
    Recurrence,
    Reschedule,
    RetryPolicy,
)
from .operator_models import (
    PurgeReport,
    PurgeRequest,
    SchedulerStart,
    SchedulerStatus,
    ShardPage,
    ShardRow,
    Timeline,
)

T = TypeVar("T")


class AsyncJobsClient:
    """The jobs API over HTTP, for asyncio; the same methods as ``JobsClient``, awaited
    (iterators are ``async for``).

        async with AsyncJobsClient("http://127.0.0.1:7071", key) as jobs:
            job = await jobs.schedule_and_wait("echo", {"hello": "world"}, timeout=30)
    """

    def __init__(self, url: str | None = None, key: str | None = None, *,
                 timeout: float | httpx.Timeout = _common.DEFAULT_TIMEOUT,
                 retry: RetryConfig | None = None, poll: PollConfig | None = None,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        url, key = _common.settings_from_env(url, key)
        self._http = httpx.AsyncClient(**_common.http_options(url, key, timeout, headers),
                                       transport=transport)
        self._flows = Flows(retry or RetryConfig(), poll or PollConfig())

    # --- the driver ---
    async def _perform(self, step: Any) -> Any:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        try:
            return await self._http.send(build(self._http, step))
        except httpx.TransportError as exc:
            return TransportFailure(exc)

    async def _run(self, flow: Flow[T]) -> T:
        sent: Any = None
        while True:
            try:
                step = flow.throw(sent) if isinstance(sent, TransportFailure) else flow.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            if isinstance(step, Emit):
                raise TypeError("this flow emits values: iterate it with _stream")
            sent = await self._perform(step)

    async def _stream(self, flow: Flow[None]) -> AsyncIterator[Any]:
        sent: Any = None
        while True:
            try:
                step = flow.throw(sent) if isinstance(sent, TransportFailure) else flow.send(sent)
            except StopIteration:
                return
            if isinstance(step, Emit):
                sent = None
                yield step.value
            else:
                sent = await self._perform(step)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncJobsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- jobs ---
    async def schedule(self, handler: str, payload: Any = None, *,
                       due_at: datetime | str | None = None, delay: float | None = None,
                       idempotency_key: str | None = None,
                       retry: RetryPolicy | Mapping[str, Any] | None = None,
                       recurrence: Recurrence | Mapping[str, Any] | None = None,
                       notify: str | None = None, timeout_seconds: float | None = None,
                       labels: Mapping[str, str] | None = None,
                       wait: float | None = None) -> Job:
        """Schedule a job. With ``wait``, the server holds the answer up to ``wait`` seconds
        (``Prefer: wait``, capped by the server) and the job may come back finished."""
        job = _common.new_job(handler, payload, due_at=due_at, delay=delay,
                              idempotency_key=idempotency_key, retry=retry,
                              recurrence=recurrence, notify=notify,
                              timeout_seconds=timeout_seconds, labels=labels)
        return (await self._run(self._flows.schedule(job, wait)))[0]

    async def schedule_job(self, job: NewJob, *, wait: float | None = None) -> Job:
        return (await self._run(self._flows.schedule(job, wait)))[0]

    # timeout: how long to wait for the job (WaitTimeout then carries it), not a cancel scope
    async def schedule_and_wait(self, handler: str, payload: Any = None, *,
                                timeout: float = 60.0,  # noqa: ASYNC109
                                due_at: datetime | str | None = None,
                                delay: float | None = None, idempotency_key: str | None = None,
                                retry: RetryPolicy | Mapping[str, Any] | None = None,
                                recurrence: Recurrence | Mapping[str, Any] | None = None,
                                notify: str | None = None,
                                timeout_seconds: float | None = None,
                                labels: Mapping[str, str] | None = None) -> Job:
        """Schedule and wait until the job finished: ``Prefer: wait`` first, then polling
        (never sooner than the server's ``Retry-After``); ``WaitTimeout`` after ``timeout``."""
        job = _common.new_job(handler, payload, due_at=due_at, delay=delay,
                              idempotency_key=idempotency_key, retry=retry,
                              recurrence=recurrence, notify=notify,
                              timeout_seconds=timeout_seconds, labels=labels)
        return await self._run(self._flows.schedule_and_wait(job, timeout))

    async def schedule_many(self, jobs: Iterable[NewJob | Mapping[str, Any]]
                            ) -> list[BatchResult]:
        """``POST /api/jobs/batch``: one result per job, in order (an item's error does not
        stop the others)."""
        return await self._run(self._flows.schedule_many(_common.as_new_jobs(jobs)))

    async def get(self, job_id: str) -> Job:
        return await self._run(self._flows.get(job_id))

    async def wait(self, job_id: str, timeout: float = 60.0) -> Job:  # noqa: ASYNC109
        """Wait until the job is final (a recurring job: until its next run finished); the
        job as it then is. ``WaitTimeout`` (with ``.job``) after ``timeout`` seconds."""
        return await self._run(self._flows.wait(job_id, timeout))

    def watch(self, job_id: str, *, interval: float = 1.0,
              timeout: float | None = None) -> AsyncIterator[Job]:
        """The job now and after each change, until it is final."""
        return self._stream(self._flows.watch(job_id, interval, timeout))

    async def list_page(self, *, status: str | None = None, handler: str | None = None,
                        slot: int | None = None, due_from: datetime | str | None = None,
                        due_to: datetime | str | None = None, limit: int | None = None,
                        cursor: str | None = None, label: LabelFilter = None) -> JobPage:
        """One page of ``GET /api/jobs``; pass ``page.next_cursor`` as ``cursor``."""
        filters = _common.job_filters(status=status, handler=handler, slot=slot,
                                      due_from=due_from, due_to=due_to, limit=limit,
                                      label=label)
        return await self._run(self._flows.list_page(filters, cursor))

    def iter_pages(self, *, status: str | None = None, handler: str | None = None,
                   slot: int | None = None, due_from: datetime | str | None = None,
                   due_to: datetime | str | None = None,
                   page_size: int | None = None,
                   label: LabelFilter = None) -> AsyncIterator[JobPage]:
        filters = _common.job_filters(status=status, handler=handler, slot=slot,
                                      due_from=due_from, due_to=due_to, limit=page_size,
                                      label=label)
        return self._stream(self._flows.pages(filters))

    def iter_jobs(self, *, status: str | None = None, handler: str | None = None,
                  slot: int | None = None, due_from: datetime | str | None = None,
                  due_to: datetime | str | None = None,
                  page_size: int | None = None,
                  label: LabelFilter = None) -> AsyncIterator[Job]:
        """Every matching job, page after page (in shard order)."""
        filters = _common.job_filters(status=status, handler=handler, slot=slot,
                                      due_from=due_from, due_to=due_to, limit=page_size,
                                      label=label)
        return self._stream(self._flows.jobs(filters))

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        return await self._run(self._flows.cancel(job_id, reason))

    async def run_now(self, job_id: str) -> Job:
        return await self._run(self._flows.control(job_id, "run"))

    async def retry(self, job_id: str) -> Job:
        """Run a failed or cancelled job again now, as a new run (``runs`` + 1, the same id,
        a fresh attempt budget)."""
        return await self._run(self._flows.control(job_id, "retry"))

    async def pause(self, job_id: str) -> Job:
        return await self._run(self._flows.control(job_id, "pause"))

    async def resume(self, job_id: str) -> Job:
        return await self._run(self._flows.control(job_id, "resume"))

    async def reschedule(self, job_id: str, *, due_at: datetime | str | None = None,
                         delay: float | None = None) -> Job:
        return await self._run(self._flows.reschedule(job_id, Reschedule(due_at, delay)))

    async def update(self, job_id: str, *, payload: Any = UNSET,
                     retry: RetryPolicy | Mapping[str, Any] | None = UNSET,
                     recurrence: Recurrence | Mapping[str, Any] | None = UNSET,
                     timeout_seconds: float | None = UNSET,
                     labels: Mapping[str, str] | None = UNSET) -> Job:
        """Change a waiting or paused job; only the arguments given are sent."""
        update = _common.job_update(payload, retry, recurrence, timeout_seconds, labels)
        return await self._run(self._flows.update(job_id, update))

    async def history(self, job_id: str) -> JobHistory:
        return await self._run(self._flows.history(job_id))

    # --- operators ---
    async def status(self) -> SchedulerStatus:
        return await self._run(self._flows.status())

    async def start(self) -> SchedulerStart:
        return await self._run(self._flows.start())

    async def shards_page(self, *, slot: int | None = None,
                          bucket_from: datetime | str | None = None,
                          bucket_to: datetime | str | None = None, limit: int | None = None,
                          cursor: str | None = None) -> ShardPage:
        filters = {"slot": slot, "bucket_from": bucket_from, "bucket_to": bucket_to,
                   "limit": limit}
        return await self._run(self._flows.shards_page(filters, cursor))

    def iter_shards(self, *, slot: int | None = None, page_size: int | None = None
                    ) -> AsyncIterator[ShardRow]:
        return self._stream(self._flows.shards({"slot": slot, "limit": page_size}))

    async def timeline(self, minutes: int | None = None) -> Timeline:
        return await self._run(self._flows.timeline(minutes))

    async def purge(self, *, dry_run: bool | None = None,
                    retention_days: float | None = None) -> PurgeReport:
        return await self._run(self._flows.purge(PurgeRequest(dry_run, retention_days)))

    async def openapi(self) -> dict[str, Any]:
        """The served OpenAPI document."""
        return await self._run(self._flows.openapi())

