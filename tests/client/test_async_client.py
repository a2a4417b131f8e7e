"""AsyncJobsClient against the real app on devhost + Azurite (it runs the same flows as
JobsClient: these tests cover its own driver, iterators and errors)."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest

from jobs_client import AsyncJobsClient, BadRequest, Conflict, JobStatus, NewJob, NotFound
from tests.client.helpers import UNKNOWN_ID, Recorder

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


async def test_schedule_and_wait_and_the_poll_path(aclient: AsyncJobsClient,
                                                   recorder: Recorder) -> None:
    done, later = await asyncio.gather(
        aclient.schedule_and_wait("echo", {"n": 1}, timeout=20),
        aclient.schedule("echo", {"n": 2}, delay=3, wait=1))
    assert done.status == JobStatus.SUCCEEDED and done.result == {"n": 1}
    assert later.status == JobStatus.SCHEDULED
    assert sorted(recorder.statuses("POST", "/api/jobs")) == [200, 202]
    finished = await aclient.wait(later.id, timeout=30)
    assert finished.status == JobStatus.SUCCEEDED and finished.result == {"n": 2}
    assert len(recorder.statuses("GET", f"/api/jobs/{later.id}")) >= 2


async def test_async_pages_and_jobs(aclient: AsyncJobsClient) -> None:
    tag = uuid.uuid4().hex[:8]
    results = await aclient.schedule_many(
        [NewJob("sleep", {"tag": tag}, delay=3600) for _ in range(3)])
    mine = {r.job.id for r in results if r.job is not None}
    assert len(mine) == 3
    pages = [page async for page in aclient.iter_pages(handler="sleep", status="scheduled",
                                                         page_size=1)]
    assert len(pages) >= 3 and pages[-1].next_cursor is None
    ids = [job.id async for job in aclient.iter_jobs(handler="sleep", status="scheduled",
                                                     page_size=2)]
    assert ids == [j.id for page in pages for j in page.jobs] and mine <= set(ids)
    for job_id in mine:
        assert (await aclient.cancel(job_id)).status == JobStatus.CANCELLED


async def test_async_errors_controls_and_watch(aclient: AsyncJobsClient) -> None:
    with pytest.raises(NotFound):
        await aclient.history(UNKNOWN_ID)
    with pytest.raises(BadRequest) as bad:
        await aclient.reschedule(UNKNOWN_ID, delay=-5)
    assert bad.value.field == "delay"
    job = await aclient.schedule("echo", "x", delay=600)
    assert (await aclient.pause(job.id)).status == JobStatus.PAUSED
    with pytest.raises(Conflict):
        await aclient.pause(job.id)
    assert (await aclient.resume(job.id)).status == JobStatus.SCHEDULED
    await aclient.run_now(job.id)
    seen = [j async for j in aclient.watch(job.id, interval=0.2, timeout=30)]
    assert seen[-1].status == JobStatus.SUCCEEDED and seen[-1].result == "x"
    assert all(a != b for a, b in itertools.pairwise(seen))  # only changes
    status = await aclient.status()
    assert len(status.slots) == 2
