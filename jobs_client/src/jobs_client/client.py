"""``JobsClient``: the synchronous client (httpx). Every method runs a flow of ``_flows`` (the
same ones ``AsyncJobsClient`` runs); this module only performs their steps."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
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


class JobsClient:
    """The jobs API over HTTP.

        with JobsClient("http://127.0.0.1:7071", key) as jobs:
            job = jobs.schedule("echo", {"hello": "world"}, delay=5)
            done = jobs.wait(job.id, timeout=30)

    ``url`` and ``key`` default to ``JOBS_URL`` and ``JOBS_KEY``. Errors are
    ``JobsClientError`` subclasses (``jobs_client.errors``); ``503`` answers are retried as
    ``retry`` says (``RetryConfig``), unless repeating the request could schedule a job
    twice (a schedule without an idempotency key).
    """

    def __init__(self, url: str | None = None, key: str | None = None, *,
                 timeout: float | httpx.Timeout = _common.DEFAULT_TIMEOUT,
                 retry: RetryConfig | None = None, poll: PollConfig | None = None,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        url, key = _common.settings_from_env(url, key)
        self._http = httpx.Client(**_common.http_options(url, key, timeout, headers),
                                  transport=transport)
        self._flows = Flows(retry or RetryConfig(), poll or PollConfig())

    # --- the driver ---
    def _perform(self, step: Any) -> Any:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        try:
            return self._http.send(build(self._http, step))
        except httpx.TransportError as exc:
            return TransportFailure(exc)

    def _steps(self, flow: Flow[T]) -> Iterator[Any]:
        sent: Any = None
        while True:
            try:
                step = flow.throw(sent) if isinstance(sent, TransportFailure) else flow.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            if isinstance(step, Emit):
                sent = None
                yield step.value
            else:
                sent = self._perform(step)

    def _run(self, flow: Flow[T]) -> T:
        steps = self._steps(flow)
        try:
            while True:
                next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- jobs ---
    def schedule(self, handler: str, payload: Any = None, *,
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
        return self._run(self._flows.schedule(job, wait))[0]

    def schedule_job(self, job: NewJob, *, wait: float | None = None) -> Job:
        return self._run(self._flows.schedule(job, wait))[0]

    def schedule_and_wait(self, handler: str, payload: Any = None, *, timeout: float = 60.0,
                          due_at: datetime | str | None = None, delay: float | None = None,
                          idempotency_key: str | None = None,
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
        return self._run(self._flows.schedule_and_wait(job, timeout))

    def schedule_many(self, jobs: Iterable[NewJob | Mapping[str, Any]]) -> list[BatchResult]:
        """``POST /api/jobs/batch``: one result per job, in order (an item's error does not
        stop the others)."""
        return self._run(self._flows.schedule_many(_common.as_new_jobs(jobs)))

    def get(self, job_id: str) -> Job:
        return self._run(self._flows.get(job_id))

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Wait until the job is final (a recurring job: until its next run finished); the
        job as it then is. ``WaitTimeout`` (with ``.job``) after ``timeout`` seconds."""
        return self._run(self._flows.wait(job_id, timeout))

    def watch(self, job_id: str, *, interval: float = 1.0,
              timeout: float | None = None) -> Iterator[Job]:
        """The job now and after each change, until it is final."""
        return self._steps(self._flows.watch(job_id, interval, timeout))

    def list_page(self, *, status: str | None = None, handler: str | None = None,
                  slot: int | None = None, due_from: datetime | str | None = None,
                  due_to: datetime | str | None = None, limit: int | None = None,
                  cursor: str | None = None, label: LabelFilter = None) -> JobPage:
        """One page of ``GET /api/jobs``; pass ``page.next_cursor`` as ``cursor``."""
        filters = _common.job_filters(status=status, handler=handler, slot=slot,
                                      due_from=due_from, due_to=due_to, limit=limit,
                                      label=label)
        return self._run(self._flows.list_page(filters, cursor))

    def iter_pages(self, *, status: str | None = None, handler: str | None = None,
                   slot: int | None = None, due_from: datetime | str | None = None,
                   due_to: datetime | str | None = None,
                   page_size: int | None = None,
                   label: LabelFilter = None) -> Iterator[JobPage]:
        filters = _common.job_filters(status=status, handler=handler, slot=slot,
                                      due_from=due_from, due_to=due_to, limit=page_size,
                                      label=label)
        return self._steps(self._flows.pages(filters))

    def iter_jobs(self, *, status: str | None = None, handler: str | None = None,
                  slot: int | None = None, due_from: datetime | str | None = None,
                  due_to: datetime | str | None = None,
                  page_size: int | None = None,
                  label: LabelFilter = None) -> Iterator[Job]:
        """Every matching job, page after page (in shard order)."""
        filters = _common.job_filters(status=status, handler=handler, slot=slot,
                                      due_from=due_from, due_to=due_to, limit=page_size,
                                      label=label)
        return self._steps(self._flows.jobs(filters))

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        return self._run(self._flows.cancel(job_id, reason))

    def run_now(self, job_id: str) -> Job:
        return self._run(self._flows.control(job_id, "run"))

    def retry(self, job_id: str) -> Job:
        """Run a failed or cancelled job again now, as a new run (``runs`` + 1, the same id,
        a fresh attempt budget)."""
        return self._run(self._flows.control(job_id, "retry"))

    def pause(self, job_id: str) -> Job:
        return self._run(self._flows.control(job_id, "pause"))

    def resume(self, job_id: str) -> Job:
        return self._run(self._flows.control(job_id, "resume"))

    def reschedule(self, job_id: str, *, due_at: datetime | str | None = None,
                   delay: float | None = None) -> Job:
        return self._run(self._flows.reschedule(job_id, Reschedule(due_at, delay)))

    def update(self, job_id: str, *, payload: Any = UNSET,
               retry: RetryPolicy | Mapping[str, Any] | None = UNSET,
               recurrence: Recurrence | Mapping[str, Any] | None = UNSET,
               timeout_seconds: float | None = UNSET,
               labels: Mapping[str, str] | None = UNSET) -> Job:
        """Change a waiting or paused job; only the arguments given are sent."""
        update = _common.job_update(payload, retry, recurrence, timeout_seconds, labels)
        return self._run(self._flows.update(job_id, update))

    def history(self, job_id: str) -> JobHistory:
        return self._run(self._flows.history(job_id))

    # --- operators ---
    def status(self) -> SchedulerStatus:
        return self._run(self._flows.status())

    def start(self) -> SchedulerStart:
        return self._run(self._flows.start())

    def shards_page(self, *, slot: int | None = None,
                    bucket_from: datetime | str | None = None,
                    bucket_to: datetime | str | None = None, limit: int | None = None,
                    cursor: str | None = None) -> ShardPage:
        filters = {"slot": slot, "bucket_from": bucket_from, "bucket_to": bucket_to,
                   "limit": limit}
        return self._run(self._flows.shards_page(filters, cursor))

    def iter_shards(self, *, slot: int | None = None, page_size: int | None = None
                    ) -> Iterator[ShardRow]:
        return self._steps(self._flows.shards({"slot": slot, "limit": page_size}))

    def timeline(self, minutes: int | None = None) -> Timeline:
        return self._run(self._flows.timeline(minutes))

    def purge(self, *, dry_run: bool | None = None,
              retention_days: float | None = None) -> PurgeReport:
        return self._run(self._flows.purge(PurgeRequest(dry_run, retention_days)))

    def openapi(self) -> dict[str, Any]:
        """The served OpenAPI document."""
        return self._run(self._flows.openapi())

